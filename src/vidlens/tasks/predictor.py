"""Using trained classifiers on new videos: per-video labels, ensembles and timelines.

Everything about how a clip is made (labels, fps, clip length, stride, decode size, crop,
normalisation) comes from the checkpoint, never from flags that could drift. Several
checkpoints form an ensemble: each sees the video through its own preprocessing and
their probabilities are averaged with weights.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlens.data.datasets import VideoClipDataset
from vidlens.data.records import VideoRecord
from vidlens.data.samplers import SamplerConfig
from vidlens.data.transforms import TransformConfig, build_eval_transform
from vidlens.engine.checkpoint import load_checkpoint
from vidlens.errors import CheckpointError, ConfigError, VidlensError
from vidlens.io import iter_frames, probe
from vidlens.models import build_model
from vidlens.tasks.classify import view_probabilities


@dataclass
class LoadedClassifier:
    """One checkpoint, rebuilt: the model in eval mode and how it wants its clips."""

    path: str
    model: nn.Module
    labels: list[str]
    sampler: SamplerConfig
    transform: TransformConfig
    decode_size: int | None
    multi_label: bool
    model_name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the training recipe ("recipe"), when the checkpoint has one

    @property
    def clip_fps(self) -> float | None:
        return self.sampler.fps


def load_classifier(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    num_clips: int | None = None,
    test_crop: str | None = None,
) -> LoadedClassifier:
    """Rebuild a classifier from a checkpoint (read with `weights_only=True`) or an exported `.onnx` file.

    `num_clips`/`test_crop` override the test views only (K clips x 1 or 3 crops); the way a
    single clip is made is the checkpoint's.
    """
    if Path(path).suffix.lower() == ".onnx":
        # An exported model (`vidlens export`): labels and preprocessing come from its metadata.
        from vidlens.deploy.runtime import load_onnx_classifier

        return load_onnx_classifier(path, num_clips=num_clips, test_crop=test_crop)
    ckpt = load_checkpoint(path, map_location="cpu")
    labels = list(ckpt["labels"])
    pre = ckpt["preprocess"]
    sampler, transform = clip_configs(path, pre, num_clips=num_clips, test_crop=test_crop)
    args = dict(ckpt["model_args"])
    try:
        model = build_model(ckpt["model"], len(labels), load_weights=False, **args)
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, ConfigError) as exc:
        raise CheckpointError(path, f"weights do not fit model {ckpt['model']} ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return LoadedClassifier(
        path=os.fspath(path),
        model=model,
        labels=labels,
        sampler=sampler,
        transform=transform,
        decode_size=pre.get("decode_size"),
        multi_label=bool(args.get("multi_label", False)),
        model_name=ckpt["model"],
        metrics=dict(ckpt.get("metrics") or {}),
        config=dict(ckpt.get("recipe") or {}),
    )


def clip_configs(
    path: str | os.PathLike[str], preprocess: dict[str, Any], *, num_clips: int | None = None, test_crop: str | None = None
) -> tuple[SamplerConfig, TransformConfig]:
    """The sampler and transform configs of a checkpoint's `preprocess` entry, with the test-view overrides."""
    try:
        sampler = SamplerConfig.from_dict(preprocess["sampler"])
        transform = TransformConfig.from_dict(preprocess["transform"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(path, f"preprocess section is incomplete ({exc})") from None
    if num_clips is not None:
        sampler = SamplerConfig.from_dict({**sampler.to_dict(), "num_clips": int(num_clips)})
    if test_crop is not None:
        transform = TransformConfig.from_dict({**transform.to_dict(), "test_crop": test_crop})
    return sampler, transform


@dataclass
class Segment:
    """A stretch of video with one label: times in seconds (3 decimals) and frame numbers at the source rate."""

    start_s: float
    end_s: float
    label: str
    score: float
    start_frame: int = 0
    end_frame: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_s": round(self.start_s, 3),
            "end_s": round(self.end_s, 3),
            "label": self.label,
            "score": round(self.score, 4),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
        }


@dataclass
class Timeline:
    """Window-by-window probabilities of a long video and the labelled segments merged from them."""

    path: str
    labels: list[str]
    centers_s: np.ndarray  # (W,) window centres, seconds
    window_s: float
    probs: np.ndarray  # (W, K) smoothed probabilities
    segments: list[Segment]
    duration_s: float
    fps: float


class VideoClassifier:
    """One checkpoint or an ensemble of several, with per-member weights (normalised to sum 1)."""

    def __init__(self, members: list[LoadedClassifier], weights: list[float] | None = None) -> None:
        if not members:
            raise ConfigError(None, "no checkpoint given")
        self.members = members
        self.labels = list(members[0].labels)
        for m in members[1:]:
            if sorted(m.labels) != sorted(self.labels):
                raise CheckpointError(m.path, f"its labels differ from {members[0].path}'s: an ensemble needs the same classes")
            if m.multi_label != members[0].multi_label:
                raise CheckpointError(m.path, "mixes multi-label and single-label models in one ensemble")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(None, f"need {len(members)} non-negative weights, got {weights}")
        self.weights = [w / sum(weights) for w in weights]
        # Column order of each member's outputs in terms of self.labels.
        self._order = [[m.labels.index(name) for name in self.labels] for m in members]

    @classmethod
    def from_checkpoints(cls, paths: list[str | os.PathLike[str]], weights: list[float] | None = None, **kwargs: Any) -> VideoClassifier:
        return cls([load_classifier(p, **kwargs) for p in paths], weights)

    @property
    def multi_label(self) -> bool:
        return self.members[0].multi_label

    def fuse(self, member_probs: list[np.ndarray]) -> np.ndarray:
        """Weighted average of per-member probabilities `(..., K)`, columns in `self.labels` order."""
        return sum(w * p[..., order] for w, p, order in zip(self.weights, member_probs, self._order, strict=True))

    # ------------------------------------------------------------------ per video

    def predict_proba(self, path: str | os.PathLike[str]) -> np.ndarray:
        """`(K,)` probabilities for one video, averaged over the test views and the members."""
        return self.fuse([self._member_proba(m, os.fspath(path)) for m in self.members])

    def _member_proba(self, member: LoadedClassifier, path: str) -> np.ndarray:
        dataset = VideoClipDataset(
            [VideoRecord(path, 0)], ["_"], member.sampler, build_eval_transform(member.transform),
            train=False, decode_size=member.decode_size, max_retries=0,
        )
        video = dataset[0]["video"]  # (V, T, C, H, W); an unreadable file raises, never substitutes
        with torch.inference_mode():
            probs = view_probabilities(member.model, video[None], member.multi_label)
        return probs[0].float().cpu().numpy()

    def predict(self, path: str | os.PathLike[str], top_k: int = 5) -> dict[str, Any]:
        """`{"path", "top": [{"label", "score"}...]}` for one video; errors become `{"path", "error"}`."""
        try:
            probs = self.predict_proba(path)
        except VidlensError as exc:
            return {"path": os.fspath(path), "error": exc.reason}
        order = np.argsort(-probs)[: max(1, top_k)]
        return {"path": os.fspath(path), "top": [{"label": self.labels[i], "score": round(float(probs[i]), 6)} for i in order]}

    # ------------------------------------------------------------------ timelines

    def timeline(
        self,
        path: str | os.PathLike[str],
        *,
        hop_s: float | None = None,
        smooth: int = 3,
        min_segment_s: float = 0.0,
        batch_size: int = 8,
    ) -> Timeline:
        """Classify a long video window by window and merge the windows into labelled segments.

        Windows are one clip long (as the first checkpoint defines it) and start every `hop_s`
        seconds (default: half a window). Frames stream through a ring buffer, so memory stays
        flat on long videos. Probabilities are smoothed by a moving average over `smooth`
        windows; consecutive windows with the same top label form one segment, and segments
        shorter than `min_segment_s` are absorbed by their neighbour.
        """
        path = os.fspath(path)
        info = probe(path)
        lead = self.members[0]
        window_s = _window_seconds(lead.sampler, info.fps)
        hop_s = float(hop_s) if hop_s else window_s / 2
        if hop_s <= 0:
            raise ConfigError(None, f"hop must be positive, got {hop_s}")
        centers: np.ndarray | None = None
        member_probs = []
        for member in self.members:
            c, p = _window_probs(member, path, info.fps, hop_s, batch_size)
            if centers is None:
                centers = c
                member_probs.append(p)
            else:
                # Members with other clip lengths: resample their curves onto the first one's windows.
                member_probs.append(np.stack([np.interp(centers, c, p[:, k]) for k in range(p.shape[1])], axis=1))
        assert centers is not None
        probs = self.fuse(member_probs)
        probs = _moving_average(probs, smooth)
        segments = _merge_segments(centers, probs, self.labels, hop_s, info.duration_s, info.fps, min_segment_s)
        return Timeline(path, self.labels, centers, window_s, probs, segments, info.duration_s, info.fps)


def _window_seconds(sampler: SamplerConfig, video_fps: float) -> float:
    fps = sampler.fps or video_fps
    span = (sampler.clip_len - 1) * sampler.stride + 1 if sampler.mode == "clip" else sampler.clip_len
    return span / fps


def _window_probs(member: LoadedClassifier, path: str, video_fps: float, hop_s: float, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stream `path` at the member's rate and classify every window: (centres `(W,)`, probs `(W,K)`)."""
    sampler = member.sampler
    fps = sampler.fps or video_fps
    stride = sampler.stride if sampler.mode == "clip" else 1
    span = (sampler.clip_len - 1) * stride + 1 if sampler.mode == "clip" else sampler.clip_len
    hop = max(1, int(round(hop_s * fps)))
    transform = build_eval_transform(TransformConfig.from_dict({**member.transform.to_dict(), "test_crop": "center"}))
    ring: deque[tuple[float, np.ndarray]] = deque(maxlen=span)
    centers: list[float] = []
    probs: list[np.ndarray] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            with torch.inference_mode():
                out = view_probabilities(member.model, torch.stack(pending), member.multi_label)
            probs.extend(out.float().cpu().numpy())
            pending.clear()

    def window() -> torch.Tensor:
        frames = list(ring)
        picks = [frames[i][1] for i in range(0, span, stride)][: sampler.clip_len]
        if sampler.mode != "clip":
            picks = [frames[int(i)][1] for i in np.linspace(0, len(frames) - 1, sampler.clip_len).round()]
        clip = torch.from_numpy(np.stack(picks)).permute(0, 3, 1, 2)
        return transform(clip)  # (1, T, C, S, S)

    count = 0
    for frame in iter_frames(path, fps=fps, size=member.decode_size):
        ring.append((frame.time_s, frame.image))
        count += 1
        if len(ring) == span and (count - span) % hop == 0:
            centers.append((ring[0][0] + ring[-1][0] + 1.0 / fps) / 2)
            pending.append(window())
            if len(pending) >= batch_size:
                flush()
    if not centers and ring:
        # Shorter than one window: one padded window (last frame repeated), as training's "pad" does.
        while len(ring) < span:
            ring.append(ring[-1])
        centers.append((ring[0][0] + ring[-1][0]) / 2)
        pending.append(window())
    flush()
    if not centers:
        raise VidlensError(path, "no frames to classify")
    return np.asarray(centers), np.stack(probs)


def _moving_average(probs: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or probs.shape[0] < 2:
        return probs
    kernel = np.ones(k) / k
    padded = np.pad(probs, ((k // 2, k - 1 - k // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(probs.shape[1])], axis=1)


def _merge_segments(
    centers: np.ndarray, probs: np.ndarray, labels: list[str], hop_s: float, duration: float, fps: float, min_segment_s: float
) -> list[Segment]:
    """Each window owns the time around its centre (half a hop each side); equal labels merge."""
    top = probs.argmax(axis=1)
    bounds = np.concatenate([[0.0], (centers[1:] + centers[:-1]) / 2, [duration]])
    runs: list[list[int]] = []  # [label, first window, last window]
    for i, k in enumerate(top):
        if runs and runs[-1][0] == k:
            runs[-1][2] = i
        else:
            runs.append([int(k), i, i])
    if min_segment_s > 0 and len(runs) > 1:
        merged: list[list[int]] = []
        for run in runs:
            length = bounds[run[2] + 1] - bounds[run[1]]
            if merged and (length < min_segment_s or merged[-1][0] == run[0]):
                merged[-1][2] = run[2]
            else:
                merged.append(run)
        if len(merged) > 1 and bounds[merged[0][2] + 1] - bounds[merged[0][1]] < min_segment_s:
            merged[1][1] = merged[0][1]
            merged.pop(0)
        runs = merged
    segments = []
    for k, first, last in runs:
        start, end = float(bounds[first]), float(bounds[last + 1])
        score = float(probs[first : last + 1, k].mean())
        segments.append(Segment(start, end, labels[k], score, int(round(start * fps)), int(round(end * fps))))
    return segments


def find_videos_arg(target: str | os.PathLike[str]) -> list[Path]:
    """A video file, or every video under a folder (sorted)."""
    from vidlens.io import VIDEO_EXTENSIONS

    target = Path(target)
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    return [target]
