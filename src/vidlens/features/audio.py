"""Audio features: log-mel spectrograms, energy voice-activity detection, fixed-length windows.

Audio is `float32 (channels, samples)` (or `(samples,)`) in [-1, 1], as `vidlens.io.read_audio`
returns it; several channels are averaged to mono first. A log-mel spectrogram is
`float32 (n_mels, frames)`.

- `log_mel`: Hann-windowed `torch.stft` -> power spectrum -> Slaney mel filters
  (`librosa.filters.mel`, `htk=False`, `norm="slaney"`) -> log. Frame `j` is centred on sample
  `j * hop` (the signal is zero-padded by `n_fft // 2` on both sides, librosa's `center=True`,
  `pad_mode="constant"`), so `frames = 1 + samples // hop`. With `log="db"` (default) the value is
  `10 * log10(max(power, amin))`, `amin = 1e-10` (-100 dB floor), which equals
  `librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)`; `log="natural"` gives `log(power + eps)`.
- `voice_activity`: per-frame RMS energy in dB, gated at `max(peak + threshold_db, floor_db)`,
  short bursts removed and short gaps bridged, then `hangover_ms` of extra activity after each
  active stretch (speech tails are quiet). Returns `(frames,)` bool; frame `i` covers samples
  `[i * hop, i * hop + frame)`. `activity_segments` turns the mask into `(start_s, end_s)` pairs.
- `audio_windows`: cut audio into per-second (or any length) windows `(N, C, window)` for
  models that take fixed-length inputs, with the start time of each.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

AMIN = 1e-10  # power floor of log="db": -100 dB


def _as_mono(audio: np.ndarray | Tensor) -> Tensor:
    """`(S,)` or `(C,S)` numpy/torch -> float32 tensor `(S,)` (channels averaged)."""
    x = audio if isinstance(audio, Tensor) else torch.from_numpy(np.asarray(audio, dtype=np.float32))
    x = x.float()
    if x.ndim == 2:
        x = x.mean(dim=0)
    if x.ndim != 1:
        raise ValueError(f"expected audio as (samples,) or (channels, samples), got shape {tuple(x.shape)}")
    return x


def stft_sizes(sample_rate: int, win_ms: float = 25.0, hop_ms: float = 10.0, n_fft: int | None = None) -> tuple[int, int, int]:
    """`(n_fft, win_length, hop_length)` in samples; `n_fft` defaults to the next power of two >= the window."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    win = max(1, int(round(win_ms * sample_rate / 1000.0)))
    hop = max(1, int(round(hop_ms * sample_rate / 1000.0)))
    if n_fft is None:
        n_fft = 1 << max(0, math.ceil(math.log2(win)))
    if n_fft < win:
        raise ValueError(f"n_fft ({n_fft}) must be at least the window length ({win} samples)")
    return int(n_fft), win, hop


@lru_cache(maxsize=16)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                htk=False, norm="slaney")
    return torch.from_numpy(np.ascontiguousarray(basis, dtype=np.float32))  # (n_mels, n_fft // 2 + 1)


