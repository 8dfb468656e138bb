from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F

from tests.engine import TrendDataset, datasets, make_task, one_thread  # noqa: F401 (fixture)
from vidlens.engine import TrainConfig, fit, load_checkpoint
from vidlens.engine.distributed import EpochSampler, item_labels, item_weights
from vidlens.tasks.classify import ClassificationTask
from vidlens.errors import ConfigError, DatasetError

pytestmark = pytest.mark.usefixtures("one_thread")
BASE = {"batch_size": 8, "workers": 0, "device": "cpu", "weight_decay": 0.0, "select_by": "metric"}


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**BASE, **kw})


@pytest.mark.parametrize(("optimizer", "lr"), [("adamw", 0.03), ("adam", 0.03), ("sgd", 0.3), ("rmsprop", 0.01)])
def test_the_model_learns_with_each_optimizer(tmp_path, optimizer, lr):
    train, val = datasets()
    result = fit(make_task(), train, val, cfg(epochs=8, optimizer=optimizer, lr=lr), tmp_path)
    assert result.epochs_run == 8 and len(result.history) == 8 and not result.stopped_early
    assert result.best_metric >= 0.7, [round(r["val_top1"], 3) for r in result.history]  # chance: 1/6
    assert result.best_metric == max(r["val_top1"] for r in result.history)
    assert result.history[result.best_epoch - 1]["val_top1"] == result.best_metric
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_run_directory_outputs(tmp_path, capsys):
    train, val = datasets()
    config = cfg(epochs=3, lr=0.03, log_every=2)
    task = make_task()
    result = fit(task, train, val, config, tmp_path, progress=False, extra_checkpoint={"notes": "x"})
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # the engine prints nothing
    assert TrainConfig.load_yaml(tmp_path / "config.yaml") == config
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for col in ("lr", "train_loss", "train_acc", "val_top1", "val_loss", "clips_per_s", "seconds", "substitutions"):
        assert col in rows[0] and rows[0][col] != "", col
    assert float(rows[-1]["val_top1"]) == pytest.approx(result.history[-1]["val_top1"], abs=1e-5)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert result.best_checkpoint == tmp_path / "best.pt" and result.last_checkpoint == tmp_path / "last.pt"
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert "train_state" not in best and last["train_state"]["epoch"] == 3
    assert best["metrics"]["epoch"] == result.best_epoch
    assert best["metrics"]["top1"] == pytest.approx(result.best_metric)
    assert best["notes"] == "x" and best["labels"] == task.labels and best["config"] == config.to_dict()
    assert last["state_dict"].keys() == task.model.state_dict().keys()
    assert all(torch.equal(last["state_dict"][k], v.cpu()) for k, v in task.model.state_dict().items())
    assert not list(tmp_path.glob(".*tmp*"))


def test_progress_goes_to_stderr_only_when_asked(tmp_path, capsys):
    train, val = datasets(32, 16)
    fit(make_task(), train, val, cfg(epochs=2, lr=0.03, log_every=1), tmp_path / "on", progress=True)
    out = capsys.readouterr()
    assert out.out == "" and "epoch 1/2" in out.err and "epoch 2/2" in out.err and "val_top1" in out.err
    fit(make_task(), train, val, cfg(epochs=1), tmp_path / "auto")  # None: not a terminal here, so nothing
    assert capsys.readouterr().err == ""


def test_early_stopping_with_a_flat_metric_stops_after_patience(tmp_path):
    train, val = datasets(64, 32)
    result = fit(make_task(), train, val, cfg(epochs=10, lr=0.0, early_stopping_patience=2), tmp_path)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 3  # ties go to the later epoch
    assert load_checkpoint(tmp_path / "last.pt")["train_state"]["stopped_early"] is True


class ScriptedTask(ClassificationTask):
    """A real classification task whose validation metric follows a script (one value per evaluation)."""

    script: list[float] = []

    def compute_metrics(self, scores, targets):
        metrics = super().compute_metrics(scores, targets)
        metrics["top1"] = self.script.pop(0)
        return metrics


