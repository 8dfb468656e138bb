"""`vidlens batch --engine ray` on a real local Ray cluster (2 CPUs), over the same real footage as the
local engine's tests (+ one synthetic video and a corrupt file).

What a user relies on: the Ray engine gives the same labels / scenes as the local engine and the
single-video commands, the same results table, the corrupt file recorded with its reason, no video
lost when an actor's process is killed (Ray restarts the actor and retries the video once), and a
rerun after the driver was killed that runs only the missing videos.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import CORRUPT
from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options
from vidlens.cli.main import main
from vidlens.outputs import STAGING_MARK

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'vidlens[ray]')")

pytestmark = pytest.mark.usefixtures("one_thread")

VIDLENS = Path(sys.executable).parent / "vidlens"
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a private test cluster


def cli(*args: str) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["video"]).name: r for r in rows}


def pool_released(timeout: float = 60.0) -> bool:
    """Both CPUs of the test cluster free again (Ray frees a stopped or killed actor's CPU asynchronously: seconds on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU") == 2:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module (2 CPUs); the engine uses it as it is. Yields its address."""
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)  # never another test's cluster
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_shots_on_ray_match_the_local_engine_and_vidlens_shots(cluster, video_folder, tmp_path):
    on_ray, local = tmp_path / "ray", tmp_path / "local"
    assert cli("--quiet", "batch", "shots", video_folder, "--out", on_ray, "--engine", "ray", "--no-plot") == 2
    assert cli("--quiet", "batch", "shots", video_folder, "--out", local, "--workers", 2, "--no-plot") == 2
    ray_table = by_name(pq.read_table(on_ray / "results.parquet").to_pylist())
    local_table = by_name(pq.read_table(local / "results.parquet").to_pylist())
    assert set(ray_table) == set(local_table) == {p.name for p in video_folder.iterdir()}
    assert pq.read_table(on_ray / "results.parquet").column_names == pq.read_table(local / "results.parquet").column_names
    for name, row in ray_table.items():
        other = local_table[name]
        assert row["status"] == other["status"] and row["key"] == other["key"]
        if name == CORRUPT:
            assert row["status"] == "failed" and row["error"] and row["error"] == other["error"]
            assert not Path(row["out_dir"]).exists()
            continue
        assert row["status"] == "done", row
        assert (row["shots"], row["boundaries"]) == (other["shots"], other["boundaries"])
        ours = json.loads((Path(row["out_dir"]) / "scenes.json").read_text())
        theirs = json.loads((Path(other["out_dir"]) / "scenes.json").read_text())
        assert ours["boundaries"] == theirs["boundaries"] and ours["scenes"] == theirs["scenes"]
        assert row["attempt"] == 1 and row["load_s"] is not None and row["seconds"] > 0
        assert int(row["worker"].rsplit(":", 1)[1]) != os.getpid()  # run by an actor process
    assert ray_table["bikes.mp4"]["boundaries"] >= 1  # bikes.mp4 has cuts
    for name in ("bikes.mp4", "chaplin.mp4"):  # the single-video command on real footage
        if name not in ray_table:
            continue
        assert cli("--quiet", "shots", video_folder / name, "--out", tmp_path / name, "--no-plot") == 0
        single = json.loads((tmp_path / name / "scenes.json").read_text())
        ours = json.loads((Path(ray_table[name]["out_dir"]) / "scenes.json").read_text())
        assert ours["boundaries"] == single["boundaries"] and ours["scenes"] == single["scenes"]
    assert len(ResultStore(on_ray).rows()) == len(ray_table)  # one row per video
    assert pool_released()


