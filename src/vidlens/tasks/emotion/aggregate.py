"""From per-frame emotion probabilities to one distribution per face track, and one per video.

A face track's frames are not equally informative: an acted or spontaneous expression is held for
a moment and the rest is transition, talking or the resting face. `aggregate_track` turns a
track's `(n,K)` frame probabilities into its `(K,)` `clip_probs`:

- `"peak"` (default): a weighted mean, each frame weighted by the square of its distance (total
  variation, 0..1) from the track's own start (the mean of its first `baseline_s` seconds): the
  frames where the face moved furthest from how it began count most. A track whose frames all
  read alike gets the plain mean.
- `"top"`: the mean of the `top_fraction` of frames with the least `neutral` probability (the most
  expressive frames; the most confident frames when the labels have no `neutral`).
- `"mean"`: the plain mean (the pipeline before issue 14).

`video_probs` combines tracks, each weighted by its number of detections. All inputs and outputs
are probabilities (rows sum to 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidlens.errors import ConfigError

AGGREGATIONS = ("peak", "top", "mean")


def aggregate_track(probs: np.ndarray, times: Sequence[float] | np.ndarray | None = None, method: str = "peak",
                    labels: Sequence[str] | None = None, *, baseline_s: float = 1.0,
                    top_fraction: float = 0.3) -> np.ndarray:
    """`probs (n,K)` of one track observed at `times (n,)` seconds -> `(K,)` clip probabilities.

    `times` None: frames are taken as 5 per second. Raises `ConfigError` for an unknown method."""
    if method not in AGGREGATIONS:
        raise ConfigError(None, f"unknown aggregation {method!r}; valid: {', '.join(AGGREGATIONS)}")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"expected (n,K) probabilities with n >= 1, got shape {p.shape}")
    if method == "mean" or len(p) == 1:
        out = p.mean(axis=0)
    elif method == "top":
        labels = list(labels) if labels is not None else []
        score = 1.0 - p[:, labels.index("neutral")] if "neutral" in labels else p.max(axis=1)
        k = max(1, int(round(top_fraction * len(p))))
        out = p[np.argsort(-score, kind="stable")[:k]].mean(axis=0)
    else:
        t = np.arange(len(p)) / 5.0 if times is None else np.asarray(times, dtype=np.float64)
        start = t <= t[0] + baseline_s
        start[0] = True
        baseline = p[start].mean(axis=0)
        distance = 0.5 * np.abs(p - baseline).sum(axis=1)
        weights = distance ** 2 + 1e-6
        out = (weights[:, None] * p).sum(axis=0) / weights.sum()
    return (out / out.sum()).astype(np.float32)


def video_probs(clip_probs: Sequence[np.ndarray], detections: Sequence[int], num_classes: int) -> np.ndarray:
    """Tracks' `(K,)` clip probabilities, weighted by their detections -> the video's `(K,)`.

    No tracks -> a `(K,)` of zeros (no face: no facial expression)."""
    if len(clip_probs) == 0:
        return np.zeros(num_classes, dtype=np.float32)
    w = np.asarray(detections, dtype=np.float64)
    out = (w[:, None] * np.stack([np.asarray(c, np.float64) for c in clip_probs])).sum(axis=0) / max(w.sum(), 1e-12)
    return out.astype(np.float32)
