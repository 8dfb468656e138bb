"""Sliding-window timelines of long videos: window probabilities in one decoding pass, merged into segments.

The video is decoded once per distinct (frame rate, decode size) among the classifiers (once for
a single model), at the model's own size and rate (`iter_frames(fps=..., size=...)` from the
checkpoint's preprocess: its `decode_size`, else the eval transform's resize), read ahead in a background thread so decoding overlaps inference.
Each frame goes through the eval transform once (windows overlap; their frames are not redone);
windows are classified in batches. `progress(done_s, total_s)` is called as the video advances.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidlens.data.samplers import SamplerConfig
from vidlens.data.transforms import TransformConfig, build_eval_transform
from vidlens.errors import VidlensError
from vidlens.io import iter_frames
from vidlens.io.prefetch import prefetch
from vidlens.tasks.backends import LoadedClassifier
from vidlens.tasks.classify import view_probabilities

Progress = Callable[[float, float], None]  # (seconds of video done, seconds in all)


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
    """Window-by-window probabilities of a long video and the labelled segments merged from them.

    `probs`: `(W,K)` smoothed; `mean_probs`: `(K,)` the unsmoothed windows averaged, i.e. the
    whole video's scores (windows are evenly spaced, so every stretch of video counts equally).
    """

    path: str
    labels: list[str]
    centers_s: np.ndarray  # (W,) window centres, seconds
    window_s: float
    probs: np.ndarray  # (W, K) smoothed probabilities
    segments: list[Segment]
    duration_s: float
    fps: float
    mean_probs: np.ndarray | None = None  # (K,)


def window_span(sampler: SamplerConfig) -> tuple[int, int]:
    """(frames a window spans at the sampler's rate, step between picked frames)."""
    if sampler.mode == "clip":
        return sampler.span, sampler.stride
    return sampler.clip_len, 1


def window_seconds(sampler: SamplerConfig, video_fps: float) -> float:
    return window_span(sampler)[0] / (sampler.fps or video_fps)


class _WindowStream:
    """One member's windows over a stream of frames: transform each frame once, batch the windows."""

    def __init__(self, member: LoadedClassifier, fps: float, hop_s: float, batch_size: int) -> None:
        self.member = member
        self.span, self.stride = window_span(member.sampler)
        self.hop = max(1, int(round(hop_s * fps)))
        self.fps = fps
        self.batch_size = max(1, int(batch_size))
        cfg = TransformConfig.from_dict({**member.transform.to_dict(), "test_crop": "center"})
        self.transform = build_eval_transform(cfg)
        self.raw: deque[np.ndarray] = deque(maxlen=self.span)  # frames not transformed yet
        self.ready: deque[torch.Tensor] = deque(maxlen=self.span)  # (C,S,S) float, transformed
        self.times: deque[float] = deque(maxlen=self.span)
        self.count = 0
        self.centers: list[float] = []
        self.probs: list[np.ndarray] = []
        self.pending: list[torch.Tensor] = []

    def add(self, time_s: float, image: np.ndarray) -> None:
        self.raw.append(image)
        self.times.append(time_s)
        self.count += 1
        if self.count >= self.span and (self.count - self.span) % self.hop == 0:
            self._window((self.times[0] + self.times[-1] + 1.0 / self.fps) / 2)

    def _window(self, center: float) -> None:
        if self.raw:
            chunk = torch.from_numpy(np.stack(self.raw)).permute(0, 3, 1, 2)  # (n,C,H,W) uint8
            self.ready.extend(self.transform(chunk)[0])  # (1,n,C,S,S) -> n frames
            self.raw.clear()
        frames = list(self.ready)
        if self.member.sampler.mode == "clip":
            picks = frames[:: self.stride][: self.member.sampler.clip_len]
        else:
            picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, self.member.sampler.clip_len).round()]
        self.centers.append(center)
        self.pending.append(torch.stack(picks))  # (T,C,S,S)
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            with torch.inference_mode():
                out = view_probabilities(self.member.model, torch.stack(self.pending), self.member.multi_label)
            self.probs.extend(out.float().cpu().numpy())
            self.pending.clear()

    def finish(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """(centres `(W,)`, probabilities `(W,K)`); a video shorter than one window gives one padded window."""
        if not self.centers and self.times:
            center = (self.times[0] + self.times[-1]) / 2
            while len(self.raw) < self.span:  # nothing transformed yet: pad with the last frame, as "pad" does
                self.raw.append(self.raw[-1])
            self._window(center)
        self.flush()
        if not self.centers:
            raise VidlensError(path, "no frames to classify")
        return np.asarray(self.centers), np.stack(self.probs)


def stream_window_probs(
    members: Sequence[LoadedClassifier], path: str, video_fps: float, duration_s: float, hop_s: float,
    batch_size: int = 16, progress: Progress | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per member: (window centres `(W,)`, probabilities `(W,K)`), decoding once per (fps, decode size)."""
    groups: dict[tuple[float, int | None], list[int]] = {}
    for i, m in enumerate(members):
        # A checkpoint without a decode size still gets frames at the model's size: the eval transform's resize.
        size = m.decode_size or m.transform.eval_resize
        groups.setdefault((float(m.sampler.fps or video_fps), size), []).append(i)
    total = max(duration_s, 1e-6) * len(groups)
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for g, ((fps, size), idx) in enumerate(groups.items()):
        streams = [_WindowStream(members[i], fps, hop_s, batch_size) for i in idx]
        done_before = g * max(duration_s, 1e-6)
        every = max(1, int(round(fps)))  # report about once per second of video
        frames = prefetch(iter_frames(path, fps=fps, size=size), depth=16)
        try:
            for n, frame in enumerate(frames, 1):
                for s in streams:
                    s.add(frame.time_s, frame.image)
                if progress is not None and n % every == 0:
                    progress(done_before + min(frame.time_s, duration_s), total)
        finally:
            frames.close()
        for i, s in zip(idx, streams, strict=True):
            results[i] = s.finish(path)
    if progress is not None:
        progress(total, total)
    return [results[i] for i in range(len(members))]


def moving_average(probs: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over `k` windows of `(W,K)` probabilities (edges padded with the edge value)."""
    if k <= 1 or probs.shape[0] < 2:
        return probs
    kernel = np.ones(k) / k
    padded = np.pad(probs, ((k // 2, k - 1 - k // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(probs.shape[1])], axis=1)


def merge_segments(
    centers: np.ndarray, probs: np.ndarray, labels: list[str], duration: float, fps: float, min_segment_s: float
) -> list[Segment]:
    """Each window owns the time around its centre (half-way to its neighbours); equal labels merge."""
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


def resample_curves(centers: np.ndarray, c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Probabilities `(W',K)` at windows `c` resampled onto the windows `centers` -> `(W,K)`."""
    return np.stack([np.interp(centers, c, p[:, k]) for k in range(p.shape[1])], axis=1)
