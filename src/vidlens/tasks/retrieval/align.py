"""Temporal alignment of two frame-descriptor sequences: which part of `query` is a copy of which part of `ref`.

Method: the frame-by-frame cosine similarity matrix `S (Nq,Nr)`; every candidate diagonal
`t_ref = offset + speed * t_query` (speeds 0.88..1.12, offsets every quarter sampling step) is read
off `S` at once (vectorised look-ups at the nearest reference frame); along each diagonal the best
contiguous run is the maximum-sum segment of `sim - threshold` (a Kadane scan done with cumulative
sums for all diagonals together). The best diagonal is then refined on a finer speed/offset grid.
A copy's diagonal stays above the threshold for its whole length; unrelated footage does not stay
there for `min_len_s`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SPEEDS = np.round(np.arange(0.88, 1.1201, 0.02), 4)  # ref seconds per query second
THRESHOLD = 0.5  # frame-pair cosine similarity a copy stays above (the shipped descriptor's scale)
OUTSIDE = -1.0  # value of a diagonal point that falls outside the reference


@dataclass
class Match:
    """The best aligned range: query `[query_start_s, query_end_s)` shows ref `[ref_start_s, ref_end_s)`."""

    score: float  # 0..1, mean similarity along the matched diagonal
    query_start_s: float
    query_end_s: float
    ref_start_s: float
    ref_end_s: float
    speed: float  # ref seconds per query second (0.9..1.1 for +-10 % speed change)

    @property
    def duration_s(self) -> float:
        return self.query_end_s - self.query_start_s

    def to_json(self) -> dict:
        return {k: round(float(v), 3) if k != "score" else round(float(v), 4) for k, v in asdict(self).items()}


def _rows(x) -> tuple[np.ndarray, np.ndarray]:
    """A `VideoEmbedding` or `(features (N,D), times_s (N,))` -> float32 unit rows, float64 times."""
    if isinstance(x, tuple | list):
        f, t = x
    else:
        f, t = x.features, x.times_s
    f = np.asarray(f, dtype=np.float32)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if f.ndim != 2 or f.shape[0] != t.shape[0]:
        raise ValueError(f"features (N,D) and times (N,) disagree: {f.shape} vs {t.shape}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-8)
    return f, t


def _duration(x) -> float:
    """A `VideoEmbedding`'s duration (inf for the tuple form, which does not know it)."""
    d = getattr(x, "duration_s", None)
    return float(d) if d else float("inf")


def _step(t: np.ndarray) -> float:
    """The sampling interval of a time axis (median gap; 0.5 s for a single frame)."""
    d = np.diff(t)
    d = d[d > 1e-6]
    return float(np.median(d)) if d.size else 0.5


def _diagonals(S: np.ndarray, tq: np.ndarray, tr: np.ndarray, speeds: np.ndarray, offsets: np.ndarray,
               step_r: float) -> np.ndarray:
    """Similarity along each diagonal: `(len(speeds)*len(offsets), Nq)`, OUTSIDE where it leaves the reference."""
    T = offsets[None, :, None] + speeds[:, None, None] * tq[None, None, :]  # (S,O,Nq) reference times
    T = T.reshape(-1, tq.size)
    rows = np.arange(tq.size)[None, :]
    if tr.size > 1:  # the better of the two reference frames around T: no bias towards on-grid diagonals
        j = np.clip(np.searchsorted(tr, T), 1, tr.size - 1)
        vals = np.maximum(S[rows, j - 1], S[rows, j])
    else:
        vals = np.broadcast_to(S[rows, 0], T.shape)
    inside = (T >= tr[0] - 0.5 * step_r) & (T <= tr[-1] + 0.5 * step_r)
    return np.where(inside, vals, OUTSIDE)


