"""Records, dataset specs, label maps and the helpers every layout parser shares.

`VideoRecord` (one labelled video or segment), `DatasetSpec` (records per split +
labels + what is missing), `save_labels`/`load_labels`, `find_videos`, and the
seeded `stratified_split`. The parsers live in `sources.py` (folder, manifests,
dispatch) and `official.py` (UCF101, HMDB51, Kinetics).
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, DatasetError
from vidlens.io import VIDEO_EXTENSIONS

SPLITS = ("train", "val", "test")
LAYOUTS = ("folder", "ucf101", "hmdb51", "kinetics", "manifest")
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validate": "val", "validation": "val",
    "test": "test", "testing": "test",
}


@dataclass
class VideoRecord:
    """One labelled video (or segment of one).

    `label`: class index, or a list of class indices (multi-label).
    `start_s`/`end_s`: the segment to sample from, seconds from the first frame
    (None: the whole file). `meta`: free-form, JSON-serialisable extras.
    """

    path: str
    label: int | list[int]
    start_s: float | None = None
    end_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[int]:
        """The label(s) as a list."""
        return list(self.label) if isinstance(self.label, list) else [int(self.label)]


@dataclass
class DatasetSpec:
    """What a layout parser found: records per split, the label names, and what is missing.

    `missing`: one dict per listed-but-absent video (``{"source", "line", "path" or
    "youtube_id", "label", "split", "reason"}``).
    """

    records_by_split: dict[str, list[VideoRecord]]
    labels: list[str]
    missing: list[dict[str, Any]] = field(default_factory=list)
    layout: str = ""
    root: str = ""

    @property
    def num_records(self) -> int:
        return sum(len(r) for r in self.records_by_split.values())

    def all_records(self) -> list[tuple[str, VideoRecord]]:
        """(split, record) pairs over every split, in split order."""
        return [(s, r) for s, recs in self.records_by_split.items() for r in recs]


# --------------------------------------------------------------------------- labels


def save_labels(path: str | os.PathLike[str], labels: list[str]) -> Path:
    """Write the label map as a JSON list (index = class id); atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(list(labels), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_labels(path: str | os.PathLike[str]) -> list[str]:
    """Read a label map: a JSON list, ``{"labels": [...]}``, or ``{name: index}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(path, "label file not found") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(path, f"cannot read label file ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("labels"), list):
        data = data["labels"]
    if isinstance(data, dict):
        try:
            by_index = sorted((int(i), str(name)) for name, i in data.items())
        except (TypeError, ValueError):
            raise DatasetError(path, "label map must be a list of names or {name: index}") from None
        if [i for i, _ in by_index] != list(range(len(by_index))):
            raise DatasetError(path, "label indices must be 0..N-1")
        data = [name for _, name in by_index]
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise DatasetError(path, "label file must hold a JSON list of class names")
    if len(set(data)) != len(data):
        raise DatasetError(path, "duplicate class names in label file")
    return data


# --------------------------------------------------------------------------- helpers


def is_video(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def find_videos(root: str | os.PathLike[str]) -> list[str]:
    """Every video file under `root` (recursive, hidden entries skipped), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(os.path.join(dirpath, f) for f in filenames if not f.startswith(".") and is_video(f))
    return sorted(found)


def _require_dir(root: str | os.PathLike[str] | None, what: str = "dataset root") -> Path:
    if root is None:
        raise DatasetError(None, f"no {what} given")
    root = Path(root)
    if not root.exists():
        raise DatasetError(root, f"{what} does not exist")
    if not root.is_dir():
        raise DatasetError(root, f"{what} is not a directory")
    return root


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(path, f"cannot read ({exc.strerror or exc})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _normalise_split(value: str, source: Path, line: int | None = None) -> str:
    split = _SPLIT_ALIASES.get(str(value).strip().lower())
    if split is None:
        where = f" (line {line})" if line is not None else ""
        raise DatasetError(source, f"unknown split {value!r}{where}; expected train, val or test")
    return split


def stratified_split(
    records: list[VideoRecord], val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0
) -> dict[str, list[VideoRecord]]:
    """Seeded per-class split into train/val/test (multi-label records: by their first label).

    Each class is shuffled with a generator seeded by (seed, class), so adding a class does
    not reshuffle the others. A class with at least 3 videos gets at least one in every
    split whose fraction is > 0; with 2 videos the second goes to val (or test if
    `val_frac` is 0); a single video stays in train. Splits with fraction 0 are omitted.
    """
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(None, f"val_frac={val_frac} and test_frac={test_frac} must be >= 0 and sum below 1")
    by_class: dict[int, list[VideoRecord]] = defaultdict(list)
    for rec in records:
        by_class[rec.labels[0] if rec.labels else -1].append(rec)
    out: dict[str, list[VideoRecord]] = {"train": []}
    if val_frac > 0:
        out["val"] = []
    if test_frac > 0:
        out["test"] = []
    for cls in sorted(by_class):
        recs = sorted(by_class[cls], key=lambda r: (r.path, r.start_s or 0.0))
        n = len(recs)
        order = np.random.default_rng([seed, zlib.crc32(str(cls).encode())]).permutation(n)
        n_val = int(round(n * val_frac)) if val_frac > 0 else 0
        n_test = int(round(n * test_frac)) if test_frac > 0 else 0
        if n >= 3:
            n_val = max(n_val, 1 if val_frac > 0 else 0)
            n_test = max(n_test, 1 if test_frac > 0 else 0)
            while n_val + n_test > n - 1:  # keep at least one training video
                if n_val >= n_test and n_val > 1:
                    n_val -= 1
                else:
                    n_test -= 1
        elif n == 2:
            n_val, n_test = (1, 0) if val_frac > 0 else (0, 1 if test_frac > 0 else 0)
        else:
            n_val = n_test = 0
        shuffled = [recs[i] for i in order]
        if n_val:
            out["val"].extend(shuffled[:n_val])
        if n_test:
            out["test"].extend(shuffled[n_val : n_val + n_test])
        out["train"].extend(shuffled[n_val + n_test :])
    for split in out:
        out[split].sort(key=lambda r: (r.path, r.start_s or 0.0))
    return out


def _check_split_number(split: int, layout: str) -> int:
    if split not in (1, 2, 3):
        raise ConfigError(None, f"{layout} split must be 1, 2 or 3, got {split!r}")
    return split


def _find_file(name: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    return None


def _check_found(spec: DatasetSpec, where: Path) -> None:
    if spec.num_records == 0:
        listed = len(spec.missing)
        raise DatasetError(where, f"none of the {listed} listed videos were found" if listed else "no videos listed")


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = columns
            rows = [(n + 2, {k: (v or "").strip() for k, v in row.items() if k}) for n, row in enumerate(reader)]
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read CSV ({exc})") from None
    return columns, rows


def _float_or_none(value: Any, source: Path, line: int, column: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DatasetError(source, f"line {line}: {column} {value!r} is not a number") from None
