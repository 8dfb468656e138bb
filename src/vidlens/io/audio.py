"""`read_audio()`: a file's audio track as `float32 (channels, samples)` at a chosen rate."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import av
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.io._open import DamagedPackets, av_reason, open_input
from vidlens.io.reader import PartialDecodeWarning, decode_packets


def audio_frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
                 damaged: DamagedPackets) -> Iterator[av.AudioFrame]:
    """Decoded frames of one audio stream in file order, with the video reader's damaged-packet policy
    (`reader.decode_packets`: skipped and counted in `damaged`, stop after a long run of them)."""
    return decode_packets(container, stream, damaged)


def read_audio(
    path: str | os.PathLike[str],
    sample_rate: int = 16000,
    mono: bool = True,
    *,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Decode and resample the first audio stream to `float32 (C,S)` in [-1, 1].

    `mono=True` downmixes to one channel; otherwise the source channels are kept.
    `start`/`end` are seconds from the start of the file. Raises `VideoDecodeError`
    when the file has no audio stream or nothing decodes.
    """
    path = os.fspath(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    with open_input(path, need_video=False) as container:
        if not container.streams.audio:
            raise VideoDecodeError(path, "no audio stream")
        stream = container.streams.audio[0]
        layout = "mono" if mono else stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        if start:
            try:
                container.seek(int(start / float(stream.time_base)), stream=stream, backward=True)
            except (av.FFmpegError, ValueError) as exc:
                raise VideoDecodeError(path, f"cannot seek audio to {start:.3f}s ({av_reason(exc)})") from None
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        damaged = DamagedPackets()
        for frame in audio_frames(container, stream, damaged):
            if first_time is None and frame.time is not None:
                first_time = float(frame.time)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
            if end is not None and frame.time is not None and frame.time >= end:
                break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        raise VideoDecodeError(path, "no audio could be decoded")
    if damaged.count:
        warnings.warn(PartialDecodeWarning(path, f"{damaged.count} damaged audio packets skipped"), stacklevel=2)
    audio = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    # Trim to [start, end) precisely: decoding starts at a packet boundary.
    offset = 0
    if start and first_time is not None:
        offset = max(0, int(round((start - first_time) * sample_rate)))
    stop = None if end is None else max(offset, int(round(((end - (first_time or 0.0))) * sample_rate)))
    return np.ascontiguousarray(audio[:, offset:stop])