def _best_runs(vals: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-sum segment of `vals - threshold` per row: `(gain, start, end_inclusive)`, each `(R,)`."""
    x = vals - threshold
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)  # (R,N+1)
    prefix_min = np.minimum.accumulate(c[:, :-1], axis=1)  # min over a <= b of c[a]
    argmins = _running_argmin(c[:, :-1])
    gains = c[:, 1:] - prefix_min  # best segment ending at b
    end = np.argmax(gains, axis=1)
    rows = np.arange(x.shape[0])
    return gains[rows, end], argmins[rows, end], end


def _running_argmin(c: np.ndarray) -> np.ndarray:
    """Index of the running minimum along axis 1 (first occurrence)."""
    n = c.shape[1]
    running = np.minimum.accumulate(c, axis=1)
    is_new = np.concatenate([np.ones((c.shape[0], 1), bool), running[:, 1:] < running[:, :-1]], axis=1)
    idx = np.where(is_new, np.arange(n)[None, :], 0)
    return np.maximum.accumulate(idx, axis=1)


def similarity(query, ref) -> np.ndarray:
    """`(Nq,Nr)` cosine similarity of the two sequences' frame rows."""
    fq, _ = _rows(query)
    fr, _ = _rows(ref)
    return fq @ fr.T


def align(query, ref, *, min_len_s: float = 2.0, threshold: float = THRESHOLD,
          speeds: np.ndarray | None = None) -> Match | None:
    """The longest well-matching stretch of `query` that shows part of `ref`, or None.

    `query`, `ref`: `VideoEmbedding`s or `(features (N,D), times_s (N,))`. A match is a straight
    diagonal `t_ref = offset + speed * t_query` with speed in `speeds` (default 0.88..1.12) along
    which frame similarity stays above `threshold` (short dips are bridged when the run's total
    stays positive) for at least `min_len_s` seconds of query.
    """
    fq, tq = _rows(query)
    fr, tr = _rows(ref)
    if fq.shape[0] == 0 or fr.shape[0] == 0:
        return None
    if fq.shape[1] != fr.shape[1]:
        raise ValueError(f"descriptor sizes differ: {fq.shape[1]} vs {fr.shape[1]}")
    order_q, order_r = np.argsort(tq, kind="stable"), np.argsort(tr, kind="stable")
    fq, tq, fr, tr = fq[order_q], tq[order_q], fr[order_r], tr[order_r]
    S = fq @ fr.T
    if float(S.max()) < threshold:
        return None
    step_q, step_r = _step(tq), _step(tr)
    speeds = SPEEDS if speeds is None else np.asarray(speeds, dtype=np.float64)
    # coarse grid: offsets every half reference step over every placement that overlaps
    lo = tr[0] - speeds.max() * tq[-1] - step_r
    hi = tr[-1] - speeds.min() * tq[0] + step_r
    offsets = np.arange(lo, hi + 1e-9, 0.5 * step_r)
    best = _search(S, tq, tr, speeds, offsets, step_r, threshold)
    if best is None:
        return None
    # refine: fit the line through each matched query frame's best reference time (sub-sample peaks)
    _, speed, offset, a, b, mean = best
    for _ in range(2):
        fit = _fit_line(S, tq, tr, a, b, speed, offset, step_r, threshold, speeds.min(), speeds.max())
        if fit is None:
            break
        again = _search(S, tq, tr, np.array([fit[0]]), np.array([fit[1]]), step_r, threshold)
        if again is None or again[4] - again[3] < 0.8 * (b - a):
            break
        _, speed, offset, a, b, mean = again
    q_end = min(float(tq[-1] + step_q), _duration(query))
    r_end = min(float(tr[-1] + step_r), _duration(ref))
    q0, q1 = float(tq[a]), min(float(tq[b] + step_q), q_end)
    if q1 - q0 < min_len_s - 1e-6:
        return None
    r0 = max(float(tr[0]), offset + speed * q0)
    r1 = min(r_end, offset + speed * q1)
    return Match(score=float(np.clip(mean, 0.0, 1.0)), query_start_s=q0, query_end_s=q1,
                 ref_start_s=r0, ref_end_s=max(r0, r1), speed=float(speed))


def _fit_line(S, tq, tr, a, b, speed, offset, step_r, threshold, s_min, s_max):
    """Weighted least-squares `(speed, offset)` through the sub-sample similarity peaks of query frames
    `a..b` near the diagonal `offset + speed * t`; None when too few frames match."""
    if tr.size < 3 or b - a < 2:
        return None
    window = max(1.0, 2.0 * step_r)
    xs, ys, ws = [], [], []
    for i in range(a, b + 1):
        centre = offset + speed * tq[i]
        js = np.flatnonzero(np.abs(tr - centre) <= window)
        if js.size == 0:
            continue
        j = int(js[np.argmax(S[i, js])])
        if S[i, j] < threshold:
            continue
        t = tr[j]
        if 0 < j < tr.size - 1:  # parabola through the peak and its neighbours
            y0, y1, y2 = S[i, j - 1], S[i, j], S[i, j + 1]
            den = y0 - 2 * y1 + y2
            if den < -1e-6:
                d = float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5))
                t = tr[j] + d * (tr[j + 1] - tr[j - 1]) / 2
        xs.append(tq[i])
        ys.append(t)
        ws.append(S[i, j] - threshold + 1e-3)
    if len(xs) < 3 or max(xs) - min(xs) < 1.0:
        return None
    x, y, w = np.array(xs), np.array(ys), np.array(ws)
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    var = np.average((x - xm) ** 2, weights=w)
    sp = float(np.clip(np.average((x - xm) * (y - ym), weights=w) / var, s_min, s_max)) if var > 0 else speed
    return sp, float(ym - sp * xm)


def _search(S, tq, tr, speeds, offsets, step_r, threshold):
    """Best (gain, speed, offset, start, end, mean similarity) over the grid, or None."""
    vals = _diagonals(S, tq, tr, speeds, offsets, step_r)
    gain, start, end = _best_runs(vals, threshold)
    k = int(np.argmax(gain))
    if gain[k] <= 0:
        return None
    a, b = int(start[k]), int(end[k])
    mean = float(vals[k, a:b + 1].mean())
    return float(gain[k]), float(speeds[k // offsets.size]), float(offsets[k % offsets.size]), a, b, mean
