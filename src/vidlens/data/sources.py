"""Dataset layouts on disk -> lists of `VideoRecord`s per split (no decoding here).

One parser per layout, each returning a `DatasetSpec`:

- `parse_folder`: class-per-folder, ``ROOT/<class>/**/<video>``; seeded stratified split.
- `parse_ucf101`: ``classInd.txt`` + ``trainlist0N.txt`` / ``testlist0N.txt``.
- `parse_hmdb51`: ``<class>_test_splitN.txt`` files (1 train, 2 test, 0 unused).
- `parse_kinetics`: the official CSV (``label,youtube_id,time_start,time_end,split``).
- `parse_manifest`: a generic CSV or JSONL manifest (``path,label[,start,end][,split]``).

Listed videos that are not on disk are skipped and reported in `DatasetSpec.missing`
(never fatal, unless nothing at all is found); malformed inputs raise
`DatasetError(path, reason)`. Split names are always ``train``, ``val``, ``test``.
The official layouts' parsers live in `official.py`, the shared record types in
`records.py`; everything is importable from here.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from vidlens.data.official import parse_hmdb51, parse_kinetics, parse_ucf101
from vidlens.data.records import (
    LAYOUTS,
    SPLITS,
    DatasetSpec,
    VideoRecord,
    _check_found,
    _find_file,
    _float_or_none,
    _normalise_split,
    _read_csv,
    _read_lines,
    _require_dir,
    find_videos,
    is_video,
    load_labels,
    save_labels,
    stratified_split,
)
from vidlens.errors import ConfigError, DatasetError

__all__ = [
    "LAYOUTS", "SPLITS", "DatasetSpec", "VideoRecord", "detect_layout", "find_videos", "is_video", "load_labels",
    "load_spec", "parse_folder", "parse_hmdb51", "parse_kinetics", "parse_manifest", "parse_split_arg",
    "parse_ucf101", "save_labels", "stratified_split",
]

# --------------------------------------------------------------------------- folder


def parse_folder(
    root: str | os.PathLike[str], val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0,
    exclude: set[str] | None = None,
) -> DatasetSpec:
    """Class-per-folder: ``ROOT/<class>/**/<video>``; labels sorted; seeded stratified split.

    `exclude`: real paths (`cache_key`) left out *before* the split, so every split keeps its share."""
    root = _require_dir(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("." , "_")))
    records = []
    for label, name in enumerate(classes):
        records.extend(VideoRecord(p, label) for p in find_videos(root / name)
                       if not exclude or os.path.realpath(p) not in exclude)
    if not records:
        raise DatasetError(root, "no videos found in class folders (expected ROOT/<class>/<video>)")
    used = sorted({r.label for r in records})
    if len(used) != len(classes):
        # Class folders without videos (e.g. a stray "logs" folder) are not classes.
        keep = [classes[i] for i in used]
        remap = {old: new for new, old in enumerate(used)}
        for rec in records:
            rec.label = remap[rec.label]
        classes = keep
    splits = stratified_split(records, val_frac, test_frac, seed)
    return DatasetSpec(splits, classes, layout="folder", root=str(root))


# --------------------------------------------------------------------------- manifests


def parse_manifest(
    manifest: str | os.PathLike[str],
    labels: list[str] | str | os.PathLike[str] | None = None,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
    exclude: set[str] | None = None,
) -> DatasetSpec:
    """A CSV or JSONL manifest: ``path,label[,start,end][,split]`` per video.

    Paths are relative to the manifest's folder (absolute paths are kept). Labels are
    class names (an integer is a class index when `labels` is known); multi-label as
    ``"a;b"`` in CSV or a JSON list in JSONL. `labels`: a list or a label file; by
    default ``labels.json`` beside the manifest if present, else the sorted names used.
    Rows without a split (or no split column) are split like folders (seeded, stratified).
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DatasetError(manifest, "manifest not found")
    rows = _read_jsonl(manifest) if manifest.suffix.lower() in (".jsonl", ".ndjson") else _read_manifest_csv(manifest)
    if labels is None and (manifest.parent / "labels.json").is_file():
        labels = str(manifest.parent / "labels.json")
    if isinstance(labels, str | os.PathLike):
        labels = load_labels(labels)
    names: list[list[str]] = [row["label"] for _, row in rows]
    if labels is None:
        used = {x for ls in names for x in ls}
        if used and all(x.isdigit() for x in used):
            raise DatasetError(manifest, "labels are class indices: give the class names (labels.json beside the manifest or labels=)")
        labels = sorted(used)
    lookup = {name: i for i, name in enumerate(labels)}
    spec = DatasetSpec({}, list(labels), layout="manifest", root=str(manifest.parent))
    unsplit: list[VideoRecord] = []
    multi = False
    for (n, row), classes in zip(rows, names, strict=True):
        indices = []
        for name in classes:
            if name in lookup:
                indices.append(lookup[name])
            elif name.isdigit() and int(name) < len(labels):
                indices.append(int(name))
            else:
                raise DatasetError(manifest, f"line {n}: unknown class {name!r}")
        if not indices:
            raise DatasetError(manifest, f"line {n}: empty label")
        multi = multi or row["multi"]
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else manifest.parent / path
        split = _normalise_split(row["split"], manifest, n) if row.get("split") else None
        start = _float_or_none(row.get("start"), manifest, n, "start")
        end = _float_or_none(row.get("end"), manifest, n, "end")
        if start is not None and end is not None and end <= start:
            raise DatasetError(manifest, f"line {n}: end {end} is not after start {start}")
        if not path.is_file():
            spec.missing.append({"source": str(manifest), "line": n, "path": str(path),
                                 "label": ";".join(classes), "split": split or "", "reason": "file not found"})
            continue
        if exclude and os.path.realpath(path) in exclude:  # left out before the split below
            continue
        rec = VideoRecord(str(path), indices if row["multi"] else indices[0], start, end)
        if split is None:
            unsplit.append(rec)
        else:
            spec.records_by_split.setdefault(split, []).append(rec)
    if multi:  # one record type per dataset: every label a list
        for recs in [unsplit, *spec.records_by_split.values()]:
            for rec in recs:
                rec.label = rec.labels
    if unsplit:
        for split, recs in stratified_split(unsplit, val_frac, test_frac, seed).items():
            spec.records_by_split.setdefault(split, []).extend(recs)
    spec.records_by_split = {s: spec.records_by_split[s] for s in SPLITS if s in spec.records_by_split}
    _check_found(spec, manifest)
    return spec


