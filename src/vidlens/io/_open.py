"""Opening media with PyAV and turning every failure into a `VideoDecodeError`.

The one place that talks to `av.open` for reading, so the checks a user relies on
(missing file, directory, permissions, empty file, not media, no video stream)
are made once, fast, before any decoding starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import av

from vidlens.errors import VideoDecodeError

# Network sources may stall; local files never wait on these.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
# A file whose packets keep failing to decode is given up on rather than ground through.
MAX_CONSECUTIVE_ERRORS = 200


@dataclass
class DamagedPackets:
    """How many packets a decode loop (`reader.decode_packets`) skipped: undecodable packets, a demuxer that failed."""

    count: int = 0

URL_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


def is_url(source: str) -> bool:
    return source.lower().startswith(URL_PREFIXES)


def check_readable_file(path: str) -> None:
    """Raise `VideoDecodeError` with the precise reason a local path cannot be read."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file does not exist")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            handle.read(1)
    except PermissionError:
        raise VideoDecodeError(path, "permission denied") from None
    except OSError as exc:
        raise VideoDecodeError(path, f"cannot read file ({exc.strerror or exc})") from None
    if size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


def av_reason(exc: BaseException) -> str:
    """A short, human reason from a PyAV/FFmpeg exception."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0].strip()


@contextmanager
def open_input(source: str | os.PathLike[str], *, need_video: bool = True) -> Iterator[av.container.InputContainer]:
    """Open `source` for reading; raise `VideoDecodeError` for anything unreadable.

    `need_video=False` accepts audio-only files (for `read_audio`).
    """
    path = os.fspath(source)
    if not is_url(path):
        check_readable_file(path)
    try:
        container = av.open(path, mode="r", metadata_errors="ignore", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(path, f"not a readable media file ({av_reason(exc)})") from None
    try:
        if need_video and not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no audio or video streams"
            raise VideoDecodeError(path, f"no video stream ({kind})")
        yield container
    finally:
        container.close()


def set_decoder_threads(stream: av.video.stream.VideoStream, threads: int | None) -> None:
    """Choose decoder threads: 1 for small frames, 2 (frame+slice) from ~VGA up.

    Measured on 2 cores (DESIGN.md): a second thread hurts at 240p, helps +30-50% at 720p.
    """
    ctx = stream.codec_context
    if threads is None:
        pixels = (ctx.width or 0) * (ctx.height or 0)
        threads = 2 if pixels >= 640 * 480 else 1
    stream.thread_type = "AUTO" if threads != 1 else "SLICE"
    stream.thread_count = threads
