"""The voice branch of `vidlens emotion`: an audio emotion model on 1-second log-mel windows.

Training (`train_voice_model`): the `AudioCNN` of `vidlens.models.audio` on the audio of labelled
clips listed in a `manifest.csv` folder (the synthetic audio-visual set's layout,
`vidlens data synth audiovisual`, or your own): the audio-only mode of `vidlens.tasks.audiovisual`
(`AVSpec(fusion="audio")`), so the checkpoint (`model = "av_fusion"`) carries its labels and the
log-mel settings.

Inference (`voice_emotion_per_second`): each whole second of the track in which voice activity
covers at least `min_voice` of the time is classified. A model whose labels are emotions is used
as is; a sentiment model (`negative`, `neutral`, `positive`, like the synthetic set) is mapped onto
emotions as negative -> sad, neutral -> neutral, positive -> happy, so it can be fused with faces.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from vidlens.errors import CheckpointError

VOICE_RATE = 16000  # Hz: what `AudioVisualDataset` decodes audio at
SENTIMENT_TO_EMOTION = {"negative": "sad", "neutral": "neutral", "positive": "happy"}


def load_voice_model(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, list[str], dict[str, Any]]:
    """`(AudioCNN in eval mode, labels, preprocess)` from a `train_voice_model` checkpoint (weights_only load)."""
    from vidlens.tasks.audiovisual import load_av_model

    model, labels, spec = load_av_model(path)
    if spec.fusion != "audio":
        raise CheckpointError(path, f"not a voice model (a {spec.fusion} audio-visual model); train one with vidlens emotion train-voice")
    return model, labels, {"sample_rate": VOICE_RATE, "n_mels": spec.n_mels, "window_s": spec.seconds}


def voice_emotion_per_second(
    checkpoint: str | os.PathLike[str],
    audio: np.ndarray,
    sample_rate: int,
    segments: list[tuple[float, float]],
    labels: list[str],
    *,
    min_voice: float = 0.3,
    loaded: tuple[torch.nn.Module, list[str], dict[str, Any]] | None = None,
) -> dict[int, np.ndarray]:
    """`{second: (K,) probabilities over labels}` for seconds of `audio (1,S)` with enough voice in `segments`.

    `loaded`: the model already loaded from `checkpoint` (`load_voice_model`), else it loads here.
    """
    from vidlens.features.audio import log_mel

    model, model_labels, pre = loaded or load_voice_model(checkpoint)
    columns = _columns(model_labels, labels, checkpoint)
    rate = int(pre.get("sample_rate", sample_rate))
    if rate != sample_rate:
        raise CheckpointError(checkpoint, f"the voice model expects {rate} Hz audio, got {sample_rate} Hz")
    total_s = audio.shape[-1] / sample_rate
    out: dict[int, np.ndarray] = {}
    for second in range(int(np.ceil(total_s))):
        covered = sum(max(0.0, min(b, second + 1) - max(a, second)) for a, b in segments)
        if covered < min_voice:
            continue
        window = np.zeros((1, sample_rate), np.float32)
        chunk = audio[:, second * sample_rate:(second + 1) * sample_rate]
        window[:, :chunk.shape[1]] = chunk
        mel = torch.from_numpy(log_mel(window, sample_rate, int(pre.get("n_mels", 64))))[None, None]
        with torch.inference_mode():
            p = torch.softmax(model(mel).float(), dim=-1)[0].numpy()
        mapped = np.zeros(len(labels), np.float32)
        for source, target in enumerate(columns):
            mapped[target] += p[source]
        out[second] = mapped
    return out


def _columns(model_labels: list[str], labels: list[str], checkpoint: str | os.PathLike[str]) -> list[int]:
    """Where each of the voice model's classes goes among the face labels."""
    names = [label if label in labels else SENTIMENT_TO_EMOTION.get(label, "") for label in model_labels]
    if any(name not in labels for name in names):
        raise CheckpointError(checkpoint, f"voice model labels {model_labels} are neither emotions ({', '.join(labels)}) "
                                          "nor sentiments (negative, neutral, positive)")
    return [labels.index(name) for name in names]


def train_voice_model(root: str | os.PathLike[str], run_dir: str | os.PathLike[str], cfg: Any = None, *,
                      width: float = 0.5, n_mels: int = 64, progress: bool | None = None) -> Any:
    """Train the audio CNN on `root/manifest.csv` (splits `train`, and `val` or `test` for validation)."""
    from vidlens.engine.config import TrainConfig
    from vidlens.tasks.audiovisual import AVSpec, train_av

    # One tiny frame per clip: the audio-only model never looks at it.
    spec = AVSpec(fusion="audio", audio_width=width, audio_dropout=0.3, n_mels=n_mels, num_frames=1, size=16)
    return train_av(root, run_dir, spec, cfg or TrainConfig(epochs=10, batch_size=16, lr=1e-2, optimizer="adamw"),
                    progress=progress)
