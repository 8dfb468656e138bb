"""`probe()`: what a video file holds, read fast and honestly.

Frame count and frame rate come from the packet index (see `index.py`), not from
the header alone, and the first frame is decoded so a file that opens but cannot
be decoded is caught here rather than in the middle of training.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import av
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.io._open import av_reason, open_input
from vidlens.io.index import FrameIndex, frame_index

# Frame-to-frame intervals varying more than this (relative to the median) mean variable frame rate.
VFR_TOLERANCE = 0.05


@dataclass
class VideoInfo:
    """Facts about one video file. Sizes are as displayed (after rotation)."""

    path: str
    duration_s: float
    fps: float  # average frames per second over the whole video
    nominal_fps: float  # the container's frame clock (r_frame_rate); above `fps` when frames are held or dropped
    is_vfr: bool  # frame intervals vary (phone recordings, screen captures, GIFs)
    num_frames: int  # exact: counted from the packets, not taken from the header
    header_frames: int  # what the container claims (0 when it does not say)
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # counter-clockwise degrees applied for display (0, 90, 180, 270)
    codec: str
    pix_fmt: str
    container: str
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None
    audio_codec: str | None
    bit_rate: int | None
    complete: bool = True  # False: truncated or damaged container; `warnings` says how
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Inspect a video file. Raises `VideoDecodeError(path, reason)` for anything unusable.

    Cost: a packet scan of the file (no decoding) plus one decoded frame.
    """
    path = os.fspath(path)
    index = frame_index(path)
    with open_input(path) as container:
        stream = container.streams.video[0]
        first = _first_frame(container, stream, path)
        rotation = _rotation(first)
        coded_w, coded_h = first.width, first.height
        audio = container.streams.audio[0] if container.streams.audio else None
        fps, is_vfr, duration = _timing(index, stream)
        warnings = [] if index.complete else [index.problem]
        header = int(stream.frames or 0)
        if index.complete and header > index.num_frames:
            # AVI "repeat the previous frame" index entries: listed in the header, never decoded.
            warnings.append(f"{header - index.num_frames} of the {header} frames listed in the header repeat the "
                            f"previous frame; {index.num_frames} distinct frames (as ffprobe -count_frames counts)")
        nominal = stream.guessed_rate or stream.average_rate or stream.base_rate
        width, height = (coded_h, coded_w) if rotation % 180 else (coded_w, coded_h)
        return VideoInfo(
            path=path,
            duration_s=round(duration, 6),
            fps=round(fps, 6),
            nominal_fps=round(float(nominal), 6) if nominal else round(fps, 6),
            is_vfr=is_vfr,
            num_frames=index.num_frames,
            header_frames=int(stream.frames or 0),
            width=width,
            height=height,
            coded_width=coded_w,
            coded_height=coded_h,
            rotation=rotation,
            codec=stream.codec_context.name,
            pix_fmt=first.format.name,
            container=container.format.name,
            has_audio=audio is not None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
            bit_rate=int(container.bit_rate) if container.bit_rate else None,
            complete=index.complete,
            warnings=warnings,
        )


def _first_frame(container: av.container.InputContainer, stream, path: str) -> av.VideoFrame:
    errors = 0
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.FFmpegError:
                errors += 1
                if errors > 50:
                    break
        # Flush: decoders with delay hand out their first frame only at the end of tiny files.
        for frame in stream.decode(None):
            return frame
    except (av.FFmpegError, OSError) as exc:
        raise VideoDecodeError(path, f"cannot decode the first frame ({av_reason(exc)})") from None
    raise VideoDecodeError(path, "no decodable video frame (corrupt or truncated)")


def _rotation(frame: av.VideoFrame) -> int:
    try:
        return int(round((frame.rotation or 0) / 90.0)) * 90 % 360
    except (AttributeError, ValueError):
        return 0


def _timing(index: FrameIndex, stream) -> tuple[float, bool, float]:
    """(average fps, variable?, duration in seconds) from the frame timestamps."""
    durations = index.frame_durations()
    if index.num_frames >= 2:
        span = float(index.times[-1] + durations[-1])
        fps = index.num_frames / span if span > 0 else 0.0
        intervals = np.diff(index.times)
        median = float(np.median(intervals))
        # Rounding to the container's clock (e.g. 1 ms in mkv) is not variable frame rate.
        threshold = max(VFR_TOLERANCE * median, 1.5 * float(index.time_base))
        is_vfr = bool(median > 0 and np.max(np.abs(intervals - median)) > threshold)
    else:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        span = float(durations[0]) if durations.size and durations[0] > 0 else (1.0 / fps if fps else 0.0)
        is_vfr = False
    if fps <= 0:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
    return fps, is_vfr, span
