"""Explaining a whole video: a checkpoint's clips over the file -> per-frame heat and importance per second.

`explain_video(checkpoint_or_classifier, path, method="gradcam", target=...)` makes the clips the
predictor makes (`vidlens.tasks.predictor.whole_video_clips`: up to 10 clips spread from the first frame to
the last, the checkpoint's sampler, decode size and normalisation; the centre crop only), explains each
with `explain_clip`, and puts them back on the video's own clock:

- per explained source frame: heat `(N,S,S)` (the model's centre crop, S = its input size; where that crop
  lies in the frame is `crop_box`) and importance `(N,)`. A frame in several clips gets their average heat.
- importance per second `(ceil(duration),)`, summing to 1: a clip's temporal curve (how much each of its
  frames drove its decision) weighted by the clip's share of the target's probability (the whole-video
  probability is the clips' mean, so a clip that does not see the class counts for little).

The target is the whole-video top class unless named (`target="label"` or an index). Nothing is written
here; `vidlens.tasks.explain.outputs.write_explanation` writes the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlens.errors import ConfigError, VidlensError
from vidlens.tasks.explain.base import ClipExplanation, explain_clip

__all__ = ["MIN_FRAMES", "VideoExplanation", "explain_video", "load_explainable", "resolve_target"]

MIN_FRAMES = 2  # a video with fewer frames has no "when" to explain
GRADIENT_METHODS = ("gradcam", "gradcam++", "integrated-gradients", "attention")
Progress = Callable[[int, int], None]  # (clips done, clips in all)


@dataclass
class VideoExplanation:
    """Where and when a classifier looked in one video, for one target class.

    Layouts: `frame_indices`/`frame_times` `(N,)` the explained source frames (sorted, unique; seconds from
    the first frame); `heat` `(N,S,S)` float32 in [0,1] on the model's centre crop (None when the method has
    no spatial map); `frame_importance` `(N,)` >= 0 summing to 1; `seconds` `(D,)` start of each second,
    `temporal` `(D,)` importance of each second (sums to 1), `covered` `(D,)` whether a clip saw it;
    `clip_frames` `(C,T)` source frames of each clip, `clip_probs` `(C,)` each clip's target probability,
    `probs` `(K,)` the clips' mean probabilities. `crop_box` `(x0,y0,x1,y1)`: where the heat lies in the
    frame, as fractions of its width and height.
    """

    path: str
    method: str
    labels: list[str]
    target: int
    probability: float
    probs: np.ndarray
    fps: float
    duration_s: float
    frame_size: tuple[int, int]  # (height, width) as decoded for the model
    frame_indices: np.ndarray
    frame_times: np.ndarray
    heat: np.ndarray | None
    frame_importance: np.ndarray
    seconds: np.ndarray
    temporal: np.ndarray
    covered: np.ndarray
    crop_box: tuple[float, float, float, float]
    clips: list[ClipExplanation]
    clip_frames: np.ndarray
    clip_starts_s: np.ndarray
    clip_ends_s: np.ndarray
    clip_probs: np.ndarray
    modalities: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model_name: str = ""
    checkpoint: str = ""
    members: list[dict[str, Any]] = field(default_factory=list)  # an ensemble's members: checkpoint, model, weight, ...

    @property
    def label(self) -> str:
        return self.labels[self.target]

    def top_seconds(self, k: int = 3) -> list[int]:
        """The `k` seconds that drove the decision most, most important first."""
        order = np.argsort(-self.temporal, kind="stable")
        return [int(s) for s in order[:k] if self.temporal[s] > 0]

    def to_json(self) -> dict[str, Any]:
        """The document of explanation.json (heat maps themselves go to heat.npz)."""
        r3 = lambda x: round(float(x), 3)  # noqa: E731
        top = np.argsort(-self.probs)[:5]
        return {
            "video": self.path, "checkpoint": self.checkpoint, "model": self.model_name, "method": self.method,
            "target": {"index": self.target, "label": self.label, "probability": round(self.probability, 6)},
            "top": [{"label": self.labels[i], "score": round(float(self.probs[i]), 6)} for i in top],
            "fps": r3(self.fps), "duration_s": r3(self.duration_s), "crop_box": [round(v, 4) for v in self.crop_box],
            "has_heat": self.heat is not None,
            "seconds": [{"start_s": r3(s), "end_s": r3(min(s + 1.0, max(self.duration_s, s))),
                         "importance": round(float(v), 6), "covered": bool(c)}
                        for s, v, c in zip(self.seconds, self.temporal, self.covered)],
            "top_seconds": self.top_seconds(),
            "frames": [{"frame": int(f), "time_s": r3(t), "importance": round(float(v), 6)}
                       for f, t, v in zip(self.frame_indices, self.frame_times, self.frame_importance)],
            "clips": [{"start_s": r3(a), "end_s": r3(b), "start_frame": int(fr.min()), "end_frame": int(fr.max()),
                       "probability": round(float(p), 6), "notes": c.notes}
                      for a, b, fr, p, c in zip(self.clip_starts_s, self.clip_ends_s, self.clip_frames, self.clip_probs,
                                                self.clips)],
            "modalities": {k: round(float(v), 6) for k, v in self.modalities.items()},
            "notes": self.notes,
            **({"members": self.members} if self.members else {}),
        }


def resolve_target(target: str | int | None, labels: list[str], probs: np.ndarray) -> int:
    """A class index from a label name, an index (an int or a digit string that is not a label), or None (top class)."""
    if target is None:
        return int(np.argmax(probs))
    if isinstance(target, str):
        if target in labels:
            return labels.index(target)
        if not target.strip().isdigit():
            raise ConfigError(None, f"unknown label {target!r}; the model's labels: {', '.join(labels)}")
        target = int(target)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < len(labels):
        raise ConfigError(None, f"target must be a label or an index in [0, {len(labels)}), got {target!r}; "
                                f"the model's labels: {', '.join(labels)}")
    return int(target)


def _members(source: Any) -> tuple[list[Any], list[float]]:
    """(members as LoadedClassifier, their weights) from a checkpoint path, a LoadedClassifier or a VideoClassifier."""
    from vidlens.tasks.backends import LoadedClassifier
    from vidlens.tasks.predictor import VideoClassifier, load_classifier

    if isinstance(source, (str, os.PathLike)):
        return [load_classifier(source)], [1.0]
    if isinstance(source, LoadedClassifier):
        return [source], [1.0]
    if isinstance(source, VideoClassifier):
        return list(source.members), list(source.weights)
    raise ConfigError(None, f"explain_video takes a checkpoint path or a loaded classifier, got {type(source).__name__}")


@dataclass
class _Prepared:
    """One member's clips of the video, read and normalised as its predictor reads them, and their probabilities."""

    member: Any
    frames: np.ndarray  # (C,T) source frame indices
    batch: torch.Tensor  # (C,T,3,S,S) normalised, centre crop
    clip_probs: np.ndarray  # (C,K) in the member's label order
    frame_hw: tuple[int, int]
    centre: Any  # the eval TransformConfig with the centre crop


