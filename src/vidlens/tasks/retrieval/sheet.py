"""The contact sheet of search hits: a thumbnail per hit (the frame at the middle of its time range)
with the video's name, the score and the timecodes under it, written as a PNG with OpenCV."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

THUMB_W = 240
LINE_H = 16


def hit_thumbnail(path: str, time_s: float, width: int = THUMB_W) -> np.ndarray | None:
    """The frame on screen at `time_s` of `path`, `uint8 (h,width,3)` RGB; None when it cannot be read
    (the file moved or is damaged: the sheet shows a grey box instead)."""
    from vidlens.errors import VidlensError
    from vidlens.io import read_clip
    from vidlens.io.reader import PartialDecodeWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialDecodeWarning)
            frame = read_clip(path, timestamps=[max(0.0, float(time_s))])[0]
    except (VidlensError, OSError, ValueError):
        return None
    import cv2

    h, w = frame.shape[:2]
    return cv2.resize(frame, (width, max(1, round(h * width / max(w, 1)))), interpolation=cv2.INTER_AREA)


def hits_sheet(hits: Sequence[Any], path: str | os.PathLike[str], *, title: str | None = None,
               columns: int = 4, width: int = THUMB_W) -> Path:
    """Lay out one thumbnail per hit (`Hit`: video, score, start_s, end_s, kind) in a grid, with three caption
    lines: rank and file name, score and kind, `HH:MM:SS.mmm-HH:MM:SS.mmm`. Writes the PNG at `path`."""
    import cv2

    from vidlens.report.contact_sheet import timecode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    thumb_h = width * 9 // 16
    thumbs = []
    for h in hits:
        img = hit_thumbnail(h.video, (h.start_s + h.end_s) / 2, width)
        if img is None:
            img = np.full((thumb_h, width, 3), 160, np.uint8)
        thumbs.append(_fit(img, thumb_h, width))
    columns = max(1, min(columns, len(hits) or 1))
    rows = max(1, math.ceil(len(hits) / columns))
    pad, caption_h, title_h = 6, 3 * LINE_H + 4, 30 if title else 0
    cell_w, cell_h = width + pad, thumb_h + caption_h + pad
    sheet = np.full((title_h + rows * cell_h + pad, columns * cell_w + pad, 3), 255, np.uint8)
    if title:
        cv2.putText(sheet, _ascii(title)[:120], (pad, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    if not hits:
        cv2.putText(sheet, "no hits", (pad, title_h + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (h, thumb) in enumerate(zip(hits, thumbs)):
        r, c = divmod(i, columns)
        y, x = title_h + pad + r * cell_h, pad + c * cell_w
        sheet[y:y + thumb_h, x:x + width] = thumb
        lines = [f"{i + 1}. {Path(h.video).name}", f"score {h.score:.3f}  {h.kind}",
                 f"{timecode(h.start_s)}-{timecode(h.end_s)}"]
        for j, line in enumerate(lines):
            cv2.putText(sheet, _ascii(line)[:34], (x + 2, y + thumb_h + 14 + j * LINE_H), cv2.FONT_HERSHEY_SIMPLEX,
                        0.42, (20, 20, 20), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Letterbox `img` into `(h,w,3)` (white bars), keeping its aspect."""
    import cv2

    ih, iw = img.shape[:2]
    s = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * s)), max(1, round(iw * s))
    out = np.full((h, w, 3), 255, np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only."""
    return text.encode("ascii", "replace").decode("ascii")
