"""Audio-visual clip classifiers: a video model and the audio CNN joined by early, late or attention fusion.

`vidlens emotion train-av --fusion early|late|attention` trains one on labelled clips with sound
(a `manifest.csv` folder such as `vidlens data synth audiovisual` or `vidlens data synth actions
--audio` writes); `--fusion video` and `--fusion audio` train the single-modality baselines the
same way, so the gain of fusion is measured, not assumed. The video side is any registered video
model, the action-recognition ones included (default: TSN over the CPU-sized `small_cnn` frame
encoder), the audio side the log-mel `AudioCNN`; fusion is `vidlens.models.fusion` (docs/audio_fusion.md).
The checkpoint (DESIGN format, `model = "av_fusion"`) stores the spec, so it rebuilds on its own.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from vidlens.errors import CheckpointError, ConfigError

AV_MODES = ("early", "late", "attention", "video", "audio")
AV_MODEL = "av_fusion"  # the `model` name of every train_av checkpoint
SAMPLE_RATE = 16000  # the audio rate of every AV clip


@dataclass
class AVSpec:
    fusion: str = "late"  # early | late | attention, or video | audio alone
    video_model: str = "tsn"  # any registered video model (`vidlens models`): tsn, c3d, r2plus1d_18, ...
    video_args: dict[str, Any] = field(default_factory=lambda: {"encoder": "small_cnn"})  # its builder's arguments
    video_width: float = 0.5  # the video model's width
    audio_width: float = 0.5  # AudioCNN width
    audio_dropout: float = 0.2  # AudioCNN dropout before its classifier
    num_frames: int = 8  # frames per clip, spread over it
    size: int = 48  # frame side, pixels
    n_mels: int = 64
    seconds: float = 1.0  # audio per clip
    options: dict[str, Any] = field(default_factory=dict)  # the fusion class's keyword arguments

    def __post_init__(self) -> None:
        if self.fusion not in AV_MODES:
            raise ConfigError(None, f"fusion must be one of {', '.join(AV_MODES)}, got {self.fusion!r}")

    @property
    def inputs(self) -> tuple[str, ...] | str:
        return self.fusion if self.fusion in ("video", "audio") else ("video", "audio")


def build_av_model(spec: AVSpec, num_classes: int) -> nn.Module:
    """The model for `spec`: `forward(x)` with `x` the `{"video": (B,T,C,H,W), "audio": (B,1,n_mels,frames)}`
    dict (or the one tensor of a single-modality baseline) -> `(B, num_classes)` logits."""
    from vidlens.models import build_model
    from vidlens.models.audio import build_audio_cnn
    from vidlens.models.fusion import build_fusion

    def video() -> nn.Module:
        return build_model(spec.video_model, num_classes, width=spec.video_width, dropout=0.2, **spec.video_args)

    def audio() -> nn.Module:
        return build_audio_cnn(num_classes, width=spec.audio_width, dropout=spec.audio_dropout)

    if spec.fusion == "video":
        return video()
    if spec.fusion == "audio":
        return audio()
    return build_fusion(spec.fusion, {"video": video(), "audio": audio()}, num_classes, **spec.options)


def train_av(root: str | os.PathLike[str], run_dir: str | os.PathLike[str], spec: AVSpec, cfg: Any = None, *,
             progress: bool | None = None) -> Any:
    """Train on `root/manifest.csv` (split `train`; `val`, else `test`, for validation) with the engine's `fit()`."""
    from vidlens.data.multimodal import AudioVisualDataset
    from vidlens.engine.config import TrainConfig
    from vidlens.engine.fit import fit
    from vidlens.engine.state import seed_everything
    from vidlens.tasks.multimodal import MultimodalTask

    cfg = cfg or TrainConfig(epochs=14, batch_size=16, lr=1e-2, weight_decay=1e-4)
    common = dict(num_frames=spec.num_frames, size=spec.size, n_mels=spec.n_mels, seconds=spec.seconds, preload=True)
    train_set = AudioVisualDataset(root, "train", **common)
    val_split = next((s for s in ("val", "test") if len(AudioVisualDataset(root, s))), None)
    val_set = AudioVisualDataset(root, val_split, **common) if val_split else None
    seed_everything(cfg.seed)  # the initial weights too: the same seed gives the same run
    task = MultimodalTask(model=build_av_model(spec, len(train_set.labels)), labels=train_set.labels, inputs=spec.inputs,
                          model_name=AV_MODEL, model_args=asdict(spec),
                          preprocess={"num_frames": spec.num_frames, "size": spec.size, "n_mels": spec.n_mels,
                                      "seconds": spec.seconds, "sample_rate": 16000})
    return fit(task, train_set, val_set, cfg, Path(run_dir), progress=progress)


