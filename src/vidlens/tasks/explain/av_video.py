"""Explaining an audio-visual fusion checkpoint (`vidlens emotion train-av`) on a whole video.

The video is read as the model's training clips were (`AudioVisualDataset`) and as `emotion --av-model`
reads a video without faces: windows of `spec.seconds` over the whole video (at most `MAX_WINDOWS`, spread
from the start to the end), each `spec.num_frames` whole frames (shorter side `spec.size`, RGB in [0,1],
`(T,C,H,W)`) and the log-mel `(1,n_mels,frames)` of its sound (16 kHz mono; silence without an audio track).
Each window is explained with `explain_clip` on the `{"video", "audio"}` input (the fusion explainers:
occlusion = exact Shapley shares of the modalities, integrated-gradients), then put back on the video's clock
as `explain_video` does: heat on the whole frame (`crop_box` = the frame), importance per second weighted by
each window's probability of the target, and the modality shares averaged over the windows.

A video-only baseline (`--fusion video`) is a plain video model: every method that applies to it works.
An audio-only baseline has no picture to explain and is refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from vidlens.errors import ConfigError, VidlensError
from vidlens.tasks.explain.base import ClipExplanation, applicable_methods, explain_clip

MAX_WINDOWS = 10  # as whole-video predictions: up to 10 views spread over the video


def is_av_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is an audio-visual checkpoint (a `.pt` whose model is `av_fusion`); False when it cannot
    be read (the classifier loader then says why)."""
    from pathlib import Path

    from vidlens.engine.checkpoint import load_checkpoint
    from vidlens.tasks.audiovisual import AV_MODEL

    if Path(path).suffix.lower() == ".onnx":
        return False
    try:
        return load_checkpoint(path).get("model") == AV_MODEL
    except (VidlensError, OSError):
        return False


def default_method(model: torch.nn.Module) -> str:
    """Grad-CAM where it applies, else the first method that does (occlusion for fusion models)."""
    methods = applicable_methods(model)
    if "gradcam" in methods:
        return "gradcam"
    if not methods:
        raise ConfigError(None, f"no explanation method applies to {type(model).__name__}")
    return methods[0]


def explain_av_video(
    av: Any,
    path: str | os.PathLike[str],
    *,
    method: str | None = None,
    target: str | int | None = None,
    clips: int | None = None,
    progress: Any = None,
    **options: Any,
) -> Any:
    """Explain an audio-visual model's decision on one video (see the module docstring) -> `VideoExplanation`
    with `modalities` (each modality's share, mean over the windows). `av`: a checkpoint path or a loaded
    `tasks.audiovisual.AVModel` (`load_av`, as the service's emotion models hold it).
    `clips`: windows explained (default: to tile the video, at most 10). Errors as `explain_video`'s."""
    from vidlens.io import frame_index, probe, read_clip
    from vidlens.tasks.audiovisual import AV_MODEL, load_av, read_window_audio, window_frames, window_mel, window_starts
    from vidlens.tasks.explain.video import (MIN_FRAMES, VideoExplanation, combine_clips, merged_notes, per_second,
                                             resolve_target)

    if isinstance(av, (str, os.PathLike)):
        av = load_av(av)
    spec = av.spec
    if spec.fusion == "audio":
        raise ConfigError(av.path, "an audio-only model: there is no picture to explain (its decision rests on the "
                                   "sound alone)")
    method = method or default_method(av.model)
    if method not in applicable_methods(av.model):
        raise ConfigError(None, f"{method!r} does not apply to this {spec.fusion} model; use one of: "
                                f"{', '.join(applicable_methods(av.model))}")
    if isinstance(target, str):
        resolve_target(target, av.labels, np.zeros(len(av.labels)))
    if clips is not None and clips < 1:
        raise ConfigError(None, f"clips must be at least 1, got {clips}")
    path = os.fspath(path)
    info = probe(path)
    index = frame_index(path)
    times = index.times
    if times.size < MIN_FRAMES:
        raise VidlensError(path, f"too short to explain: {times.size} frame(s), need at least {MIN_FRAMES}")
    duration = max(float(info.duration_s), float(times[-1]) + 1.0 / (info.fps or 25.0))
    clip_s = float(spec.seconds)
    starts = window_starts(duration, clip_s, at_most=clips or MAX_WINDOWS)
    frames = np.stack([window_frames(index, s, s + clip_s, spec.num_frames) for s in starts])  # (C,T)
    wanted = np.unique(frames)
    decoded = dict(zip(wanted.tolist(), read_clip(path, wanted, size=spec.size)))  # whole frames, shorter side = size
    video = torch.from_numpy(np.stack([np.stack([decoded[int(j)] for j in row]) for row in frames]))
    video = video.permute(0, 1, 4, 2, 3).float() / 255.0  # (C,T,3,H,W)
    notes: list[str] = []
    audio = None
    if spec.fusion != "video":
        audio, note = read_window_audio(path, info.has_audio)
        notes += [note] if note else []
        mels = torch.from_numpy(np.stack([window_mel(audio, float(s), spec) for s in starts]))  # (C,1,n_mels,frames)

    def clip_input(i: int) -> Any:
        v = video[i:i + 1].clone()
        return v if spec.fusion == "video" else {"video": v, "audio": mels[i:i + 1].clone()}

    with torch.inference_mode():
        x = video if spec.fusion == "video" else {"video": video, "audio": mels}
        clip_all = torch.softmax(av.model(x).float(), dim=-1).numpy()  # (C,K)
    probs = clip_all.mean(axis=0)
    k = resolve_target(target, av.labels, probs)
    explained: list[ClipExplanation] = []
    for i in range(len(starts)):
        explained.append(explain_clip(av.model, clip_input(i), target=k, method=method, **options))
        if progress is not None:
            progress(i + 1, len(starts))
    result = combine_clips(explained, frames, times, clip_all[:, k])
    ends = np.minimum(starts + clip_s, duration)
    seconds, temporal, covered = per_second(result["times"], result["importance"], duration, starts, ends)
    h, w = video.shape[-2:]
    notes.append(f"audio-visual model ({spec.fusion}): {len(starts)} window(s) of {clip_s:g} s, {spec.num_frames} whole "
                 f"frames each (shorter side {spec.size} px), as `emotion --av-model` reads a video without faces; "
                 f"windows weighted by their probability of {av.labels[k]!r}")
    return VideoExplanation(
        path=path, method=method, labels=list(av.labels), target=k, probability=float(probs[k]), probs=probs,
        fps=float(info.fps), duration_s=float(info.duration_s), frame_size=(int(h), int(w)),
        frame_indices=result["frames"], frame_times=result["times"], heat=result["heat"],
        frame_importance=result["importance"], seconds=seconds, temporal=temporal, covered=covered,
        crop_box=(0.0, 0.0, 1.0, 1.0), clips=explained, clip_frames=frames, clip_starts_s=starts, clip_ends_s=ends,
        clip_probs=clip_all[:, k], modalities=result["modalities"], notes=merged_notes(explained) + notes,
        model_name=f"{AV_MODEL} ({spec.fusion})", checkpoint=av.path,
    )