@pytest.mark.parametrize(("script", "patience", "stops_after", "best_epoch"), [
    ([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.9], 3, 5, 5),  # 0.3 again: no progress (patience runs out), but best.pt moves to the later tie
    ([0.1, 0.3, 0.2, 0.4, 0.3, 0.35, 0.5], 3, 7, 7),  # the counter resets on improvement
    ([0.5, 0.6, 0.7, 0.7, 0.8, 0.9, 0.9], 1, 4, 4),
])
def test_early_stopping_counts_evaluations_without_improvement(tmp_path, script, patience, stops_after, best_epoch):
    train, val = datasets(32, 16)
    ScriptedTask.script = list(script)
    task = make_task(cls=ScriptedTask)
    result = fit(task, train, val, cfg(epochs=7, lr=0.01, early_stopping_patience=patience), tmp_path)
    assert result.epochs_run == stops_after and result.stopped_early == (stops_after < 7)
    assert result.best_epoch == best_epoch and result.best_metric == max(script[:stops_after])
    assert load_checkpoint(tmp_path / "best.pt")["metrics"]["epoch"] == best_epoch


def _one_step(tmp_path, **kw) -> dict[str, torch.Tensor]:
    train, val = datasets(64, 8)
    task = make_task(dropout=0.0, norm=False)
    config = cfg(epochs=1, optimizer="sgd", momentum=0.0, scheduler="none", max_steps_per_epoch=1, **kw)
    fit(task, train, val, config, tmp_path)
    return {k: v.clone() for k, v in task.model.state_dict().items()}


def test_accumulating_two_batches_of_4_equals_one_batch_of_8(tmp_path):
    acc = _one_step(tmp_path / "a", batch_size=4, accumulate=2, lr=0.5)
    big = _one_step(tmp_path / "b", batch_size=8, lr=0.5)
    start = make_task(dropout=0.0, norm=False).model.state_dict()
    assert any(not torch.allclose(acc[k], start[k]) for k in acc)
    for k in acc:
        assert torch.allclose(acc[k], big[k], atol=1e-6, rtol=0), k
    # And both are plain SGD on the mean loss of the first 8 items of epoch 0's order.
    train, _ = datasets(64, 8)
    from vidlens.engine.state import seed_epoch

    seed_epoch(0, 0)
    order = list(EpochSampler(len(train), seed=0))[:8]
    items = [train[i] for i in order]
    task = make_task(dropout=0.0, norm=False)
    videos, labels = torch.stack([it["video"] for it in items]), torch.tensor([it["label"] for it in items])
    loss = F.cross_entropy(task.model(videos), labels)
    loss.backward()
    for name, p in task.model.named_parameters():
        assert torch.allclose(big[name], p.detach() - 0.5 * p.grad, atol=1e-6), name


def test_gradient_clipping_bounds_the_update(tmp_path):
    start = make_task(dropout=0.0, norm=False).model.state_dict()

    def update_norm(weights):
        return torch.sqrt(sum(((weights[k] - start[k]) ** 2).sum() for k in start)).item()

    free = update_norm(_one_step(tmp_path / "free", lr=1.0))
    clipped = update_norm(_one_step(tmp_path / "clip", lr=1.0, clip_grad_norm=0.01))
    assert free > 0.05  # the raw gradient is far larger than the bound
    assert clipped == pytest.approx(0.01, rel=1e-3)  # SGD, lr 1: the update is the clipped gradient


def test_ema_weights_are_evaluated_and_saved(tmp_path):
    train, val = datasets(64, 32)
    task = make_task()
    fit(task, train, val, cfg(epochs=2, lr=0.03, ema_decay=0.9), tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    state = last["train_state"]
    ema, raw = state["ema"]["module"], state["model"]
    assert all(torch.equal(last["state_dict"][k], ema[k]) for k in ema)
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].dtype.is_floating_point)
    assert all(torch.equal(raw[k], v) for k, v in task.model.state_dict().items())  # training weights stay raw
    assert state["ema"]["updates"] == state["global_step"] == 16
    # The saved metrics are those of the EMA weights.
    from vidlens.engine import evaluate

    task.model.load_state_dict(last["state_dict"])
    metrics = evaluate(task, val, cfg()).metrics
    assert metrics["top1"] == pytest.approx(last["metrics"]["top1"])
    assert metrics["loss"] == pytest.approx(last["metrics"]["loss"], abs=1e-5)