def mel_power(audio: np.ndarray | Tensor, sample_rate: int, n_mels: int = 64, win_ms: float = 25.0,
              hop_ms: float = 10.0, fmin: float = 0.0, fmax: float | None = None, *,
              n_fft: int | None = None) -> Tensor:
    """Mel power spectrogram `float32 (n_mels, frames)` (no log) as a torch tensor on the input's device."""
    x = _as_mono(audio)
    n_fft, win, hop = stft_sizes(sample_rate, win_ms, hop_ms, n_fft)
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0 + 1e-6:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    if x.numel() == 0:
        raise ValueError("empty audio")
    pad = n_fft // 2
    x = torch.nn.functional.pad(x[None, None], (pad, pad), mode="constant")[0, 0]
    window = torch.hann_window(win, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=False, return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (n_fft//2+1, frames)
    basis = _mel_basis(int(sample_rate), n_fft, int(n_mels), float(fmin), float(fmax)).to(x.device)
    return basis @ power


def log_mel(audio: np.ndarray | Tensor, sample_rate: int, n_mels: int = 64, win_ms: float = 25.0,
            hop_ms: float = 10.0, fmin: float = 0.0, fmax: float | None = None, *, n_fft: int | None = None,
            log: str = "db", eps: float = 1e-6) -> np.ndarray | Tensor:
    """Log-mel spectrogram `float32 (n_mels, frames)` of `float32 (C,S)` or `(S,)` audio.

    `win_ms`/`hop_ms`: Hann window and hop (25/10 ms: 400/160 samples at 16 kHz, `n_fft` 512);
    `fmin`/`fmax` (Hz): the mel filter bank's range (`fmax` None = Nyquist). `log="db"`:
    `10*log10(max(power, 1e-10))`; `log="natural"`: `log(power + eps)`. Returns numpy for numpy
    input, a tensor (same device) for tensor input. `frames = 1 + S // hop`.
    """
    mel = mel_power(audio, sample_rate, n_mels, win_ms, hop_ms, fmin, fmax, n_fft=n_fft)
    if log == "db":
        out = 10.0 * torch.log10(mel.clamp_min(AMIN))
    elif log == "natural":
        out = torch.log(mel + eps)
    else:
        raise ValueError(f"log must be 'db' or 'natural', got {log!r}")
    return out if isinstance(audio, Tensor) else out.cpu().numpy()


def frame_energy_db(audio: np.ndarray | Tensor, sample_rate: int, frame_ms: float = 25.0,
                    hop_ms: float = 10.0) -> np.ndarray:
    """RMS energy per frame in dB (`20*log10(rms)`, floored at -120 dB) -> `float32 (frames,)`.

    Frame `i` covers samples `[i*hop, i*hop + frame)`; a clip shorter than one frame is one frame.
    """
    x = _as_mono(audio).cpu().numpy().astype(np.float64)
    frame = max(1, int(round(frame_ms * sample_rate / 1000.0)))
    hop = max(1, int(round(hop_ms * sample_rate / 1000.0)))
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    n = 1 + (x.size - frame) // hop
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(n) * hop
    mean_sq = (csum[starts + frame] - csum[starts]) / frame
    return (10.0 * np.log10(np.maximum(mean_sq, 1e-12))).astype(np.float32)


def _runs(mask: np.ndarray, value: bool) -> list[tuple[int, int]]:
    """`[start, end)` index pairs of the runs of `value` in a 1-D bool array."""
    padded = np.concatenate([[False], np.asarray(mask, bool) == value, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def voice_activity(audio: np.ndarray | Tensor, sample_rate: int, frame_ms: float = 25.0, hop_ms: float = 10.0,
                   threshold_db: float = -35.0, floor_db: float = -60.0, *, hangover_ms: float = 100.0,
                   min_active_ms: float = 30.0, min_gap_ms: float = 0.0) -> np.ndarray:
    """Energy-gated activity per frame -> `(frames,)` bool (frame `i` starts at sample `i*hop`).

    A frame is active when its RMS energy (dB) is above `max(peak_db + threshold_db, floor_db)`:
    `threshold_db` (negative) is relative to the clip's loudest frame, `floor_db` an absolute floor
    (dBFS; keeps a silent or noise-only clip inactive). Then active runs shorter than
    `min_active_ms` are dropped (clicks), inactive gaps shorter than `min_gap_ms` are filled, and
    each active run is extended by `hangover_ms` (the quiet tail of a word). Hangover moves the
    end of a run later by that much; the start is not moved.
    """
    energy = frame_energy_db(audio, sample_rate, frame_ms, hop_ms)
    hop_s = hop_ms / 1000.0
    threshold = max(float(energy.max()) + threshold_db, floor_db)
    mask = energy > threshold
    if min_active_ms > 0:
        shortest = max(1, int(math.ceil(min_active_ms / 1000.0 / hop_s)))
        for a, b in _runs(mask, True):
            if b - a < shortest:
                mask[a:b] = False
    if min_gap_ms > 0:
        widest = int(round(min_gap_ms / 1000.0 / hop_s))
        for a, b in _runs(mask, False):
            if a > 0 and b < mask.size and b - a < widest:
                mask[a:b] = True
    hang = int(round(hangover_ms / 1000.0 / hop_s))
    if hang > 0:
        out = mask.copy()
        for _, b in _runs(mask, True):
            out[b : b + hang] = True
        mask = out
    return mask


def activity_segments(mask: np.ndarray, sample_rate: int, frame_ms: float = 25.0,
                      hop_ms: float = 10.0) -> list[tuple[float, float]]:
    """`voice_activity`'s mask -> `[(start_s, end_s), ...]`, rounded to milliseconds.

    Frame `i` stands for the hop-long interval around its centre (`i*hop + frame/2`): an active
    run of frames `[a, b)` spans `a*hop + (frame-hop)/2` to `b*hop + (frame-hop)/2` seconds
    (clipped at 0).
    """
    hop = max(1, int(round(hop_ms * sample_rate / 1000.0))) / sample_rate
    frame = max(1, int(round(frame_ms * sample_rate / 1000.0))) / sample_rate
    shift = (frame - hop) / 2.0
    return [(round(max(0.0, a * hop + shift), 3), round(b * hop + shift, 3))
            for a, b in _runs(np.asarray(mask, bool), True)]


def audio_windows(audio: np.ndarray, sample_rate: int, window_s: float = 1.0, hop_s: float | None = None, *,
                  pad: bool = True, min_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Cut `float32 (C,S)` (or `(S,)`) audio into windows -> `(float32 (N,C,W), starts_s float64 (N,))`.

    `W = round(window_s * sample_rate)`; windows start every `hop_s` seconds (default: `window_s`,
    no overlap). The last, partial window is zero-padded when `pad` and it holds at least
    `min_fraction` of a window of real audio; otherwise it is dropped. A clip shorter than one
    window gives one zero-padded window (when `pad`), none otherwise.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected audio as (samples,) or (channels, samples), got shape {x.shape}")
    width = int(round(window_s * sample_rate))
    step = int(round((hop_s if hop_s is not None else window_s) * sample_rate))
    if width < 1 or step < 1:
        raise ValueError(f"window_s and hop_s must be positive, got {window_s}, {hop_s}")
    total = x.shape[1]
    starts = []
    s = 0
    while s + width <= total:
        starts.append(s)
        s += step
    if pad and s < total and ((total - s) >= min_fraction * width or not starts):
        starts.append(s)
    out = np.zeros((len(starts), x.shape[0], width), np.float32)
    for i, s in enumerate(starts):
        chunk = x[:, s : s + width]
        out[i, :, : chunk.shape[1]] = chunk
    return out, np.asarray(starts, dtype=np.float64) / sample_rate
