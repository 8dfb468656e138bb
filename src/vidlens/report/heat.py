"""Heat maps drawn over frames (anomaly heat, explanations): one colour map, one blend, any grid size."""

from __future__ import annotations

import cv2
import numpy as np


def overlay_heat(image: np.ndarray, heat: np.ndarray, *, alpha: float = 0.45, floor: float = 0.0) -> np.ndarray:
    """Blend `heat (h,w)` with values in [0,1] over `image uint8 (H,W,3)` RGB (JET colours, heat resized to the
    image); where heat is at or below `floor` the image shows through unchanged. Returns `uint8 (H,W,3)`."""
    h, w = image.shape[:2]
    heat = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    colours = cv2.cvtColor(cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = (alpha * np.clip((heat - floor) / max(1e-6, 1.0 - floor), 0.0, 1.0))[..., None]
    return (image.astype(np.float32) * (1 - weight) + colours.astype(np.float32) * weight).round().astype(np.uint8)
