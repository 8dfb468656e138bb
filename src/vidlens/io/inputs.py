"""Which videos a multi-video command works on: a folder, a glob, a manifest or one file.

Shared by `vidlens batch` and `vidlens emotion DIR|LIST`. A manifest is a `.csv` with a `path`
column or a `.txt` with one path per line (`#` comments and blank lines skipped); relative paths
are relative to the manifest's folder, and entries are kept even when the file is missing (the
command records them as failed).
"""

from __future__ import annotations

import csv
import glob as globlib
import os
from pathlib import Path

from vidlens.errors import DatasetError

__all__ = ["MANIFEST_SUFFIXES", "is_manifest", "list_videos", "read_manifest"]

MANIFEST_SUFFIXES = (".csv", ".txt")


def is_manifest(path: str | os.PathLike[str]) -> bool:
    """An existing `.csv` or `.txt` file: read as a list of videos, not decoded."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def list_videos(inputs: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> list[Path]:
    """The videos of a folder (recursive, by extension, hidden entries and anything under `out` skipped),
    a glob (`'clips/**/*.mp4'`) or a manifest (`.csv` with a `path` column, `.txt` one path a line).
    Manifest entries are kept even when missing (they become failed rows)."""
    from vidlens.io import VIDEO_EXTENSIONS

    text = os.fspath(inputs)
    skip = Path(os.path.abspath(out)) if out is not None else None

    def outside(p: Path) -> bool:
        a = Path(os.path.abspath(p))
        return skip is None or (a != skip and skip not in a.parents)

    if is_manifest(text):
        return [Path(os.path.abspath(p)) for p in read_manifest(text)]
    if Path(text).is_dir():
        root = Path(text)
        found = [p for p in sorted(root.rglob("*"))
                 if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file() and outside(p)
                 and not any(part.startswith(".") for part in p.relative_to(root).parts)]
        if not found:
            raise DatasetError(root, f"no video files in this folder ({', '.join(VIDEO_EXTENSIONS[:6])}, ...)")
        return [Path(os.path.abspath(p)) for p in found]
    if _is_glob(text):
        found = [Path(p) for p in sorted(globlib.glob(text, recursive=True)) if Path(p).is_file() and outside(Path(p))]
        if not found:
            raise DatasetError(text, "the pattern matches no files")
        return [Path(os.path.abspath(p)) for p in found]
    if Path(text).is_file():
        return [Path(os.path.abspath(text))]
    raise DatasetError(text, "not a folder, a glob, a manifest (.csv with a path column, .txt one path a line) or a file")


def read_manifest(path: str | os.PathLike[str]) -> list[Path]:
    """The paths a `.csv` (column `path`) or `.txt` (one a line, `#` comments) manifest lists, in its order;
    relative ones are relative to the manifest's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read the manifest ({exc})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise DatasetError(path, f"the manifest needs a 'path' column (has {', '.join(columns) or 'none'})")
        entries = [(row.get("path") or "").strip() for row in reader]
    else:
        entries = [line.strip() for line in text.splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise DatasetError(path, "the manifest lists no videos")
    return [Path(e) if Path(e).is_absolute() else path.parent / e for e in entries]
