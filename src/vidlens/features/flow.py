"""Dense optical flow (OpenCV Farneback) and summary statistics of a flow field.

Flow runs on grayscale `uint8 (H,W)` frames shrunk so the shorter side is `flow_size`
(default 128) for speed; vectors are then scaled back to pixels of the frames passed
in, so a pattern moving k px/frame in those frames gives magnitude ~k whatever
`flow_size` is. Units: pixels per frame step (of the stream analysed, so at a lower
sampling fps the same motion gives proportionally larger values).

Direction convention: angles are as a viewer sees the screen, counter-clockwise from
"right": 0 deg = rightwards, 90 = upwards, 180 = leftwards, 270 = downwards. The raw
flow and `mean_dx`/`mean_dy` keep OpenCV's image axes (x right, y down), so a downward
motion has positive `mean_dy` and a direction of 270 deg.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import cv2
import numpy as np

DEFAULT_FLOW_SIZE = 128
DEFAULT_DIRECTION_BINS = 8
# Magnitude histogram bin edges in pixels per frame step (the last bin is open-ended).
DEFAULT_MAGNITUDE_EDGES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class FarnebackParams:
    """Arguments of `cv2.calcOpticalFlowFarneback` (OpenCV's documented typical values)."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    flags: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class FlowStats(NamedTuple):
    mean_magnitude: float  # mean per-pixel |flow|, px / frame step
    mean_dx: float  # mean horizontal flow, px / step, positive = rightwards
    mean_dy: float  # mean vertical flow, px / step, positive = downwards (image axes)
    direction_hist: np.ndarray  # float32 (direction_bins,), magnitude-weighted, sums to 1 (0 if no motion)
    magnitude_hist: np.ndarray  # float32 (len(edges),), fraction of pixels per magnitude bin, sums to 1


def flow_shape(h: int, w: int, flow_size: int | None = DEFAULT_FLOW_SIZE) -> tuple[int, int]:
    """(h, w) at which the flow of an (h, w) frame is computed: shorter side `flow_size`, never enlarged."""
    if flow_size is None or min(h, w) <= flow_size:
        return h, w
    scale = flow_size / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def shrink_for_flow(gray: np.ndarray, flow_size: int | None = DEFAULT_FLOW_SIZE) -> np.ndarray:
    """A `uint8 (H,W)` gray frame resized (area-averaged) to its flow resolution."""
    h, w = gray.shape[:2]
    fh, fw = flow_shape(h, w, flow_size)
    if (fh, fw) == (h, w):
        return gray
    return cv2.resize(gray, (fw, fh), interpolation=cv2.INTER_AREA)


def farneback(prev_small: np.ndarray, small: np.ndarray, params: FarnebackParams = FarnebackParams()) -> np.ndarray:
    """Raw Farneback flow `float32 (h,w,2)` (dx, dy) from `prev_small` to `small`, in their own pixels."""
    if prev_small.shape != small.shape:
        raise ValueError(f"frames differ in size: {prev_small.shape} vs {small.shape}")
    return cv2.calcOpticalFlowFarneback(
        prev_small, small, None, params.pyr_scale, params.levels, params.winsize,
        params.iterations, params.poly_n, params.poly_sigma, params.flags,
    )


def optical_flow(
    prev_gray: np.ndarray,
    gray: np.ndarray,
    flow_size: int | None = DEFAULT_FLOW_SIZE,
    params: FarnebackParams = FarnebackParams(),
) -> np.ndarray:
    """Dense flow between two `uint8 (H,W)` gray frames: `float32 (h,w,2)` on the reduced grid.

    Computed at shorter side `flow_size`; the vectors are scaled to pixels of the input frames.
    """
    prev_small = shrink_for_flow(prev_gray, flow_size)
    small = shrink_for_flow(gray, flow_size)
    flow = farneback(prev_small, small, params)
    return scale_flow(flow, gray.shape[:2])


def scale_flow(flow: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Scale `(h,w,2)` flow computed on a reduced grid to pixels of an `frame_hw` frame (in place when float32)."""
    h, w = flow.shape[:2]
    sx, sy = frame_hw[1] / w, frame_hw[0] / h
    if sx != 1.0 or sy != 1.0:
        flow = flow.astype(np.float32, copy=False)
        flow[..., 0] *= sx
        flow[..., 1] *= sy
    return flow


def flow_statistics(
    flow: np.ndarray,
    direction_bins: int = DEFAULT_DIRECTION_BINS,
    magnitude_edges: tuple[float, ...] = DEFAULT_MAGNITUDE_EDGES,
) -> FlowStats:
    """Summarise a `float32 (h,w,2)` flow field (dx right, dy down).

    Direction bins are centred: with 8 bins, bin 0 is rightwards (-22.5..22.5 deg), bin 2 up,
    bin 4 left, bin 6 down. Each pixel votes with its magnitude; the histogram is then
    L1-normalised (all zeros when nothing moves). The magnitude histogram counts pixels
    whose |flow| is in [edges[i], edges[i+1]) (the last bin open-ended), as fractions.
    """
    if direction_bins < 1:
        raise ValueError(f"direction_bins must be >= 1, got {direction_bins}")
    if not magnitude_edges or any(b <= a for a, b in zip(magnitude_edges, magnitude_edges[1:])):
        raise ValueError(f"magnitude_edges must be increasing, got {magnitude_edges}")
    dx = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    dy = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    # Screen angle: flip y so that upwards is +90 degrees.
    magnitude, angle = cv2.cartToPolar(dx, -dy, angleInDegrees=True)
    n = max(magnitude.size, 1)
    mag = magnitude.ravel()
    # Centred bins: bin k covers k*width +- width/2; the top half-bin wraps to bin 0.
    dir_index = np.floor(angle.ravel() * (direction_bins / 360.0) + 0.5).astype(np.intp)
    dir_index[dir_index >= direction_bins] = 0
    direction_hist = np.bincount(dir_index, weights=mag, minlength=direction_bins)
    total = direction_hist.sum()
    direction_hist = direction_hist / total if total > 1e-12 else np.zeros(direction_bins)
    # Magnitude bins [edges[i], edges[i+1]) from counts at or above each edge (values below edges[0] go to bin 0).
    at_least = np.array([n if i == 0 else np.count_nonzero(mag >= e) for i, e in enumerate(magnitude_edges)] + [0])
    magnitude_hist = (at_least[:-1] - at_least[1:]) / n
    return FlowStats(
        float(mag.mean()) if mag.size else 0.0,
        float(dx.mean()) if dx.size else 0.0,
        float(dy.mean()) if dy.size else 0.0,
        direction_hist.astype(np.float32),
        magnitude_hist.astype(np.float32),
    )


def direction_degrees(dx: float, dy: float) -> float:
    """Screen direction in [0, 360) of a vector in image axes (dx right, dy down): 0 right, 90 up."""
    return float(np.degrees(np.arctan2(-dy, dx)) % 360.0)
