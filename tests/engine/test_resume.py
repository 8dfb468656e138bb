"""Checkpoints (atomic, `weights_only`-loadable) and exact resume after a SIGKILL."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.engine import TrendDataset, datasets, make_task, one_thread, repo_root, subprocess_env  # noqa: F401
from vidlens.engine import TrainConfig, fit, load_checkpoint
from vidlens.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")

# Everything resumable is on: AdamW state, cosine warm-up, EMA, dropout, BatchNorm, augmentation noise.
RESUME_CFG = {"epochs": 3, "batch_size": 8, "device": "cpu", "lr": 0.03, "seed": 5, "warmup_epochs": 0.5,
              "ema_decay": 0.9, "clip_grad_norm": 5.0, "accumulate": 2, "log_every": 1}
COMPARED = ("train_loss", "train_acc", "val_top1", "val_loss", "val_macro_f1", "lr")


def _sets():
    return TrendDataset(64, seed=1), TrendDataset(30, seed=2, augment=False)


def _kill_after_first_epoch(run_dir, config: dict) -> None:
    """Start fit in a subprocess, SIGKILL it (and its DataLoader workers) in the middle of epoch 2."""
    cmd = [sys.executable, str(repo_root() / "tests/engine/ddp_worker.py"), "--run-dir", str(run_dir),
           "--config", json.dumps(config), "--n-train", "64", "--n-val", "30", "--hang-after", "20"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "hanging").exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the training subprocess never reached epoch 2"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, workers):
    config = {**RESUME_CFG, "workers": workers}
    straight = make_task()
    full = fit(straight, *_sets(), TrainConfig(**config), tmp_path / "straight")

    run_dir = tmp_path / "killed"
    _kill_after_first_epoch(run_dir, config)
    assert load_checkpoint(run_dir / "last.pt")["train_state"]["epoch"] == 1  # killed mid-epoch 2
    assert not (run_dir / "result_rank0.json").exists()

    resumed_task = make_task(seed=123)  # other initial weights: everything must come from last.pt
    resumed = fit(resumed_task, *_sets(), TrainConfig(**config), run_dir, resume=True)

    assert resumed.epochs_run == full.epochs_run == 3 and len(resumed.history) == 3
    for a, b in zip(full.history, resumed.history, strict=True):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], abs=1e-6, rel=0), (a["epoch"], key)
    assert (resumed.best_metric, resumed.best_epoch) == (full.best_metric, full.best_epoch)
    for k, v in straight.model.state_dict().items():
        assert torch.allclose(v, resumed_task.model.state_dict()[k], atol=1e-6, rtol=0), k
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(tmp_path / "straight" / name), load_checkpoint(run_dir / name)
        for k in a["state_dict"]:
            assert torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-6, rtol=0), (name, k)
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]


def test_checkpoints_load_with_weights_only(tmp_path):
    train, val = datasets(32, 16)
    fit(make_task(), train, val, TrainConfig(epochs=1, batch_size=8, workers=0, ema_decay=0.5, lr=0.03), tmp_path)
    for name in ("best.pt", "last.pt"):
        raw = torch.load(tmp_path / name, weights_only=True)
        for key in ("format", "model", "model_args", "state_dict", "labels", "preprocess", "config", "metrics",
                    "vidlens_version"):
            assert key in raw, (name, key)
    state = torch.load(tmp_path / "last.pt", weights_only=True)["train_state"]
    assert {"optimizer", "scheduler", "scaler", "ema", "epoch", "global_step", "best_metric", "bad_evals", "history",
            "rng_state"} <= set(state)
    assert set(state["rng_state"]) >= {"python", "numpy", "torch"}


class Flaky:
    """Serialises as an empty OrderedDict, until the `fail_from`-th time: then the save fails halfway."""

    calls = 0
    fail_from = 3

    def __reduce__(self):
        Flaky.calls += 1
        if Flaky.calls >= Flaky.fail_from:
            raise RuntimeError("disk full halfway through the checkpoint")
        return (collections.OrderedDict, ())


def test_a_failed_save_leaves_the_previous_checkpoints_intact(tmp_path):
    train, val = datasets(32, 16)
    config = TrainConfig(epochs=2, batch_size=8, workers=0, lr=0.03)
    Flaky.calls = 0
    with pytest.raises(RuntimeError, match="disk full"):  # epoch 1 saves best + last; epoch 2's first save fails
        fit(make_task(), train, val, config, tmp_path, extra_checkpoint={"flaky": Flaky()})
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["train_state"]["epoch"] == 1 and load_checkpoint(tmp_path / "best.pt")["metrics"]["epoch"] == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    result = fit(make_task(), train, val, config, tmp_path, resume=True)  # and the run goes on from there
    assert result.epochs_run == 2 and [r["epoch"] for r in result.history] == [1, 2]


def test_resume_edge_cases(tmp_path, caplog):
    train, val = datasets(32, 16)
    config = TrainConfig(epochs=2, batch_size=8, workers=0, lr=0.03)
    fresh = fit(make_task(), train, val, config, tmp_path / "a", resume=True)  # nothing to resume: a new run
    assert fresh.epochs_run == 2
    log_before = (tmp_path / "a" / "log.csv").read_text()
    again = fit(make_task(seed=9), train, val, config, tmp_path / "a", resume=True)  # finished: nothing to do
    assert again.history == fresh.history and again.best_metric == fresh.best_metric
    assert (tmp_path / "a" / "log.csv").read_text() == log_before
    more = fit(make_task(), train, val, TrainConfig(**{**config.to_dict(), "epochs": 3}), tmp_path / "a",
               resume=tmp_path / "a" / "last.pt")  # a longer schedule continues from the last epoch
    assert [r["epoch"] for r in more.history] == [1, 2, 3]
    with pytest.raises(CheckpointError, match="train_state"):
        fit(make_task(), train, val, config, tmp_path / "b", resume=tmp_path / "a" / "best.pt")
    with pytest.raises(CheckpointError, match="does not match"):
        fit(make_task(width=4), train, val, config, tmp_path / "c", resume=tmp_path / "a" / "last.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        fit(make_task(), train, val, config, tmp_path / "d", resume=tmp_path / "nope.pt")
