"""`fix_sync()`: write a copy of a video whose audio is moved back in line with the picture.

The video stream is copied packet for packet (no re-encoding, the picture is bit-identical); the audio is decoded,
moved by `-offset_ms` (silence where nothing is left to play, samples before the file's start dropped), stretched
when it drifts, and re-encoded: AAC in .mp4/.m4v/.mov, the source's codec family in .mkv/.avi, Opus in .webm.
The file is written beside `out` under a hidden name and renamed into place only when complete.

Sign convention (as everywhere in `vidlens.tasks.sync`): `offset_ms > 0` means the audio is late (a sound is heard
after the picture that made it), so the fix plays each sound `offset_ms` earlier. With drift the offset grows over
time: `offset(t) = offset_ms + drift_ms_per_min * (t - reference_s) / 60`, and the audio is resampled so that
every moment is corrected by its own offset.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io._open import av_reason, open_input
from vidlens.io.audio import DamagedPackets, audio_frames

__all__ = ["fix_sync", "FIX_CONTAINERS", "MAX_DRIFT_MS_PER_MIN"]

# Output container (by suffix) -> audio codec to write; None: the source's codec family when it can be encoded here.
FIX_CONTAINERS: dict[str, str | None] = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": None, ".avi": None,
                                         ".webm": "libopus"}
# Source audio codec -> encoder for "the same family" (mkv holds them all; avi the classic ones).
_FAMILY = {"aac": "aac", "mp3": "libmp3lame", "mp3float": "libmp3lame", "ac3": "ac3", "mp2": "mp2", "flac": "flac",
           "opus": "libopus", "vorbis": "libopus", "pcm_s16le": "pcm_s16le"}
_AVI_OK = {"libmp3lame", "ac3", "mp2", "pcm_s16le"}
_MULTICHANNEL_OK = {"aac", "ac3", "flac", "pcm_s16le"}
MAX_DRIFT_MS_PER_MIN = 6000.0  # 10 % speed error: beyond that it is not drift but a wrong frame rate
_LEAD_S = 0.5  # audio muxed this far ahead of the video packets (keeps the muxer's interleaving queue short)


def _check_args(video: Path, out: Path, offset_ms: float, drift: float | None) -> tuple[float, float]:
    try:
        offset = float(offset_ms)
    except (TypeError, ValueError):
        raise ConfigError(None, f"offset_ms must be a number of milliseconds, got {offset_ms!r}") from None
    if not math.isfinite(offset):
        raise ConfigError(None, f"offset_ms must be finite, got {offset_ms!r}")
    d = 0.0 if drift is None else float(drift)
    if not math.isfinite(d) or abs(d) > MAX_DRIFT_MS_PER_MIN:
        raise ConfigError(None, f"drift_ms_per_min must be finite and within +-{MAX_DRIFT_MS_PER_MIN:.0f}, got {drift!r}")
    if out.is_dir():
        raise ConfigError(out, "is a directory; give the corrected video's file name")
    if out.suffix.lower() not in FIX_CONTAINERS:
        raise ConfigError(out, f"cannot write {out.suffix or 'a file without an extension'!r}; use one of: "
                               f"{', '.join(FIX_CONTAINERS)}")
    if out.exists() and video.exists() and os.path.samefile(out, video):
        raise ConfigError(out, "is the input video; write the corrected copy to another file")
    return offset, d


def _audio_plan(out: Path, source_codec: str, source_layout: str, channels: int, rate: int) -> tuple[str, int, str]:
    """(encoder, sample rate, channel layout) for the corrected audio in `out`'s container."""
    suffix = out.suffix.lower()
    codec = FIX_CONTAINERS[suffix] or _FAMILY.get(source_codec, "aac")
    if suffix == ".avi" and codec not in _AVI_OK:
        codec = "libmp3lame"
    enc = av.codec.Codec(codec, "w")
    rates = list(enc.audio_rates or [])
    out_rate = rate if not rates or rate in rates else (48000 if 48000 in rates else max(rates))
    layout = "mono" if channels == 1 else ("stereo" if channels == 2 or codec not in _MULTICHANNEL_OK else source_layout)
    return codec, out_rate, layout


