"""`vidlens batch --engine ray` loses no video when a node of a 2-node Ray cluster dies mid-batch
(real footage, the batch tests' folder). Its own cluster in a subprocess; split from test_batch_ray.py so
that `pytest -n N --dist loadfile` runs it on another worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.batch.conftest import CORRUPT, RAY_ENV, by_name
from vidlens.outputs import STAGING_MARK

ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'vidlens[ray]')")

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


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