class DtypeTask(ClassificationTask):
    seen: list[torch.dtype] = []

    def train_step(self, batch):
        out = super().train_step(batch)
        self.seen.append(out.scores.dtype)
        return out


def test_bf16_autocast_on_cpu(tmp_path):
    train, val = datasets(32, 16)
    task = make_task(cls=DtypeTask)
    DtypeTask.seen = []
    result = fit(task, train, val, cfg(epochs=2, lr=0.03, amp="bf16"), tmp_path)
    assert DtypeTask.seen and set(DtypeTask.seen) == {torch.bfloat16}
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in result.history)
    assert next(task.model.parameters()).dtype == torch.float32
    with pytest.raises(ConfigError, match="fp16"):
        fit(make_task(), train, val, cfg(epochs=1, amp="fp16"), tmp_path / "fp16")


@pytest.mark.parametrize("workers", [0, 2])
def test_substitutions_are_counted_and_bad_batches_skipped(tmp_path, caplog, workers):
    subs, bad = {3, 5, 7, 40}, {10}
    train = TrendDataset(64, seed=1, substituted=subs, bad=bad)
    val = TrendDataset(16, seed=2, augment=False, substituted={1})
    result = fit(make_task(), train, val, cfg(epochs=2, lr=0.03, workers=workers), tmp_path)
    for epoch, row in enumerate(result.history):
        sampler = EpochSampler(64, seed=0)
        sampler.set_epoch(epoch)
        batches = [list(sampler)[i:i + 8] for i in range(0, 64, 8)]
        kept = [b for b in batches if not bad & set(b)]
        assert row["bad_batches"] == len(batches) - len(kept) == 1
        assert row["substitutions"] == sum(len(subs & set(b)) for b in kept)
        assert row["val_substitutions"] == 1
    assert result.bad_batches == 2
    assert result.substitutions == sum(r["substitutions"] + 1 for r in result.history)
    assert any("skipped a training batch" in r.getMessage() for r in caplog.records)


def test_too_many_bad_batches_in_a_row_abort(tmp_path):
    train = TrendDataset(64, seed=1, unreadable=set(range(64)))
    _, val = datasets(8, 8)
    with pytest.raises(DatasetError, match="3 training batches in a row failed; last error: DatasetError: clip"):
        fit(make_task(), train, val, cfg(epochs=1, max_bad_batches=3), tmp_path)


def test_without_validation_the_training_loss_is_monitored(tmp_path):
    train, _ = datasets(64, 8)
    result = fit(make_task(), train, None, cfg(epochs=3, lr=0.03), tmp_path)
    assert result.monitor == "train_loss"
    assert result.best_metric == min(r["train_loss"] for r in result.history)
    assert "val_top1" not in result.history[0]


def test_eval_every_and_max_steps(tmp_path):
    train, val = datasets(64, 16)
    result = fit(make_task(), train, val, cfg(epochs=3, lr=0.03, eval_every=2, max_steps_per_epoch=3), tmp_path)
    assert ["val_top1" in r for r in result.history] == [False, True, True]  # the last epoch is always evaluated
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert rows[0]["val_top1"] == "" and rows[1]["val_top1"] != ""
    assert load_checkpoint(tmp_path / "last.pt")["train_state"]["global_step"] == 9


def test_balanced_sampler_draws_classes_evenly(tmp_path):
    train = TrendDataset(120, seed=1)
    train.labels = torch.tensor([0] * 100 + [1] * 15 + [2] * 5)
    train.targets = train.labels.tolist()
    sampler = EpochSampler(len(train), seed=0, weights=item_weights(train))
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn += [train.targets[i] for i in sampler]
    freq = torch.bincount(torch.tensor(drawn), minlength=3).double() / len(drawn)
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.04), freq
    _, val = datasets(8, 8)
    result = fit(make_task(), train, val, cfg(epochs=1, lr=0.01, balanced_sampler=True), tmp_path)
    assert result.epochs_run == 1


