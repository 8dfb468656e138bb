"""HSV colour histograms of RGB frames and distances between them.

Frames are `uint8 (H,W,3)` RGB as `vidlens.io` decodes them. OpenCV's 8-bit HSV puts
hue in 0..179 (degrees / 2) and saturation, value in 0..255; the histogram uses exactly
those ranges. Hue is circular: the hue bins are shifted by half a bin so bin 0 is
centred on red (0 degrees), and reds either side of 0 (hue 0..5 and 175..179 at 16 bins)
share it instead of splitting between the first and the last bin.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

DEFAULT_HSV_BINS = (16, 8, 8)
HUE_RANGE = 180  # OpenCV 8-bit hue: 0..179
HIST_METHODS = ("chi2", "intersection")

_TABLES: dict[int, np.ndarray] = {}


def _check_bins(bins: Sequence[int]) -> tuple[int, int, int]:
    b = tuple(int(v) for v in bins)
    if len(b) != 3 or not all(1 <= v <= 256 for v in b) or b[0] > HUE_RANGE:
        raise ValueError(f"bins must be three counts (H<=180, S, V<=256), got {tuple(bins)}")
    return b  # type: ignore[return-value]


def _hue_lut(hue_bins: int) -> np.ndarray:
    """`intp (256,)`: OpenCV hue (0..179) -> circular bin, bin 0 centred on red; 180..255 (unused) -> 0."""
    hue = np.arange(HUE_RANGE, dtype=np.float64)
    # Shift by half a bin width so that bin 0 is centred on hue 0 and wraps around.
    lut = np.floor(((hue + HUE_RANGE / (2 * hue_bins)) % HUE_RANGE) * hue_bins / HUE_RANGE).astype(np.intp)
    return np.concatenate([np.minimum(lut, hue_bins - 1), np.zeros(256 - HUE_RANGE, np.intp)])


def _hue_table(hue_bins: int) -> np.ndarray:
    """`uint8 (1,256,3)` table for `cv2.LUT` on an HSV image: hue -> bin index, S and V unchanged."""
    table = _TABLES.get(hue_bins)
    if table is None:
        identity = np.arange(256)
        table = np.stack([_hue_lut(hue_bins), identity, identity], axis=-1).astype(np.uint8)[None]
        _TABLES[hue_bins] = table
    return table


def hue_bin(hue_degrees: float, hue_bins: int = DEFAULT_HSV_BINS[0]) -> int:
    """The hue bin that a colour of `hue_degrees` (0..360, 0 = red) falls in."""
    opencv_hue = int(round((hue_degrees % 360) / 2)) % HUE_RANGE
    return int(_hue_lut(hue_bins)[opencv_hue])


def hsv_histogram(image: np.ndarray, bins: Sequence[int] = DEFAULT_HSV_BINS) -> np.ndarray:
    """Concatenated H, S and V histograms of an RGB `uint8 (H,W,3)` frame: `float32 (bH+bS+bV,)`.

    Each channel's block is L1-normalised on its own (it sums to 1: the fraction of
    pixels in each bin), so the whole vector sums to 3. Hue bins are circular and
    centred: bin 0 covers red (hue 0 +- half a bin). Grey pixels (saturation 0) have hue 0
    in OpenCV and so land in the red bin; the S histogram tells them apart.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected uint8 (H,W,3) RGB, got {image.dtype} {image.shape}")
    b = _check_bins(bins)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    # Hue -> circular bin index through a lookup table; S and V use OpenCV's uniform bins.
    hsv = cv2.LUT(hsv, _hue_table(b[0]))
    n = max(hsv.shape[0] * hsv.shape[1], 1)
    out = np.empty(sum(b), dtype=np.float32)
    ranges = ([0, b[0]], [0, 256], [0, 256])
    offset = 0
    for channel, count in enumerate(b):
        hist = cv2.calcHist([hsv], [channel], None, [count], ranges[channel]).ravel()
        out[offset : offset + count] = hist / n
        offset += count
    return out


def histogram_distance(a: np.ndarray, b: np.ndarray, method: str = "chi2") -> float:
    """Distance in [0, 1] between two histograms (any non-negative vectors of one length).

    Both are first scaled to sum to 1 (an HSV histogram from `hsv_histogram` sums to 3).
    - `"chi2"`: symmetric chi-square, `0.5 * sum((p - q)^2 / (p + q))` (terms with p+q=0 skipped);
      0 for identical histograms, 1 for histograms with no bin in common.
    - `"intersection"`: `1 - sum(min(p, q))`; also 0 identical, 1 disjoint, and linear in
      the fraction of mass that moved.
    Two all-zero histograms are at distance 0.
    """
    p = np.asarray(a, dtype=np.float64).ravel()
    q = np.asarray(b, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in length: {p.size} vs {q.size}")
    sp, sq = p.sum(), q.sum()
    if sp <= 0 and sq <= 0:
        return 0.0
    if sp <= 0 or sq <= 0:
        return 1.0
    p, q = p / sp, q / sq
    if method == "chi2":
        total = p + q
        mask = total > 0
        value = 0.5 * float(np.sum((p[mask] - q[mask]) ** 2 / total[mask]))
    elif method == "intersection":
        value = 1.0 - float(np.minimum(p, q).sum())
    else:
        raise ValueError(f"unknown histogram distance {method!r}; choose from {HIST_METHODS}")
    return min(1.0, max(0.0, value))
