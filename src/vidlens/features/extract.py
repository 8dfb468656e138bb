"""One pass over a video: per-frame colour, difference, flow and edge features.

`FeatureExtractor` is the streaming core: feed it RGB `uint8 (H,W,3)` frames in order
and it returns each frame's features, keeping O(1) state (the previous frame's gray
image, histogram and edge map). `extract_features` runs it over `vidlens.io.iter_frames`
and gathers the rows into a `FeatureTable`; frames are never stacked, only the small
feature rows are kept (in buffers that grow by doubling).

Feature groups (`which`) and the features they add, `name (D)`:
    hsv    hsv_hist (bH+bS+bV), hsv_dist (1)
    diff   diff_energy (1), diff_changed (1)
    flow   flow_mag (1), flow_dx (1), flow_dy (1), flow_dir_hist (8), flow_mag_hist (8)
    edges  edge_density (1), edge_ecr (1), edge_ecr_in (1), edge_ecr_out (1)
Every "between consecutive frames" feature of row i compares analysed frame i-1 with
frame i; the first row (and a row after a change of frame size) has 0 there (zero flow:
flow_dir_hist all 0, flow_mag_hist all in its first bin).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from vidlens.errors import ConfigError
from vidlens.features.color import DEFAULT_HSV_BINS, HIST_METHODS, histogram_distance, hsv_histogram
from vidlens.features.edges import DEFAULT_CANNY, DEFAULT_ECR_RADIUS, canny_edges, dilate_edges, edge_change_ratio, edge_density
from vidlens.features.flow import (
    DEFAULT_DIRECTION_BINS,
    DEFAULT_FLOW_SIZE,
    DEFAULT_MAGNITUDE_EDGES,
    FarnebackParams,
    farneback,
    flow_statistics,
    scale_flow,
    shrink_for_flow,
)
from vidlens.features.motion import DEFAULT_DIFF_THRESHOLD, frame_difference, to_gray
from vidlens.features.table import FeatureTable
from vidlens.io import iter_frames

FEATURE_GROUPS = ("hsv", "diff", "flow", "edges")
DEFAULT_SIZE = 160


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of every feature; the defaults are what `extract_features` and the CLI use."""

    hsv_bins: tuple[int, int, int] = DEFAULT_HSV_BINS
    hist_distance: str = "chi2"  # or "intersection"; see color.histogram_distance
    diff_threshold: float = DEFAULT_DIFF_THRESHOLD  # |gray difference| / 255 above which a pixel changed
    flow_size: int | None = DEFAULT_FLOW_SIZE  # shorter side of the flow grid (None: analysed size)
    flow_direction_bins: int = DEFAULT_DIRECTION_BINS
    flow_magnitude_edges: tuple[float, ...] = DEFAULT_MAGNITUDE_EDGES  # px / step
    farneback: FarnebackParams = field(default_factory=FarnebackParams)
    canny_low: float = DEFAULT_CANNY[0]
    canny_high: float = DEFAULT_CANNY[1]
    ecr_radius: int = DEFAULT_ECR_RADIUS

    def __post_init__(self) -> None:
        if self.hist_distance not in HIST_METHODS:
            raise ConfigError(None, f"hist_distance must be one of {HIST_METHODS}, got {self.hist_distance!r}")
        if len(self.hsv_bins) != 3 or min(self.hsv_bins) < 1 or self.hsv_bins[0] > 180 or max(self.hsv_bins[1:]) > 256:
            raise ConfigError(None, f"hsv_bins must be three bin counts (H<=180, S,V<=256), got {self.hsv_bins}")
        if not 0 <= self.diff_threshold < 1:
            raise ConfigError(None, f"diff_threshold must be in [0, 1), got {self.diff_threshold}")
        if self.flow_size is not None and self.flow_size < 8:
            raise ConfigError(None, f"flow_size must be at least 8 pixels, got {self.flow_size}")

    def to_dict(self) -> dict:
        return asdict(self)


def parse_which(which: str | Iterable[str]) -> tuple[str, ...]:
    """Feature groups from `"hsv,diff"` or a sequence, in canonical order; `ConfigError` if unknown or empty."""
    items = which.split(",") if isinstance(which, str) else list(which)
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    unknown = sorted(names - set(FEATURE_GROUPS))
    if unknown:
        raise ConfigError(None, f"unknown feature group(s) {', '.join(unknown)}; choose from {', '.join(FEATURE_GROUPS)}")
    if not names:
        raise ConfigError(None, f"no feature group chosen; choose from {', '.join(FEATURE_GROUPS)}")
    return tuple(g for g in FEATURE_GROUPS if g in names)


