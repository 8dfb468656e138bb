"""Decoding frames: `read_clip` (random access) and `iter_frames` (streaming).

`read_clip` seeks once to the keyframe before each run of wanted frames and
decodes forward, re-seeking only when the next wanted frame lies past another
keyframe; it never decodes a long file from the start. `iter_frames` holds one
frame at a time, so memory stays flat on hour-long files, and converts only the
frames it yields (dropping frames for a lower fps costs no colour conversion).

Damaged packets are skipped and counted; what could not be decoded is reported
with a `PartialDecodeWarning` naming the file, and decoding gives up after
`MAX_CONSECUTIVE_ERRORS` failures in a row rather than grinding on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import av
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.io._open import MAX_CONSECUTIVE_ERRORS, DamagedPackets, is_url, open_input, set_decoder_threads
from vidlens.io.convert import FrameConverter, Size
from vidlens.io.index import SEQUENTIAL, FrameIndex, frame_index, needs_decode_order


class PartialDecodeWarning(UserWarning):
    """Some frames of a file could not be decoded; the others were returned."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


@dataclass(slots=True)
class Frame:
    """One decoded frame: source frame `index`, `time_s` from the first frame, RGB `image` (H,W,3) uint8."""

    index: int
    time_s: float
    image: np.ndarray


def decode_packets(
    container, stream, damaged: DamagedPackets, wanted: AbstractSet[int] | None = None
) -> Iterator[av.VideoFrame | av.AudioFrame]:
    """Decoded frames of `stream` (video or audio) from the current position. Damaged packets are skipped and
    counted in `damaged`; decoding stops after MAX_CONSECUTIVE_ERRORS of them in a row or when demuxing fails.

    `wanted`: the pts of the frames asked for. Other packets are decoded only as references for
    them, so their non-reference frames (which nothing else needs) are skipped: less decoding per
    clip on video with B-frames, the same frames out.
    """
    consecutive = 0
    context = stream.codec_context
    skipping = False
    try:
        for packet in container.demux(stream):
            if wanted is not None:
                skip = packet.pts is not None and packet.pts not in wanted
                if skip != skipping:
                    context.skip_frame = "NONREF" if skip else "DEFAULT"
                    skipping = skip
            try:
                frames = packet.decode()
            except av.FFmpegError:
                damaged.count += 1
                consecutive += 1
                if consecutive > MAX_CONSECUTIVE_ERRORS:
                    return
                continue
            consecutive = 0
            yield from frames
    except (av.FFmpegError, OSError):
        # The container itself is damaged from here on: end of what can be read.
        damaged.count += 1
    finally:
        if skipping:
            context.skip_frame = "DEFAULT"


def read_clip(
    path: str | os.PathLike[str],
    frame_indices: Sequence[int] | np.ndarray | None = None,
    *,
    timestamps: Sequence[float] | np.ndarray | None = None,
    size: Size = None,
    keep_aspect: bool = True,
    threads: int | None = None,
    strict: bool = False,
) -> np.ndarray:
    """Decode the given frames (or the frames on screen at `timestamps`, seconds) as `uint8 (T,H,W,C)` RGB.

    Indices may repeat and come in any order; the output follows the request.
    `size`/`keep_aspect`: see `convert.output_geometry` (int = shorter side; (H, W) letterboxed
    when `keep_aspect`, stretched otherwise). Frames are resized one by one as they decode.
    A frame that cannot be decoded is replaced by its nearest decoded neighbour with a
    `PartialDecodeWarning` (or raises `VideoDecodeError` when `strict`).
    """
    path = os.fspath(path)
    if (frame_indices is None) == (timestamps is None):
        raise ValueError("give exactly one of frame_indices or timestamps")
    index = frame_index(path)
    if timestamps is not None:
        wanted = index.index_of_time(np.asarray(timestamps, dtype=np.float64))
    else:
        wanted = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= index.num_frames):
            bad = int(wanted.max() if wanted.max() >= index.num_frames else wanted.min())
            raise VideoDecodeError(path, f"frame {bad} requested but the video has {index.num_frames} frames")
    if wanted.size == 0:
        raise ValueError("no frames requested")
    unique = np.unique(wanted)
    convert = FrameConverter(size, keep_aspect)
    decoded, failed_packets = _decode_at(path, index, unique, convert, threads)
    missing = [int(i) for i in unique if int(i) not in decoded]
    if missing:
        if not decoded:
            raise VideoDecodeError(path, f"none of the {unique.size} requested frames could be decoded")
        message = f"{len(missing)} of {unique.size} requested frames could not be decoded (first: {missing[:5]})"
        if strict:
            raise VideoDecodeError(path, message)
        warnings.warn(PartialDecodeWarning(path, message + "; nearest decoded frames used"), stacklevel=2)
        have = np.array(sorted(decoded), dtype=np.int64)
        for i in missing:
            pos = int(np.clip(np.searchsorted(have, i), 0, have.size - 1))
            if pos > 0 and abs(have[pos - 1] - i) <= abs(have[pos] - i):
                pos -= 1
            decoded[i] = decoded[int(have[pos])]
    return np.stack([decoded[int(i)] for i in wanted])


