"""Using trained classifiers on new videos: per-video labels, ensembles and timelines.

Everything about how a clip is made (labels, fps, clip length, stride, decode size, crop,
normalisation) comes from the checkpoint, never from flags that could drift. Several
checkpoints form an ensemble: each sees the video through its own preprocessing and
their probabilities are averaged with weights.

Whole-video scores average clips spread over the whole video (`whole_video_clips`: up to
`PREDICT_CLIPS` = 10 in clip mode, evenly from the first frame to the last, fewer for videos
only a few clips long), so a video that changes content is scored on all of it; the result says
how many clips and where they lie. Timelines live in `vidlens.tasks.timeline`.

Which backend runs a file is looked up by suffix in `vidlens.tasks.backends.BACKENDS`
(PyTorch checkpoints, ONNX Runtime for `.onnx`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlens.data.samplers import SamplerConfig, resample_indices, sample_indices
from vidlens.data.transforms import build_eval_transform
from vidlens.errors import CheckpointError, ConfigError, VidlensError
from vidlens.io import frame_index, probe, read_clip
from vidlens.tasks.backends import LoadedClassifier, clip_configs, loader_for
from vidlens.tasks.classify import view_probabilities
from vidlens.tasks.timeline import (
    Progress,
    Segment,
    Timeline,
    merge_segments,
    moving_average,
    resample_curves,
    stream_window_probs,
    window_seconds,
)

__all__ = ["LoadedClassifier", "PREDICT_CLIPS", "Segment", "Timeline", "VideoClassifier", "VideoScores", "clip_configs",
           "find_videos_arg", "load_classifier", "whole_video_clips"]

PREDICT_CLIPS = 10  # whole-video views in clip mode, spread from the first frame to the last


def load_classifier(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    num_clips: int | None = None,
    test_crop: str | None = None,
) -> LoadedClassifier:
    """Rebuild a classifier from a checkpoint (read with `weights_only=True`) or an exported `.onnx` file.

    `num_clips`/`test_crop` override the test views only (K clips x 1 or 3 crops); the way a
    single clip is made is the checkpoint's. Without `num_clips`, whole-video predictions use
    `whole_video_clips` clips.
    """
    return loader_for(path)(path, device=device, num_clips=num_clips, test_crop=test_crop)


def whole_video_clips(sampler: SamplerConfig, num_ticks: int, requested: int | None = None) -> int:
    """Clips averaged for one whole-video prediction of a video `num_ticks` frames long (at the sampler's rate).

    `requested` (an explicit `--test-clips`) wins. Otherwise, in clip mode: enough clips that
    neighbours overlap by about half and cover the whole video, at most `PREDICT_CLIPS` (and never
    fewer than the checkpoint's own `num_clips`); one clip for a video no longer than a clip.
    `uniform`/`tsn` samplers already spread their frames over the whole video: `requested` or the
    checkpoint's views.
    """
    if sampler.mode != "clip":
        return int(requested or sampler.num_clips)  # tsn: views inside the segments; uniform has one view
    if requested:
        return int(requested)
    fit = max(1, math.ceil(2 * num_ticks / sampler.span) - 1)
    return max(sampler.num_clips, min(PREDICT_CLIPS, fit))


@dataclass
class VideoScores:
    """One member's view of one video: `probs` `(K,)` averaged over `clip_probs` `(N,K)` of N clips.

    `frames` `(N,T)` source frame indices of each clip; `starts_s`/`ends_s` `(N,)` where each clip
    lies in the video (seconds from the first frame; end = last picked frame's time + one tick of
    the sampler's clock); `end_frames` `(N,)` the first source frame after each clip.
    """

    probs: np.ndarray
    clip_probs: np.ndarray
    frames: np.ndarray
    starts_s: np.ndarray  # (N,)
    ends_s: np.ndarray
    end_frames: np.ndarray
    crops: int = 1
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


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

    def scores(self, path: str | os.PathLike[str]) -> list[VideoScores]:
        """Each member's clip-by-clip and averaged probabilities for one video (columns in `self.labels` order).

        An unreadable file raises `VideoDecodeError` (or another `VidlensError`) naming it; nothing is substituted.
        """
        path = os.fspath(path)
        out = []
        for member, order in zip(self.members, self._order, strict=True):
            s = member_scores(member, path)
            s.probs, s.clip_probs = s.probs[..., order], s.clip_probs[..., order]
            out.append(s)
        return out

    def predict_proba(self, path: str | os.PathLike[str]) -> np.ndarray:
        """`(K,)` probabilities for one video, averaged over clips spread over the whole video and the members."""
        return self._fuse_ordered([s.probs for s in self.scores(path)])

    def _fuse_ordered(self, probs: list[np.ndarray]) -> np.ndarray:
        """Weighted average of member probabilities already in `self.labels` order."""
        return sum(w * p for w, p in zip(self.weights, probs, strict=True))

    def predict(self, path: str | os.PathLike[str], top_k: int = 5) -> dict[str, Any]:
        """One video's result row; errors become `{"path", "error"}`.

        `{"path", "top": [{"label", "score"}...], "num_clips", "clips": [{"start_s", "end_s", "start_frame",
        "end_frame", "label", "score"}...], "averaged": "..."}`: `top` averages the `num_clips` clips listed
        (the first member's clips; per-clip labels fuse the members when they all use the same clips).
        """
        try:
            scores = self.scores(path)
        except VidlensError as exc:
            return {"path": os.fspath(path), "error": exc.reason}
        probs = self._fuse_ordered([s.probs for s in scores])
        lead = scores[0]
        same = all(s.clip_probs.shape == lead.clip_probs.shape and np.array_equal(s.frames, lead.frames) for s in scores)
        clip_probs = self._fuse_ordered([s.clip_probs for s in scores]) if same else lead.clip_probs
        clips = []
        fps = lead.extra.get("fps") or 0.0
        for i in range(len(lead.frames)):
            k = int(np.argmax(clip_probs[i]))
            clips.append({"start_s": round(float(lead.starts_s[i]), 3), "end_s": round(float(lead.ends_s[i]), 3),
                          "start_frame": int(lead.frames[i].min()), "end_frame": int(lead.end_frames[i]),
                          "label": self.labels[k], "score": round(float(clip_probs[i, k]), 4)})
        n = len(clips)
        crops = f" x {lead.crops} crops" if lead.crops > 1 else ""
        how = (f"mean of {n} clips spread over the whole video{crops}" if n > 1 else
               f"one clip{crops}" if self.members[0].sampler.mode == "clip" else
               f"one view of {self.members[0].sampler.clip_len} frames spread over the whole video{crops}")
        return {"path": os.fspath(path), "top": self._top(probs, top_k), "num_clips": n,
                "averaged": how + (f", {len(self.members)} models" if len(self.members) > 1 else ""),
                "duration_s": round(float(lead.duration_s), 3), "fps": round(float(fps), 3), "clips": clips}

    def _top(self, probs: np.ndarray, top_k: int) -> list[dict[str, Any]]:
        order = np.argsort(-probs)[: max(1, top_k)]
        return [{"label": self.labels[i], "score": round(float(probs[i]), 6)} for i in order]

    # ------------------------------------------------------------------ timelines

    def timeline(
        self,
        path: str | os.PathLike[str],
        *,
        hop_s: float | None = None,
        smooth: int = 3,
        min_segment_s: float = 0.0,
        batch_size: int = 16,
        progress: Progress | None = None,
    ) -> Timeline:
        """Classify a long video window by window and merge the windows into labelled segments.

        Windows are one clip long (as the first checkpoint defines it) and start every `hop_s`
        seconds (default: half a window). The video is decoded once, at the model's size and
        rate, streamed (memory stays flat on long videos) and read ahead in a thread; windows are
        classified `batch_size` at a time. Probabilities are smoothed by a moving average over
        `smooth` windows; consecutive windows with the same top label form one segment, and
        segments shorter than `min_segment_s` are absorbed by their neighbour.
        `progress(done_s, total_s)` is called about once per second of video.
        """
        path = os.fspath(path)
        info = probe(path)
        window_s = window_seconds(self.members[0].sampler, info.fps)
        hop_s = float(hop_s) if hop_s else window_s / 2
        if hop_s <= 0:
            raise ConfigError(None, f"hop must be positive, got {hop_s}")
        curves = stream_window_probs(self.members, path, info.fps, info.duration_s, hop_s, batch_size, progress)
        centers = curves[0][0]
        # Members with other clip lengths: their curves are resampled onto the first one's windows.
        member_probs = [p if i == 0 else resample_curves(centers, c, p) for i, (c, p) in enumerate(curves)]
        raw = self.fuse(member_probs)
        probs = moving_average(raw, smooth)
        segments = merge_segments(centers, probs, self.labels, info.duration_s, info.fps, min_segment_s)
        return Timeline(path, self.labels, centers, window_s, probs, segments, info.duration_s, info.fps,
                        mean_probs=raw.mean(axis=0))

    def predict_timeline(self, path: str | os.PathLike[str], top_k: int = 5, **kwargs: Any) -> tuple[dict[str, Any], Timeline | None]:
        """(result row, timeline) from one decoding pass: `top` averages every window of the timeline.

        `kwargs` go to `timeline`. Errors give `({"path", "error"}, None)`.
        """
        try:
            result = self.timeline(path, **kwargs)
        except VidlensError as exc:
            return {"path": os.fspath(path), "error": exc.reason}, None
        n = len(result.centers_s)
        row = {"path": os.fspath(path), "top": self._top(result.mean_probs, top_k), "num_clips": n,
               "averaged": f"mean of the {n} timeline windows ({result.window_s:.3f} s each) over the whole video",
               "duration_s": round(float(result.duration_s), 3), "fps": round(float(result.fps), 3),
               "segments": [s.to_dict() for s in result.segments]}
        return row, result


def member_scores(member: LoadedClassifier, path: str, chunk: int = 8) -> VideoScores:
    """One member's probabilities for `whole_video_clips` clips spread over the video (columns: its own labels).

    Clips `(N,T)` are read at the member's decode size in one `read_clip` call (one seek per
    clip), each made into V crops by the eval transform; the model sees `chunk` clips at a time.
    """
    info = probe(path)  # VideoDecodeError naming the file when it is not a readable video
    times = frame_index(path).times  # seconds of every frame: the numbering read_clip uses
    if times.size == 0:
        raise VidlensError(path, "no frames to classify")
    ticks = resample_indices(times.size, info.fps, member.sampler.fps).size
    n = whole_video_clips(member.sampler, ticks, member.num_clips)
    sampler = SamplerConfig.from_dict({**member.sampler.to_dict(), "num_clips": n})
    frames = sample_indices(sampler, times.size, info.fps, train=False).reshape(-1, sampler.clip_len)  # (N,T)
    images = read_clip(path, frames.reshape(-1), size=member.decode_size)  # (N*T,H,W,C) uint8
    _, h, w, c = images.shape
    video = torch.from_numpy(images).permute(0, 3, 1, 2).reshape(len(frames), sampler.clip_len, c, h, w)
    transform = build_eval_transform(member.transform)
    probs = []
    with torch.inference_mode():
        for i in range(0, len(video), chunk):
            views = torch.stack([transform(clip) for clip in video[i : i + chunk]])  # (n,V,T,C,S,S)
            probs.append(view_probabilities(member.model, views, member.multi_label).float().cpu().numpy())
    clip_probs = np.concatenate(probs)
    # A picked frame stays on screen for one tick of the sampler's clock (its fps, else the video's).
    tick_s = 1.0 / (member.sampler.fps or info.fps or 25.0)
    starts = times[frames.min(axis=1)]
    ends = np.minimum(times[frames.max(axis=1)] + tick_s, max(info.duration_s, float(times[-1])))
    crops = 3 if member.transform.test_crop == "three" else 1
    end_frames = np.maximum(np.searchsorted(times, ends - 1e-6, side="left"), frames.max(axis=1) + 1)
    return VideoScores(clip_probs.mean(axis=0), clip_probs, frames, starts, ends, end_frames, crops, info.duration_s,
                       {"fps": info.fps})


def find_videos_arg(target: str | os.PathLike[str]) -> list[Path]:
    """A video file, or every video under a folder (sorted)."""
    from vidlens.io import VIDEO_EXTENSIONS

    target = Path(target)
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    return [target]