class FeatureExtractor:
    """Streaming per-frame features: `update(rgb_frame)` -> {name: float32 (D,)}; O(1) state."""

    def __init__(self, which: str | Iterable[str] = FEATURE_GROUPS, config: FeatureConfig | None = None) -> None:
        self.which = parse_which(which)
        self.config = config or FeatureConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (the next one is treated as the first)."""
        self._prev_shape: tuple[int, ...] | None = None
        self._prev_hist: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._prev_small: np.ndarray | None = None
        self._prev_edges: np.ndarray | None = None
        self._prev_dilated: np.ndarray | None = None

    def dims(self) -> dict[str, int]:
        """Feature name -> values per frame, in output order."""
        cfg, out = self.config, {}
        if "hsv" in self.which:
            out.update(hsv_hist=sum(cfg.hsv_bins), hsv_dist=1)
        if "diff" in self.which:
            out.update(diff_energy=1, diff_changed=1)
        if "flow" in self.which:
            out.update(flow_mag=1, flow_dx=1, flow_dy=1, flow_dir_hist=cfg.flow_direction_bins,
                       flow_mag_hist=len(cfg.flow_magnitude_edges))
        if "edges" in self.which:
            out.update(edge_density=1, edge_ecr=1, edge_ecr_in=1, edge_ecr_out=1)
        return out

    def update(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Features of the next RGB `uint8 (H,W,3)` frame, compared with the previous one given."""
        cfg, which = self.config, self.which
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 (H,W,3) RGB, got {image.dtype} {image.shape}")
        first = self._prev_shape != image.shape
        self._prev_shape = image.shape
        row: dict[str, np.ndarray] = {}
        if "hsv" in which:
            hist = hsv_histogram(image, cfg.hsv_bins)
            dist = 0.0 if first else histogram_distance(self._prev_hist, hist, cfg.hist_distance)
            row["hsv_hist"], row["hsv_dist"] = hist, _vec(dist)
            self._prev_hist = hist
        if which == ("hsv",):
            return row
        gray = to_gray(image)
        if "diff" in which:
            energy, changed = (0.0, 0.0) if first else frame_difference(self._prev_gray, gray, cfg.diff_threshold)
            row["diff_energy"], row["diff_changed"] = _vec(energy), _vec(changed)
        if "flow" in which:
            small = shrink_for_flow(gray, cfg.flow_size)
            if first:
                flow = np.zeros((*small.shape[:2], 2), np.float32)
            else:
                flow = scale_flow(farneback(self._prev_small, small, cfg.farneback), gray.shape)
            stats = flow_statistics(flow, cfg.flow_direction_bins, cfg.flow_magnitude_edges)
            row["flow_mag"], row["flow_dx"], row["flow_dy"] = (
                _vec(stats.mean_magnitude), _vec(stats.mean_dx), _vec(stats.mean_dy))
            row["flow_dir_hist"], row["flow_mag_hist"] = stats.direction_hist, stats.magnitude_hist
            self._prev_small = small
        if "edges" in which:
            edges = canny_edges(gray, cfg.canny_low, cfg.canny_high)
            dilated = dilate_edges(edges, cfg.ecr_radius)
            if first:
                ecr = (0.0, 0.0, 0.0)
            else:
                ecr = edge_change_ratio(self._prev_edges, edges, cfg.ecr_radius,
                                        prev_dilated=self._prev_dilated, dilated=dilated)
            row["edge_density"] = _vec(edge_density(edges))
            row["edge_ecr"], row["edge_ecr_in"], row["edge_ecr_out"] = (_vec(v) for v in ecr)
            self._prev_edges, self._prev_dilated = edges, dilated
        self._prev_gray = gray
        return row


def _vec(value: float) -> np.ndarray:
    return np.array([value], dtype=np.float32)


class _RowBuffer:
    """Column buffers that grow by doubling: appending N rows costs O(N) copies, memory ~2x the rows."""

    def __init__(self, dims: dict[str, int], capacity: int = 256) -> None:
        self.n = 0
        self.times = np.empty(capacity, np.float64)
        self.indices = np.empty(capacity, np.int64)
        self.columns = {name: np.empty((capacity, d), np.float32) for name, d in dims.items()}

    def append(self, time_s: float, index: int, row: dict[str, np.ndarray]) -> None:
        if self.n == self.times.shape[0]:
            cap = 2 * self.n
            self.times = _grow(self.times, cap)
            self.indices = _grow(self.indices, cap)
            self.columns = {name: _grow(arr, cap) for name, arr in self.columns.items()}
        self.times[self.n], self.indices[self.n] = time_s, index
        for name, arr in self.columns.items():
            arr[self.n] = row[name]
        self.n += 1

    def finish(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        n = self.n
        return self.times[:n].copy(), self.indices[:n].copy(), {k: v[:n].copy() for k, v in self.columns.items()}


def _grow(arr: np.ndarray, capacity: int) -> np.ndarray:
    out = np.empty((capacity, *arr.shape[1:]), arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def extract_features(
    path: str | os.PathLike[str],
    fps: float | None = None,
    size: int | tuple[int, int] | None = DEFAULT_SIZE,
    which: str | Sequence[str] = FEATURE_GROUPS,
    start: float | None = None,
    end: float | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    config: FeatureConfig | None = None,
    keep_aspect: bool = True,
) -> FeatureTable:
    """Features of every analysed frame of a video, in one streaming pass.

    `fps`: resample to this rate (None: every decoded frame). `size`: the analysed frame
    size, as `iter_frames` takes it (int = shorter side; default 160). `which`: feature
    groups (see the module doc), a sequence or `"hsv,diff"`. `start`/`end`: seconds.
    `progress(done_frames)` is called after each frame. Raises `VideoDecodeError` for an
    unreadable file and `ConfigError` for unknown groups; a range with no frames gives
    an empty table (N = 0).
    """
    extractor = FeatureExtractor(which, config)
    buffer = _RowBuffer(extractor.dims())
    frame_hw: list[int] | None = None
    for frame in iter_frames(path, fps=fps, size=size, keep_aspect=keep_aspect, start=start, end=end):
        if frame_hw is None:
            frame_hw = list(frame.image.shape[:2])
        buffer.append(frame.time_s, frame.index, extractor.update(frame.image))
        if progress is not None:
            progress(buffer.n)
    times, indices, features = buffer.finish()
    meta = {
        "source": os.fspath(path),
        "fps": fps,
        "size": list(size) if isinstance(size, tuple) else size,
        "keep_aspect": keep_aspect,
        "start": start,
        "end": end,
        "which": list(extractor.which),
        "frame_size": frame_hw,
        "config": extractor.config.to_dict(),
    }
    return FeatureTable(times, indices, features, meta)
