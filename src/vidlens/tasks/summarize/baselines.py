"""Untrained baselines giving per-step scores `(n_steps,)` for `generate_summary`.

- `random_scores`: i.i.d. uniform [0, 1) scores, then the usual knapsack. This is the random
  baseline of Otani et al. ("Rethinking the Evaluation of Video Summaries", CVPR 2019), who showed
  it scores close to published methods under this protocol.
- `uniform_scores`: evenly spaced keyshots. The timeline is cut into `n_windows` equal blocks and
  the centred `ratio` fraction of each block scores 1, the rest 0; the knapsack then keeps the
  segments lying in those windows, i.e. a summary spread evenly over the video (the "uniform
  sampling" baseline of Gygli et al., SumMe, ECCV 2014, in keyshot form). Constant scores are not
  used: with equal values the knapsack just packs the shortest segments.
- `kmeans_scores`: k-means on the step features (as in VSUMM, de Avila et al., 2011); a step's
  score is its closeness to its own cluster centre, `1 - d / d_max(cluster)`, so the segments
  holding the members nearest to each centroid rank first.

Layouts: `features` `(n_steps, D)`.
"""

from __future__ import annotations

import numpy as np


def random_scores(n_steps: int, seed: int = 0) -> np.ndarray:
    """Uniform random scores `(n_steps,)` in [0, 1), reproducible from `seed`."""
    return np.random.default_rng(seed).random(int(n_steps)).astype(np.float32)


def uniform_scores(n_steps: int, ratio: float = 0.15, n_windows: int = 10) -> np.ndarray:
    """Evenly spaced keyshot windows: `(n_steps,)` 0/1 with the centred `ratio` of each of `n_windows` blocks set to 1."""
    n_steps = int(n_steps)
    scores = np.zeros(n_steps, dtype=np.float32)
    if n_steps == 0:
        return scores
    windows = max(1, min(int(n_windows), n_steps))
    edges = np.linspace(0, n_steps, windows + 1)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        centre, half = (lo + hi) / 2, max(0.5, (hi - lo) * ratio / 2)
        a, b = int(np.floor(centre - half)), int(np.ceil(centre + half))
        scores[max(0, a) : min(n_steps, max(b, a + 1))] = 1.0
    return scores


def kmeans_scores(features: np.ndarray, n_clusters: int | None = None, seed: int = 0) -> np.ndarray:
    """Closeness of each step to its k-means centre, `(n_steps,)` in [0, 1].

    `n_clusters` defaults to `clip(round(sqrt(n_steps / 2)), 2, 20)`. Features are L2-normalised
    first (cosine geometry, robust to brightness-like scale changes).
    """
    from sklearn.cluster import KMeans

    x = np.asarray(features, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = n_clusters if n_clusters is not None else int(np.clip(round(np.sqrt(n / 2)), 2, 20))
    k = max(1, min(int(k), n))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    dist = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    scores = np.ones(n, dtype=np.float32)
    for c in range(k):
        members = km.labels_ == c
        d_max = dist[members].max()
        if d_max > 0:
            scores[members] = 1.0 - dist[members] / d_max
    return scores