def _prepare(member: Any, path: str, info: Any, times: np.ndarray, clips: int | None) -> _Prepared:
    from vidlens.data.samplers import SamplerConfig, resample_indices, sample_indices
    from vidlens.data.transforms import TransformConfig, build_eval_transform
    from vidlens.io import read_clip
    from vidlens.tasks.predictor import whole_video_clips

    ticks = resample_indices(times.size, info.fps, member.sampler.fps).size
    n = whole_video_clips(member.sampler, ticks, clips)
    sampler = SamplerConfig.from_dict({**member.sampler.to_dict(), "num_clips": n})
    frames = sample_indices(sampler, times.size, info.fps, train=False).reshape(-1, sampler.clip_len)  # (C,T)
    images = read_clip(path, frames.reshape(-1), size=member.decode_size)  # (C*T,H,W,3) uint8
    _, h, w, c = images.shape
    video = torch.from_numpy(images).permute(0, 3, 1, 2).reshape(len(frames), sampler.clip_len, c, h, w)
    centre = TransformConfig.from_dict({**member.transform.to_dict(), "test_crop": "center"})
    transform = build_eval_transform(centre)
    batch = torch.stack([transform(clip)[0] for clip in video])  # (C,T,3,S,S) normalised
    with torch.inference_mode():
        logits = torch.cat([member.model(batch[i : i + 8]) for i in range(0, len(batch), 8)]).float()
    clip_probs = (torch.sigmoid(logits) if member.multi_label else torch.softmax(logits, dim=-1)).cpu().numpy()
    return _Prepared(member, frames, batch, clip_probs, (int(h), int(w)), centre)


