"""Frames for anomaly models: a video file, a live source, or a folder/list of still images (UCSD Ped2's `.tif`
frames, ShanghaiTech's `.jpg` test frames), at one working size `(H,W)` without keeping aspect (one fixed
camera, one fixed size) and optionally resampled to a working rate.

`iter_frames_at(source, size, fps)` streams `(index, time_s, uint8 (H,W,3) RGB)`; `iter_frame_chunks`
groups them into runs of consecutive frames with `context` frames of history in front, which is what
`AnomalyMethod.score` takes; `read_frames` returns everything at once (short clips, training).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.io import iter_frames, resize_image

IMAGE_EXTENSIONS = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
IMAGE_FPS = 25.0  # the clock given to still-image sequences, which carry no timestamps (Ped2, ShanghaiTech: 25 fps)
Source = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


@dataclass
class Chunk:
    """Consecutive frames `uint8 (T,H,W,3)`: the first `context` are history (already scored or never scored),
    the rest are new. `times`/`indices` cover all T rows."""

    frames: np.ndarray
    times: np.ndarray
    indices: np.ndarray
    context: int

    @property
    def new(self) -> int:
        return len(self.frames) - self.context


def describe(source: Source) -> str:
    """A short name for a source: the file or folder path, or `first.tif .. (N images)`."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    items = list(source)
    return f"{os.fspath(items[0])} .. ({len(items)} images)" if items else "(no images)"


def image_list(source: Source) -> list[Path] | None:
    """The sorted images of a folder or list source; None for a video file or URL."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            return None
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not images:
            raise VideoDecodeError(path, f"folder has no images ({', '.join(IMAGE_EXTENSIONS)}) and is not a video")
        return images
    return [Path(p) for p in source]


def _read_image(path: Path, size: tuple[int, int]) -> np.ndarray:
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)  # greyscale .tif -> 3 equal channels
    if image is None:
        raise VideoDecodeError(path, "not a readable image")
    return resize_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), *size)


def iter_frames_at(source: Source, size: tuple[int, int], fps: float | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """Stream `(frame index, time_s, uint8 (H,W,3) RGB)` of a video, URL, image folder or image list.
    Image sequences play at `fps` or 25 fps and are never resampled (each image is one frame)."""
    images = image_list(source)
    if images is None:
        for frame in iter_frames(source, fps=fps, size=tuple(size), keep_aspect=False):
            yield frame.index, frame.time_s, frame.image
        return
    clock = fps or IMAGE_FPS
    for i, path in enumerate(images):
        yield i, i / clock, _read_image(path, size)


def iter_frame_chunks(source: Source, size: tuple[int, int], fps: float | None = None, *, chunk: int = 128,
                      context: int = 0) -> Iterator[Chunk]:
    """Runs of up to `chunk` new frames, each preceded by the `context` frames before it (the first run has
    none: its first `context` frames are history only). Memory: `chunk + context` frames."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    indices: list[int] = []
    held = 0  # history rows at the front of the buffers
    for index, time_s, image in iter_frames_at(source, size, fps):
        frames.append(image)
        times.append(time_s)
        indices.append(index)
        if len(frames) - held >= chunk:
            yield Chunk(np.stack(frames), np.asarray(times), np.asarray(indices), held)
            keep = min(context, len(frames))
            frames, times, indices = frames[len(frames) - keep:], times[len(times) - keep:], indices[len(indices) - keep:]
            held = keep
    if len(frames) > held:
        yield Chunk(np.stack(frames), np.asarray(times), np.asarray(indices), held)


def read_frames(source: Source, size: tuple[int, int], fps: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All frames of a (short) source: `uint8 (T,H,W,3)`, times_s `(T,)`, frame indices `(T,)`."""
    rows = list(iter_frames_at(source, size, fps))
    if not rows:
        raise VideoDecodeError(describe(source), "no frames decoded")
    return (np.stack([r[2] for r in rows]), np.asarray([r[1] for r in rows], dtype=np.float64),
            np.asarray([r[0] for r in rows], dtype=np.int64))


def list_sources(path: str | os.PathLike[str]) -> list[Source]:
    """What `--normal` / a video argument names: a video file; a folder of images (one sequence); a folder
    of image folders (one sequence each, e.g. Ped2's Train/Train001..); a folder, glob or manifest of videos."""
    from vidlens.io.inputs import list_videos

    path = Path(path)
    if path.is_dir():
        if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
            return [path]
        folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir()))
        if folders:
            return list(folders)
    elif path.is_file() and not path.suffix.lower() in (".csv", ".txt"):
        return [path]
    return list(list_videos(path))
