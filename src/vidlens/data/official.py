"""Parsers of the official benchmark layouts: UCF101, HMDB51 and the Kinetics CSVs.

Each returns a `DatasetSpec` (see `records.py`); listed videos that are not on disk go
to `DatasetSpec.missing`; malformed split files raise `DatasetError(path, reason)`.
"""

from __future__ import annotations

import bisect
import os
import re
from collections import defaultdict
from pathlib import Path

from vidlens.data.records import (
    _SPLIT_ALIASES,
    SPLITS,
    DatasetSpec,
    VideoRecord,
    _check_found,
    _check_split_number,
    _find_file,
    _float_or_none,
    _normalise_split,
    _read_csv,
    _read_lines,
    _require_dir,
    find_videos,
)
from vidlens.errors import DatasetError

def parse_ucf101(
    root: str | os.PathLike[str], split: int = 1, splits_dir: str | os.PathLike[str] | None = None
) -> DatasetSpec:
    """UCF101: videos under ROOT or ROOT/UCF-101; split files in `splits_dir`, ROOT or ROOT/ucfTrainTestlist.

    Labels follow ``classInd.txt`` (1-based ``idx name`` lines). Train lines
    ``Class/v_x.avi idx`` (the index may be absent), test lines ``Class/v_x.avi``.
    """
    root = _require_dir(root)
    split = _check_split_number(split, "UCF101")
    folders = [Path(splits_dir)] if splits_dir else [root / "ucfTrainTestlist", root, root / "UCF-101"]
    class_file = _find_file("classInd.txt", folders)
    if class_file is None:
        raise DatasetError(folders[0], "classInd.txt not found (looked in " + ", ".join(map(str, folders)) + ")")
    labels: list[str] = []
    for n, line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(class_file, f"line {n}: expected 'index ClassName', got {line!r}")
        if int(parts[0]) != len(labels) + 1:
            raise DatasetError(class_file, f"line {n}: class indices must run 1, 2, 3, ... (got {parts[0]})")
        labels.append(parts[1])
    if not labels:
        raise DatasetError(class_file, "no classes listed")
    lookup = {name.lower(): i for i, name in enumerate(labels)}
    video_root = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    spec = DatasetSpec({}, labels, layout="ucf101", root=str(root))
    for part, stem in (("train", "trainlist"), ("test", "testlist")):
        split_file = _find_file(f"{stem}{split:02d}.txt", folders)
        if split_file is None:
            raise DatasetError(folders[0] / f"{stem}{split:02d}.txt", "split file not found")
        records = []
        for n, line in _read_lines(split_file):
            parts = line.split()
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else None
            if folder is None or folder.lower() not in lookup:
                raise DatasetError(split_file, f"line {n}: unknown class {folder or rel!r} (not in classInd.txt)")
            label = lookup[folder.lower()]
            if len(parts) > 1:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(labels):
                    raise DatasetError(split_file, f"line {n}: class index {parts[1]!r} outside 1..{len(labels)}")
                if int(parts[1]) - 1 != label:
                    raise DatasetError(
                        split_file, f"line {n}: index {parts[1]} is {labels[int(parts[1]) - 1]!r} but the folder is {folder!r}"
                    )
            path = video_root / rel
            if not path.is_file():
                spec.missing.append({"source": str(split_file), "line": n, "path": str(path),
                                     "label": labels[label], "split": part, "reason": "file not found"})
                continue
            records.append(VideoRecord(str(path), label))
        spec.records_by_split[part] = records
    _check_found(spec, video_root)
    return spec


# --------------------------------------------------------------------------- HMDB51

_HMDB_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")


def parse_hmdb51(
    root: str | os.PathLike[str], split: int = 1, splits_dir: str | os.PathLike[str] | None = None
) -> DatasetSpec:
    """HMDB51: ``<class>_test_splitN.txt`` files (``video.avi 0|1|2``: 1 train, 2 test, 0 unused).

    Split files are looked for in `splits_dir`, else ROOT and its immediate sub-folders
    (e.g. ``testTrainMulti_7030_splits``); videos in ``ROOT/<class>/``. Labels sorted.
    """
    root = _require_dir(root)
    split = _check_split_number(split, "HMDB51")
    if splits_dir is not None:
        candidates = [_require_dir(splits_dir, "splits folder")]
    else:
        candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    files: dict[str, Path] = {}
    for folder in candidates:
        for path in sorted(folder.glob(f"*_test_split{split}.txt")):
            match = _HMDB_RE.match(path.name)
            if match:
                files.setdefault(match["cls"], path)
        if files:
            break
    if not files:
        raise DatasetError(candidates[0], f"split file not found: no *_test_split{split}.txt files")
    labels = sorted(files)
    spec = DatasetSpec({"train": [], "test": []}, labels, layout="hmdb51", root=str(root))
    for label, name in enumerate(labels):
        class_dir = root / name
        if not class_dir.is_dir():
            raise DatasetError(class_dir, f"class folder for {files[name].name} does not exist")
        for n, line in _read_lines(files[name]):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(files[name], f"line {n}: expected 'video.avi 0|1|2', got {line!r}")
            if parts[1] == "0":
                continue
            part = "train" if parts[1] == "1" else "test"
            path = class_dir / parts[0]
            if not path.is_file():
                spec.missing.append({"source": str(files[name]), "line": n, "path": str(path),
                                     "label": name, "split": part, "reason": "file not found"})
                continue
            spec.records_by_split[part].append(VideoRecord(str(path), label))
    _check_found(spec, root)
    return spec