def _decode_audio(container: av.container.InputContainer, path: str, layout: str) -> tuple[np.ndarray, float, int]:
    """All audio of the first stream, placed on the file's timeline: (`float32 (C,S)`, start time s, sample rate).
    Gaps between frame timestamps become silence, overlaps are overwritten (damaged files, VFR phone clips)."""
    stream = container.streams.audio[0]
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    if rate <= 0:
        raise VideoDecodeError(path, "the audio stream has no sample rate")
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    chunks: list[tuple[float | None, np.ndarray]] = []
    damaged = DamagedPackets()
    for frame in audio_frames(container, stream, damaged):
        t = None if frame.time is None else float(frame.time)
        for i, res in enumerate(resampler.resample(frame)):
            chunks.append((t if i == 0 else None, res.to_ndarray()))
    for res in resampler.resample(None):
        chunks.append((None, res.to_ndarray()))
    if not chunks:
        raise VideoDecodeError(path, "no audio could be decoded"
                               + (f" ({damaged.count} damaged packets)" if damaged.count else ""))
    start = next((t for t, _ in chunks if t is not None), 0.0)
    total = sum(c.shape[1] for _, c in chunks)
    audio = np.zeros((chunks[0][1].shape[0], total + rate), np.float32)
    pos = 0
    for t, chunk in chunks:
        if t is not None:
            want = int(round((t - start) * rate))
            if abs(want - pos) > rate // 500:  # > 2 ms away from contiguous: trust the timestamp
                pos = max(0, want)
        n = chunk.shape[1]
        if pos + n > audio.shape[1]:
            audio = np.concatenate([audio, np.zeros((audio.shape[0], pos + n - audio.shape[1] + rate), np.float32)], 1)
        audio[:, pos:pos + n] = chunk
        pos += n
    return audio[:, :pos], start, rate


def _corrected_audio(audio: np.ndarray, a0: float, rate: int, out_rate: int, out0: float, n_out: int,
                     offset_s: float, drift: float, reference_s: float) -> np.ndarray:
    """`float32 (C, n_out)` at `out_rate` starting at time `out0`: output time t plays source time
    s(t) = t + offset_s + d * (t - reference_s), d = drift / 60000 (silence where s(t) falls outside the source)."""
    d = drift / 60000.0
    ratio = Fraction(1.0 + d).limit_denominator(4000) * Fraction(rate, out_rate) if d else Fraction(rate, out_rate)
    if ratio != 1:
        from scipy.signal import resample_poly

        audio = resample_poly(audio, ratio.denominator, ratio.numerator, axis=1).astype(np.float32, copy=False)
    # resampled sample m sits at source position m * ratio; output sample n needs source position (s(out0) - a0) * rate
    # + n * ratio, i.e. resampled sample n + shift.
    s0 = out0 + offset_s + d * (out0 - reference_s)
    shift = int(round((s0 - a0) * rate / float(ratio)))
    out = np.zeros((audio.shape[0], n_out), np.float32)
    lo, hi = max(0, -shift), min(n_out, audio.shape[1] - shift)
    if hi > lo:
        out[:, lo:hi] = audio[:, lo + shift:hi + shift]
    return out


