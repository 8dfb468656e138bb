"""Deep-feature density: patch features of a frozen ImageNet MobileNetV2 per spatial cell, and a memory of
what each cell looks like in normal footage. Nothing is trained; fitting is one pass over the normal frames.

Features: torchvision MobileNetV2 with its ImageNet weights (found offline, `vidlens.models.weights`), the
outputs of block 6 (32 channels, stride 8; 2x2-averaged) and block 13 (96 channels, stride 16), each first
averaged over a 3x3 neighbourhood (PatchCore's local aggregation), concatenated: a 128-d feature per
16x16-pixel cell of the working frame (a 12x16 grid at 192x256).

Memory of normal, per cell (a fixed camera: what is normal depends on where):
- `gaussian` (PaDiM, Defard et al. 2020): mean and shrunk covariance of each cell's features; the
  cell score is the Mahalanobis distance;
- `knn` (default; PatchCore-like, Roth et al. 2022, per position): up to `memory_frames` normal frames' features of
  each cell (and its 8 neighbours when `neighbours`); the cell score is the mean distance to the `k` nearest.

Measured on vtest.avi at 192x256 (normal = frames 0-449): the per-cell Gaussian missed a face pasted on the
road (frame AUC 0.60: the road cells' features vary too much for one Gaussian) where k-NN found it (1.00);
both 1.00 on an object left on the lawn; on real people walking on the lawn Gaussian 0.88, k-NN 0.83. So
k-NN is the default (score 27 frames/s vs 36 on one thread).

Frame score: the mean of the `topk` highest cell scores (1 = the maximum); heat: every cell's score.
Good at things that look wrong (an object or person where none should be, an unusual object); blind to
normal-looking things moving wrongly (that is the `flow` and `prediction` methods' job).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import numpy as np

from vidlens.tasks.anomaly._cells import (
    Stopwatch,
    check_frames,
    fit_videos,
    frame_scores,
    from_state,
    knn_bank,
    knn_cell_scores,
    notify,
    subsample,
    to_state,
)
from vidlens.tasks.anomaly.base import FrameScores, Progress, register_method

_BLOCKS = (6, 13)  # MobileNetV2 `features` indices whose outputs are used (stride 8 and 16)


class _Encoder:
    """Frozen MobileNetV2 blocks 0-13: `uint8 (T,H,W,3)` -> `float32 (T, gh, gw, 128)` cell features (H, W multiples of 16)."""

    def __init__(self, weights_file: str | None = None) -> None:
        from vidlens.models.encoders import IMAGENET_MEAN, IMAGENET_STD, build_encoder

        encoder = build_encoder("mobilenet_v2", pretrained="imagenet", weights_file=weights_file)
        self.blocks = encoder.net.features[: _BLOCKS[-1] + 1].eval()
        self.mean = np.array(IMAGENET_MEAN, np.float32) * 255.0
        self.std = np.array(IMAGENET_STD, np.float32) * 255.0

    def __call__(self, frames: np.ndarray, batch: int = 16) -> np.ndarray:
        import torch
        from torch.nn import functional as F

        from vidlens.threads import one_torch_thread

        out = []
        with one_torch_thread(), torch.no_grad():
            for b in range(0, len(frames), batch):
                x = torch.from_numpy(((frames[b:b + batch].astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2))
                taken = []
                for i, block in enumerate(self.blocks):
                    x = block(x)
                    if i in _BLOCKS:
                        taken.append(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
                fine = F.avg_pool2d(taken[0], 2)
                out.append(torch.cat([fine, taken[1]], dim=1).permute(0, 2, 3, 1).numpy())
        return np.concatenate(out)


@register_method
class FeatureDensity:
    """Frozen ImageNet patch features per cell with a `gaussian` (Mahalanobis) or `knn` memory of normal (see module doc).

    `shrinkage` pulls each cell's covariance toward a scaled identity (0..1); `k`, `memory_frames`, `neighbours`
    shape the k-NN memory; `topk` cells make the frame score; `weights_file` overrides the offline ImageNet file.
    """

    name: ClassVar[str] = "features"
    context = 0

    def __init__(self, memory: str = "knn", shrinkage: float = 0.1, k: int = 3, memory_frames: int = 400,
                 neighbours: bool = True, topk: int = 1, batch: int = 16, weights_file: str | None = None, seed: int = 0) -> None:
        from vidlens.errors import ConfigError

        if memory not in ("gaussian", "knn"):
            raise ConfigError(None, f"features memory must be 'gaussian' or 'knn', got {memory!r}")
        if not 0.0 <= shrinkage <= 1.0 or k < 1 or memory_frames < 1 or topk < 1 or batch < 1:
            raise ConfigError(None, "features shrinkage must be in [0, 1]; k, memory_frames, topk, batch >= 1")
        self.memory, self.shrinkage, self.k, self.memory_frames = memory, float(shrinkage), int(k), int(memory_frames)
        self.neighbours, self.topk, self.batch, self.seed = bool(neighbours), int(topk), int(batch), int(seed)
        self.weights_file = weights_file
        self._encoder: _Encoder | None = None
        self.mean: np.ndarray | None = None  # (gh, gw, D)
        self.precision: np.ndarray | None = None  # (gh, gw, D, D)
        self.bank: np.ndarray | None = None  # (N, gh, gw, D) float16
        self._bank = None  # the search-ready k-NN memory, built on first use

    @property
    def encoder(self) -> _Encoder:
        if self._encoder is None:
            self._encoder = _Encoder(self.weights_file)
        return self._encoder

    def fit(self, videos: Iterable[np.ndarray], progress: Progress | None = None) -> dict[str, Any]:
        clock = Stopwatch()
        videos = fit_videos(videos, 0, self.name)
        total = sum(len(v) for v in videos)
        if self.memory == "knn":
            keep = subsample(total, self.memory_frames, self.seed)
        s1 = s2 = None
        bank, seen = [], 0
        for i, video in enumerate(videos):
            v = video
            if self.memory == "knn":  # encode only the frames the memory keeps
                v = video[keep[(keep >= seen) & (keep < seen + len(video))] - seen]
            for b in range(0, len(v), 64):
                feats = self.encoder(v[b:b + 64], self.batch).astype(np.float64)  # (n, gh, gw, D)
                if self.memory == "gaussian":
                    s1 = feats.sum(0) if s1 is None else s1 + feats.sum(0)
                    outer = np.einsum("nhwd,nhwe->hwde", feats, feats)
                    s2 = outer if s2 is None else s2 + outer
                else:
                    bank.append(feats.astype(np.float16))
            seen += len(video)
            notify(progress, "features: encode", (i + 1) / len(videos))
        facts: dict[str, Any] = {"frames": total, "memory": self.memory}
        if self.memory == "gaussian":
            mean = s1 / total
            cov = s2 / total - np.einsum("hwd,hwe->hwde", mean, mean)
            d = cov.shape[-1]
            scale = np.trace(cov, axis1=-2, axis2=-1)[..., None, None] / d
            cov = (1.0 - self.shrinkage) * cov + (self.shrinkage * scale + 1e-6) * np.eye(d)
            self.mean, self.precision = mean.astype(np.float32), np.linalg.inv(cov).astype(np.float32)
            facts["cells"] = list(mean.shape[:2])
        else:
            self.bank = np.concatenate(bank)
            self._bank = None
            facts.update(cells=list(self.bank.shape[1:3]), memory_size=int(np.prod(self.bank.shape[:3])))
        facts["feature_dim"] = int((self.mean if self.mean is not None else self.bank).shape[-1])
        facts["seconds"] = clock.seconds()
        return facts

    def cell_scores(self, feats: np.ndarray) -> np.ndarray:
        """`float32 (T,gh,gw,D)` features -> `float32 (T,gh,gw)` cell scores."""
        if self.memory == "gaussian":
            diff = feats - self.mean[None]
            return np.sqrt(np.maximum(np.einsum("thwd,hwde,thwe->thw", diff, self.precision, diff, optimize=True), 0.0))
        if self._bank is None:
            self._bank = knn_bank(self.bank, self.neighbours)
        return knn_cell_scores(feats, self._bank, self.k)

    def score(self, frames: np.ndarray) -> FrameScores:
        if self.mean is None and self.bank is None:
            raise RuntimeError("features: score() before fit() or from_state()")
        frames = check_frames(frames, 0, self.name)
        cells = np.concatenate([self.cell_scores(self.encoder(frames[b:b + 64], self.batch)) for b in range(0, len(frames), 64)])
        return FrameScores(frame_scores(cells, self.topk), cells.astype(np.float32))

    def args(self) -> dict[str, Any]:
        return {"memory": self.memory, "shrinkage": self.shrinkage, "k": self.k, "memory_frames": self.memory_frames,
                "neighbours": self.neighbours, "topk": self.topk, "batch": self.batch, "seed": self.seed}

    def state(self) -> dict[str, Any]:
        if self.mean is None and self.bank is None:
            raise RuntimeError("features: state() before fit()")
        if self.memory == "gaussian":
            return {"args": self.args(), "mean": to_state(self.mean), "precision": to_state(self.precision)}
        return {"args": self.args(), "bank": to_state(self.bank)}

    @classmethod
    def from_state(cls, state: dict[str, Any], args: dict[str, Any]) -> FeatureDensity:
        method = cls(**{**dict(state.get("args", {})), **dict(args)})
        if method.memory == "gaussian":
            method.mean, method.precision = from_state(state["mean"]), from_state(state["precision"])
        else:
            method.bank = from_state(state["bank"], np.float16)
        return method