def _read_manifest_csv(manifest: Path) -> list[tuple[int, dict[str, Any]]]:
    columns, rows = _read_csv(manifest)
    lacking = [c for c in ("path", "label") if c not in columns]
    if lacking:
        raise DatasetError(manifest, f"manifest lacks column(s) {', '.join(lacking)} (has {', '.join(columns) or 'none'})")
    out = []
    for n, row in rows:
        if not row.get("path"):
            raise DatasetError(manifest, f"line {n}: empty path")
        parts = [x.strip() for x in row["label"].split(";") if x.strip()]
        out.append((n, {**row, "label": parts, "multi": ";" in row["label"]}))
    return out


def _read_jsonl(manifest: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for n, line in _read_lines(manifest):
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DatasetError(manifest, f"line {n}: not JSON ({exc})") from None
        if not isinstance(row, dict) or "path" not in row or "label" not in row:
            raise DatasetError(manifest, f"line {n}: each line needs 'path' and 'label' keys")
        label = row["label"]
        multi = isinstance(label, list)
        parts = [str(x) for x in (label if multi else [label])]
        split = row.get("split")
        out.append((n, {"path": str(row["path"]), "label": parts, "multi": multi,
                        "start": row.get("start"), "end": row.get("end"), "split": "" if split is None else str(split)}))
    return out


# --------------------------------------------------------------------------- dispatch


def parse_split_arg(value: str) -> tuple[str, int]:
    """``"ucf101:1"`` -> ``("ucf101", 1)``; ``"folder"`` -> ``("folder", 1)``."""
    layout, _, number = str(value).strip().lower().partition(":")
    if layout not in LAYOUTS:
        raise ConfigError(None, f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if not number:
        return layout, 1
    if not number.isdigit():
        raise ConfigError(None, f"split number must be an integer in {value!r}")
    return layout, int(number)


def detect_layout(root: str | os.PathLike[str] | None, manifest: str | os.PathLike[str] | None = None) -> str:
    """Guess the layout: a Kinetics CSV (has youtube_id) or other manifest, UCF101, HMDB51,
    a ``manifest.csv``/``manifest.jsonl`` in ROOT, else folder."""
    if manifest is not None:
        path = Path(manifest)
        if path.suffix.lower() == ".csv" and path.is_file():
            with open(path, newline="", encoding="utf-8-sig") as handle:
                header = [c.strip() for c in next(csv.reader(handle), [])]
            if "youtube_id" in header:
                return "kinetics"
        return "manifest"
    root = _require_dir(root)
    if _find_file("classInd.txt", [root / "ucfTrainTestlist", root]):
        return "ucf101"
    if any(root.glob("*_test_split1.txt")) or any(root.glob("*/*_test_split1.txt")):
        return "hmdb51"
    if _root_manifest(root) is not None:
        return "manifest"
    return "folder"


def _root_manifest(root: Path) -> Path | None:
    """``ROOT/manifest.csv`` or ``ROOT/manifest.jsonl`` (as `vidlens data synth` writes), if any."""
    return next((root / n for n in ("manifest.csv", "manifest.jsonl") if (root / n).is_file()), None)


def load_spec(
    root: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    split: int = 1,
    manifest: str | os.PathLike[str] | None = None,
    *,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    seed: int = 0,
    labels: list[str] | str | None = None,
    splits_dir: str | os.PathLike[str] | None = None,
    exclude: set[str] | None = None,
) -> DatasetSpec:
    """Parse any layout. `layout` may carry the split (``"ucf101:2"``) or be ``"auto"``.

    `exclude`: real paths to leave out (a scan's bad files), removed before any seeded split is made."""
    if layout == "auto":
        layout = detect_layout(root, manifest)
    elif ":" in layout:
        layout, split = parse_split_arg(layout)
    if exclude:
        spec = load_spec(root, layout, split, manifest, val_frac=val_frac, test_frac=test_frac, seed=seed,
                         labels=labels, splits_dir=splits_dir) if layout not in ("folder", "manifest") else None
        if spec is not None:  # official splits are fixed lists: filtering them is all there is to do
            spec.records_by_split = {name: [r for r in recs if os.path.realpath(r.path) not in exclude]
                                     for name, recs in spec.records_by_split.items()}
            return spec
    if layout == "folder":
        return parse_folder(root, val_frac, test_frac, seed, exclude)
    if layout == "ucf101":
        return parse_ucf101(root, split, splits_dir)
    if layout == "hmdb51":
        return parse_hmdb51(root, split, splits_dir)
    if layout == "kinetics":
        if manifest is None:
            raise ConfigError(None, "the kinetics layout needs the CSV (manifest=...)")
        return parse_kinetics(root, manifest)
    if layout == "manifest":
        if manifest is None and root is not None:
            manifest = _root_manifest(Path(root))
        if manifest is None:
            raise ConfigError(None, "the manifest layout needs manifest=...")
        return parse_manifest(manifest, labels, val_frac, test_frac, seed, exclude)
    raise ConfigError(None, f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)} or auto")
