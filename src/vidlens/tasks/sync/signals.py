"""The signals the sync methods correlate, on one 100 Hz grid of the file's own clock.

Sample k of every signal is at k / RATE seconds of the container timeline (the clock both streams' timestamps use),
so a stream that starts late (`-itsoffset`) keeps its delay. Video signals are measured per decoded frame at the
frame's real timestamp (VFR files work) and interpolated onto the grid; samples where a stream has no data are NaN.

- audio: `decode_audio` -> mono float32 + the time of its first sample; `audio_envelope` (RMS, optionally of a
  frequency band, e.g. the speech band), `audio_onsets` (spectral flux of a log-mel spectrogram).
- video: `video_motion` -> whole-frame difference energy per frame at its timestamp; `motion_onsets`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.tasks.sync.correlate import RATE

AUDIO_RATE = 16000
HOP = int(AUDIO_RATE / RATE)  # 160 samples = 10 ms
EDGE = 5  # grid samples at each end of the audio onset signal set to 0 (the track edges)


@dataclass
class AudioTrack:
    """Mono audio on the file's clock: sample i at `start_s + i / sample_rate` seconds."""

    samples: np.ndarray  # (S,) float32 in [-1, 1]
    sample_rate: int
    start_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.samples.size / self.sample_rate


@dataclass
class VideoMotion:
    """Per-frame whole-picture change."""

    times: np.ndarray  # (T,) float64 display time of each frame, seconds of the file's clock
    energy: np.ndarray  # (T,) float32 mean |grey(t) - grey(t-1)| (0..255); frame 0 gets 0
    fps: float  # frames / span of timestamps (average rate)