def load_av_model(path: str | os.PathLike[str]) -> tuple[nn.Module, list[str], AVSpec]:
    """`(model in eval mode, labels, spec)` from a `train_av` checkpoint (weights_only load)."""
    from vidlens.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    if ckpt.get("model") != AV_MODEL:
        raise CheckpointError(path, f"not an audio-visual model (model {ckpt.get('model')!r})")
    spec = AVSpec(**ckpt["model_args"])
    model = build_av_model(spec, len(ckpt["labels"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit the {spec.fusion} model ({str(exc).splitlines()[0]})") from None
    return model.eval(), list(ckpt["labels"]), spec


@dataclass
class AVModel:
    """A loaded `train_av` checkpoint: `model` (eval), its `labels`, its `AVSpec` and where it came from."""

    model: Any
    labels: list[str]
    spec: Any  # vidlens.tasks.audiovisual.AVSpec
    path: str

    @property
    def clip_s(self) -> float:
        return float(self.spec.seconds)


def load_av(path: str | os.PathLike[str]) -> AVModel:
    """Load an audio-visual checkpoint (weights_only); `CheckpointError` with the reason otherwise."""
    try:
        model, labels, spec = load_av_model(path)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:  # a vidlens checkpoint whose spec does not rebuild
        raise CheckpointError(path, f"not a usable audio-visual model ({type(exc).__name__}: {exc})") from None
    return AVModel(model, labels, spec, os.fspath(path))


# ---------------------------------------------------------------- a window of a video, as training clips are read


def window_starts(duration_s: float, clip_s: float, at_most: int | None = None) -> np.ndarray:
    """Starts `(C,)` of windows of `clip_s` tiling `[0, duration_s]`: ceil(duration / clip_s) of them (at most
    `at_most`), spread evenly from 0 to `duration_s - clip_s`."""
    n = max(1, math.ceil(duration_s / clip_s - 1e-6))
    if at_most is not None:
        n = min(n, at_most)
    return np.linspace(0.0, max(0.0, duration_s - clip_s), n)


def read_window_audio(path: str | os.PathLike[str], has_audio: bool) -> tuple[np.ndarray | None, str | None]:
    """The whole sound track as 16 kHz mono `(1,S)` for `window_mel`, or `(None, note)`: without an audio track
    or when it cannot be read, the model hears silence and the note says so."""
    from vidlens.io import read_audio

    if not has_audio:
        return None, "no audio track: the audio-visual model heard silence"
    try:
        return read_audio(path, SAMPLE_RATE, mono=True), None
    except Exception as exc:  # noqa: BLE001 - a broken audio track: the model hears silence, and says so
        return None, f"audio unreadable ({exc}): the audio-visual model heard silence"


def window_frames(index: Any, start_s: float, end_s: float, num_frames: int) -> np.ndarray:
    """`num_frames` frame numbers spread over the frames on screen in `[start_s, end_s)`, first to last,
    rounded: what `AudioVisualDataset` takes from a clip of that span."""
    first, last = index.index_of_time(np.array([start_s, max(start_s, end_s - 1e-6)]))
    return np.linspace(int(first), int(last), num_frames).round().astype(np.int64)


def window_mel(audio: np.ndarray | None, start_s: float, spec: Any) -> np.ndarray:
    """`(1,n_mels,frames)` log-mel of `spec.seconds` of `audio` (16 kHz mono `(1,S)`) from `start_s`, zero-padded."""
    from vidlens.features.audio import log_mel

    want = int(round(spec.seconds * SAMPLE_RATE))
    fixed = np.zeros((1, want), np.float32)
    if audio is not None:
        a = int(round(start_s * SAMPLE_RATE))
        piece = audio[:, max(0, a):max(0, a) + want]
        fixed[:, :piece.shape[1]] = piece
    return log_mel(fixed, SAMPLE_RATE, spec.n_mels)[None]