# --------------------------------------------------------------------------- Kinetics

_KINETICS_COLUMNS = ("label", "youtube_id")


class _StemIndex:
    """Video files under a root, found by exact stem or by stem prefix."""

    def __init__(self, root: Path) -> None:
        self.by_stem: dict[str, list[str]] = defaultdict(list)
        for path in find_videos(root):
            self.by_stem[Path(path).stem].append(path)
        self.stems = sorted(self.by_stem)

    def exact(self, stem: str) -> list[str]:
        return self.by_stem.get(stem, [])

    def prefixed(self, prefix: str) -> list[str]:
        pos = bisect.bisect_left(self.stems, prefix)
        out = []
        while pos < len(self.stems) and self.stems[pos].startswith(prefix):
            out.extend(self.by_stem[self.stems[pos]])
            pos += 1
        return out


def _prefer(paths: list[str], label: str, split_dirs: set[str]) -> str:
    """Among candidate files, the one under a folder named like the label (then the split)."""
    def score(p: str) -> tuple[int, int, str]:
        parts = Path(p).parts
        return (0 if len(parts) > 1 and parts[-2] == label else 1,
                0 if len(parts) > 2 and parts[-3] in split_dirs else 1, p)
    return min(paths, key=score)


def _find_kinetics_file(
    index: _StemIndex, yid: str, start: float | None, end: float | None, label: str, split_dirs: set[str]
) -> str | None:
    """The file of one Kinetics row: its trimmed clip, else the untrimmed video, else a file named id*."""
    window = (int(start), int(end)) if start is not None and end is not None else None
    if window is not None:
        trimmed = index.exact(f"{yid}_{window[0]:06d}_{window[1]:06d}")
        if trimmed:
            return _prefer(trimmed, label, split_dirs)
    whole = index.exact(yid)
    if not whole:
        cut_re = re.compile(re.escape(yid) + r"_(\d+)_(\d+)")
        whole = []
        for path in index.prefixed(yid):
            match = cut_re.fullmatch(Path(path).stem)
            # Another window of the same video is not this row's clip; an unpadded name of this one is.
            if match is None or (int(match[1]), int(match[2])) == window:
                whole.append(path)
    return _prefer(whole, label, split_dirs) if whole else None


def parse_kinetics(
    root: str | os.PathLike[str], csv_path: str | os.PathLike[str] | list[str | os.PathLike[str]]
) -> DatasetSpec:
    """Kinetics CSV(s) (``label,youtube_id,time_start,time_end,split``) mapped onto files under ROOT.

    A row's file is found as (first match wins): the official downloader's trimmed clip
    ``<id>_<start:06d>_<end:06d>.<ext>`` (any folder, preferring ``<split>/<label>/``),
    an untrimmed ``<id>.<ext>``, or any file whose stem starts with the id. The row's
    times become `start_s`/`end_s` only for untrimmed files; a file named
    ``<id>_<digits>_<digits>`` is taken as already cut. Rows without a file go to
    `missing`. A CSV without a split column takes its split from its file name
    (``train``/``val``/``validate``/``test`` in it), else train. Labels: every label of
    every row (found or not), sorted, so the label map does not depend on the download.
    """
    root = _require_dir(root)
    paths = [Path(p) for p in (csv_path if isinstance(csv_path, list | tuple) else [csv_path])]
    rows_all: list[tuple[Path, int, dict[str, str]]] = []
    for path in paths:
        columns, rows = _read_csv(path)
        lacking = [c for c in _KINETICS_COLUMNS if c not in columns]
        if lacking:
            raise DatasetError(path, f"Kinetics CSV lacks column(s) {', '.join(lacking)} (has {', '.join(columns) or 'none'})")
        default_split = next((_SPLIT_ALIASES[w] for w in re.split(r"[^a-z]+", path.stem.lower()) if w in _SPLIT_ALIASES), "train")
        for n, row in rows:
            row.setdefault("split", "")
            row["split"] = _normalise_split(row["split"], path, n) if row["split"] else default_split
            rows_all.append((path, n, row))
    labels = sorted({row["label"] for _, _, row in rows_all if row["label"]})
    lookup = {name: i for i, name in enumerate(labels)}
    index = _StemIndex(root)
    spec = DatasetSpec({}, labels, layout="kinetics", root=str(root))
    for path, n, row in rows_all:
        yid, label, split = row["youtube_id"], row["label"], row["split"]
        if not yid or not label:
            raise DatasetError(path, f"line {n}: empty youtube_id or label")
        start = _float_or_none(row.get("time_start"), path, n, "time_start")
        end = _float_or_none(row.get("time_end"), path, n, "time_end")
        split_dirs = {split, "validate" if split == "val" else split, "valid" if split == "val" else split}
        found = _find_kinetics_file(index, yid, start, end, label, split_dirs)
        if found is None:
            spec.missing.append({"source": str(path), "line": n, "youtube_id": yid, "label": label,
                                 "split": split, "reason": "no file for this youtube_id"})
            continue
        is_cut = re.fullmatch(re.escape(yid) + r"_\d+_\d+", Path(found).stem) is not None
        rec = VideoRecord(found, lookup[label], None if is_cut else start, None if is_cut else end,
                          meta={"youtube_id": yid})
        spec.records_by_split.setdefault(split, []).append(rec)
    spec.records_by_split = {s: spec.records_by_split[s] for s in SPLITS if s in spec.records_by_split}
    _check_found(spec, root)
    return spec
