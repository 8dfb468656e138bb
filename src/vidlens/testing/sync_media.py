"""Real footage with its audio moved by a known amount (the ffmpeg CLI), and the ffmpeg CLI as the oracle that
measures where the audio of a file sits: the ground truth for `vidlens.tasks.sync` tests and benchmarks.

Sign convention: `offset_ms > 0` = audio late. `shift_audio(src, out, +200)` delays the audio input with
`-itsoffset 0.2`; `shift_audio(src, out, -200)` delays the video input instead; both copy the video stream and
re-encode the audio to AAC in an .mp4. `speed` (e.g. 0.99) plays the audio that much slower (`asetrate`), so
the offset grows by `60000 * (1 / speed - 1)` ms per minute: drift.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

__all__ = ["cut_clip", "shift_audio", "drift_ms_per_min", "decode_audio_cli", "audio_lag_ms", "video_packets",
           "make_flash_beep_clip"]


def _ffmpeg(args: list[str]) -> None:
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args[:8])} ... failed: {done.stderr.decode(errors='replace')[-400:]}")


def cut_clip(src: str | os.PathLike[str], out: str | os.PathLike[str], start_s: float = 0.0,
             seconds: float | None = None, *, height: int | None = None) -> Path:
    """A re-encoded cut of real footage (H.264 CRF 18 + AAC in .mp4, every stream starting at 0): the in-sync base
    a test shifts. `height` scales the picture down (even width kept)."""
    args = ["-ss", f"{start_s:.3f}"] if start_s else []
    args += ["-i", os.fspath(src)] + (["-t", f"{seconds:.3f}"] if seconds else [])
    if height:
        args += ["-vf", f"scale=-2:{int(height)}"]
    _ffmpeg(args + ["-map", "0:v:0", "-map", "0:a:0", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", os.fspath(out)])
    return Path(out)


def make_flash_beep_clip(out: str | os.PathLike[str], seconds: float = 8.0, seed: int = 0) -> list[float]:
    """Real pedestrian footage (OpenCV's vtest.avi, 384x288, 25 fps) with a white box flashed for 2 frames at
    irregular frame times and a 60 ms 880 Hz beep at the same instants mixed over Big Buck Bunny's soundtrack
    (`shared/realdata/scenes/big_buck_bunny_0_30.webm`): picture and sound in sync by construction, with events a
    sync method can see and hear. Returns the event times (s). H.264 + AAC in `out`."""
    from vidlens.testing.real import opencv_sample, realdata

    rng = np.random.default_rng(seed)
    times, t = [], 0.52
    while t < seconds - 0.6:
        times.append(t)
        t = round((t + rng.uniform(0.45, 1.3)) / 0.04) * 0.04
    vis = "+".join(f"between(t,{x - 0.001:.3f},{x + 0.075:.3f})" for x in times)
    aud = "+".join(f"between(t,{x:.3f},{x + 0.06:.3f})" for x in times)
    graph = (f"[0:v]scale=384:288,fps=25,drawbox=x=100:y=60:w=180:h=160:color=white:t=fill:enable='{vis}'[v];"
             f"aevalsrc='0.6*sin(2*PI*880*t)*({aud})':s=44100:d={seconds}[b];[1:a]volume=0.3[m];"
             "[b][m]amix=inputs=2:duration=first:normalize=0[a]")
    _ffmpeg(["-i", os.fspath(opencv_sample("vtest.avi")), "-i", os.fspath(realdata("scenes/big_buck_bunny_0_30.webm")),
             "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", str(seconds), "-c:v", "libx264", "-preset",
             "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "44100", os.fspath(out)])
    return times


def drift_ms_per_min(speed: float) -> float:
    """The drift `shift_audio(..., speed=speed)` makes: audio at `speed` x normal rate, offset(t) = t * (1/speed - 1)."""
    return 60000.0 * (1.0 / speed - 1.0)


def shift_audio(src: str | os.PathLike[str], out: str | os.PathLike[str], offset_ms: float, *,
                speed: float | None = None) -> Path:
    """`src` with its audio `offset_ms` late (negative: early) relative to the picture, and with drift when
    `speed` is given (the audio's offset at time t is then `offset_ms + t * (1/speed - 1) * 1000`)."""
    src = os.fspath(src)
    shift = f"{abs(offset_ms) / 1000.0:.4f}"
    if offset_ms >= 0:
        inputs = ["-i", src, "-itsoffset", shift, "-i", src]
    else:  # input 0 (the video) delayed
        inputs = ["-itsoffset", shift, "-i", src, "-i", src]
    audio = ["-c:a", "aac", "-b:a", "128k"]
    if speed is not None:
        rate = _sample_rate(src)
        audio = ["-af", f"asetrate={rate * speed:.6f},aresample={rate}"] + audio
    _ffmpeg(inputs + ["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", *audio, os.fspath(out)])
    return Path(out)


def _sample_rate(path: str) -> int:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=sample_rate",
                          "-of", "csv=p=0", path], capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[0])


def decode_audio_cli(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """The file's first audio stream as mono `float32 (S,)`, decoded by the ffmpeg CLI on the file's own timeline
    (`-copyts`; silence before the first sample back to t=0): sample i sits at i / sample_rate seconds, the clock
    the video's time stamps use too."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-copyts", "-i", os.fspath(path), "-map", "0:a:0",
                           "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"],
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not decode the audio of {path}: {done.stderr.decode(errors='replace')[-300:]}")
    return np.frombuffer(done.stdout, np.float32).copy()


def audio_lag_ms(reference: np.ndarray, other: np.ndarray, *, sample_rate: int = 16000, start_s: float = 0.5,
                 seconds: float = 3.0, max_ms: float = 600.0) -> float:
    """How late (ms) the sound of `reference[start_s : start_s + seconds]` comes in `other` (both mono, same rate,
    on the same timeline): the lag of the normalised cross-correlation peak, at `1000 / sample_rate` ms resolution."""
    from scipy.signal import correlate

    s, n, m = int(start_s * sample_rate), int(seconds * sample_rate), int(max_ms * sample_rate / 1000)
    window = reference[s:s + n].astype(np.float64)
    padded = np.pad(other.astype(np.float64), (m, m + n))
    segment = padded[s:s + n + 2 * m]
    if window.size < n or not np.any(window):
        raise ValueError("the reference window is empty or silent")
    score = correlate(segment, window, mode="valid")
    cumulative = np.concatenate([[0.0], np.cumsum(segment ** 2)])
    energy = np.sqrt(np.maximum(cumulative[n:] - cumulative[:-n], 0.0)) + 1e-12
    return (int(np.argmax(score / energy)) - m) * 1000.0 / sample_rate


def video_packets(path: str | os.PathLike[str]) -> list[tuple[str, str, str]]:
    """Every packet of the first video stream as the ffmpeg CLI sees it: (pts seconds, size, MD5 of the data), in
    file order: equal lists = the video stream was copied untouched (dts left out: Matroska stores none)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_packets", "-show_data_hash", "MD5",
                          "-show_entries", "packet=pts_time,dts_time,size,data_hash", "-of", "csv=p=0", os.fspath(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        pts, _dts, size, digest = line.split(",")[:4]
        rows.append((f"{float(pts):.4f}" if pts not in ("", "N/A") else pts, size, digest))
    return rows
