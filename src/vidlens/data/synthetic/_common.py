"""Plumbing shared by the synthetic dataset writers: output folders, sizes, splits."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, DatasetError

GENERATOR = "vidlens.data.synthetic"


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """`112` -> (112, 112); `(144, 256)` -> (144, 256). Sizes below 16 px are refused."""
    if isinstance(size, int | np.integer):
        hw = (int(size), int(size))
    else:
        hw = tuple(int(s) for s in size)
        if len(hw) != 2:
            raise ConfigError(None, f"size must be an int or (height, width), got {size!r}")
    if min(hw) < 16:
        raise ConfigError(None, f"size must be at least 16 pixels, got {hw}")
    return hw  # type: ignore[return-value]


def even_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """`as_hw` for files: H.264 4:2:0 needs even sizes (the writer would pad odd ones by a pixel)."""
    hw = as_hw(size)
    if hw[0] % 2 or hw[1] % 2:
        raise ConfigError(None, f"size must be even for H.264 files, got {hw[0]}x{hw[1]}")
    return hw


def prepare_out_dir(out_dir: str | os.PathLike[str], kind: str, overwrite: bool) -> Path:
    """Create `out_dir`; an existing non-empty folder is replaced only when `overwrite` and it
    holds a synthetic dataset of the same kind (its `dataset.json` says so), never anything else."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(out, "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(out, "already exists and is not empty (pass overwrite=True / --overwrite to replace it)")
        try:
            meta = json.loads((out / "dataset.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("generator") != GENERATOR or meta.get("kind") != kind:
            raise DatasetError(out, f"is not a synthetic {kind} dataset made by vidlens; refusing to overwrite it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def stratified_split(labels: Sequence[str], fractions: Sequence[float], seed: int,
                     names: Sequence[str] = ("train", "val", "test")) -> list[str]:
    """A seeded stratified split: one split name per item, `fractions` of each label's items per split.

    Counts per label are floor(n * f) with the remainder given by largest fractional part;
    when a label has at least as many items as there are non-empty splits, each of them gets one.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if len(fractions) != len(names) or (fractions < 0).any() or fractions.sum() <= 0:
        raise ConfigError(None, f"split fractions must be {len(names)} non-negative numbers, got {list(fractions)}")
    fractions = fractions / fractions.sum()
    out = [""] * len(labels)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    for li, (label, items) in enumerate(sorted(by_label.items())):
        n = len(items)
        raw = fractions * n
        counts = np.floor(raw).astype(int)
        for k in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
            counts[k] += 1
        wanted = np.flatnonzero(fractions > 0)
        if n >= len(wanted):
            for k in wanted:
                if counts[k] == 0:
                    counts[int(np.argmax(counts))] -= 1
                    counts[k] = 1
        order = np.random.default_rng([seed, li, 7919]).permutation(n)
        pos = 0
        for name, count in zip(names, counts, strict=True):
            for j in order[pos : pos + count]:
                out[items[j]] = name
            pos += count
    return out


def write_jsonl(path: Path, records: Sequence[dict]) -> None:
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def clip_path(class_name: str, index: int) -> str:
    """Where clip `index` of `class_name` goes, relative to a clip set's root."""
    return f"{class_name}/{class_name}_{index:04d}.mp4"


def check_clip_set(num_per_class: int, num_frames: int, fps: float) -> None:
    """The arguments every synthetic clip set validates the same way (ConfigError with the reason)."""
    if num_per_class < 1:
        raise ConfigError(None, f"num_per_class must be at least 1, got {num_per_class}")
    if num_frames < 2:
        raise ConfigError(None, f"num_frames must be at least 2, got {num_frames}")
    if fps <= 0:
        raise ConfigError(None, f"fps must be positive, got {fps}")


class ManifestPaths:
    """`manifest` and `ground_truth` of a synthetic set's info (a dataclass with `root`)."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def ground_truth(self) -> Path:
        return self.root / "ground_truth.jsonl"


def write_clip_index(root: Path, records: list[dict], classes: Sequence[str], splits: Sequence[float], seed: int) -> None:
    """Give every record a seeded stratified `split`, then write `labels.json`, `ground_truth.jsonl` and
    `manifest.csv` (`path,label,split`): the index every synthetic clip set shares."""
    for record, split in zip(records, stratified_split([r["label"] for r in records], splits, seed), strict=True):
        record["split"] = split
    (root / "labels.json").write_text(json.dumps(list(classes), indent=2) + "\n")
    write_jsonl(root / "ground_truth.jsonl", records)
    with open(root / "manifest.csv", "w") as f:
        f.write("path,label,split\n")
        for record in records:
            f.write(f"{record['path']},{record['label']},{record['split']}\n")
