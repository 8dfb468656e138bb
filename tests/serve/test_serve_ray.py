"""`vidlens serve --engine ray --address ADDR`: two service replicas on one real local Ray cluster
(`ray.init(num_cpus=2)` in this process) share one named actor pool that holds the models, and their
jobs give what the local engine (the package's `server`: worker processes) gives for the same uploads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from vidlens.testing import sample_media

from .conftest import CLASSES, running_server

pytestmark = pytest.mark.slow  # `make test-slow`

ray = pytest.importorskip("ray")

RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def upload(client: httpx.Client, task: str, path: Path, **data) -> str:
    with open(path, "rb") as handle:
        r = client.post(f"/v1/{task}", files={"file": (path.name, handle, "video/mp4")}, data={k: str(v) for k, v in data.items()})
    assert r.status_code == 202, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def cluster():
    """A real local Ray cluster; its address is what `--address` gets."""
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)  # never another test's cluster
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        for actor in ray.util.list_named_actors(all_namespaces=True):  # the replicas' detached actors
            if actor["namespace"] == "vidlens-serve":
                ray.kill(ray.get_actor(actor["name"], namespace="vidlens-serve"))
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_two_replicas_share_one_actor_pool_and_answer_as_the_local_engine(cluster, server, actions, tmp_path):
    video = sorted((actions / CLASSES[1]).glob("*.mp4"))[0]
    real = sample_media("carphone_pristine.mp4")
    args = ("--engine", "ray", "--address", cluster, "--workers", "1", "--checkpoint", str(server.checkpoint), "--no-emotion")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running_server(tmp_path / "a", *args) as one, running_server(tmp_path / "b", *args) as two:
        actors = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "vidlens-serve"]
        assert len(actors) == 1 and actors[0]["name"].startswith("vidlens-serve-"), actors  # one pool for both
        with one.client() as c1, two.client() as c2, server.client() as local:
            specs = {"classify": ("classify", video, {"top_k": 2, "timeline": "true"}),
                     "classify-real": ("classify", real, {"top_k": 2}),
                     "summarize": ("summarize", real, {"method": "uniform", "ratio": 0.3})}
            jobs = {(name, what): (client, upload(client, task, path, **opts))
                    for name, client in (("one", c1), ("two", c2), ("local", local)) for what, (task, path, opts) in specs.items()}
            done = {key: (server.wait(client, job_id), client) for key, (client, job_id) in jobs.items()}
            for (name, what), (job, client) in done.items():
                assert job["status"] == "done", (name, what, job["error"])
                for url in job["artifacts"].values():
                    r = client.get(url)
                    assert r.status_code == 200 and r.content, url
            for replica in ("one", "two"):
                for what in specs:
                    ours, theirs = done[(replica, what)][0], done[("local", what)][0]
                    assert set(ours["artifacts"]) == set(theirs["artifacts"])
                    got, expected = ours["result"], theirs["result"]
                    if what == "summarize":
                        assert got == expected
                        continue
                    assert [t["label"] for t in got["top"]] == [t["label"] for t in expected["top"]]
                    np.testing.assert_allclose([t["score"] for t in got["top"]], [t["score"] for t in expected["top"]], atol=1e-5)
                    assert {k: v for k, v in got.items() if k != "top"} == {k: v for k, v in expected.items() if k != "top"}
            health = c1.get("/healthz").json()
            assert health["status"] == "ok" and health["engine"] == "ray" and health["workers"] == 1
    assert "Traceback" not in one.log.read_text() + two.log.read_text()


def test_private_ray_of_one_server_survives_kill_9_and_answers_as_the_local_engine(server, tmp_path):
    """`--engine ray` without `--address`: the server starts its own local Ray (gone with it when it is
    killed); jobs queued and running at a kill -9 run after the restart, as on the local engine."""
    long, short = sample_media("bikes.mp4"), sample_media("carphone_pristine.mp4")
    args = ("--engine", "ray", "--workers", "1", "--no-emotion")
    with running_server(tmp_path, *args, keep_jobs=True) as first:
        with first.client() as client:
            ids = [upload(client, "summarize", long, ratio=0.3), upload(client, "summarize", short, method="uniform", ratio=0.3)]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{ids[0]}").json()["stage"] in (None, "waiting for a Ray actor"):
                assert time.monotonic() < deadline, "the first job never started on the actor"
                time.sleep(0.05)
            assert client.get(f"/v1/jobs/{ids[1]}").json()["status"] == "queued"
        first.process.kill()
        first.process.wait(30)
    with running_server(tmp_path, *args, keep_jobs=True) as second:
        with second.client() as client, server.client() as local:
            done = [second.wait(client, job_id) for job_id in ids]
            reference = server.wait(local, upload(local, "summarize", short, method="uniform", ratio=0.3))
            for job in done:
                assert job["status"] == "done", job["error"]
                assert client.get(job["artifacts"]["summary.mp4"]).status_code == 200
    assert done[1]["result"] == reference["result"] and set(done[1]["artifacts"]) == set(reference["artifacts"])
    assert "Traceback" not in second.log.read_text()


def test_search_and_index_jobs_on_the_ray_engine_answer_as_the_local_library(cluster, tmp_path):
    """`--engine ray --index`: the actor pool loads the index and its models; a text search gives the library's
    ranking, an upload added through `/v1/index` is found by a clip cut from it, and the index on disk holds it."""
    from vidlens.tasks.retrieval.index import VideoIndex
    from vidlens.tasks.retrieval.search import search_text
    from vidlens.testing import single_thread

    from .test_search_service import NAMES, USER_TEXT, cut, names, search, sources

    media = sources()
    footage = {name: cut(media[name], tmp_path / name, 0, 6) for name in (*NAMES[:3], "tree.mp4")}
    with single_thread(), VideoIndex.create(tmp_path / "index") as index:
        assert len(index.add_videos([footage[n] for n in NAMES[:3]], text=USER_TEXT).added) == 3
        reference = [Path(h.video).name for h in search_text(index, "people walking down a street", k=3).hits]
    (tmp_path / "srv").mkdir()
    args = ("--engine", "ray", "--address", cluster, "--workers", "1", "--no-summarize", "--no-emotion",
            "--index", str(tmp_path / "index"))
    query = cut(footage["tree.mp4"], tmp_path / "tree-part.mp4", 1.0, 3.0, width=200)
    with running_server(tmp_path / "srv", *args) as srv, srv.client() as client:
        assert names(search(srv, client, text="people walking down a street", k=3)) == reference
        r = client.post("/v1/index", files={"file": ("tree.mp4", footage["tree.mp4"].read_bytes())})
        assert r.status_code == 202, r.text
        added = srv.wait(client, r.json()["id"])
        assert added["status"] == "done" and added["result"]["status"] == "added", added
        assert names(search(srv, client, path=query, k=2))[0] == "tree.mp4"
    with VideoIndex.open(tmp_path / "index") as index:
        assert index.find("tree.mp4") is not None and index.info()["videos"] == 4
    assert "Traceback" not in srv.log.read_text()
