"""Split a video into one file per scene, like PySceneDetect's `split-video`.

`split_scenes(video, scenes, out_dir, mode=...)` writes `<stem>-Scene-001<ext>`, ... (1-based,
in scene order) and returns what it wrote. Two ways:

- **copy**: packets are copied without decoding (fast, lossless). Only exact when every scene starts
  on a keyframe of a file whose frames the index knows by timestamp (`FrameIndex.order == "pts"`)
  and no frame before a scene start is decoded from that start's keyframe (open GOP): otherwise a
  file would begin or end with frames that cannot be decoded. The file keeps its
  container (extension) and codecs; audio packets whose time falls inside the scene go with it.
- **encode**: frames are decoded frame-exactly (`vidlens.io.iter_frames`) and re-encoded with
  `vidlens.io.VideoWriter` (H.264 in .mp4 by default), keeping each frame's timestamp (VFR stays
  VFR); audio is decoded for the scene's time span and encoded as AAC (stereo stays stereo; mono and
  more than two channels, e.g. 5.1, become FFmpeg's mono downmix).
- **auto** (default): copy when every scene starts on a keyframe, else encode.

Both run with PyAV only (no ffmpeg CLI needed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.tasks.shots.result import scene_file_name

SPLIT_MODES = ("auto", "copy", "encode")
_ENCODE_TIME_BASE = Fraction(1, 90000)
_AUDIO_CHUNK = 1024  # samples per AAC frame


class Span(Protocol):
    """A scene: frames `[start_frame, end_frame)` (`SceneSpan` is one)."""

    start_frame: int
    end_frame: int


@dataclass
class SplitResult:
    """`files[i]`: the file of scene i + 1; `mode`: "copy" or "encode" (what was done); `reason`: why."""

    files: list[Path]
    mode: str
    reason: str
    frames: list[int] = field(default_factory=list)  # frames written per file


def choose_split_mode(video: str | os.PathLike[str], scenes: Sequence[Span], mode: str = "auto") -> tuple[str, str]:
    """("copy" | "encode", reason) for `mode`; raises `ConfigError` when "copy" cannot be exact."""
    from vidlens.io import frame_index

    if mode not in SPLIT_MODES:
        raise ConfigError(None, f"split mode must be one of {', '.join(SPLIT_MODES)}, got {mode!r}")
    if mode == "encode":
        return "encode", "re-encode asked for"
    index = frame_index(video)
    problem = ""
    if index.order != "pts":
        problem = f"the file's frames are indexed by {index.order} order, so packets cannot be cut exactly"
    else:
        off = [s.start_frame for s in scenes if not index.is_keyframe(s.start_frame)]
        if off:
            problem = f"{len(off)} of {len(scenes)} scenes do not start on a keyframe (first at frame {off[0]})"
        else:
            open_gop = leading_frames(video, [s.start_frame for s in scenes])
            if open_gop:
                problem = (f"open GOP: frames just before {len(open_gop)} scene start(s) (first at frame {open_gop[0]}) "
                           "are decoded from that start's keyframe")
    if not problem:
        return "copy", "every scene starts on a keyframe"
    if mode == "copy":
        raise ConfigError(video, f"cannot split by stream copy: {problem}; use --split-mode encode or auto")
    return "encode", problem


def leading_frames(video: str | os.PathLike[str], starts: Sequence[int]) -> list[int]:
    """Scene starts (keyframes) followed, in decode order, by packets of earlier frames (open GOP).

    Those earlier frames belong to the scene before but reference the start's keyframe, so a copy
    cut there would leave them undecodable. One demuxing pass over the video packets, no decoding.
    """
    from vidlens.io import frame_index
    from vidlens.io._open import open_input

    index = frame_index(video)
    wanted = {int(f) for f in starts if f > 0}
    found: set[int] = set()
    current = None
    with open_input(video) as src:
        for packet in src.demux(src.streams.video[0]):
            n = index.number_of(packet.pts)
            if n is None:
                continue
            if n in wanted and packet.is_keyframe:
                current = n
            elif current is not None and n < current:
                found.add(current)
    return sorted(found)


def split_scenes(
    video: str | os.PathLike[str],
    scenes: Sequence[Span],
    out_dir: str | os.PathLike[str],
    *,
    mode: str = "auto",
    suffix: str | None = None,
    audio: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SplitResult:
    """Write one file per scene into `out_dir` (created); see the module docstring for the modes.

    `suffix`: the files' extension; default: the input's for copy, ".mp4" for encode.
    `progress(scenes_done)` after each file.
    """
    video = os.fspath(video)
    scenes = [s for s in scenes if s.end_frame > s.start_frame]
    if not scenes:
        raise ConfigError(video, "no scenes to split")
    chosen, reason = choose_split_mode(video, scenes, mode)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(video).stem
    ext = suffix or (Path(video).suffix if chosen == "copy" else ".mp4")
    paths = [out / scene_file_name(stem, i + 1, ext) for i in range(len(scenes))]
    if chosen == "copy":
        frames = _split_copy(video, scenes, paths, audio, progress)
    else:
        frames = _split_encode(video, scenes, paths, audio, progress)
    return SplitResult(paths, chosen, reason, frames)


def _split_copy(video: str, scenes: Sequence[Span], paths: list[Path], audio: bool,
                progress: Callable[[int], None] | None) -> list[int]:
    """Stream copy: per scene, seek before its keyframe and mux the packets of its frames (and audio)."""
    from vidlens.io import frame_index
    from vidlens.io._open import open_input

    index = frame_index(video)
    counts = []
    with open_input(video) as src:
        vin = src.streams.video[0]
        ain = src.streams.audio[0] if audio and src.streams.audio else None
        vtb = vin.time_base
        for i, (scene, path) in enumerate(zip(scenes, paths, strict=True)):
            start_ts = int(index.display_ts[scene.start_frame])
            end_ts = int(index.display_ts[scene.end_frame]) if scene.end_frame < index.num_frames else None
            # From the keyframe before the scene's own one: audio stored just ahead of the keyframe comes too.
            pos = index.keyframe_position(max(scene.start_frame - 1, 0))
            src.seek(int(index.keyframe_seek[pos]), stream=vin, backward=True)
            with av.open(os.fspath(path), "w") as dst:
                vout = dst.add_stream_from_template(vin)
                aout = dst.add_stream_from_template(ain) if ain is not None else None
                streams = [vin] + ([ain] if ain is not None else [])
                v_offset = None  # dts of the scene's first video packet: output timestamps start at 0
                written = 0
                video_done = audio_done = ain is None
                for packet in src.demux(*streams):
                    if packet.dts is None and packet.pts is None:
                        continue  # flush packet
                    if packet.stream is vin:
                        n = index.number_of(packet.pts)
                        if n is None or n < scene.start_frame:
                            continue
                        if n >= scene.end_frame:
                            if packet.is_keyframe:
                                video_done = True
                            if video_done and audio_done:
                                break
                            continue
                        if v_offset is None:
                            v_offset = packet.dts if packet.dts is not None else packet.pts
                        _shift(packet, v_offset, vout)
                        dst.mux(packet)
                        written += 1
                    else:
                        t = packet.pts if packet.pts is not None else packet.dts
                        t_v = t * packet.time_base / vtb  # in video time-base units
                        if t_v < start_ts:
                            continue
                        if end_ts is not None and t_v >= end_ts:
                            audio_done = True
                            if video_done:
                                break
                            continue
                        if v_offset is None:
                            continue  # audio before the scene's first video packet
                        _shift(packet, round(v_offset * vtb / packet.time_base), aout)
                        dst.mux(packet)
            if written != scene.end_frame - scene.start_frame:  # never a file silently short of frames
                raise VideoDecodeError(video, f"stream copy of scene {i + 1} found {written} of "
                                              f"{scene.end_frame - scene.start_frame} frames; use --split-mode encode")
            counts.append(written)
            if progress:
                progress(i + 1)
    return counts


def _shift(packet: av.Packet, offset: int, stream) -> None:
    """Move `packet` to `stream`, its timestamps shifted back by `offset` (its own time base)."""
    pts, dts = packet.pts, packet.dts
    packet.stream = stream
    if pts is not None:
        packet.pts = pts - offset
    if dts is not None:
        packet.dts = dts - offset


def _split_encode(video: str, scenes: Sequence[Span], paths: list[Path], audio: bool,
                  progress: Callable[[int], None] | None) -> list[int]:
    """Re-encode: one decoding pass over the video, each frame written to its scene's file."""
    from vidlens.io import VideoWriter, iter_frames, probe

    info = probe(video)
    fps = Fraction(info.nominal_fps or info.fps or 25.0).limit_denominator(100000)
    with_audio = audio and info.has_audio and bool(info.audio_sample_rate)
    counts = [0] * len(scenes)
    pos = 0
    writer: VideoWriter | None = None
    first_s = 0.0
    last_pts = -1

    def close(i: int) -> None:
        nonlocal writer
        if writer is None:
            return
        writer.close()
        writer = None
        if progress:
            progress(i + 1)

    try:
        for frame in iter_frames(video):
            while pos < len(scenes) and frame.index >= scenes[pos].end_frame:
                close(pos)
                pos += 1
            if pos == len(scenes):
                break
            if frame.index < scenes[pos].start_frame:
                continue
            if writer is None:
                channels = 2 if info.audio_channels == 2 else 1  # more than stereo: FFmpeg's mono downmix of all of them
                writer = VideoWriter(paths[pos], fps, time_base=_ENCODE_TIME_BASE,
                                     audio_rate=info.audio_sample_rate if with_audio else None, audio_channels=channels)
                first_s, last_pts = frame.time_s, -1
                writer.write(frame.image, pts=0)  # the video stream exists before any audio is muxed
                last_pts = 0
                if with_audio:
                    _write_scene_audio(writer, video, scenes[pos], frame.time_s, info, channels)
            else:
                pts = max(last_pts + 1, round((frame.time_s - first_s) / _ENCODE_TIME_BASE))
                writer.write(frame.image, pts=pts)
                last_pts = pts
            counts[pos] += 1
        close(pos)
    except BaseException:
        if writer is not None:
            writer.close(flush=False)
        raise
    missing = [i + 1 for i, n in enumerate(counts) if n == 0]
    if missing:
        raise VideoDecodeError(video, f"no frame decoded for scene(s) {missing}")
    return counts


def _write_scene_audio(writer, video: str, scene: Span, start_s: float, info, channels: int) -> None:
    """Decode the audio of `[start_s, scene end)` and append it to `writer` (nothing when none decodes there)."""
    from vidlens.io import read_audio

    try:
        samples = read_audio(video, info.audio_sample_rate, mono=channels == 1, start=start_s,
                             end=_scene_end_s(video, scene, info.duration_s))
    except VideoDecodeError:
        return  # no audio inside this span
    # In codec-sized pieces: one long frame handed to PyAV's AAC encoder loses samples (heard as gaps).
    for a in range(0, samples.shape[1], _AUDIO_CHUNK):
        writer.write_audio(samples[:channels, a : a + _AUDIO_CHUNK])


def _scene_end_s(video: str, scene: Span, duration_s: float) -> float:
    """End of a scene in seconds from the first frame: the next scene's first frame, or the video's end."""
    from vidlens.io import frame_index

    index = frame_index(video)
    return float(index.times[scene.end_frame]) if scene.end_frame < index.num_frames else duration_s