def test_classify_on_ray_matches_vidlens_predict(cluster, video_folder, checkpoint, tmp_path):
    """Ray == `vidlens predict` per video (the local engine == `vidlens predict` is tested in test_batch_local)."""
    on_ray = tmp_path / "ray"
    assert cli("--quiet", "batch", "classify", video_folder, "--out", on_ray, "--checkpoint", checkpoint,
               "--engine", "ray", "--workers", 2) == 2
    assert cli("--quiet", "predict", video_folder, "--checkpoint", checkpoint, "--out", tmp_path / "predict") == 2
    single = {Path(r["path"]).name: r for r in map(json.loads, (tmp_path / "predict" / "predictions.jsonl").read_text().splitlines())}
    ray_table = by_name(pq.read_table(on_ray / "results.parquet").to_pylist())
    assert set(ray_table) == set(single)
    for name, row in ray_table.items():
        if name == CORRUPT:
            assert row["status"] == "failed" and row["error"] and row["label"] is None and "error" in single[name]
            continue
        assert row["status"] == "done", row
        assert row["label"] == single[name]["top"][0]["label"]
        assert row["score"] == pytest.approx(single[name]["top"][0]["score"], abs=1e-5)
        own = json.loads((Path(row["out_dir"]) / "predictions.jsonl").read_text())
        assert [t["label"] for t in own["top"]] == [t["label"] for t in single[name]["top"]]
        assert [t["score"] for t in own["top"]] == pytest.approx([t["score"] for t in single[name]["top"]], abs=1e-5)