def _explain_member(prep: _Prepared, k: int, path: str, info: Any, times: np.ndarray, method: str,
                    progress: Progress | None, options: dict[str, Any]) -> VideoExplanation:
    """Explain one member's prepared clips for its class index `k` and put them on the video's clock."""
    member, frames = prep.member, prep.frames
    probs = prep.clip_probs.mean(axis=0)
    explained: list[ClipExplanation] = []
    for i in range(len(prep.batch)):
        explained.append(explain_clip(member.model, prep.batch[i : i + 1].clone(), target=k, method=method, **options))
        if progress is not None:
            progress(i + 1, len(prep.batch))
    result = combine_clips(explained, frames, times, prep.clip_probs[:, k])
    tick_s = 1.0 / (member.sampler.fps or info.fps or 25.0)
    starts = times[frames.min(axis=1)]
    ends = np.minimum(times[frames.max(axis=1)] + tick_s, max(info.duration_s, float(times[-1]) + tick_s))
    duration = max(float(info.duration_s), float(times[-1]) + 1.0 / (info.fps or 25.0))
    seconds, temporal, covered = per_second(result["times"], result["importance"], duration, starts, ends)
    h, w = prep.frame_hw
    return VideoExplanation(
        path=path, method=method, labels=list(member.labels), target=k, probability=float(probs[k]), probs=probs,
        fps=float(info.fps), duration_s=float(info.duration_s), frame_size=(h, w),
        frame_indices=result["frames"], frame_times=result["times"], heat=result["heat"],
        frame_importance=result["importance"], seconds=seconds, temporal=temporal, covered=covered,
        crop_box=crop_box(h, w, prep.centre.eval_resize, prep.centre.size), clips=explained, clip_frames=frames,
        clip_starts_s=starts, clip_ends_s=ends, clip_probs=prep.clip_probs[:, k], modalities=result["modalities"],
        notes=merged_notes(explained) + [
            f"{len(explained)} clip(s) of {frames.shape[1]} frames, centre crop {prep.centre.size}x{prep.centre.size}; "
            f"clips weighted by their probability of {member.labels[k]!r}"],
        model_name=member.model_name, checkpoint=member.path,
    )


def crop_box(frame_h: int, frame_w: int, eval_resize: int, size: int) -> tuple[float, float, float, float]:
    """Where the eval transform's centre crop (shorter side -> `eval_resize`, then `size` x `size`) lies in a
    `frame_h` x `frame_w` frame, as fractions `(x0, y0, x1, y1)`."""
    scale = max(eval_resize, size) / min(frame_h, frame_w)  # clips smaller than the crop are resized up
    side = size / scale
    x0, y0 = max(0.0, (frame_w - side) / 2), max(0.0, (frame_h - side) / 2)
    return (x0 / frame_w, y0 / frame_h, min(1.0, (x0 + side) / frame_w), min(1.0, (y0 + side) / frame_h))


