"""Frame samplers: (frame count, fps, settings) -> source frame indices.

Pure functions: no state between calls, no I/O, no torch. Every function returns
`np.int64` indices inside `[0, num_frames)`; randomness comes only from the
`np.random.Generator` passed in, so a seeded generator gives the same indices.

Modes (`SamplerConfig.mode`):

- ``"clip"``: `clip_len` frames `stride` apart (a dense clip, as for 3D CNNs).
  Training draws one clip at a random start; testing takes `num_clips` clips with
  starts spread evenly from the first frame to the last possible start (the first
  clip begins at frame 0, the last ends at the last frame; one clip is centred).
- ``"uniform"``: `clip_len` frames spread over the whole video, one at the centre of
  each of `clip_len` equal segments (the same in training and testing).
- ``"tsn"``: Temporal Segment Networks: the video is cut into `clip_len` equal
  segments and one frame is taken from each, at random in training; testing takes
  `num_clips` views at evenly spaced offsets inside the segments (one view: the centres).

Which to use: `tsn`/`uniform` for trimmed clips (each clip is one action: frames from the
whole clip) and for frame+temporal models; `clip` for 3D CNNs (they need consecutive frames)
and for long, untrimmed videos where one window is one decision (see docs/training.md).

Frame rate: with `fps` set, the video is first seen at that rate
(`resample_indices`: frames dropped or repeated, as `vidlens.io.iter_frames(fps=...)`
yields them); `stride` and `clip_len` count ticks of that clock, and the chosen
ticks are mapped back to source frame indices.

Short videos (a clip spans ``(clip_len - 1) * stride + 1`` frames; when the video is
shorter than that, the clip starts at frame 0 and):

- ``"loop"`` (default, as MMAction2's ``out_of_bound_opt="loop"``): indices wrap
  around modulo the frame count, e.g. 3 frames, clip_len 5 -> 0 1 2 0 1.
- ``"pad"``: indices past the end repeat the last frame, e.g. 0 1 2 2 2.

`uniform` and `tsn` never run out of frames: with fewer frames than requested,
neighbouring segments share (repeat) frames. A 1-frame video gives a clip of that
one frame repeated in every mode.

Invalid arguments raise `vidlens.errors.ConfigError(None, reason)`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from vidlens.errors import ConfigError

MODES = ("clip", "uniform", "tsn")
SHORT_VIDEO = ("loop", "pad")

# Tolerance, in frames, for float clock arithmetic (29.97 fps and friends).
_EPS = 1e-6


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigError(None, f"{name} must be a positive integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(None, f"{name} must be a positive integer, got {value!r}") from None
    if value <= 0:
        raise ConfigError(None, f"{name} must be a positive integer, got {value}")
    return value


def _positive_float(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(None, f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(None, f"{name} must be a positive number, got {value}")
    return value


def _check_short_video(short_video: str) -> None:
    if short_video not in SHORT_VIDEO:
        raise ConfigError(None, f"short_video must be one of {SHORT_VIDEO}, got {short_video!r}")


@dataclass(frozen=True)
class SamplerConfig:
    """Which frames a clip is made of. Validated on construction (`ConfigError`).

    `clip_len`: frames per clip (clip mode), frames over the whole video (uniform),
    segments (tsn). `stride`: clip mode, step between sampled frames counted at the
    target fps. `fps`: resample the video to this rate first (None = native rate).
    `num_clips`: test-time views: clips spread over the video (clip mode) or offsets inside
    the segments (tsn, see `segment_views`); uniform ignores it (always the same frames).
    `short_video`: "loop" or "pad" (see the module docstring).
    """

    mode: Literal["clip", "uniform", "tsn"] = "clip"
    clip_len: int = 16
    stride: int = 1
    fps: float | None = None
    num_clips: int = 1
    short_video: Literal["loop", "pad"] = "loop"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(None, f"sampler mode must be one of {MODES}, got {self.mode!r}")
        object.__setattr__(self, "clip_len", _positive_int("clip_len", self.clip_len))
        object.__setattr__(self, "stride", _positive_int("stride", self.stride))
        object.__setattr__(self, "num_clips", _positive_int("num_clips", self.num_clips))
        if self.fps is not None:
            object.__setattr__(self, "fps", _positive_float("fps", self.fps))
        _check_short_video(self.short_video)

    def to_dict(self) -> dict[str, Any]:
        """Plain built-in types, for checkpoints and YAML."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplerConfig:
        """Inverse of `to_dict`; unknown keys raise `ConfigError`, missing keys take defaults."""
        if not isinstance(d, dict):
            raise ConfigError(None, f"sampler config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(None, f"unknown sampler option(s): {', '.join(map(str, unknown))}")
        return cls(**d)

    @property
    def span(self) -> int:
        """Frames (at the target fps) that one clip covers in clip mode."""
        return (self.clip_len - 1) * self.stride + 1


def resample_indices(num_frames: int, src_fps: float, dst_fps: float | None) -> np.ndarray:
    """The source frame on screen at each tick of a `dst_fps` clock: the video seen at `dst_fps`.

    Ticks are at ``k / dst_fps`` seconds for every tick inside the video's duration
    (``num_frames / src_fps``), so the length is ``ceil(num_frames * dst_fps / src_fps)``
    (at least 1), matching what `vidlens.io.iter_frames(fps=dst_fps)` yields on a
    constant-rate file. Lower rates drop frames (30 -> 10 fps: 0, 3, 6, ...), higher
    rates repeat them (10 -> 30 fps: 0, 0, 0, 1, 1, 1, ...). `dst_fps=None`:
    ``arange(num_frames)`` (`src_fps` is then not looked at).
    """
    num_frames = _positive_int("num_frames", num_frames)
    if dst_fps is None:
        return np.arange(num_frames, dtype=np.int64)
    src_fps = _positive_float("src_fps", src_fps)
    dst_fps = _positive_float("dst_fps", dst_fps)
    ratio = src_fps / dst_fps  # source frames per tick
    count = max(1, math.ceil(num_frames / ratio - _EPS))
    ticks = np.floor(np.arange(count, dtype=np.float64) * ratio + _EPS).astype(np.int64)
    return np.minimum(ticks, num_frames - 1)


def uniform_indices(num_frames: int, n: int) -> np.ndarray:
    """`n` frames spread evenly over the whole video: the centre frame of each of `n` equal segments.

    With fewer frames than `n`, frames repeat (in order): 2 frames, n=4 -> 0 0 1 1.
    """
    num_frames = _positive_int("num_frames", num_frames)
    n = _positive_int("n", n)
    centres = (np.arange(n, dtype=np.float64) + 0.5) * (num_frames / n)
    return np.minimum(np.floor(centres + _EPS).astype(np.int64), num_frames - 1)


def clip_indices(
    num_frames: int, clip_len: int, stride: int, start: int, short_video: str = "loop"
) -> np.ndarray:
    """`clip_len` frames `stride` apart from `start`: ``start + stride * arange(clip_len)``.

    Indices past the end wrap around ("loop") or repeat the last frame ("pad").
    `start` must lie in ``[0, num_frames)``.
    """
    num_frames = _positive_int("num_frames", num_frames)
    clip_len = _positive_int("clip_len", clip_len)
    stride = _positive_int("stride", stride)
    _check_short_video(short_video)
    try:
        start = operator.index(start)
    except TypeError:
        raise ConfigError(None, f"start must be an integer, got {start!r}") from None
    if not 0 <= start < num_frames:
        raise ConfigError(None, f"start {start} outside a video of {num_frames} frames")
    idx = start + stride * np.arange(clip_len, dtype=np.int64)
    if short_video == "loop":
        return np.mod(idx, num_frames)
    return np.minimum(idx, num_frames - 1)


def _span(clip_len: int, stride: int) -> int:
    return (clip_len - 1) * stride + 1


def random_clip_indices(
    num_frames: int, clip_len: int, stride: int, rng: np.random.Generator, short_video: str = "loop"
) -> np.ndarray:
    """One clip at a start drawn uniformly from every start that keeps the clip inside the video.

    A video shorter than the clip's span always starts at frame 0 (then "loop"/"pad").
    """
    num_frames = _positive_int("num_frames", num_frames)
    clip_len = _positive_int("clip_len", clip_len)
    stride = _positive_int("stride", stride)
    max_start = num_frames - _span(clip_len, stride)
    start = int(rng.integers(0, max_start + 1)) if max_start > 0 else 0
    return clip_indices(num_frames, clip_len, stride, start, short_video)


def multi_clip_indices(
    num_frames: int, clip_len: int, stride: int, num_clips: int, short_video: str = "loop"
) -> np.ndarray:
    """`(num_clips, clip_len)`: clips with starts spread evenly over the video (dense multi-clip testing).

    As in SlowFast testing: the first clip starts at frame 0 and the last one ends at
    the last frame; a single clip is centred. Deterministic.
    """
    num_frames = _positive_int("num_frames", num_frames)
    clip_len = _positive_int("clip_len", clip_len)
    stride = _positive_int("stride", stride)
    num_clips = _positive_int("num_clips", num_clips)
    max_start = max(0, num_frames - _span(clip_len, stride))
    if num_clips == 1:
        starts = np.array([max_start // 2])
    else:
        starts = np.floor(np.linspace(0, max_start, num_clips) + 0.5).astype(np.int64)
    return np.stack([clip_indices(num_frames, clip_len, stride, int(s), short_video) for s in starts])


def tsn_indices(
    num_frames: int, num_segments: int, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """One frame from each of `num_segments` equal segments (Temporal Segment Networks).

    Segment ``i`` holds frames ``[floor(i*N/n), floor((i+1)*N/n))``. Training: a frame
    drawn uniformly inside each segment (`rng`; None = a fresh unseeded generator).
    Testing: the segment centre, ``floor((i + 0.5) * N / n)`` (= `uniform_indices`).
    With fewer frames than segments, segments share frames (indices repeat).
    """
    num_frames = _positive_int("num_frames", num_frames)
    num_segments = _positive_int("num_segments", num_segments)
    if not train:
        return uniform_indices(num_frames, num_segments)
    if rng is None:
        rng = np.random.default_rng()
    i = np.arange(num_segments + 1, dtype=np.int64)
    edges = (i * num_frames) // num_segments  # exact integer floor(i*N/n)
    lo, hi = edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)
    return np.minimum(rng.integers(lo, hi), num_frames - 1).astype(np.int64)


def segment_views(num_frames: int, num_segments: int, num_views: int) -> np.ndarray:
    """`(num_views, num_segments)`: test views of a segment sampler (TSN's multi-view testing).

    View ``k`` takes, in each of the `num_segments` equal segments, the frame at the fraction
    ``(k + 0.5) / num_views`` of the segment: ``floor((i + (k + 0.5) / K) * N / n)``. One view is
    the segment centres (`uniform_indices`); several views cover the whole clip evenly between them.
    """
    num_frames = _positive_int("num_frames", num_frames)
    num_segments = _positive_int("num_segments", num_segments)
    num_views = _positive_int("num_views", num_views)
    offsets = (np.arange(num_views, dtype=np.float64)[:, None] + 0.5) / num_views
    pos = (np.arange(num_segments, dtype=np.float64)[None, :] + offsets) * (num_frames / num_segments)
    return np.minimum(np.floor(pos + _EPS).astype(np.int64), num_frames - 1)


def sample_indices(
    cfg: SamplerConfig,
    num_frames: int,
    src_fps: float,
    train: bool,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Source frame indices for one video under `cfg`.

    Training: `(T,)`, one clip (random clip, TSN random frames, or uniform).
    Testing: `(K, T)` views, deterministic; ``K = cfg.num_clips`` (clip mode: clips spread over
    the video; tsn: `segment_views`, offsets inside the segments); uniform: its one view.
    ``T = cfg.clip_len``. With `cfg.fps` set, sampling happens on the video resampled
    to that rate and the chosen ticks are mapped back to source frames (`src_fps` is
    only read then). `rng`: training randomness (None = a fresh unseeded generator).
    """
    if not isinstance(cfg, SamplerConfig):
        raise ConfigError(None, f"expected a SamplerConfig, got {type(cfg).__name__}")
    num_frames = _positive_int("num_frames", num_frames)
    timeline = resample_indices(num_frames, src_fps, cfg.fps)
    n = int(timeline.size)
    if train and rng is None and cfg.mode != "uniform":
        rng = np.random.default_rng()
    if cfg.mode == "clip":
        if train:
            picked = random_clip_indices(n, cfg.clip_len, cfg.stride, rng, cfg.short_video)
        else:
            picked = multi_clip_indices(n, cfg.clip_len, cfg.stride, cfg.num_clips, cfg.short_video)
    elif cfg.mode == "uniform":  # deterministic: the very frames it trained on
        picked = uniform_indices(n, cfg.clip_len)
        if not train:
            picked = picked[None]
    elif train:  # tsn
        picked = tsn_indices(n, cfg.clip_len, train, rng)
    else:  # tsn test: `num_clips` views of offsets inside the segments
        picked = segment_views(n, cfg.clip_len, cfg.num_clips)
    return timeline[picked]
