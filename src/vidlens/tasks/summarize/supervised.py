"""Supervised frame-importance regression on `gtscore`: a VASNet-style self-attention regressor
(J. Fajtl et al., "Summarizing Videos with Attention", ACCV 2018 workshops).

Why attention rather than vsLSTM (K. Zhang et al., ECCV 2016): every step sees the whole video in
one parallel pass (no recurrence, so training is several times faster on CPU for N in the
hundreds), and VASNet reported higher F-scores under this same protocol (SumMe 49.7 / TVSum 61.4
vs vsLSTM 37.6 / 54.2 canonical). As in VASNet: the target is the video's `gtscore` min-max
normalised to [0, 1], MSE loss, Adam (lr 5e-5, weight decay 1e-5), one video per step, dropout 0.5.
Differences: features are projected to `hidden` dims first and attention is scaled by
1/sqrt(hidden) (VASNet: 1024 dims, scale 0.06).

Layouts: `features` `(N, D)` per video; the model maps `(B, N, D)` to `(B, N)` scores in [0, 1].
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidlens.threads import one_torch_thread
from vidlens.tasks.summarize.protocol import VideoRecord


class AttentionRegressor(nn.Module):
    """Projection -> single-head self-attention (+ residual, LayerNorm) -> MLP -> sigmoid: `(B, N, D)` -> `(B, N)`."""

    def __init__(self, in_dim: int, hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.dropout = int(in_dim), int(hidden), float(dropout)
        self.proj = nn.Linear(self.in_dim, self.hidden)
        self.query = nn.Linear(self.hidden, self.hidden, bias=False)
        self.key = nn.Linear(self.hidden, self.hidden, bias=False)
        self.value = nn.Linear(self.hidden, self.hidden, bias=False)
        self.out = nn.Linear(self.hidden, self.hidden, bias=False)
        self.drop = nn.Dropout(self.dropout)
        self.norm_att = nn.LayerNorm(self.hidden)
        self.fc = nn.Linear(self.hidden, self.hidden)
        self.norm_fc = nn.LayerNorm(self.hidden)
        self.head = nn.Linear(self.hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0)
        h = self.proj(x)
        logits = self.query(h) @ self.key(h).transpose(1, 2) / math.sqrt(self.hidden)
        att = self.drop(torch.softmax(logits, dim=-1))
        y = self.norm_att(self.drop(self.out(att @ self.value(h)) + h))
        y = self.norm_fc(self.drop(torch.relu(self.fc(y))))
        return torch.sigmoid(self.head(y)).squeeze(-1)

    def model_args(self) -> dict[str, Any]:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "dropout": self.dropout}


@dataclass
class SupervisedConfig:
    """Training of `AttentionRegressor` on `gtscore` (VASNet's optimiser settings; fewer epochs)."""

    hidden: int = 256
    dropout: float = 0.5
    epochs: int = 100
    lr: float = 5e-5
    weight_decay: float = 1e-5
    seed: int = 0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalise_target(gtscore: np.ndarray) -> np.ndarray:
    """`gtscore` `(N,)` min-max scaled to [0, 1] (all zeros for a constant score)."""
    y = np.asarray(gtscore, dtype=np.float32).reshape(-1)
    span = float(y.max() - y.min()) if y.size else 0.0
    return (y - y.min()) / span if span > 0 else np.zeros_like(y)


def train_supervised(
    records: dict[str, VideoRecord],
    train_keys: Sequence[str],
    config: SupervisedConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> AttentionRegressor:
    """Fit an `AttentionRegressor` to the min-max normalised `gtscore` of `train_keys` (MSE, one video
    per step, seeded shuffling). Returns the model in eval mode on CPU; appends one row per epoch
    (`epoch`, `loss`, `lr`, `seconds`) to `history` when given."""
    with one_torch_thread():
        return _train_supervised(records, train_keys, config, progress=progress, history=history)


def _train_supervised(
    records: dict[str, VideoRecord],
    train_keys: Sequence[str],
    config: SupervisedConfig | None,
    *,
    progress: Callable[[int, int], None] | None,
    history: list[dict[str, Any]] | None,
) -> AttentionRegressor:
    config = config or SupervisedConfig()
    keys = list(train_keys)
    if not keys:
        raise ValueError("train_supervised needs at least one training video")
    dims = {records[k].features.shape[1] for k in keys}
    if len(dims) != 1:
        raise ValueError(f"all videos must have the same feature dimension, got {sorted(dims)}")
    device = torch.device(config.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AttentionRegressor(dims.pop(), config.hidden, config.dropout).to(device)
        xs = [torch.as_tensor(records[k].features, device=device).unsqueeze(0) for k in keys]
        ys = [torch.as_tensor(normalise_target(records[k].gtscore), device=device).unsqueeze(0) for k in keys]
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        rng = np.random.default_rng(config.seed)
        model.train()
        for epoch in range(config.epochs):
            start, losses = time.perf_counter(), []
            for i in rng.permutation(len(keys)):
                loss = nn.functional.mse_loss(model(xs[i]), ys[i])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            if history is not None:
                history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": config.lr,
                                "seconds": time.perf_counter() - start})
            if progress is not None:
                progress(epoch + 1, config.epochs)
    model.eval()
    return model.cpu()


@torch.no_grad()
def predict_scores(model: nn.Module, features: np.ndarray) -> np.ndarray:
    """Importance scores `(N,)` in [0, 1] of one video's features `(N, D)` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    out = model(torch.as_tensor(np.asarray(features, dtype=np.float32), device=param.device).unsqueeze(0))[0]
    model.train(was_training)
    return out.cpu().numpy().astype(np.float32)