def _stages(out: Path, stem: str) -> list[int]:
    """pids in the names of the staging folders of video `stem` (`.<stem>.partial-<pid>-<hex>`)."""
    prefix = f".{stem}{STAGING_MARK}"
    try:
        return [int(p.name[len(prefix):].split("-")[0]) for p in out.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []


def test_a_killed_actor_loses_no_video(cluster, video_folder, tmp_path):
    """SIGKILL the actor process running one video (once) and another video (every attempt): Ray restarts
    the actor and retries; the first ends done on its second attempt, the second is recorded failed
    ("worker died"), every other video is done, and every video has exactly one row."""
    from vidlens.batch.ray_engine import ATTEMPTS_DIR, run_ray

    out = tmp_path / "out"
    store = ResultStore(out)
    options = resolve_options(get_task("shots"), {"plot": False})
    todo, _ = plan_batch(video_folder, "shots", options, out, store)
    todo = [i for i in todo if Path(i.video).name != CORRUPT]
    names = sorted(Path(i.video).name for i in todo)
    once, always = names[1], names[3]
    killed: dict[str, list[int]] = {once: [], always: []}
    stop = threading.Event()

    def killer() -> None:  # the actor's pid is in the name of the folder it stages the video's files in
        while not stop.is_set():
            for name, pids in killed.items():
                if name == once and pids:
                    continue
                for pid in _stages(out, Path(name).stem):
                    if pid not in pids:
                        pids.append(pid)
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        rows = run_ray(todo, "shots", options, store, workers=2)
    finally:
        stop.set()
        thread.join()
    table = by_name(rows)
    assert len(killed[once]) == 1 and len(killed[always]) == 2
    assert table[once]["status"] == "done" and table[once]["attempt"] == 2
    assert int(table[once]["worker"].rsplit(":", 1)[1]) not in killed[once]  # run again by the restarted actor
    assert table[always]["status"] == "failed" and table[always]["error"].startswith("worker died")
    assert table[always]["attempt"] == 2
    assert all(r["status"] == "done" for n, r in table.items() if n != always)
    assert len(rows) == len(todo) == len(store.rows())
    assert not [p for p in out.iterdir() if STAGING_MARK in p.name]  # no half-written folder left
    assert not list((out / ATTEMPTS_DIR).glob("*/*"))  # nor attempt markers
    assert not Path(table[always]["out_dir"]).exists()


def test_killing_the_ray_driver_then_rerunning_finishes_only_the_missing_videos(cluster, video_folder, tmp_path,
                                                                               monkeypatch):
    """The batch's driver (connected to the cluster with --address) is killed -9 after its first rows;
    the cluster ends its actors; a rerun runs only the videos without a done row (in blocks of several
    videos, as a batch of many thousands is cut)."""
    from vidlens.batch import ray_engine

    out = tmp_path / "out"
    env = {**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1"}
    cmd = [str(VIDLENS), "--quiet", "batch", "shots", str(video_folder), "--out", str(out), "--engine", "ray",
           "--address", cluster, "--workers", "1", "--no-plot"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if ResultStore(out).rows():
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]  # still running: kill it mid-batch
    finally:
        process.kill()
        process.wait()
    first = ResultStore(out).rows()
    assert 1 <= len(first) < 7
    monkeypatch.setattr(ray_engine, "MIN_BLOCKS", 2)
    monkeypatch.setattr(ray_engine, "BLOCKS_PER_ACTOR", 1)
    assert cli("--quiet", "batch", "shots", video_folder, "--out", out, "--engine", "ray", "--no-plot") == 2
    rows = ResultStore(out).rows()
    again = rows[len(first):]
    done_first = {r["video"] for r in first if r["status"] == "done"}
    assert len(again) == 7 - len(done_first)  # only the missing videos ran
    assert {r["video"] for r in again}.isdisjoint(done_first)
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 7 and sum(r["status"] == "done" for r in table) == 6
    assert not [p for p in out.iterdir() if STAGING_MARK in p.name]


def test_a_model_that_cannot_load_stops_the_batch_with_its_reason(cluster, video_folder, tmp_path):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import VidlensError

    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    out = tmp_path / "out"
    store = ResultStore(out)
    options = resolve_options(get_task("classify"), {"checkpoint": str(bad)})
    todo, _ = plan_batch(video_folder, "classify", options, out, store)
    with pytest.raises(VidlensError, match="cannot load the classify models on a Ray worker: .*bad.pt"):
        run_ray(todo, "classify", options, store, workers=1)
    assert store.rows() == []  # no video was recorded failed for a problem of the model
    assert pool_released()  # the batch stopped: its actors are gone


def test_without_ray_the_engine_says_how_to_install_it(video_folder, tmp_path, monkeypatch):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import VidlensError

    out = tmp_path / "out"
    store = ResultStore(out)
    todo, _ = plan_batch(video_folder, "shots", {}, out, store)
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when ray is not installed
    with pytest.raises(VidlensError, match=r"pip install 'vidlens\[ray\]'"):
        run_ray(todo, "shots", resolve_options(get_task("shots"), {}), store)
    assert store.rows() == []


NODE_DEATH = """
import json, os, sys
from pathlib import Path
import ray
from ray.cluster_utils import Cluster
from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options
from vidlens.batch.ray_engine import run_ray

folder, out = Path(sys.argv[1]), Path(sys.argv[2])
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
node = cluster.add_node(num_cpus=1)
ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
nodes = len([n for n in ray.nodes() if n["Alive"]])
store = ResultStore(out)
options = resolve_options(get_task("shots"), {"plot": False})
todo, _ = plan_batch(folder, "shots", options, out, store)
removed = []

def progress(row):
    if not removed and len(store.rows()) >= 2:
        removed.append(len(store.rows()))
        cluster.remove_node(node, allow_graceful=False)

rows = run_ray(todo, "shots", options, store, workers=2, progress=progress)
print("RESULT", json.dumps({"nodes": nodes, "removed_after": removed, "rows": rows, "jsonl": len(store.rows())}))
ray.shutdown()
cluster.shutdown()
"""


def test_a_node_that_dies_mid_batch_loses_no_video(video_folder, tmp_path):
    """A 2-node cluster (1 CPU each, in a process of its own); one node is removed after the first rows:
    its actor's video is retried on the other node, every readable video ends done, one row each."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for src in sorted(video_folder.iterdir()):
        for k in range(2):  # 14 files: the node dies with videos still queued
            (videos / f"{k}_{src.name}").write_bytes(src.read_bytes())
    out = tmp_path / "out"
    env = {**os.environ, **RAY_ENV, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", NODE_DEATH, str(videos), str(out)], capture_output=True, text=True,
                          env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]  # Ray prints to stdout too
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["nodes"] == 2 and result["removed_after"]
    rows = by_name(result["rows"])
    assert len(result["rows"]) == len(rows) == 14 == result["jsonl"]  # one row per video
    for name, row in rows.items():
        if name.endswith(CORRUPT):
            assert row["status"] == "failed" and not row["error"].startswith("worker died")
        else:
            assert row["status"] == "done", row
    assert not [p for p in out.iterdir() if STAGING_MARK in p.name]


def test_gpu_actors_on_a_cluster_without_gpus_is_a_clear_error(cluster, video_folder, tmp_path):
    from vidlens.batch.ray_engine import run_ray
    from vidlens.errors import ConfigError

    out = tmp_path / "out"
    store = ResultStore(out)
    todo, _ = plan_batch(video_folder, "shots", {}, out, store)
    with pytest.raises(ConfigError, match="no GPUs"):
        run_ray(todo, "shots", resolve_options(get_task("shots"), {}), store, gpus_per_worker=0.25)
    assert store.rows() == []