def load_explainable(path: str | os.PathLike[str] | list[str | os.PathLike[str]]) -> Any:
    """What `explain_video` takes, from files: an `AVModel` for an audio-visual checkpoint (`emotion
    train-av`), else the classifier (`load_classifier`: a vidlens checkpoint or an exported ONNX file); several
    paths: an ensemble (`VideoClassifier`, equal weights) of classifiers."""
    from vidlens.tasks.audiovisual import load_av
    from vidlens.tasks.explain.av_video import is_av_checkpoint
    from vidlens.tasks.predictor import VideoClassifier, load_classifier

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ConfigError(None, "no checkpoint given")
    if len(paths) == 1:
        return load_av(paths[0]) if is_av_checkpoint(paths[0]) else load_classifier(paths[0])
    for p in paths:
        if is_av_checkpoint(p):
            raise ConfigError(p, "an audio-visual checkpoint cannot be part of an ensemble: explain it on its own")
    return VideoClassifier.from_checkpoints(paths)


def explain_video(
    classifier_or_checkpoint: Any,
    path: str | os.PathLike[str],
    *,
    method: str | None = None,
    target: str | int | None = None,
    clips: int | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> VideoExplanation:
    """Explain a classifier's decision on one video (see the module docstring).

    `classifier_or_checkpoint`: a checkpoint path, a `LoadedClassifier`, a `VideoClassifier` (an ensemble:
    every member is explained for the ensemble's target and the results are averaged with the ensemble's
    weights, `ensemble.combine_members`) or an audio-visual `AVModel` (handed to `av_video.explain_av_video`).
    `method`: default Grad-CAM (occlusion for fusion models). `clips`: how many clips (default: as the
    predictor chooses). `options` go to the explainer. Unreadable files raise `VideoDecodeError`, videos under
    `MIN_FRAMES` frames `VidlensError`, an unknown label or method `ConfigError` naming what exists.
    """
    from vidlens.io import frame_index, probe
    from vidlens.tasks.backends import OnnxModule
    from vidlens.tasks.audiovisual import AVModel
    from vidlens.tasks.explain.av_video import explain_av_video, is_av_checkpoint

    source = classifier_or_checkpoint
    if isinstance(source, AVModel) or (isinstance(source, (str, os.PathLike)) and is_av_checkpoint(source)):
        return explain_av_video(source, path, method=method, target=target, clips=clips, progress=progress, **options)
    method = method or "gradcam"
    members, weights = _members(source)
    for member in members:
        if isinstance(member.model, OnnxModule) and method in GRADIENT_METHODS:
            raise ConfigError(member.path, f"an exported ONNX model has no gradients for {method!r}: explain its .pt "
                                           "checkpoint, or use method 'occlusion'")
    labels = list(members[0].labels)
    if isinstance(target, str):  # fail on a bad label before any decoding
        resolve_target(target, labels, np.zeros(len(labels)))
    path = os.fspath(path)
    info = probe(path)  # VideoDecodeError naming the file when it is not a readable video
    times = frame_index(path).times
    if times.size < MIN_FRAMES:
        raise VidlensError(path, f"too short to explain: {times.size} frame(s), need at least {MIN_FRAMES}")
    if clips is not None and clips < 1:
        raise ConfigError(None, f"clips must be at least 1, got {clips}")
    prepared = [_prepare(member, path, info, times, clips) for member in members]
    fused = sum(w * p.clip_probs.mean(axis=0)[[p.member.labels.index(name) for name in labels]]
                for w, p in zip(weights, prepared, strict=True))
    name = labels[resolve_target(target, labels, fused)]
    done = [0] * len(prepared)

    def report(i: int) -> Progress | None:
        if progress is None:
            return None

        def member_progress(n: int, _total: int) -> None:
            done[i] = n
            progress(sum(done), sum(len(p.batch) for p in prepared))
        return member_progress

    parts = [_explain_member(p, p.member.labels.index(name), path, info, times, method, report(i), options)
             for i, p in enumerate(prepared)]
    if len(parts) == 1:
        return parts[0]
    from vidlens.tasks.explain.ensemble import combine_members

    return combine_members(parts, weights, labels, fused)


def combine_clips(explained: list[ClipExplanation], frames: np.ndarray, times: np.ndarray,
             clip_probs: np.ndarray) -> dict[str, Any]:
    """Per unique source frame: heat (weighted mean over the clips that hold it) and importance (summed); and
    each modality's share, the mean over the clips that have shares (fusion models)."""
    unique, inverse = np.unique(frames.reshape(-1), return_inverse=True)
    inverse = inverse.reshape(frames.shape)
    total = float(clip_probs.sum())
    weights = clip_probs / total if total > 0 else np.full(len(clip_probs), 1.0 / len(clip_probs))
    importance = np.zeros(len(unique), dtype=np.float64)
    has_heat = all(c.heat is not None for c in explained)
    heat = None
    if has_heat:
        size = explained[0].heat.shape[1:]
        heat = np.zeros((len(unique), *size), dtype=np.float64)
        mass = np.zeros(len(unique), dtype=np.float64)
    for ci, clip in enumerate(explained):
        temporal = np.asarray(clip.temporal, dtype=np.float64).reshape(-1)
        np.add.at(importance, inverse[ci], weights[ci] * temporal)
        if heat is not None:
            wc = max(float(weights[ci]), 1e-12)
            np.add.at(heat, inverse[ci], wc * np.asarray(clip.heat, dtype=np.float64))
            np.add.at(mass, inverse[ci], wc)
    if heat is not None:
        heat = (heat / np.maximum(mass, 1e-12)[:, None, None]).astype(np.float32)
    importance = importance / importance.sum() if importance.sum() > 0 else np.full(len(unique), 1.0 / len(unique))
    shares = [c.modalities for c in explained if c.modalities]
    modalities = {key: float(np.mean([m.get(key, 0.0) for m in shares])) for key in shares[0]} if shares else {}
    return {"frames": unique.astype(np.int64), "times": times[unique].astype(np.float64), "heat": heat,
            "importance": importance.astype(np.float32), "modalities": modalities}


def merged_notes(explained: list[ClipExplanation]) -> list[str]:
    """The clips' notes, each once in first-seen order; one that only some clips have says how many."""
    counts: dict[str, int] = {}
    for clip in explained:
        for note in dict.fromkeys(clip.notes):
            counts[note] = counts.get(note, 0) + 1
    shared = [note if n == len(explained) else f"{note} ({n} of {len(explained)} clips)" for note, n in counts.items()
              if n > 1 or len(explained) == 1]
    single = [f"{note} (1 of {len(explained)} clips)" for note, n in counts.items() if n == 1 and len(explained) > 1]
    if len(single) > 2:  # per-clip figures (e.g. integrated gradients' completeness): two, and a count
        single = single[:2] + [f"and {len(single) - 2} more notes of single clips (see each clip's notes)"]
    return shared + single


def per_second(frame_times: np.ndarray, importance: np.ndarray, duration_s: float, starts: np.ndarray,
               ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(second starts `(D,)`, importance per second `(D,)` summing to 1, seconds a clip covered `(D,)`)."""
    count = max(1, int(np.ceil(duration_s - 1e-9)))
    seconds = np.arange(count, dtype=np.float64)
    bins = np.clip(np.floor(frame_times).astype(np.int64), 0, count - 1)
    temporal = np.bincount(bins, weights=importance.astype(np.float64), minlength=count)
    temporal = temporal / temporal.sum() if temporal.sum() > 0 else temporal
    covered = np.array([bool(np.any((starts < s + 1.0) & (ends > s))) for s in seconds])
    return seconds, temporal.astype(np.float32), covered


def default_out_name(path: str | os.PathLike[str]) -> str:
    """The folder name used for a video's explanation beside other outputs: `<stem>_explain`."""
    return f"{Path(path).stem}_explain"
