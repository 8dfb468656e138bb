"""Contact sheets: a grid of thumbnails with a caption (timecode) under each, saved as PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np


def timecode(seconds: float) -> str:
    """`HH:MM:SS.mmm`, the form video tools print."""
    millis = int(round(max(seconds, 0.0) * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def contact_sheet(
    images: Sequence[np.ndarray],
    captions: Sequence[str],
    path: str | Path,
    *,
    columns: int = 4,
    thumb_width: int = 240,
    title: str | None = None,
) -> Path:
    """Lay out `uint8 (H,W,3)` RGB images in a grid, `captions[i]` under image `i`; write a PNG."""
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = max(1, min(columns, len(images) or 1))
    thumbs = [_thumbnail(im, thumb_width) for im in images]
    thumb_h = max((t.shape[0] for t in thumbs), default=thumb_width * 9 // 16)
    caption_h, pad = 22, 6
    title_h = 30 if title else 0
    rows = max(1, math.ceil(len(thumbs) / columns))
    cell_w, cell_h = thumb_width + pad, thumb_h + caption_h + pad
    sheet = np.full((title_h + rows * cell_h + pad, columns * cell_w + pad, 3), 255, np.uint8)
    if title:
        cv2.putText(sheet, title, (pad, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (thumb, caption) in enumerate(zip(thumbs, captions)):
        r, c = divmod(i, columns)
        y, x = title_h + pad + r * cell_h, pad + c * cell_w
        sheet[y:y + thumb.shape[0], x:x + thumb.shape[1]] = thumb
        cv2.putText(sheet, caption, (x + 2, y + thumb_h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def _thumbnail(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    height = max(1, round(h * width / max(w, 1)))
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_AREA)
