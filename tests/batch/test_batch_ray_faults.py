"""`vidlens batch --engine ray` loses no video when processes die: an actor's process killed (Ray restarts
the actor and retries the video once), and the driver killed -9 (a rerun runs only the missing videos).
Real local Ray cluster (2 CPUs), real footage (the batch tests' folder). Split from test_batch_ray.py so
that `pytest -n N --dist loadfile` runs it on another worker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import CORRUPT, RAY_ENV, VIDLENS, by_name, cli
from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options
from vidlens.outputs import STAGING_MARK

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'vidlens[ray]')")

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


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
