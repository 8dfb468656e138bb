"""The SyncNet-style two-stream network of the `learned` sync method, and the arrays it reads.

A *window* is the picture and the sound of the same ~0.2 s: `n_frames` consecutive grey mouth
crops `float32 (n_frames, H, W)` (stacked as channels, as in SyncNet) and the log-mel patch
`float32 (1, n_mels, audio_frames)` (10 ms hop) centred on the middle frame's time. Each stream
maps its window to an L2-normalised embedding `(B, D)`; the distance between a picture window and
a sound window is `1 - cosine` (0 = same direction, 2 = opposite). Training (`learned_train.py`)
pulls aligned pairs together and pushes pairs shifted by >= `min_shift_ms` apart.

`SyncFeatures` is one video decoded once: mouth crops, their timestamps on the audio's clock and
the normalised log-mel of the whole track. Training epochs and the offset search index into it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass
class SyncNetConfig:
    """Everything needed to rebuild the network and its inputs (plain types: stored in the checkpoint)."""

    n_frames: int = 5          # consecutive mouth crops per picture window
    crop_h: int = 20           # mouth crop size the network sees (grey, resized from the tracker's crops)
    crop_w: int = 20
    region: tuple[float, float, float, float] = (0.2, 0.85, 0.15, 0.85)  # rows, cols (fractions) of mouth.py's crop
    motion: bool = True        # feed the n_frames-1 frame differences (lip motion) instead of the frames
    sample_rate: int = 16000   # audio rate for the log-mel
    n_mels: int = 20
    hop_ms: float = 10.0       # log-mel hop: the offset search's finest step
    window_s: float = 0.2      # sound window length, centred on the middle frame
    embed_dim: int = 8         # tiny on purpose: a few seconds of one speaker are memorised by anything bigger
    width: int = 4             # channels of the first conv layer of each stream

    @property
    def audio_frames(self) -> int:
        """Log-mel frames per sound window."""
        return int(round(self.window_s * 1000.0 / self.hop_ms))

    @property
    def video_channels(self) -> int:
        return self.n_frames - 1 if self.motion else self.n_frames

    def to_dict(self) -> dict:
        return asdict(self)


def _block(c_in: int, c_out: int, pool: tuple[int, int] | None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool is not None:
        layers.append(nn.MaxPool2d(pool))
    return layers


class SyncNet(nn.Module):
    """Two small CNN streams -> L2-normalised embeddings `(B, embed_dim)`.

    `embed_video(x)`: `x` float `(B, C, crop_h, crop_w)` from `video_windows` (C = n_frames, or n_frames-1 differences).
    `embed_audio(x)`: `x` float `(B, 1, n_mels, audio_frames)` (standardised log-mel).
    """

    def __init__(self, config: SyncNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or SyncNetConfig()
        c, w = self.config, self.config.width
        self.video = nn.Sequential(
            *_block(c.video_channels, w, (2, 2)), *_block(w, 2 * w, (2, 2)), *_block(2 * w, 3 * w, (2, 2)),
            *_block(3 * w, 4 * w, None), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, c.embed_dim))
        self.audio = nn.Sequential(
            *_block(1, w, (2, 1)), *_block(w, 2 * w, (2, 2)), *_block(2 * w, 3 * w, (2, 2)),
            *_block(3 * w, 4 * w, None), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, c.embed_dim))

    def embed_video(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(self.video(x), dim=1)

    def embed_audio(self, x: Tensor) -> Tensor:
        return nn.functional.normalize(self.audio(x), dim=1)

    def forward(self, video: Tensor, audio: Tensor) -> Tensor:
        """Distance `(B,)` = 1 - cosine between `video (B, C, H, W)` and `audio (B, 1, n_mels, A)` windows."""
        return 1.0 - (self.embed_video(video) * self.embed_audio(audio)).sum(dim=1)


@dataclass
class SyncFeatures:
    """One video's decoded inputs, cached between epochs.

    `crops`: `uint8 (T, crop_h, crop_w)` grey mouth crops; `times`: `float64 (T,)` seconds of each
    frame on the audio's clock; `valid`: `bool (T,)` frames whose crop is a tracked face;
    `mel`: `float32 (n_mels, F)` standardised log-mel, frame `j` centred at `j * hop_ms` ms.
    """

    path: str
    crops: np.ndarray
    times: np.ndarray
    valid: np.ndarray
    mel: np.ndarray
    fps: float
    duration_s: float
    origin_s: float = 0.0  # file-clock time of the audio's first sample (times + origin_s = file clock)

    def centres(self, config: SyncNetConfig) -> np.ndarray:
        """Indices `i` of frames that can centre a picture window: all `n_frames` around `i` exist and are valid."""
        half = config.n_frames // 2
        ok = np.convolve(self.valid.astype(np.int32), np.ones(config.n_frames, np.int32), mode="same") == config.n_frames
        ok[:half] = False
        if half:
            ok[len(ok) - half:] = False
        return np.flatnonzero(ok)


def standardise_mel(mel: np.ndarray, range_db: float = 60.0) -> np.ndarray:
    """`(n_mels, F)` dB log-mel -> floored at `range_db` below its peak (digital silence, e.g. the padding of a
    shifted track, becomes the floor, not -100 dB), per-band median removed, divided by the spread of the
    frames above the floor (robust to level, EQ and long silences)."""
    mel = np.asarray(mel, np.float32)
    if mel.size == 0:
        return mel.copy()
    mel = np.maximum(mel, float(mel.max()) - range_db)
    out = mel - np.median(mel, axis=1, keepdims=True)
    loud = mel.mean(axis=0) > float(mel.max()) - range_db + 1.0
    spread = float(out[:, loud].std()) if loud.sum() >= 2 else float(out.std())
    return (out / max(spread, 1e-3)).astype(np.float32)


def video_windows(features: SyncFeatures, centres: np.ndarray, config: SyncNetConfig,
                  rng: np.random.Generator | None = None) -> Tensor:
    """Picture windows `float32 (N, C, H, W)` around frame indices `centres`, each standardised; with `config.motion`
    the C = n_frames-1 differences of consecutive standardised crops (lip motion, not the face's look).

    `rng` (training): random horizontal flips, a shift of up to 1 px (rows) / 2 px (columns) and pixel noise."""
    half = config.n_frames // 2
    idx = np.asarray(centres)[:, None] + np.arange(-half, config.n_frames - half)[None, :]
    x = torch.from_numpy(features.crops[idx].astype(np.float32))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(4.0)
    x = (x - mean) / std
    if rng is not None:
        flip = torch.from_numpy(rng.random(len(x)) < 0.5)
        x[flip] = x[flip].flip(-1)
        x = torch.roll(x, (int(rng.integers(-1, 2)), int(rng.integers(-2, 3))), dims=(2, 3))
        x = x + 0.2 * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
    return x[:, 1:] - x[:, :-1] if config.motion else x


def audio_starts(times_s: np.ndarray, config: SyncNetConfig) -> np.ndarray:
    """First log-mel frame of the sound window centred at each time in `times_s` (may fall outside the track)."""
    hop = config.hop_ms / 1000.0
    return np.round((np.asarray(times_s, np.float64) - config.window_s / 2.0) / hop).astype(np.int64)


def audio_windows(mel: np.ndarray, starts: np.ndarray, config: SyncNetConfig) -> Tensor:
    """Sound windows `float32 (N, 1, n_mels, audio_frames)` starting at log-mel frames `starts` (all in range)."""
    a = config.audio_frames
    idx = np.asarray(starts)[:, None] + np.arange(a)[None, :]
    return torch.from_numpy(np.ascontiguousarray(mel[:, idx].transpose(1, 0, 2)))[:, None]


def embed_all_audio(model: SyncNet, mel: np.ndarray, batch: int = 512) -> Tensor:
    """Embeddings `(F - audio_frames + 1, D)` of the sound window starting at every log-mel frame."""
    n = mel.shape[1] - model.config.audio_frames + 1
    out = []
    with torch.no_grad():
        for s in range(0, max(n, 0), batch):
            starts = np.arange(s, min(n, s + batch))
            out.append(model.embed_audio(audio_windows(mel, starts, model.config)))
    return torch.cat(out) if out else torch.zeros((0, model.config.embed_dim))


def embed_all_video(model: SyncNet, features: SyncFeatures, centres: np.ndarray, batch: int = 256) -> Tensor:
    """Embeddings `(N, D)` of the picture windows around frame indices `centres`."""
    out = []
    with torch.no_grad():
        for s in range(0, len(centres), batch):
            out.append(model.embed_video(video_windows(features, centres[s:s + batch], model.config)))
    return torch.cat(out) if out else torch.zeros((0, model.config.embed_dim))