def _encoder_delay(codec: str, rate: int, layout: str) -> int:
    """Samples of priming the encoder puts before the first real sample (its first packet's pts is -delay).
    Containers with time stamps (mp4's edit list, mkv) carry this; AVI does not, so it is cut from the audio there."""
    cc = av.CodecContext.create(codec, "w")
    cc.sample_rate, cc.layout, cc.time_base = rate, layout, Fraction(1, rate)
    cc.format = av.codec.Codec(codec, "w").audio_formats[0].name
    pts: list[int] = []
    for i in range(4):
        frame = av.AudioFrame.from_ndarray(np.zeros((cc.layout.nb_channels, 4096), np.float32), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, i * 4096, Fraction(1, rate)
        pts += [p.pts for p in cc.encode(frame) if p.pts is not None]
    pts += [p.pts for p in cc.encode(None) if p.pts is not None]
    return max(0, -min(pts, default=0))


def _first_video_time(path: str) -> tuple[float, float]:
    """(first, last) presentation time of the video packets, from a demux without decoding."""
    first, last = math.inf, -math.inf
    with open_input(path) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None:
                t = float(packet.pts * packet.time_base)
                first, last = min(first, t), max(last, t + float((packet.duration or 0) * packet.time_base))
    if not math.isfinite(first):
        raise VideoDecodeError(path, "the video stream has no packets with time stamps")
    return first, last


def fix_sync(video: str | os.PathLike[str], out: str | os.PathLike[str], offset_ms: float,
             drift_ms_per_min: float | None = None, *, reference_s: float | None = None,
             progress: Callable[[str, float], None] | None = None) -> Path:
    """Write `out`: `video` with its audio moved by `-offset_ms` (and stretched by `drift_ms_per_min`) and its video
    stream copied packet for packet; returns `out`.

    `offset_ms > 0` = the audio was late. With drift, `offset_ms` is the offset at `reference_s` seconds (default: the
    middle of the video, which is what a whole-video estimate measures). The corrected audio covers the same span as
    the source's (starting where the earlier of video and audio started): silence where the shift leaves nothing
    to play, samples moved before the start dropped. `progress(stage, seconds_done)` is called as the video is copied.
    Raises `VideoDecodeError` (unreadable file, no audio stream) and `ConfigError` (bad numbers, an output format that
    cannot hold the video stream); on any failure nothing is left at `out` (an existing file there is kept).
    """
    src, dst = Path(video), Path(out)
    offset, drift = _check_args(src, dst, offset_ms, drift_ms_per_min)
    path = os.fspath(src)
    with open_input(path) as container:
        if not container.streams.audio:
            raise VideoDecodeError(path, "no audio stream: nothing to synchronise")
        acc = container.streams.audio[0].codec_context
        codec, out_rate, layout = _audio_plan(dst, acc.name, acc.layout.name, acc.channels, int(acc.sample_rate or 0))
        audio, a0, rate = _decode_audio(container, path, layout)
    v0, v1 = _first_video_time(path)
    a1 = a0 + audio.shape[1] / rate
    out0 = max(min(v0, a0), min(v0, 0.0))
    if dst.suffix.lower() == ".avi":
        out0 = v0  # AVI keeps no start times: every stream starts at 0, so the audio starts with the first frame
    n_out = max(1, int(round((a1 - out0) * out_rate)))
    ref = (v0 + v1) / 2 if reference_s is None else float(reference_s)
    fixed = _corrected_audio(audio, a0, rate, out_rate, out0, n_out, offset / 1000.0, drift, ref)
    delay = 0
    if dst.suffix.lower() == ".avi":
        # AVI has no time stamps to skip the encoder's priming with: start the audio that much earlier, and keep the
        # first packet at time >= 0 (a negative one would make the muxer shift every stream, the video too).
        delay = _encoder_delay(codec, out_rate, layout)
        fixed = np.concatenate([fixed[:, delay:], np.zeros((fixed.shape[0], min(delay, fixed.shape[1])), np.float32)], 1)
    del audio
    created = [p for p in dst.parents if not p.exists()]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{dst.suffix}"
    try:
        _write(path, tmp, dst, fixed, out_rate, out0, codec, layout, v1, progress, delay)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in created:  # innermost first, only if still empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return dst


def _write(path: str, tmp: Path, dst: Path, fixed: np.ndarray, out_rate: int, out0: float, codec: str, layout: str,
           v_end: float, progress: Callable[[str, float], None] | None, pts_shift: int = 0) -> None:
    """Mux the copied video packets and the encoded corrected audio into `tmp`, interleaved by time."""
    with open_input(path) as container:
        iv = container.streams.video[0]
        try:
            output = av.open(os.fspath(tmp), mode="w")
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise ConfigError(dst, f"cannot create the output file ({av_reason(exc)})") from None
        try:
            try:
                ov = output.add_stream_from_template(iv, time_base=iv.time_base)
            except ValueError:
                raise ConfigError(dst, f"a {dst.suffix} file cannot hold this video's {iv.codec_context.name} stream "
                                       "without re-encoding; write a .mkv instead") from None
            oa = output.add_stream(codec, rate=out_rate)
            oa.layout = layout
            oa.time_base = Fraction(1, out_rate)
            if codec in ("aac", "libmp3lame", "libopus", "ac3", "mp2"):
                oa.bit_rate = 64000 * min(fixed.shape[0], 6)
            frame_layout = oa.layout.name
            start_pts = int(round(out0 * out_rate)) + pts_shift
            chunk = 4096
            done = 0
            latest = -math.inf

            def push_audio(until_s: float | None) -> None:
                nonlocal done
                stop = fixed.shape[1] if until_s is None else min(fixed.shape[1], int(round((until_s - out0) * out_rate)))
                while done < stop:
                    n = min(chunk, stop - done)
                    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(fixed[:, done:done + n]), format="fltp",
                                                       layout=frame_layout)
                    frame.sample_rate = out_rate
                    frame.pts = start_pts + done
                    frame.time_base = Fraction(1, out_rate)
                    output.mux(oa.encode(frame))
                    done += n

            for packet in container.demux(iv):
                if packet.dts is None and packet.pts is None:
                    continue  # the demuxer's final empty packet
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if t is not None and t > latest:  # pts in decode order jump back and forth around B-frames
                    latest = t
                    push_audio(t + _LEAD_S)
                    if progress is not None:
                        progress("fix sync", min(t, v_end))
                packet.stream = ov
                try:
                    output.mux(packet)
                except av.FFmpegError as exc:
                    raise ConfigError(dst, f"cannot copy the video packets into a {dst.suffix} file "
                                           f"({av_reason(exc)}); write a .mkv or .mp4 instead") from None
            push_audio(None)
            output.mux(oa.encode(None))
        finally:
            output.close()
