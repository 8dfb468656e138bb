"""Edge density and the edge change ratio (ECR) between consecutive frames.

Edges are OpenCV Canny edges of a grayscale `uint8 (H,W)` frame with fixed thresholds,
so that a fade to black lowers the density instead of being normalised away.

Edge change ratio (Zabih, Miller & Mai, "A feature-based algorithm for detecting and
classifying scene breaks", ACM Multimedia 1995): with E_prev, E the edge maps of
consecutive frames and D(.) a dilation by `radius` pixels,

    ecr_in  = |E      and not D(E_prev)| / |E|       entering edges: new edges far from any old one
    ecr_out = |E_prev and not D(E)     | / |E_prev|  exiting edges: old edges far from any new one
    ecr     = max(ecr_in, ecr_out)                   in [0, 1]; high at a cut

A ratio whose edge count is zero is 0 (nothing can enter or leave), so a cut to a black
frame gives ecr_out = 1, ecr = 1. Zabih et al. also align the frames by a global
translation first; this implementation does not, and relies on the dilation to absorb
small motion (pass the flow-compensated frame yourself if you need it).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

DEFAULT_CANNY = (50, 150)  # low, high hysteresis thresholds on 0..255 intensities
DEFAULT_ECR_RADIUS = 2

_KERNELS: dict[int, np.ndarray] = {}


class EdgeChange(NamedTuple):
    ecr: float
    entering: float  # ecr_in
    exiting: float  # ecr_out


def canny_edges(gray: np.ndarray, low: float = DEFAULT_CANNY[0], high: float = DEFAULT_CANNY[1]) -> np.ndarray:
    """Canny edge map of a `uint8 (H,W)` gray frame: `uint8 (H,W)`, 255 on edges, 0 elsewhere."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected uint8 (H,W) gray, got {gray.dtype} {gray.shape}")
    return cv2.Canny(gray, low, high)


def edge_density(edges: np.ndarray) -> float:
    """Fraction of pixels that are edges, in [0, 1]."""
    return cv2.countNonZero(edges) / max(edges.size, 1)


def _kernel(radius: int) -> np.ndarray:
    kernel = _KERNELS.get(radius)
    if kernel is None:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        _KERNELS[radius] = kernel
    return kernel


def dilate_edges(edges: np.ndarray, radius: int = DEFAULT_ECR_RADIUS) -> np.ndarray:
    """Edge map grown by a disc of `radius` pixels (the tolerance ECR allows for motion)."""
    if radius <= 0:
        return edges
    return cv2.dilate(edges, _kernel(radius))


def edge_change_ratio(
    prev_edges: np.ndarray,
    edges: np.ndarray,
    radius: int = DEFAULT_ECR_RADIUS,
    *,
    prev_dilated: np.ndarray | None = None,
    dilated: np.ndarray | None = None,
) -> EdgeChange:
    """Zabih et al.'s edge change ratio between two edge maps of one size (see the module doc).

    `prev_dilated`/`dilated` may pass dilations already computed (a streaming caller keeps
    the previous frame's), so each frame is dilated once.
    """
    if prev_edges.shape != edges.shape:
        raise ValueError(f"edge maps differ in size: {prev_edges.shape} vs {edges.shape}")
    if prev_dilated is None:
        prev_dilated = dilate_edges(prev_edges, radius)
    if dilated is None:
        dilated = dilate_edges(edges, radius)
    n_prev, n_cur = cv2.countNonZero(prev_edges), cv2.countNonZero(edges)
    entering = cv2.countNonZero(cv2.subtract(edges, prev_dilated)) / n_cur if n_cur else 0.0
    exiting = cv2.countNonZero(cv2.subtract(prev_edges, dilated)) / n_prev if n_prev else 0.0
    return EdgeChange(max(entering, exiting), float(entering), float(exiting))
