"""Labelled video clips -> face crops in FER2013 layout, so the expression model trains on video too.

A clip folder has `manifest.csv` (`path,label[,split]`, paths relative to it; split train / val /
test, default train), as the synthetic sets and `vidlens data` manifests have. From every clip the
frames at `fps` are scanned with the face detector; the largest face of each frame is cropped the
way the expression model reads faces (64x64 gray, fer's recipe) and saved as
`OUT/<train|test>/<label>/<clip>_<frame>.png` (val counts as test). `train_expression` then
trains on that folder, and the crops stay there for a person to check.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from vidlens.errors import DatasetError, VidlensError
from vidlens.io import iter_frames
from vidlens.tasks.faces.detect import FaceDetector, HaarFaceDetector
from vidlens.tasks.faces.expression import crop_faces

logger = logging.getLogger(__name__)


@dataclass
class ClipFaces:
    """What `extract_clip_faces` wrote: crops per split and the clips that gave none (with why)."""

    root: Path
    crops: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def extract_clip_faces(clips: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, fps: float = 2.0,
                       max_per_clip: int = 20, detector: FaceDetector | None = None) -> ClipFaces:
    """Crop the largest face of each sampled frame of every listed clip into FER2013 layout under `out_dir`."""
    clips = Path(clips)
    manifest = clips / "manifest.csv"
    if not manifest.is_file():
        raise DatasetError(clips, "has no manifest.csv (path,label[,split])")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DatasetError(manifest, "needs the columns path,label[,split]")
    detector = detector or HaarFaceDetector()
    result = ClipFaces(Path(out_dir))
    for row in rows:
        split = "train" if row.get("split", "train") in ("", "train") else "test"
        path = clips / row["path"]
        try:
            saved = _crop_clip(path, result.root / split / row["label"], fps, max_per_clip, detector)
        except VidlensError as exc:
            result.skipped.append((str(path), exc.reason))
            logger.warning("skipping %s: %s", path, exc.reason)
            continue
        if saved == 0:
            result.skipped.append((str(path), "no face found"))
        result.crops[split] = result.crops.get(split, 0) + saved
    if not result.crops.get("train"):
        raise DatasetError(clips, f"no face crops for training ({len(result.skipped)} clips gave none)")
    return result


def _crop_clip(path: Path, folder: Path, fps: float, limit: int, detector: FaceDetector) -> int:
    saved = 0
    for frame in iter_frames(path, fps=fps):
        boxes = detector.detect(frame.image)
        if not boxes:
            continue
        largest = max(boxes, key=lambda b: b.area)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{path.stem}_{frame.index:06d}.png"), crop_faces(frame.image, [largest])[0])
        saved += 1
        if saved >= limit:
            break
    return saved