def decode_audio(path: str | os.PathLike[str], sample_rate: int = AUDIO_RATE) -> AudioTrack:
    """The first audio stream, mono at `sample_rate`, with the time of its first sample on the file's clock.
    Raises VideoDecodeError when there is no audio stream or nothing decodes (damaged packets are skipped, as
    `vidlens.io.audio.audio_frames` does for every reader)."""
    from vidlens.io._open import open_input
    from vidlens.io.audio import DamagedPackets, audio_frames

    path = os.fspath(path)
    with open_input(path, need_video=False) as container:
        if not container.streams.audio:
            raise VideoDecodeError(path, "no audio stream: nothing to synchronise")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        damaged = DamagedPackets()
        try:
            for frame in audio_frames(container, container.streams.audio[0], damaged):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except (av.FFmpegError, ValueError) as exc:
            if not chunks:
                raise VideoDecodeError(path, f"the audio stream cannot be decoded: {exc}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size < sample_rate // 10:
        what = f" ({damaged.count} damaged packets)" if damaged.count else ""
        raise VideoDecodeError(path, f"the audio stream cannot be decoded (no audio samples{what})")
    return AudioTrack(samples, sample_rate, float(start or 0.0))


def _bandpass(x: np.ndarray, sr: int, band: tuple[float, float]) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    lo, hi = band
    sos = butter(4, [lo / (sr / 2), min(hi / (sr / 2), 0.99)], btype="band", output="sos")
    return sosfiltfilt(sos, x.astype(np.float64)).astype(np.float32)


def _on_grid(values: np.ndarray, start_s: float, n: int) -> np.ndarray:
    """Place hop-rate `values` (first at `start_s`) onto the n-sample grid; NaN where there is none."""
    out = np.full(n, np.nan, np.float32)
    k0 = int(round(start_s * RATE))
    src0 = max(0, -k0)
    dst0 = max(0, k0)
    m = min(values.size - src0, n - dst0)
    if m > 0:
        out[dst0:dst0 + m] = values[src0:src0 + m]
    return out


def audio_envelope(track: AudioTrack, n: int, band: tuple[float, float] | None = None, log: bool = False) -> np.ndarray:
    """(n,) RMS envelope on the grid (20 ms windows, 10 ms hop); `band` (Hz) band-passes first (speech:
    (300, 3000)); `log` compresses to dB (floored at -80 dB)."""
    x = track.samples if band is None else _bandpass(track.samples, track.sample_rate, band)
    hop = int(track.sample_rate / RATE)
    frames = x.size // hop
    if frames < 2:
        return np.full(n, np.nan, np.float32)
    power = (x[:frames * hop].astype(np.float64) ** 2).reshape(frames, hop).mean(axis=1)
    power = 0.5 * (power + np.concatenate([power[:1], power[:-1]]))  # 20 ms window centred between hops
    env = 10 * np.log10(power + 1e-8) if log else np.sqrt(power)
    # value i describes samples [i*hop - hop, i*hop + hop): centred at i*hop
    return _on_grid(env.astype(np.float32), track.start_s, n)


def audio_onsets(track: AudioTrack, n: int, n_mels: int = 40) -> np.ndarray:
    """(n,) onset strength on the grid: half-wave-rectified spectral flux of a log-mel spectrogram (25 ms / 10 ms),
    minus its running median over 0.5 s (so steady music and noise floors give ~0)."""
    from scipy.ndimage import median_filter

    from vidlens.features.audio import log_mel

    sr = track.sample_rate
    mel = log_mel(track.samples[None, :], sr, n_mels=n_mels, win_ms=25.0, hop_ms=1000.0 / RATE)
    mel = np.asarray(mel.cpu().numpy() if hasattr(mel, "cpu") else mel, np.float64)
    if mel.ndim == 3:
        mel = mel[0]
    if mel.shape[1] < 3:
        return np.full(n, np.nan, np.float32)
    flux = np.maximum(np.diff(mel, axis=1), 0.0).mean(axis=0)
    # diff j-1 -> j is seen once the 25 ms window centred on hop j reaches the sound: ~1 hop after j's centre
    flux = np.concatenate([[0.0, 0.0], flux[:-1]])
    flux = np.maximum(flux - median_filter(flux, size=int(0.5 * RATE) | 1, mode="nearest"), 0.0)
    flux[:EDGE] = 0.0  # the track's own start and end are not events
    flux[-EDGE:] = 0.0
    return _on_grid(flux.astype(np.float32), track.start_s, n)


def video_motion(path: str | os.PathLike[str], width: int = 160) -> VideoMotion:
    """Mean absolute difference of consecutive grey frames (scaled to `width` px wide), per frame at its timestamp
    on the file's clock. Raises VideoDecodeError for undecodable video."""
    import cv2

    from vidlens.io import iter_frames

    path = os.fspath(path)
    origin = video_origin(path)
    times: list[float] = []
    energy: list[float] = []
    prev: np.ndarray | None = None
    for frame in iter_frames(path, size=None, threads=1):
        img = frame.image
        h, w = img.shape[:2]
        small = cv2.resize(img, (width, max(2, int(round(h * width / w)))), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        energy.append(0.0 if prev is None else float(np.abs(grey - prev).mean()))
        times.append(origin + frame.time_s)
        prev = grey
    if len(times) < 2:
        raise VideoDecodeError(path, "fewer than 2 video frames decode: nothing to synchronise")
    t = np.asarray(times, np.float64)
    fps = (t.size - 1) / max(t[-1] - t[0], 1e-6)
    return VideoMotion(t, np.asarray(energy, np.float32), float(fps))


def video_origin(path: str) -> float:
    """Display time (s, file clock) of the first video frame: what `iter_frames` times are relative to."""
    from vidlens.io.index import frame_index

    index = frame_index(path)
    return float(index.display_ts[0] * index.time_base) if index.num_frames else 0.0


def frames_to_grid(times: np.ndarray, values: np.ndarray, n: int, valid: np.ndarray | None = None) -> np.ndarray:
    """(n,) per-frame `values` at `times` (s) linearly interpolated onto the grid; NaN outside the frames' span
    and, with a `valid` (T,) mask, more than one frame interval away from a valid frame."""
    grid = np.arange(n) / RATE
    t = np.asarray(times, np.float64)
    v = np.asarray(values, np.float64)
    keep = np.isfinite(v) if valid is None else (np.asarray(valid, bool) & np.isfinite(v))
    out = np.full(n, np.nan, np.float32)
    if keep.sum() < 2:
        return out
    tk, vk = t[keep], v[keep]
    inside = (grid >= tk[0]) & (grid <= tk[-1])
    out[inside] = np.interp(grid[inside], tk, vk)
    if valid is not None:
        step = float(np.median(np.diff(t))) if t.size > 1 else 0.04
        pos = np.clip(np.searchsorted(tk, grid), 1, tk.size - 1)
        gap = np.minimum(np.abs(grid - tk[pos - 1]), np.abs(tk[pos] - grid))
        out[gap > 1.5 * step] = np.nan
    return out


def motion_onsets(times: np.ndarray, energy: np.ndarray, n: int) -> np.ndarray:
    """(n,) visual onset strength on the grid: the rise of log motion energy from frame to frame (half-wave
    rectified), minus its running median over ~0.5 s, interpolated from frame times."""
    from scipy.ndimage import median_filter

    e = np.log1p(np.asarray(energy, np.float64))
    rise = np.maximum(np.diff(e, prepend=e[:1]), 0.0)
    fps = (len(times) - 1) / max(float(times[-1] - times[0]), 1e-6)
    rise = np.maximum(rise - median_filter(rise, size=max(3, int(0.5 * fps)) | 1, mode="nearest"), 0.0)
    rise[:2] = 0.0  # the first frames (fade-in, decoder start) are not events
    return frames_to_grid(times, rise, n)


def normalise(x: np.ndarray) -> np.ndarray:
    """Zero-mean unit-std over finite samples (NaN kept)."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return x.astype(np.float32)
    m, s = x[ok].mean(), x[ok].std() + 1e-9
    return ((x - m) / s).astype(np.float32)
