"""Frame-difference features between consecutive frames.

Work on grayscale `uint8 (H,W)` frames (`to_gray` makes them from RGB `uint8 (H,W,3)`);
values are in intensity units scaled to [0, 1] (255 -> 1).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

DEFAULT_DIFF_THRESHOLD = 0.1  # a pixel "changed" when |difference| > 0.1 (25.5 grey levels)


class FrameDiff(NamedTuple):
    energy: float  # mean |gray_t - gray_{t-1}| / 255, in [0, 1]
    changed: float  # fraction of pixels with |difference| / 255 > threshold, in [0, 1]


def to_gray(image: np.ndarray) -> np.ndarray:
    """`uint8 (H,W)` luma (ITU-R BT.601 weights, as OpenCV) from an RGB `uint8 (H,W,3)` frame."""
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H,W,3) RGB or (H,W) gray, got {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def frame_difference(prev_gray: np.ndarray, gray: np.ndarray, threshold: float = DEFAULT_DIFF_THRESHOLD) -> FrameDiff:
    """Difference energy and changed-pixel fraction between two `uint8 (H,W)` gray frames of one size."""
    if prev_gray.shape != gray.shape:
        raise ValueError(f"frames differ in size: {prev_gray.shape} vs {gray.shape}")
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    diff = cv2.absdiff(prev_gray, gray)
    n = max(diff.size, 1)
    energy = float(cv2.sumElems(diff)[0]) / (255.0 * n)
    level = int(np.floor(threshold * 255.0))  # |d|/255 > t  <=>  |d| > floor(255 t) for integer d
    changed = cv2.countNonZero(cv2.threshold(diff, level, 255, cv2.THRESH_BINARY)[1]) / n
    return FrameDiff(energy, float(changed))
