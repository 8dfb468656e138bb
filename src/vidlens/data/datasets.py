"""`VideoClipDataset`: records -> sampled, decoded, transformed clips for a DataLoader.

Each item is a dict the default torch collate can batch::

    {"video": Tensor, "label": int | float multi-hot Tensor (num_classes,), "meta": {...}}

- training: ``video`` is the training transform's output, `(T,C,H,W)` float
  (uint8 `(T,C,H,W)` without a transform);
- testing: ``video`` is `(N_views, T, C, H, W)` with ``N_views = K x V``: K clips from
  the sampler (`SamplerConfig.num_clips` in clip mode, else 1) times V crops from the
  eval transform (1 centre crop or 3); view ``n = k * V + v``. Without a transform:
  uint8 `(K, T, C, H, W)`.

``meta``: ``path`` (the file actually read), ``index`` (the index asked for),
``used_index``, ``clip_starts_s`` (float64 `(K,)`: seconds from the file's first
frame at which each clip starts; K = 1 in training), ``substituted`` (bool),
``original_path`` (the unreadable file that was replaced, "" if none) and
``partial_decode`` (bool: some frames were replaced by their neighbours).

Unreadable files never stop an epoch: the failure is logged once per file (per
process) at WARNING, remembered, and the item is replaced by another sample, chosen
deterministically from (seed, index): same class first in training. Only when
`max_retries` replacements fail too does `__getitem__` raise `DatasetError`. With
`max_retries=0` (inference, evaluation) nothing is replaced or logged: the file's own
error is raised as a `DatasetError` with its path and reason.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from vidlens.data.cache import CacheReader, cache_key
from vidlens.data.samplers import SamplerConfig, sample_indices
from vidlens.data.scan import load_bad_files
from vidlens.data.sources import DatasetSpec, VideoRecord, load_spec
from vidlens.errors import ConfigError, DatasetError
from vidlens.io import PartialDecodeWarning, frame_index, read_clip

logger = logging.getLogger("vidlens.data")

Transform = Callable[[torch.Tensor], torch.Tensor]


def _fps_of(times: np.ndarray) -> float:
    """Average frame rate from presentation times (as `probe` computes it)."""
    if times.size < 2:
        return 25.0
    span = float(times[-1] + np.median(np.diff(times)))
    return times.size / span if span > 0 else 25.0


class VideoClipDataset(Dataset):
    """Clips of `records` sampled by `sampler`, decoded at `decode_size`, then `transform`ed.

    `labels`: class names (index = class id). `transform`: training transform
    (uint8 `(T,C,H,W)` -> float `(T,C,S,S)`) when `train`, else an eval transform
    (-> `(V,T,C,S,S)`); None returns uint8 frames. `decode_size`: shorter side the
    frames are decoded at (e.g. 128 for a 112 crop; None = native; ignored when read
    from `cache`, whose frames have the cache's size). `cache`: a `CacheReader` (or its
    folder): cached videos are read from it, others decoded. `exclude`: files to skip
    (a scan's ``bad_files.csv`` or paths). `multi_label`: labels as multi-hot floats.
    Picklable; in DataLoader workers the training RNG is seeded from (seed, worker seed).
    """

    def __init__(
        self,
        records: list[VideoRecord],
        labels: list[str],
        sampler: SamplerConfig | None = None,
        transform: Transform | None = None,
        train: bool = False,
        decode_size: int | None = 128,
        seed: int = 0,
        multi_label: bool = False,
        cache: CacheReader | str | os.PathLike[str] | None = None,
        max_retries: int = 10,
        exclude: str | os.PathLike[str] | Iterable[str] | None = None,
    ) -> None:
        self.labels = list(labels)
        self.sampler = sampler if sampler is not None else SamplerConfig()
        if not isinstance(self.sampler, SamplerConfig):
            raise ConfigError(None, f"sampler must be a SamplerConfig, got {type(self.sampler).__name__}")
        self.transform = transform
        self.train = bool(train)
        self.decode_size = decode_size
        self.seed = int(seed)
        self.multi_label = bool(multi_label)
        self.cache = CacheReader(cache) if isinstance(cache, str | os.PathLike) else cache
        self.max_retries = int(max_retries)
        skip = load_bad_files(exclude)
        kept = [r for r in records if cache_key(r.path) not in skip] if skip else list(records)
        self.excluded = len(records) - len(kept)
        self.records = kept
        for rec in self.records:
            bad = [c for c in rec.labels if not 0 <= c < len(self.labels)]
            if bad:
                raise DatasetError(rec.path, f"label {bad[0]} outside the {len(self.labels)} classes")
            if isinstance(rec.label, list) and not self.multi_label:
                raise ConfigError(None, f"{rec.path} has several labels: use multi_label=True")
        self._by_class: dict[int, list[int]] = defaultdict(list)
        for i, rec in enumerate(self.records):
            self._by_class[rec.labels[0] if rec.labels else -1].append(i)
        self._timing: dict[int, tuple[str, int, float, int, int]] = {}  # small: no per-frame arrays
        self.bad_files: dict[str, str] = {}  # path -> reason, seen by this process
        self.partial_decodes: dict[str, int] = defaultdict(int)  # path -> clips with replaced frames
        self.substitutions = 0
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int | None] | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_rng"] = state["_rng_owner"] = None
        return state

    # ------------------------------------------------------------------ items

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"index {index} out of range for {len(self.records)} records")
        index = int(index) % len(self.records)
        current, pos, tries, first_error = index, 0, 0, None
        order: list[int] | None = None
        while True:
            rec = self.records[current]
            reason = self.bad_files.get(rec.path)
            if reason is None:
                try:
                    video, starts, partial = self._load(current)
                    break
                except ConfigError:
                    raise
                except Exception as exc:  # a corrupt file may fail anywhere in decoding
                    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                    if self.max_retries <= 0:  # no substitution asked (inference, evaluation): this file's own error
                        self.bad_files[rec.path] = reason
                        raise DatasetError(rec.path, reason) from exc
                    self._mark_bad(rec.path, reason)
                if current != index:
                    tries += 1
            first_error = first_error or (rec.path, reason)
            if self.max_retries <= 0:  # known bad in this process, no substitution asked
                raise DatasetError(rec.path, reason)
            if order is None:
                order = self._substitute_order(index)
            while pos < len(order) and self.records[order[pos]].path in self.bad_files:
                pos += 1  # already known bad in this process: skipped without a retry
            if pos >= len(order) or tries >= self.max_retries:
                raise DatasetError(
                    first_error[0], f"unreadable ({first_error[1]}) and no readable substitute found "
                    f"after {tries} tries")
            current = order[pos]
            pos += 1
        if current != index:
            self.substitutions += 1
        rec = self.records[current]
        return {
            "video": video,
            "label": self._label(rec),
            "meta": {
                "path": rec.path,
                "index": index,
                "used_index": current,
                "clip_starts_s": torch.as_tensor(starts, dtype=torch.float64),
                "substituted": current != index,
                "original_path": self.records[index].path if current != index else "",
                "partial_decode": partial,
            },
        }

    def _label(self, rec: VideoRecord) -> int | torch.Tensor:
        if not self.multi_label:
            return int(rec.label)
        target = torch.zeros(len(self.labels), dtype=torch.float32)
        target[rec.labels] = 1.0
        return target

    def _mark_bad(self, path: str, reason: str) -> None:
        if path not in self.bad_files:
            logger.warning("skipping unreadable video %s (%s); a substitute sample is used", path, reason)
        self.bad_files[path] = reason

    def _substitute_order(self, index: int) -> list[int]:
        """Candidates to replace record `index`, in a fixed order from (seed, index)."""
        rng = np.random.default_rng([self.seed, index, 0x5B])
        rec = self.records[index]
        same = [i for i in self._by_class[rec.labels[0] if rec.labels else -1] if i != index]
        if not self.train:
            pool = [i for i in range(len(self.records)) if i != index]
            return [pool[i] for i in rng.permutation(len(pool))]
        same_set = set(same)
        others = [i for i in range(len(self.records)) if i != index and i not in same_set]
        return [same[i] for i in rng.permutation(len(same))] + [others[i] for i in rng.permutation(len(others))]

    def _train_rng(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        owner = (os.getpid(), None if info is None else int(info.seed))
        if self._rng is None or self._rng_owner != owner:
            entropy = [self.seed] if info is None else [self.seed, int(info.seed) % (2**63)]
            self._rng = np.random.default_rng(entropy)
            self._rng_owner = owner
        return self._rng

    # ------------------------------------------------------------------ decoding

    def timing(self, i: int) -> tuple[str, int, float, int, int]:
        """(source "cache"|"video", frames, fps, first, end): record `i`'s frames and sampling range.

        `[first, end)` are the frames inside the record's segment. Cached per record in this
        object (per process); the frame times themselves come from `_times`.
        """
        cached = self._timing.get(i)
        if cached is not None:
            return cached
        rec = self.records[i]
        source = "cache" if self.cache is not None and self.cache.entry(rec.path) is not None else "video"
        times, fps = self._times(rec.path, source)
        lo, hi = 0, times.size
        if rec.start_s is not None:
            lo = int(np.searchsorted(times, rec.start_s - 1e-6, side="left"))
        if rec.end_s is not None:
            hi = int(np.searchsorted(times, rec.end_s - 1e-6, side="left"))
        if hi <= lo:
            raise DatasetError(rec.path, f"segment [{rec.start_s}, {rec.end_s}) s holds no frames "
                               f"(the video lasts {times[-1] if times.size else 0:.3f} s)")
        result = (source, int(times.size), float(fps), lo, hi)
        self._timing[i] = result
        return result

    def _times(self, path: str, source: str) -> tuple[np.ndarray, float]:
        """Seconds of every frame from the first one, and the average fps."""
        if source == "cache":
            entry = self.cache.entry(path)
            return np.arange(entry.num_frames) / entry.fps, entry.fps
        times = frame_index(path).times  # cached by vidlens.io per (path, size, mtime); read_clip needs it anyway
        return times, _fps_of(times)

    def _load(self, i: int) -> tuple[torch.Tensor, np.ndarray, bool]:
        rec = self.records[i]
        source, _, fps, lo, hi = self.timing(i)
        rng = self._train_rng() if self.train else np.random.default_rng([self.seed, i])
        idx = sample_indices(self.sampler, hi - lo, fps, self.train, rng) + lo
        clips = idx.reshape(-1, idx.shape[-1])  # (K, T)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialDecodeWarning)
            if source == "cache":
                frames = self.cache.read(rec.path, clips.reshape(-1))
            else:
                frames = read_clip(rec.path, clips.reshape(-1), size=self.decode_size)
        partial = False
        for w in caught:
            if issubclass(w.category, PartialDecodeWarning):
                partial = True
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if partial:
            self.partial_decodes[rec.path] += 1
            if self.partial_decodes[rec.path] == 1:
                logger.warning("%s: some frames could not be decoded; neighbouring frames used", rec.path)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # (K*T, C, H, W)
        starts = self._times(rec.path, source)[0][clips[:, 0]]
        if self.train:
            return (self.transform(video) if self.transform else video), starts, partial
        per_clip = video.reshape(clips.shape[0], clips.shape[1], *video.shape[1:])
        if self.transform is None:
            return per_clip.contiguous(), starts, partial
        views = []
        for clip in per_clip:
            out = self.transform(clip)
            views.append(out[None] if out.ndim == 4 else out)
        return torch.cat(views), starts, partial


# ---------------------------------------------------------------------- balancing


def class_counts(records: Iterable[VideoRecord], num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.int64)
    for rec in records:
        for c in rec.labels:
            counts[c] += 1
    return counts


def class_weights(records: Iterable[VideoRecord], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights `(num_classes,)` float32, mean 1 over present classes (0 for absent ones).

    Use as ``CrossEntropyLoss(weight=...)`` or to build a `BalancedSampler`.
    """
    counts = class_counts(records, num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.as_tensor(weights, dtype=torch.float32)


def sample_weights(records: list[VideoRecord], num_classes: int) -> torch.Tensor:
    """Per-record weights `(N,)` float64: its class weight (mean over its classes if multi-label)."""
    weights = class_weights(records, num_classes).double()
    return torch.as_tensor([float(weights[rec.labels].mean()) for rec in records], dtype=torch.float64)


class BalancedSampler(WeightedRandomSampler):
    """A `WeightedRandomSampler` drawing every class equally often (in expectation).

    ``DataLoader(ds, sampler=BalancedSampler(ds.records, ds.num_classes))``; `num_samples`
    defaults to the number of records (one epoch).
    """

    def __init__(
        self,
        records: list[VideoRecord],
        num_classes: int,
        num_samples: int | None = None,
        replacement: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if not records:
            raise DatasetError(None, "cannot balance an empty dataset")
        super().__init__(sample_weights(records, num_classes), num_samples or len(records), replacement, generator)


# ---------------------------------------------------------------------- constructors


def build_datasets(
    root: str | os.PathLike[str] | None = None,
    layout: str = "folder",
    split: int = 1,
    manifest: str | os.PathLike[str] | None = None,
    *,
    sampler: SamplerConfig | None = None,
    transform: Any = None,
    train_transform: Transform | None = None,
    eval_transform: Transform | None = None,
    decode_size: int | None = 128,
    seed: int = 0,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    labels: list[str] | str | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
    exclude: str | os.PathLike[str] | Iterable[str] | None = None,
    cache: CacheReader | str | os.PathLike[str] | None = None,
    multi_label: bool | None = None,
    max_retries: int = 10,
    spec: DatasetSpec | None = None,
) -> dict[str, VideoClipDataset]:
    """One `VideoClipDataset` per split (``train`` trains; ``val``/``test`` evaluate).

    `layout`: folder, ucf101, hmdb51, kinetics (CSV in `manifest`), manifest, auto, or
    the string form ``"ucf101:1"`` (see `parse_split_arg`). `transform`: a
    `TransformConfig` (train and eval transforms are built from it) unless
    `train_transform`/`eval_transform` are given; None = uint8 frames. `multi_label`:
    None = detect (any record with a list label). `spec`: an already parsed layout.
    """
    if spec is None:
        spec = load_spec(root, layout, split, manifest, val_frac=val_frac, test_frac=test_frac,
                         seed=seed, labels=labels, splits_dir=splits_dir)
    if transform is not None:
        from vidlens.data.transforms import build_eval_transform, build_train_transform

        train_transform = train_transform or build_train_transform(transform)
        eval_transform = eval_transform or build_eval_transform(transform)
    if multi_label is None:
        multi_label = any(isinstance(r.label, list) for _, r in spec.all_records())
    if isinstance(cache, str | os.PathLike):
        cache = CacheReader(cache)
    skip = load_bad_files(exclude)
    out = {}
    for name, records in spec.records_by_split.items():
        train = name == "train"
        out[name] = VideoClipDataset(
            records, spec.labels, sampler, train_transform if train else eval_transform, train,
            decode_size, seed, multi_label, cache, max_retries, skip or None,
        )
    return out