def test_item_labels_from_records_multi_hot_or_by_reading(caplog):
    class Rec:
        def __init__(self, labels):
            self.labels = labels

    class WithRecords(torch.utils.data.Dataset):
        records = [Rec([0]), Rec([0]), Rec([0, 1]), Rec([2])]

        def __len__(self):
            return 4

    assert item_labels(WithRecords()) == [[0], [0], [0, 1], [2]]
    weights = item_weights(WithRecords())  # class counts 3, 1, 1 -> weights 5/9, 5/3, 5/3
    assert weights.tolist() == pytest.approx([5 / 9, 5 / 9, (5 / 9 + 5 / 3) / 2, 5 / 3])

    class MultiHot(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"label": torch.tensor([1.0, 0.0, 1.0]) if i == 0 else torch.tensor([0.0, 1.0, 0.0])}

    assert item_labels(MultiHot()) == [[0, 2], [1]]
    assert any("reading every item" in r.getMessage() for r in caplog.records)


def test_monitor_missing_from_metrics_is_a_config_error(tmp_path):
    train, val = datasets(16, 8)
    task = make_task()
    task.monitor = "f1_at_7"
    with pytest.raises(ConfigError, match="f1_at_7"):
        fit(task, train, val, cfg(epochs=1), tmp_path)


# ---------------------------------------------------------------- step-based schedules, tiny validation splits


def test_min_steps_repeats_a_small_training_set_within_each_epoch(tmp_path):
    train, val = datasets(12, 30)  # 12 videos, batch 8: one pass is a single step
    plain = fit(make_task(), train, val, cfg(epochs=2, lr=0.03), tmp_path / "plain")
    assert plain.steps == 2
    result = fit(make_task(), train, val, cfg(epochs=2, lr=0.03, min_steps=20), tmp_path / "min")
    assert result.steps == 20 and result.epochs_run == 2 and len(result.history) == 2  # still 2 evaluation rounds
    assert load_checkpoint(tmp_path / "min" / "last.pt")["train_state"]["global_step"] == 20
    assert result.history[-1]["train_loss"] < plain.history[-1]["train_loss"]
    # `steps` is the exact total, shorter or longer than the epochs' passes.
    train64, _ = datasets(64, 8)
    assert fit(make_task(), train64, None, cfg(epochs=3, steps=6), tmp_path / "exact").steps == 6
    assert fit(make_task(), train, None, cfg(epochs=3, steps=7), tmp_path / "long").steps == 9  # ceil(7/3) per epoch


def test_repeated_passes_shuffle_each_pass_and_keep_every_item():
    sampler = EpochSampler(12, seed=0, passes=3)
    order = list(sampler)
    assert len(order) == len(sampler) == 36
    passes = [order[i * 12 : (i + 1) * 12] for i in range(3)]
    assert all(sorted(p) == list(range(12)) for p in passes) and passes[0] != passes[1]
    assert passes[0] == list(EpochSampler(12, seed=0))  # the first pass is the one-pass order


def test_a_tiny_validation_split_selects_by_loss_and_says_so(tmp_path):
    train, val = datasets(32, 6)
    result = fit(make_task(), train, val, cfg(epochs=3, lr=0.03, select_by="auto"), tmp_path / "tiny")
    assert result.monitor == "loss"
    assert result.best_metric == min(r["val_loss"] for r in result.history)
    assert any("only 6 items" in n for n in result.notes) and any("validation loss" in n for n in result.notes)
    forced = fit(make_task(), train, val, cfg(epochs=2, lr=0.03, select_by="metric"), tmp_path / "metric")
    assert forced.monitor == "top1" and any("only 6 items" in n for n in forced.notes)  # still warned
    big = fit(make_task(), *datasets(32, 24), cfg(epochs=1, lr=0.03, select_by="auto"), tmp_path / "big")
    assert big.monitor == "top1" and big.notes == []