def _decode_at(
    path: str, index: FrameIndex, unique: np.ndarray, convert: FrameConverter, threads: int | None
) -> tuple[dict[int, np.ndarray], int]:
    """Decode the frames at sorted unique indices; returns {index: image} and the bad-packet count.

    Works in frame numbers: a decoded frame is recognised by its pts (`index.number_of`), so files
    whose timestamps are not in display order (AVI with B-frames) are read exactly too.
    """
    if index.order == SEQUENTIAL:
        return _decode_sequential(path, index, unique, convert, threads)
    targets = unique
    # Skipping non-reference frames by packet pts is only sound when packet pts identify frames.
    wanted_pts = frozenset(int(p) for p in index.pts[unique]) if index.order == "pts" else None
    out: dict[int, np.ndarray] = {}
    damaged = DamagedPackets()
    unseekable = False
    with open_input(path) as container:
        stream = container.streams.video[0]
        set_decoder_threads(stream, threads)
        pos = 0
        back_off = 0  # keyframes to step further back after a seek landed past its target
        attempts = 0
        while pos < targets.size and attempts < 2 * targets.size + 8:
            attempts += 1
            target = int(targets[pos])
            key = max(0, index.keyframe_position(target) - back_off)
            if not _seek(container, stream, int(index.keyframe_seek[key])):
                unseekable = True
                break
            first, exhausted = True, True
            for frame in decode_packets(container, stream, damaged, wanted=wanted_pts):
                n = index.number_of(frame.pts if frame.pts is not None else frame.dts)
                if n is None:
                    continue
                if first:
                    first = False
                    # The first frame after a seek must be the keyframe it landed on, at or before the
                    # target; otherwise the seek went too far or the demuxer mislabelled timestamps
                    # after the jump (MPEG-PS): step back a keyframe, and after a few tries decode from the start.
                    if key > 0 and (n > target or not index.is_keyframe(n)):
                        if back_off >= 4:
                            unseekable = True
                            break
                        back_off, exhausted = back_off + 1, False
                        break
                    back_off = 0
                while pos < targets.size and targets[pos] < n:
                    pos += 1  # a wanted frame never came out of the decoder: reported as missing
                if pos < targets.size and targets[pos] == n:
                    out[int(targets[pos])] = convert(frame)
                    pos += 1
                if pos >= targets.size or index.keyframes[index.keyframe_position(int(targets[pos]))] > n:
                    # Done, or a keyframe lies between here and the next wanted frame: seek, don't decode.
                    exhausted = False
                    break
            if exhausted or unseekable:
                break
    if unseekable:
        return _decode_sequential(path, index, unique, convert, threads)
    return out, damaged.count


def _seek(container, stream, ts: int) -> bool:
    try:
        container.seek(int(ts), stream=stream, backward=True, any_frame=False)
        return True
    except (av.FFmpegError, OSError, ValueError):
        return False


