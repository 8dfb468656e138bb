"""log_mel against librosa, energy VAD edges, per-second windows."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from vidlens.features.audio import activity_segments, audio_windows, frame_energy_db, log_mel, stft_sizes, voice_activity

SR = 16000


pytestmark = pytest.mark.usefixtures("one_thread")


def _chirp(seconds: float = 1.3) -> np.ndarray:
    return (0.5 * librosa.chirp(fmin=150, fmax=6500, sr=SR, duration=seconds)).astype(np.float32)


@pytest.mark.parametrize(("n_mels", "fmin", "fmax", "win_ms", "hop_ms"), [(64, 0.0, None, 25, 10), (40, 60.0, 7000.0, 32, 16)])
def test_log_mel_matches_librosa_on_a_chirp(n_mels, fmin, fmax, win_ms, hop_ms):
    y = _chirp()
    ours = log_mel(y, SR, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms, fmin=fmin, fmax=fmax)
    n_fft, win, hop = stft_sizes(SR, win_ms, hop_ms)
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=SR, n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
                                       center=True, pad_mode="constant", power=2.0, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                       htk=False, norm="slaney"),
        ref=1.0, amin=1e-10, top_db=None)
    assert ours.dtype == np.float32 and ours.shape == ref.shape == (n_mels, 1 + len(y) // hop)
    loud = ref > ref.max() - 60  # float32 vs float64 differs only far below the peak
    assert np.abs(ours - ref)[loud].max() < 0.01
    assert np.abs(ours - ref).max() < 0.5
    # the chirp rises: the loudest mel band moves up over time
    peak = ours.argmax(axis=0)
    assert peak[-5] > peak[len(peak) // 2] > peak[5]


def test_log_mel_input_forms():
    y = _chirp(0.5)
    mono = log_mel(y, SR)
    stereo = log_mel(np.stack([y, y]), SR)  # channels are averaged
    np.testing.assert_allclose(stereo, mono, atol=1e-4)
    t = log_mel(torch.from_numpy(y)[None], SR, log="natural")
    assert isinstance(t, torch.Tensor) and t.shape == mono.shape and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), np.log(10 ** (mono / 10) + 1e-6), atol=1e-3)
    silence = log_mel(np.zeros(SR, np.float32), SR)
    assert np.all(silence == pytest.approx(-100.0))  # the documented floor
    with pytest.raises(ValueError):
        log_mel(np.zeros((2, 2, 10), np.float32), SR)
    with pytest.raises(ValueError):
        log_mel(y, SR, fmin=9000.0)


def _silence_tone_silence(noise: float = 1e-3) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = noise * rng.standard_normal(int(2.0 * SR)).astype(np.float32)
    t = np.arange(int(1.0 * SR)) / SR
    x[int(0.5 * SR) : int(1.5 * SR)] += (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return x


@pytest.mark.parametrize("hangover_ms", [0.0, 100.0])
def test_vad_finds_the_tone_edges(hangover_ms):
    x = _silence_tone_silence()
    mask = voice_activity(x, SR, frame_ms=25, hop_ms=10, hangover_ms=hangover_ms)
    assert mask.dtype == bool and mask.shape == frame_energy_db(x, SR, 25, 10).shape
    segments = activity_segments(mask, SR, 25, 10)
    assert len(segments) == 1
    start, end = segments[0]
    assert abs(start - 0.5) <= 0.02  # within two hops
    assert abs(end - (1.5 + hangover_ms / 1000)) <= 0.02


def test_vad_threshold_floor_and_cleanup():
    quiet = 1e-4 * np.random.default_rng(1).standard_normal(SR).astype(np.float32)
    assert not voice_activity(quiet, SR).any()  # below the absolute floor: nothing is active
    x = _silence_tone_silence()
    x[int(1.0 * SR) : int(1.05 * SR)] = 0.0  # a 50 ms gap inside the tone
    x[int(1.8 * SR) : int(1.81 * SR)] += 0.3  # a 10 ms click after it (active in ~4 overlapping 25 ms frames)
    plain = activity_segments(voice_activity(x, SR, hangover_ms=0, min_active_ms=0), SR)
    assert len(plain) == 3
    cleaned = activity_segments(voice_activity(x, SR, hangover_ms=0, min_active_ms=60, min_gap_ms=80), SR)
    assert len(cleaned) == 1 and abs(cleaned[0][0] - 0.5) <= 0.02 and abs(cleaned[0][1] - 1.5) <= 0.02


def test_audio_windows():
    x = np.arange(int(2.5 * SR), dtype=np.float32)[None] / SR
    windows, starts = audio_windows(x, SR, 1.0)
    assert windows.shape == (3, 1, SR) and starts.tolist() == [0.0, 1.0, 2.0]
    assert windows[2, 0, SR // 2 :].max() == 0 and windows[1, 0, 0] == pytest.approx(1.0)
    windows, starts = audio_windows(x, SR, 1.0, 0.5, pad=False)
    assert windows.shape == (4, 1, SR) and starts.tolist() == [0.0, 0.5, 1.0, 1.5]
    short, starts = audio_windows(x[:, :100], SR, 1.0)
    assert short.shape == (1, 1, SR) and starts.tolist() == [0.0]
    assert audio_windows(x[:, :100], SR, 1.0, pad=False)[0].shape == (0, 1, SR)
