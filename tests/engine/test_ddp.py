"""Data-parallel training through torchrun: 2 CPU processes on gloo, the same script as a plain run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from tests.engine import TrendDataset, make_task, one_thread, repo_root, subprocess_env  # noqa: F401
from vidlens.engine import TrainConfig, evaluate, load_checkpoint
from vidlens.engine.distributed import EpochSampler
from vidlens.testing.server import free_port

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_ddp_two_processes_on_gloo(tmp_path):
    config = {"epochs": 3, "batch_size": 8, "workers": 0, "device": "cpu", "lr": 0.03, "seed": 3, "log_every": 1}
    bad_item = 13
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(repo_root() / "tests/engine/ddp_worker.py"),
           "--run-dir", str(tmp_path), "--config", json.dumps(config), "--n-train", "64", "--n-val", "31",
           "--bad", str(bad_item)]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group: a hang is killed with all ranks
    try:
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun hung; output tail: {output[-4000:]}")
    assert proc.returncode == 0, output[-6000:]
    r0, r1 = (json.loads((tmp_path / f"result_rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2 and r0["epochs_run"] == 3

    # Rank 0 wrote the run; the ranks agree on every metric (gathered, not per-shard).
    for name in ("best.pt", "last.pt", "log.csv", "config.yaml", "curves.png"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["train_state"]["world_size"] == 2
    for a, b in zip(r0["history"], r1["history"], strict=True):
        assert {k: v for k, v in a.items() if k.startswith(("val_", "train_"))} == \
               {k: v for k, v in b.items() if k.startswith(("val_", "train_"))}
    for row in r0["history"]:
        assert row["val_num_videos"] == 31  # uneven shards: nothing dropped, nothing evaluated twice
        assert 0.0 <= row["val_top1"] <= 1.0 and row["train_loss"] > 0
    assert r0["history"][-1]["train_loss"] < r0["history"][0]["train_loss"]

    # The batch holding the broken item failed on one rank and was skipped on both (no hang).
    expected_bad = 0
    for epoch in range(3):
        for rank in range(2):
            sampler = EpochSampler(64, seed=3, num_replicas=2, rank=rank)
            sampler.set_epoch(epoch)
            expected_bad += bad_item in list(sampler)[: (32 // 8) * 8]
    assert expected_bad > 0 and r0["bad_batches"] == expected_bad

    # DDP-evaluated metrics of the saved weights equal a single-process evaluation of them.
    val = TrendDataset(31, seed=2, augment=False)
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(tmp_path / name)
        task = make_task()
        task.model.load_state_dict(ckpt["state_dict"])
        single = evaluate(task, val, TrainConfig(batch_size=5, workers=0, device="cpu")).metrics
        ddp = r0["history"][ckpt["metrics"]["epoch"] - 1]
        for key in ("top1", "top5", "mean_class_acc", "macro_f1", "num_videos"):
            assert single[key] == pytest.approx(ddp[f"val_{key}"], abs=1e-9), (name, key)
        assert single["loss"] == pytest.approx(ddp["val_loss"], abs=1e-5)
    assert load_checkpoint(tmp_path / "best.pt")["metrics"]["epoch"] == r0["best_epoch"]

    # `evaluate` after `fit` in the same torchrun script: every rank gets the whole set, in dataset order.
    task = make_task()
    task.model.load_state_dict(load_checkpoint(tmp_path / "best.pt")["state_dict"])
    single = evaluate(task, val, TrainConfig(batch_size=8, workers=0, device="cpu"))
    for r in (r0, r1):
        assert r["eval_paths"] == [f"clip{i:04d}.mp4" for i in range(31)]
        assert torch.allclose(torch.tensor(r["eval_scores"]), single.scores, atol=1e-6)
        assert r["eval_metrics"]["top1"] == single.metrics["top1"]