def _decode_sequential(
    path: str, index: FrameIndex, unique: np.ndarray, convert: FrameConverter, threads: int | None
) -> tuple[dict[int, np.ndarray], int]:
    """Decode from the start; frames are numbered by their pts, or by counting when pts cannot tell them apart."""
    wanted = {int(i) for i in unique}
    out: dict[int, np.ndarray] = {}
    damaged = DamagedPackets()
    with open_input(path) as container:
        stream = container.streams.video[0]
        set_decoder_threads(stream, threads)
        for count, frame in enumerate(decode_packets(container, stream, damaged)):
            n = count if index.order == SEQUENTIAL else index.number_of(frame.pts)
            if n in wanted:
                out[n] = convert(frame)
                if len(out) == len(wanted):
                    break
    return out, damaged.count


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    size: Size = None,
    *,
    keep_aspect: bool = True,
    start: float | None = None,
    end: float | None = None,
    threads: int | None = None,
    decoder_options: dict[str, str] | None = None,
) -> Iterator[Frame]:
    """Stream frames as `Frame(index, time_s, image)`; memory stays flat whatever the length.

    `index` is the frame's position among the frames present in the file (in a damaged
    file, frames lost before it are not counted); `time_s` comes from its timestamp.

    `fps`: resample to this rate (the frame on screen at each tick of the new clock;
    frames are dropped or repeated). `start`/`end`: seconds from the first frame.
    Also reads non-seekable inputs (pipes, RTSP/HTTP URLs) when `start` is not given.
    `decoder_options`: extra FFmpeg decoder options, e.g. `{"skip_loop_filter": "all"}` (H.264/HEVC:
    no deblocking, ~20% faster at 720p, slightly blockier frames) for analysis that tolerates that.
    """
    path = os.fspath(path)
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    convert = FrameConverter(size, keep_aspect)
    damaged = DamagedPackets()
    yielded = 0
    with open_input(path) as container:
        stream = container.streams.video[0]
        set_decoder_threads(stream, threads)
        if decoder_options:
            stream.codec_context.options = {**stream.codec_context.options, **decoder_options}
        time_base = float(stream.time_base) if stream.time_base else 1e-3
        origin: int | None = None
        index: FrameIndex | None = None
        if start or (not is_url(path) and needs_decode_order(container, stream)):
            # Seeking needs the index; so do files whose timestamps are not in display order (AVI with B-frames).
            index = frame_index(path)
        if start:
            assert index is not None
            key = index.keyframe_position(int(index.index_of_time(start)))
            if not _seek(container, stream, int(index.keyframe_seek[key])):
                raise VideoDecodeError(path, f"cannot seek to {start:.3f}s")
        counter = -1
        step = 1.0 / fps if fps else None
        next_tick = start or 0.0
        pending: tuple[int, float, av.VideoFrame] | None = None
        pending_image: np.ndarray | None = None
        header_frames = int(stream.frames or 0)
        decoded = 0
        last_fidx = -1
        for frame in decode_packets(container, stream, damaged):
            decoded += 1
            fpts = frame.pts if frame.pts is not None else frame.dts
            if origin is None:
                origin = int(fpts) if fpts is not None else 0
            counter += 1
            if damaged.count and index is None and not is_url(path):
                # Packets were lost: counting frames no longer gives their index; the packet index does.
                index = frame_index(path)
            if index is not None and index.order != SEQUENTIAL:
                # pts-ordered files: the frame on screen at this pts (exact when the pts is indexed).
                found = index.frame_at_or_before(int(fpts)) if index.order == "pts" and fpts is not None \
                    else index.number_of(fpts)
                if found is None:
                    if start:
                        continue  # a frame decoded only because of the seek, not in the file's own order
                    found = last_fidx + 1
                fidx = min(found, index.num_frames - 1)
                t = float(index.times[fidx])
            else:
                fidx = counter
                t = (fpts - origin) * time_base if fpts is not None else counter * (step or 0.04)
            last_fidx = fidx
            if start is not None and t < start - 1e-9 and step is None:
                continue
            if end is not None and t >= end - 1e-9:
                break
            if step is None:
                yielded += 1
                yield Frame(fidx, round(t, 6), convert(frame))
                continue
            # Resampling: every tick before this frame's time shows the pending frame.
            if pending is not None:
                while next_tick < t - 1e-9:
                    if pending_image is None:
                        pending_image = convert(pending[2])
                    yielded += 1
                    yield Frame(pending[0], round(next_tick, 6), pending_image)
                    next_tick += step
            elif t > next_tick + 1e-9 and start is None:
                next_tick = t  # the stream starts late: begin the clock at its first frame
            pending, pending_image = (fidx, t, frame), None
        if pending is not None and step is not None:
            # The last frame stays on screen for one nominal frame duration.
            rate = stream.average_rate or stream.guessed_rate
            last_end = pending[1] + (1.0 / float(rate) if rate else step)
            stop = min(last_end, end) if end is not None else last_end
            while next_tick < stop - 1e-9:
                if pending_image is None:
                    pending_image = convert(pending[2])
                yielded += 1
                yield Frame(pending[0], round(next_tick, 6), pending_image)
                next_tick += step
    if damaged.count:
        message = f"{damaged.count} damaged packets skipped"
        if header_frames and end is None and not start and decoded < header_frames:
            message += f"; {decoded} of the {header_frames} frames listed in the header decoded"
        warnings.warn(PartialDecodeWarning(path, message), stacklevel=2)
    if yielded == 0 and damaged.count:
        raise VideoDecodeError(path, "no frame could be decoded")
