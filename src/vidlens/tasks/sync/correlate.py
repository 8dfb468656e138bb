"""Cross-correlation of a video signal against an audio signal over lags, its peak and confidence,
offsets over time (windows) and the drift fitted through them.

Signals are 1-D float arrays on one 100 Hz grid (`signals.RATE`, sample k at k / RATE seconds of the file's
clock). Lag convention: at lag d (samples) the audio sample `a[t + d]` is compared with the video sample `v[t]`,
so the best lag is how late the audio is (d > 0 = audio late, the package's sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 100.0  # samples per second of every signal: 10 ms lag resolution
GUARD_MS = 100.0  # lags this close to the peak are its shoulders, not sidelobes


@dataclass
class Peak:
    """The best lag of a correlation curve and how much it stands out."""

    offset_ms: float  # parabolic-refined lag of the maximum
    value: float  # correlation at the peak
    z: float  # (peak - median of sidelobes) / robust std of sidelobes
    ratio: float  # (peak - median) / (best sidelobe - median): 1 = a tie with another lag
    confidence: float  # 0..1 (see `confidence_of`)


def lag_grid(max_offset_ms: float) -> np.ndarray:
    """(L,) int lags in samples, -max..+max."""
    m = int(round(max_offset_ms * RATE / 1000.0))
    return np.arange(-m, m + 1)


def xcorr(video: np.ndarray, audio: np.ndarray, lags: np.ndarray, *, weights: np.ndarray | None = None,
          start: int = 0, stop: int | None = None, min_overlap: int = 50) -> np.ndarray:
    """(L,) Pearson correlation of `video[t]` with `audio[t + d]` for t in [start, stop) and each lag d.

    `weights` (T,) >= 0 marks where the video signal is valid (e.g. a face was found; 0 = ignore); samples where
    either signal is NaN are ignored. Lags with fewer than `min_overlap` usable samples get NaN."""
    v = np.asarray(video, np.float64)
    a = np.asarray(audio, np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, np.float64).copy()
    stop = v.size if stop is None else min(stop, v.size)
    w[~np.isfinite(v)] = 0.0
    v = np.nan_to_num(v)
    a_ok = np.isfinite(a).astype(np.float64)
    a = np.nan_to_num(a)
    out = np.full(lags.size, np.nan)
    t = np.arange(start, stop)
    for i, d in enumerate(lags):
        idx = t + d
        inside = (idx >= 0) & (idx < a.size)
        tt, ii = t[inside], idx[inside]
        ww = w[tt] * a_ok[ii]
        n = ww.sum()
        if np.count_nonzero(ww) < min_overlap:
            continue
        x, y = v[tt], a[ii]
        mx, my = (ww * x).sum() / n, (ww * y).sum() / n
        dx, dy = x - mx, y - my
        den = np.sqrt((ww * dx * dx).sum() * (ww * dy * dy).sum())
        if den > 1e-12:
            out[i] = (ww * dx * dy).sum() / den
    return out


def support(video: np.ndarray, audio: np.ndarray, lag: int, *, weights: np.ndarray | None = None, start: int = 0,
            stop: int | None = None, bin_s: float = 0.5, max_lag: int = 100) -> float:
    """How many separate moments make the match at `lag`: per `bin_s` bin, the product of the standardised signals
    at `lag` minus the bin's median product over lags -max_lag..max_lag (what any lag gives there), positive part,
    then (sum b)^2 / sum b^2. 1 = one coincidence carries the whole peak; large = the match is spread over the video."""
    v = np.asarray(video, np.float64)
    a = np.asarray(audio, np.float64)
    stop = v.size if stop is None else min(stop, v.size)
    t = np.arange(start, stop)
    w = np.ones(t.size) if weights is None else np.asarray(weights, np.float64)[t]
    x = v[t]
    okx = np.isfinite(x) & (w > 0)
    if okx.sum() < 10:
        return 0.0
    x = np.where(okx, (x - x[okx].mean()) / (x[okx].std() + 1e-9), 0.0)
    oka = np.isfinite(a)
    if oka.sum() < 10:
        return 0.0
    az = np.where(oka, (a - a[oka].mean()) / (a[oka].std() + 1e-9), 0.0)
    nbins = int((t.size - 1) // (bin_s * RATE)) + 1
    bin_of = ((t - t[0]) / (bin_s * RATE)).astype(int)

    def per_bin(d: int) -> np.ndarray:
        idx = t + d
        inside = (idx >= 0) & (idx < az.size)
        prod = np.zeros(t.size)
        prod[inside] = x[inside] * az[idx[inside]]
        return np.bincount(bin_of, weights=prod, minlength=nbins)

    step = max(1, max_lag // 25)
    null = np.median(np.stack([per_bin(d) for d in range(-max_lag, max_lag + 1, step)]), axis=0)
    excess = np.maximum(per_bin(lag) - null, 0.0)
    total = excess.sum()
    return float(total * total / max((excess * excess).sum(), 1e-12)) if total > 0 else 0.0


def confidence_of(z: float, ratio: float) -> float:
    """Map peak prominence to 0..1: 0.5 at z = 5 sidelobe-stds with the peak 1.25x the next one above the
    median; grows with both. Calibrated on the real clips of the tests (see docs/sync.md)."""
    zs = 1.0 / (1.0 + np.exp(-(z - 5.0) / 0.8))
    rs = 1.0 / (1.0 + np.exp(-(ratio - 1.25) / 0.08))
    return float(np.sqrt(zs * rs))


def find_peak(lags_ms: np.ndarray, corr: np.ndarray) -> Peak | None:
    """The maximum of `corr` over `lags_ms` (ascending, evenly spaced), refined by a parabola through its
    neighbours, with its prominence against the sidelobes (lags further than GUARD_MS away). None when the curve
    is all NaN or flat."""
    c = np.asarray(corr, np.float64)
    ok = np.isfinite(c)
    if ok.sum() < 5 or np.nanmax(c) - np.nanmin(c) < 1e-9:
        return None
    c = np.where(ok, c, np.nanmin(c))
    i = int(np.argmax(c))
    step = float(lags_ms[1] - lags_ms[0]) if lags_ms.size > 1 else 10.0
    offset = float(lags_ms[i])
    if 0 < i < c.size - 1:
        den = c[i - 1] - 2 * c[i] + c[i + 1]
        if den < 0:
            offset += step * float(np.clip(0.5 * (c[i - 1] - c[i + 1]) / den, -0.5, 0.5))
    far = np.abs(lags_ms - lags_ms[i]) > GUARD_MS
    side = c[far & ok]
    if side.size < 5:
        return Peak(offset, float(c[i]), 0.0, 1.0, 0.0)
    med = float(np.median(side))
    spread = 1.4826 * float(np.median(np.abs(side - med))) + 1e-6
    z = (c[i] - med) / spread
    ratio = (c[i] - med) / max(float(side.max()) - med, 1e-6)
    return Peak(offset, float(c[i]), float(z), float(ratio), confidence_of(float(z), float(ratio)))


def window_spans(duration_s: float, window_s: float) -> list[tuple[float, float]]:
    """(start_s, end_s) windows of `window_s` with hop window_s / 2 covering [0, duration_s]."""
    if duration_s < window_s * 1.25:
        return [(0.0, float(duration_s))]
    hop = window_s / 2.0
    starts = np.arange(0.0, duration_s - window_s + 1e-9, hop)
    return [(float(s), float(s + window_s)) for s in starts]


def fit_drift(windows, min_windows: int = 4, min_change_ms: float = 30.0) -> float | None:
    """Robust slope (Theil-Sen) of the confident window offsets against window centre, in ms per minute;
    None unless it is significant: at least `min_windows` offsets, the 95% interval of the slope excludes 0, and
    the offset changes by at least `min_change_ms` across the windows."""
    line = drift_line(windows, min_windows, min_change_ms)
    return None if line is None else line[0]


def drift_line(windows, min_windows: int = 4, min_change_ms: float = 30.0) -> tuple[float, float, float] | None:
    """`(slope ms/min, offset ms at t = 0 s, mean confidence of the windows used)` of a significant drift (see
    `fit_drift`), else None."""
    from scipy.stats import theilslopes

    from vidlens.tasks.sync.base import CONFIDENT

    used = [w for w in windows if w.offset_ms is not None and w.confidence >= CONFIDENT]
    if len(used) < min_windows:
        return None
    t = np.array([(w.start_s + w.end_s) / 2.0 for w in used]) / 60.0
    y = np.array([w.offset_ms for w in used], np.float64)
    if np.ptp(t) <= 0:
        return None
    slope, intercept, low, high = theilslopes(y, t, 0.95)
    if low <= 0 <= high or abs(slope) * np.ptp(t) < min_change_ms:
        return None
    return float(slope), float(intercept), float(np.mean([w.confidence for w in used]))
