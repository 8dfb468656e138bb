"""Streaming per-frame scores for shot boundary detection.

Frames come from `iter_frames(path, size=analysis_size(...))` as RGB `uint8 (H,W,3)` at a
small size (the decoder resizes each frame straight after decoding; an exact integer
downscale near `config.size` is preferred because it is several times faster). Only a ring
buffer of the last `max(long_range, flash_frames + 1)` frames' descriptors is kept (HSV
histogram `float32 (32,)` and a `uint8 (h,w)` luma thumbnail, half the analysed size), and
each frame adds one row of float32 scores, so memory is flat: O(N) floats, never frames.

Per frame t (every array is `float32 (N,)`, 0 where the earlier frame does not exist):
- `hist`:   chi-square HSV histogram distance, frame t vs t-1 (0..1)
- `pixel`:  mean |luma_t - luma_{t-1}| / 255 over the thumbnails
- `cut`:    the cut score, `HIST_WEIGHT * hist + (1 - HIST_WEIGHT) * min(1, PIXEL_SCALE * pixel)`
- `skip{j}`: the same combined score between t and t-j, j = 2..flash_frames+1 (flash test)
- `long_hist`: histogram distance between t and t-k, k = `long_range` (gradual transitions)
- `luma`:   mean luma of frame t / 255 (fades through black)
- `ecr`:    edge change ratio t vs t-1 (only with `config.edges`)
- `deep`:   cosine distance of MobileNetV2 embeddings t vs t-1 (only with `config.deep`)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from vidlens.features.color import DEFAULT_HSV_BINS, _hue_table
from vidlens.features.edges import canny_edges, dilate_edges, edge_change_ratio
from vidlens.io.prefetch import prefetch
from vidlens.io.reader import Frame, iter_frames
from vidlens.tasks.shots.config import ShotConfig

HIST_WEIGHT = 0.5
PIXEL_SCALE = 4.0  # a mean luma change of 0.25 (64 grey levels) saturates the pixel term
THUMB_SHORT = 40  # luma thumbnails for pixel differences are halved when the frame's shorter side is >= 2x this
DEEP_BATCH = 16
BATCH = 16  # frames scored together (vectorised over the batch)
READ_AHEAD = 16  # decoded frames queued ahead by the decoding thread (in whole batches)
# The decoding thread pays off once FFmpeg's own decoding (GIL released) is a good part of the work:
# measured on 2 cores, 640x272 -16% wall, 720p -13% wall; at 256x144 the per-frame Python work of both
# threads serialises on the GIL, wall time is unchanged and the hand-over costs +30% CPU.
READ_AHEAD_MIN_PIXELS = 100_000


def default_read_ahead(width: int, height: int) -> int:
    """Frames to decode ahead in a thread for a source of this size (0: decode in the caller's thread)."""
    return READ_AHEAD if width * height >= READ_AHEAD_MIN_PIXELS else 0


def pair_score(hist: float, pixel: float) -> float:
    """The combined cut score in [0, 1] from a histogram distance and a mean luma difference."""
    return HIST_WEIGHT * hist + (1.0 - HIST_WEIGHT) * min(1.0, PIXEL_SCALE * pixel)


@dataclass
class FrameScores:
    """The score arrays of one video (see the module doc); `times`: `float64 (N,)` seconds."""

    times: np.ndarray
    indices: np.ndarray  # int64 (N,) source frame index of each analysed frame
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    frame_size: tuple[int, int] = (0, 0)

    @property
    def num_frames(self) -> int:
        return int(self.times.size)


class _Rows:
    """An append-only `float32 (N, C)` table (amortised doubling): one row of scores per frame."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.data = np.zeros((1024, len(names)), np.float32)
        self.n = 0

    def append(self, row: np.ndarray) -> None:
        if self.n == self.data.shape[0]:
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.n] = row
        self.n += 1

    def extend(self, rows: np.ndarray) -> None:
        while self.n + len(rows) > self.data.shape[0]:
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.n : self.n + len(rows)] = rows
        self.n += len(rows)

    def result(self) -> dict[str, np.ndarray]:
        return {name: self.data[: self.n, i].copy() for i, name in enumerate(self.names)}


class _Column:
    """An append-only 1-D numpy array (amortised doubling): per-frame times and indices without Python lists."""

    def __init__(self, dtype: type) -> None:
        self.data = np.zeros(1024, dtype)
        self.n = 0

    def extend(self, values: list) -> None:
        while self.n + len(values) > self.data.size:
            self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        self.data[self.n : self.n + len(values)] = values
        self.n += len(values)

    def result(self) -> np.ndarray:
        return self.data[: self.n].copy()


def chi2_rows(rows: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """Symmetric chi-square distance (as `histogram_distance(..., "chi2")`) of each row of `rows` `(M,B)` to `hist` `(B,)`.

    Rows and `hist` must already be L1-normalised to sum 1.
    """
    num = np.square(rows - hist)
    den = rows + hist
    return 0.5 * np.divide(num, den, out=np.zeros_like(num), where=den > 0).sum(axis=1)


def _hsv_hist(image: np.ndarray) -> np.ndarray:
    """`float32 (32,)` HSV histogram of an RGB `uint8 (H,W,3)` frame, as `features.color.hsv_histogram`
    with its default (16, 8, 8) bins but L1-normalised to sum 1 (not 3) and without argument checks."""
    hsv = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_RGB2HSV), _hue_table(DEFAULT_HSV_BINS[0]))
    out = np.concatenate([
        cv2.calcHist([hsv], [c], None, [b], [0, DEFAULT_HSV_BINS[0] if c == 0 else 256])
        for c, b in enumerate(DEFAULT_HSV_BINS)
    ]).ravel()
    return out / np.float32(3 * hsv.shape[0] * hsv.shape[1])


def analysis_size(short_side: int, size: int) -> int:
    """The decode size (shorter side) used for `size`: an exact divisor of the source's shorter side
    within 0.65x..1.5x of `size` when there is one (integer downscales are several times faster), else `size`."""
    if short_side <= size:
        return short_side
    best = None
    for f in range(1, short_side + 1):
        if short_side % f == 0 and 0.65 * size <= short_side / f <= 1.5 * size:
            if best is None or abs(short_side / f - size) < abs(short_side / best - size):
                best = f
    return short_side // best if best else size


class _DeepScorer:
    """MobileNetV2 (ImageNet) embeddings of small frames in batches; cosine distance to the previous frame."""

    def __init__(self, every: int) -> None:
        import torch

        from vidlens.models.encoders import IMAGENET_MEAN, IMAGENET_STD, build_encoder

        self.torch = torch
        self.encoder = build_encoder("mobilenet_v2", pretrained="imagenet").eval()  # CheckpointError if missing
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.every = every
        self.pending: list[tuple[int, np.ndarray]] = []
        self.prev: object = None
        self.out: dict[int, float] = {}

    def add(self, position: int, image: np.ndarray) -> None:
        if position % self.every == 0:
            self.pending.append((position, image))
            if len(self.pending) >= DEEP_BATCH:
                self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        torch = self.torch
        x = torch.from_numpy(np.stack([im for _, im in self.pending])).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            emb = torch.nn.functional.normalize(self.encoder((x - self.mean) / self.std), dim=1)
        for (pos, _), e in zip(self.pending, emb, strict=True):
            if self.prev is not None:
                self.out[pos] = float(1.0 - torch.dot(self.prev, e).clamp(-1, 1)) / 2.0
            self.prev = e
        self.pending.clear()

    def array(self, n: int) -> np.ndarray:
        """`float32 (N,)`: the distance at each scored frame, held until the next one (every > 1)."""
        self.flush()
        arr = np.zeros(n, np.float32)
        last = 0.0
        for i in range(n):
            last = self.out.get(i, last if i % self.every else 0.0)
            arr[i] = last
        return arr


class _Scorer:
    """Scores of frames given in batches: `add(images)` with images `uint8 (B,h,w,3)`, all of one size.

    Per-frame work is done on the whole batch at once (one colour conversion, one LUT, one
    `np.bincount` for the histograms, array-wide distances), so the Python cost per frame is small.
    Keeps the last `depth` frames' histograms and thumbnails for the look-back distances.
    """

    def __init__(self, config: ShotConfig, frame_size: tuple[int, int]) -> None:
        self.config = config
        self.skips = list(range(2, config.flash_frames + 2))
        self.k = config.long_range
        self.names = ["hist", "pixel", "cut", "long_hist", "luma", *[f"skip{j}" for j in self.skips]]
        if config.edges:
            self.names.append("ecr")
        self.col = {name: i for i, name in enumerate(self.names)}
        self.rows = _Rows(self.names)
        self.depth = max(self.k, self.skips[-1] if self.skips else 1)
        h, w = frame_size
        self.frame_size = (int(h), int(w))
        self.half = min(h, w) >= 2 * THUMB_SHORT
        self.thumb_hw = (h // 2, w // 2) if self.half else (h, w)
        self.prev_hists = np.zeros((0, 32), np.float32)  # the last `depth` frames (fewer at the start)
        self.prev_thumbs = np.zeros((0, *self.thumb_hw), np.uint8)
        self.prev_edges: tuple[np.ndarray, np.ndarray] | None = None
        self.deep = _DeepScorer(config.deep_every) if config.deep else None
        self.n = 0

    def add(self, images: np.ndarray) -> None:
        b, h, w, _ = images.shape
        flat = images.reshape(b * h, w, 3)  # one tall image: per-pixel conversions in one call
        gray = cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY)
        # Each pixel's H, S and V become bin codes 0..15, 16..23, 24..31: one 32-bin count per frame.
        codes = cv2.LUT(cv2.cvtColor(flat, cv2.COLOR_RGB2HSV), _bin_table()).reshape(b, h, w * 3)
        hists = np.stack([cv2.calcHist([c], [0], None, [32], [0, 32]).ravel() for c in codes])
        hists /= np.float32(3 * h * w)
        gray = gray.reshape(b, h, w)
        if self.half:
            th, tw = self.thumb_hw
            if h % 2 == 0:
                thumbs = cv2.resize(gray.reshape(b * h, w), (tw, b * th), interpolation=cv2.INTER_AREA).reshape(b, th, tw)
            else:
                thumbs = np.stack([cv2.resize(g, (tw, th), interpolation=cv2.INTER_AREA) for g in gray])
        else:
            thumbs = gray
        rows = np.zeros((b, len(self.names)), np.float32)
        rows[:, self.col["luma"]] = gray.reshape(b, -1).mean(axis=1) / 255.0
        all_h = np.concatenate([self.prev_hists, hists])
        all_t = np.concatenate([self.prev_thumbs, thumbs]).astype(np.int16)
        p = len(self.prev_hists)  # frames kept from before this batch
        pos = self.n + np.arange(b)  # positions of the batch's frames in the video
        for j in sorted({1, *self.skips, self.k}):
            valid = pos >= j
            if not valid.any():
                continue
            i0 = int(np.argmax(valid))  # first frame of the batch with a frame j back
            cur, old = slice(p + i0, p + b), slice(p + i0 - j, p + b - j)
            d_hist = chi2_pairs(all_h[cur], all_h[old])
            if j == self.k:
                rows[i0:, self.col["long_hist"]] = d_hist
            if j != 1 and j not in self.skips:
                continue
            d_pix = np.abs(all_t[cur] - all_t[old]).mean(axis=(1, 2), dtype=np.float32) / np.float32(255.0)
            combined = HIST_WEIGHT * d_hist + (1.0 - HIST_WEIGHT) * np.minimum(1.0, PIXEL_SCALE * d_pix)
            if j == 1:
                rows[i0:, self.col["hist"]], rows[i0:, self.col["pixel"]], rows[i0:, self.col["cut"]] = d_hist, d_pix, combined
            else:
                rows[i0:, self.col[f"skip{j}"]] = combined
        if self.config.edges:
            for i in range(b):
                edges = canny_edges(gray[i])
                dil = dilate_edges(edges)
                if self.prev_edges is not None:
                    rows[i, self.col["ecr"]] = edge_change_ratio(self.prev_edges[0], edges, prev_dilated=self.prev_edges[1],
                                                                 dilated=dil).ecr
                self.prev_edges = (edges, dil)
        if self.deep is not None:
            for i in range(b):
                self.deep.add(self.n + i, images[i].copy())  # `images` is reused
        self.rows.extend(rows)
        self.prev_hists = all_h[-self.depth :].copy()
        self.prev_thumbs = np.concatenate([self.prev_thumbs, thumbs])[-self.depth :].copy()
        self.n += b

    def result(self) -> dict[str, np.ndarray]:
        scores = self.rows.result()
        if self.deep is not None:
            scores["deep"] = self.deep.array(self.n)
        return scores


_BIN_TABLE: list[np.ndarray] = []


def _bin_table() -> np.ndarray:
    """`uint8 (1,256,3)` LUT on an OpenCV HSV image: hue -> its bin (0..15), saturation -> 16 + s // 32,
    value -> 24 + v // 32: the 32 bins of `_hsv_hist` as one code per channel value."""
    if not _BIN_TABLE:
        hue_bins, sat_bins, val_bins = DEFAULT_HSV_BINS
        hue = _hue_table(hue_bins)[0, :, 0].astype(np.intp)
        identity = np.arange(256)
        sat = hue_bins + identity * sat_bins // 256
        val = hue_bins + sat_bins + identity * val_bins // 256
        _BIN_TABLE.append(np.stack([hue, sat, val], axis=-1).astype(np.uint8)[None])
    return _BIN_TABLE[0]


def chi2_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise symmetric chi-square distance of L1-normalised histograms `a`, `b` `(M,B)` -> `(M,)`."""
    num = np.square(a - b)
    den = a + b
    return 0.5 * np.divide(num, den, out=np.zeros_like(num), where=den > 0).sum(axis=1)


def compute_scores(
    path: str | os.PathLike[str],
    config: ShotConfig,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 100,
    *,
    short_side: int | None = None,
    batch: int = BATCH,
    read_ahead: int | None = None,
) -> FrameScores:
    """Decode `path` once (at about `config.size`, see `analysis_size`) and return its per-frame scores.

    `short_side`: the source's shorter side (from `probe`), used to pick an exact integer downscale.
    Decoding runs `read_ahead` frames ahead in a background thread (0: in this thread; None: 0, see
    `default_read_ahead`); frames are scored `batch` at a time, so at most `batch + read_ahead` small
    frames are held.
    """
    read_ahead = read_ahead or 0
    size = analysis_size(short_side, config.size) if short_side else config.size
    options = {"skip_loop_filter": "noref"} if config.fast_decode else None
    batches = _batches(iter_frames(path, size=size, threads=config.threads, decoder_options=options), batch)
    if read_ahead > 0:  # whole batches cross the thread boundary: one hand-over per `batch` frames
        batches = prefetch(batches, max(1, -(-read_ahead // batch)))
    times, indices = _Column(np.float64), _Column(np.int64)
    scorer: _Scorer | None = None
    reported = 0
    try:
        for images, batch_times, batch_indices in batches:
            if scorer is None:
                scorer = _Scorer(config, images.shape[1:3])
            scorer.add(images)
            times.extend(batch_times)
            indices.extend(batch_indices)
            if progress is not None and scorer.n - reported >= progress_every:
                reported = scorer.n
                progress(scorer.n)
    finally:
        batches.close()
    if scorer is None:
        return FrameScores(np.zeros(0, np.float64), np.zeros(0, np.int64), {}, (0, 0))
    if progress is not None:
        progress(scorer.n)
    return FrameScores(times.result(), indices.result(), scorer.result(), scorer.frame_size)


def _batches(frames: Iterator[Frame], batch: int) -> Iterator[tuple[np.ndarray, list[float], list[int]]]:
    """Group frames into `(images uint8 (b,h,w,3), times, indices)`, b <= `batch`; every image gets the first one's size."""
    buf: np.ndarray | None = None
    times: list[float] = []
    indices: list[int] = []
    try:
        for frame in frames:
            image = frame.image
            if buf is None:
                buf = np.empty((batch, *image.shape), np.uint8)
            elif image.shape != buf.shape[1:]:  # the stream changed size mid-way: keep the first size
                image = cv2.resize(image, (buf.shape[2], buf.shape[1]), interpolation=cv2.INTER_AREA)
            buf[len(times)] = image
            times.append(frame.time_s)
            indices.append(frame.index)
            if len(times) == batch:
                yield buf, times, indices
                buf, times, indices = np.empty_like(buf), [], []  # a fresh array: the last one may still be in use
        if times:
            yield buf[: len(times)], times, indices
    finally:
        frames.close()
