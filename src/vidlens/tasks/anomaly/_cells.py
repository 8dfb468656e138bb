"""Small helpers the built-in anomaly methods share: input checks, state conversion, cell scores -> frame scores.

A method's "cells" are the squares of a coarse grid over the frame `(gh, gw)`; a per-cell score map is
`float (T,gh,gw)`, higher = more anomalous.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from vidlens.errors import ConfigError


def check_frames(frames: np.ndarray, context: int, method: str) -> np.ndarray:
    """`frames` as a `uint8 (T,H,W,3)` array with more than `context` frames (ConfigError otherwise)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError(None, f"anomaly method {method!r} takes uint8 (T,H,W,3) RGB frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ConfigError(None, f"anomaly method {method!r} takes uint8 frames, got {frames.dtype}")
    if len(frames) <= context:
        raise ConfigError(None, f"anomaly method {method!r} needs more than {context} frames (its context), got {len(frames)}")
    return frames


def fit_videos(videos: Iterable[np.ndarray], context: int, method: str) -> list[np.ndarray]:
    """The normal videos to fit on, each checked; videos too short for `context` are skipped. ConfigError if none is left."""
    kept = [check_frames(v, -1, method) for v in videos]
    kept = [v for v in kept if len(v) > context]
    if not kept:
        raise ConfigError(None, f"anomaly method {method!r} got no normal video longer than {context} frames to learn from")
    return kept


def frame_scores(cells: np.ndarray, topk: int = 1) -> np.ndarray:
    """`float (T,gh,gw)` cell scores -> `float64 (T,)`: the mean of each frame's `topk` highest cells (1 = max)."""
    flat = np.asarray(cells, dtype=np.float64).reshape(len(cells), -1)
    k = max(1, min(int(topk), flat.shape[1]))
    if k == 1:
        return flat.max(axis=1)
    return np.sort(flat, axis=1)[:, -k:].mean(axis=1)


def to_state(array: np.ndarray | Any) -> Any:
    """A numpy array as a CPU torch tensor (a model file holds tensors, not numpy arrays)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def from_state(tensor: Any, dtype: type = np.float32) -> np.ndarray:
    """A saved tensor back as a numpy array of `dtype`."""
    return tensor.detach().cpu().numpy().astype(dtype, copy=False)


def cell_index(h: int, w: int, grid: tuple[int, int]) -> np.ndarray:
    """`intp (h*w,)`: the cell of every pixel of an `(h, w)` map cut into `grid` = (gh, gw) near-equal cells."""
    gh, gw = grid
    rows = (np.arange(h) * gh) // h
    cols = (np.arange(w) * gw) // w
    return (rows[:, None] * gw + cols[None, :]).ravel()


def notify(progress: Any, stage: str, value: float) -> None:
    if progress is not None:
        progress(stage, float(value))


class Stopwatch:
    """Seconds since creation, for the training facts."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)


def knn_bank(bank: np.ndarray, neighbours: bool) -> Any:
    """A per-cell memory `(N,gh,gw,D)` as a search-ready `float32 (gh,gw,M,D)` tensor; with `neighbours`, each cell's
    memory also holds its 8 neighbours' (M = 9N; edge cells replicate), so normal seen one cell away stays normal."""
    import torch
    from torch.nn import functional as F

    out = torch.from_numpy(np.asarray(bank, dtype=np.float32)).permute(1, 2, 0, 3)  # (gh, gw, N, D)
    gh, gw, n, d = out.shape
    if neighbours:
        grid = F.unfold(F.pad(out.permute(2, 3, 0, 1).reshape(1, n * d, gh, gw), (1, 1, 1, 1), mode="replicate"), 3)
        out = grid.reshape(n, d, 9, gh, gw).permute(3, 4, 2, 0, 1).reshape(gh, gw, 9 * n, d)
    return out.contiguous()


def knn_cell_scores(query: np.ndarray, bank: Any, k: int, skip_self: bool = False) -> np.ndarray:
    """`float32 (T,gh,gw,D)` per-cell vectors -> `float32 (T,gh,gw)`: mean L2 distance to the `k` nearest of the
    same cell's memory `bank` (`knn_bank`); `skip_self`: the query is in the memory, leave its nearest (itself) out."""
    import torch

    gh, gw, _, d = bank.shape
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)).permute(1, 2, 0, 3).reshape(gh * gw, len(query), d)
    dist = torch.cdist(q, bank.reshape(gh * gw, -1, d))  # (cells, T, M)
    near = dist.topk(min(k + skip_self, dist.shape[-1]), dim=-1, largest=False).values[..., int(skip_self):].mean(-1)
    return near.reshape(gh, gw, len(query)).permute(2, 0, 1).numpy()


def subsample(total: int, keep: int, seed: int) -> np.ndarray:
    """Sorted indices of `keep` of `total` items drawn at random with `seed` (all of them when keep >= total)."""
    if keep >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=keep, replace=False))
