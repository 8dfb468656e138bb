from __future__ import annotations

import pytest
import torch

from tests.engine import TrendDataset, make_task, one_thread  # noqa: F401 (fixture)
from vidlens.engine import TrainConfig, evaluate
from vidlens.engine.distributed import ShardSampler
from vidlens.tasks.classify import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class MultiView(TrendDataset):
    """Test-time views: `(V,T,C,H,W)` = the clip and its horizontally flipped copy."""

    def __getitem__(self, i):
        item = super().__getitem__(i)
        item["video"] = torch.stack([item["video"], item["video"].flip(-1)])
        return item


@pytest.mark.parametrize("workers", [0, 2])
def test_evaluate_returns_metrics_and_raw_scores_in_dataset_order(workers):
    data = TrendDataset(21, seed=2, augment=False, substituted={4})
    task = make_task()
    task.model.train()
    result = evaluate(task, data, TrainConfig(batch_size=4, workers=workers, device="cpu"))
    assert task.model.training  # the mode is restored
    task.model.eval()
    with torch.no_grad():
        expected = torch.softmax(task.model(torch.stack([data[i]["video"] for i in range(21)])), dim=-1)
    assert result.scores.shape == (21, 6) and torch.allclose(result.scores, expected, atol=1e-6)
    assert result.targets.tolist() == data.labels.tolist()
    assert result.paths == [f"clip{i:04d}.mp4" for i in range(21)]
    assert result.substitutions == 1
    ref = classification_metrics(expected.numpy(), data.labels.numpy(), 6)
    for key, value in ref.items():
        assert result.metrics[key] == pytest.approx(value)
    nll = torch.nn.functional.nll_loss(torch.log(expected), data.labels).item()
    assert result.metrics["loss"] == pytest.approx(nll, abs=1e-5) and result.loss == result.metrics["loss"]


def test_multi_view_scores_are_averaged_over_views():
    data = MultiView(10, seed=2, augment=False)
    task = make_task()
    result = evaluate(task, data, TrainConfig(batch_size=3, workers=0, device="cpu"))
    task.model.eval()
    with torch.no_grad():
        views = torch.stack([data[i]["video"] for i in range(10)])  # (N,V,T,C,H,W)
        probs = torch.softmax(task.model(views.flatten(0, 1)), dim=-1).view(10, 2, -1).mean(1)
    assert torch.allclose(result.scores, probs, atol=1e-6)


def test_bf16_evaluation_on_cpu():
    data = TrendDataset(12, seed=2, augment=False)
    result = evaluate(make_task(), data, TrainConfig(batch_size=4, workers=0, device="cpu", amp="bf16"))
    assert result.scores.dtype == torch.float32 and torch.isfinite(result.scores).all()
    assert result.scores.sum(1).sub(1).abs().max() < 1e-2


def test_shards_cover_the_set_once_in_interleaved_order():
    shards = [list(ShardSampler(11, 3, r)) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert shards[0] == [0, 3, 6, 9] and shards[2] == [2, 5, 8]
