"""Validation scans: check every video of a dataset in parallel and summarise the dataset.

`scan_dataset` parses a layout (see `sources.py`), checks each distinct file in a
process pool (`check_file`: `probe`, plus with `deep` a strict decode of the first,
middle and last frames) and returns a `ScanResult`; `write_scan_outputs` writes

- ``bad_files.csv``: ``path,reason`` for every unusable file (unreadable, or listed
  by a split file/manifest but absent); feed it to datasets as ``exclude=``;
- ``missing.csv``: ``source,line,path,youtube_id,label,split,reason`` for listed
  entries without a file (Kinetics rows included), only when there are any;
- ``scan_summary.json``: counts and statistics (schema in docs/datasets.md);
- ``scan_summary.png``: class counts, duration histogram, resolution table.

A bad file never stops a scan. Nothing here prints.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.data.cache import cache_key
from vidlens.data.sources import DatasetSpec, load_spec
from vidlens.errors import DatasetError

ProgressFn = Callable[[int, int], None]


def load_bad_files(source: str | os.PathLike[str] | Iterable[str] | None) -> set[str]:
    """Real paths of files to skip: a scan's ``bad_files.csv`` (column ``path``) or an iterable of paths."""
    if source is None:
        return set()
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            path = path / "bad_files.csv"
        try:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                if "path" not in (reader.fieldnames or []):
                    raise DatasetError(path, "bad-file list lacks a 'path' column")
                return {cache_key(row["path"]) for row in reader if row.get("path")}
        except FileNotFoundError:
            raise DatasetError(path, "bad-file list not found") from None
    return {cache_key(p) for p in source}


def without_files(spec: DatasetSpec, skip: set[str]) -> DatasetSpec:
    """A copy of `spec` whose splits leave out the files in `skip` (real paths, as `load_bad_files` gives)."""
    from dataclasses import replace

    return replace(spec, records_by_split={name: [r for r in recs if cache_key(r.path) not in skip]
                                           for name, recs in spec.records_by_split.items()})


def substituted_rows(listed: list[str], seen: list[list[str]]) -> tuple[list[int], list[tuple[str, str]]]:
    """Which rows of an evaluation were really the listed videos.

    `listed`: the paths in dataset order; `seen`: per evaluated member, the paths its rows came
    from (a dataset replaces an unreadable file by another). Returns (rows to keep, [(path, reason)]
    for every listed file that was replaced), the reason as a scan finds it.
    """
    keep = [i for i, path in enumerate(listed) if all(i < len(s) and s[i] == path for s in seen)]
    kept = set(keep)
    bad = []
    for i, path in enumerate(listed):
        if i not in kept:
            bad.append((path, check_file(path)["reason"] or "frames could not be decoded"))
    return keep, bad


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def check_file(path: str, deep: bool = False) -> dict[str, Any]:
    """Check one video; returns ``{"path", "ok", "reason", ...probe facts}``. Never raises."""
    import warnings

    from vidlens.io import PartialDecodeWarning, probe, read_clip

    result: dict[str, Any] = {"path": path, "ok": False, "reason": "", "partial": ""}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialDecodeWarning)
            info = probe(path)
            result.update(
                duration_s=info.duration_s, fps=info.fps, num_frames=info.num_frames, width=info.width,
                height=info.height, codec=info.codec, has_audio=info.has_audio, is_vfr=info.is_vfr,
                complete=info.complete, warning="; ".join(info.warnings),
            )
            if info.num_frames < 1:
                raise ValueError("no video frames")
            if deep:
                n = info.num_frames
                # Frames lost to damage are substituted (as ffmpeg also fails on them): counted, not fatal.
                read_clip(path, sorted({0, n // 2, n - 1}), size=64)
        result["partial"] = "; ".join(str(w.message) for w in caught if issubclass(w.category, PartialDecodeWarning))
        result["ok"] = True
    except Exception as exc:  # every failure is a finding, not a crash
        result["reason"] = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return result


def scan_files(
    paths: list[str], deep: bool = False, workers: int | None = None, progress: ProgressFn | None = None
) -> list[dict[str, Any]]:
    """`check_file` on every path, in `workers` processes (default min(4, cpus); 1 = in this process).

    Results follow the order of `paths`; `progress(done, total)` after each file.
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    total = len(paths)
    if progress:
        progress(0, total)
    results: list[dict[str, Any]] = []
    if workers == 1 or total <= 1:
        for path in paths:
            results.append(check_file(path, deep))
            if progress:
                progress(len(results), total)
        return results
    from vidlens.data.parallel import process_pool

    chunk = max(1, min(16, total // (workers * 8)))
    with process_pool(min(workers, total)) as pool:
        for result in pool.map(check_file, paths, [deep] * total, chunksize=chunk):
            results.append(result)
            if progress:
                progress(len(results), total)
    return results


@dataclass
class ScanResult:
    """A scan: the parsed layout, one check per distinct file, the summary, the bad list."""

    spec: DatasetSpec
    checks: list[dict[str, Any]]
    summary: dict[str, Any]
    bad: list[tuple[str, str]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def num_bad(self) -> int:
        return len(self.bad)


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"min": 0.0, "median": 0.0, "mean": 0.0, "max": 0.0, "total": 0.0}
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "mean": round(statistics.fmean(values), 3), "max": round(max(values), 3), "total": round(sum(values), 3)}


def summarize(spec: DatasetSpec, checks: list[dict[str, Any]], *, deep: bool = False) -> dict[str, Any]:
    """The ``scan_summary.json`` dict for a parsed layout and its file checks."""
    by_path = {c["path"]: c for c in checks}
    classes: dict[str, dict[str, int]] = {name: defaultdict(int) for name in spec.labels}
    splits: dict[str, dict[str, int]] = {}
    for split, rec in spec.all_records():
        ok = by_path.get(rec.path, {}).get("ok", False)
        splits.setdefault(split, {"total": 0, "bad": 0})
        splits[split]["total"] += 1
        splits[split]["bad"] += not ok
        for c in rec.labels:
            row = classes[spec.labels[c]]
            row[split] += 1
            row["total"] += 1
            row["bad"] += not ok
    good = [c for c in checks if c["ok"]]
    durations = [float(c["duration_s"]) for c in good]
    edges = np.histogram_bin_edges(durations, bins=min(20, max(1, len(durations)))) if durations else np.array([0.0, 1.0])
    counts, edges = np.histogram(durations, bins=edges)
    by_count = lambda counter: dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))  # noqa: E731
    return {
        "root": spec.root,
        "layout": spec.layout,
        "deep": deep,
        "labels": spec.labels,
        "total_files": len(checks),
        "ok_files": len(good),
        "bad_files": len(checks) - len(good),
        "missing": len(spec.missing),
        "classes": {name: {k: int(v) for k, v in row.items()} for name, row in classes.items()},
        "splits": splits,
        "duration_s": _stats(durations),
        "duration_histogram": {"edges": [round(float(e), 3) for e in edges], "counts": [int(n) for n in counts]},
        "frames": _stats([float(c["num_frames"]) for c in good]),
        "resolutions": by_count(Counter(f"{c['width']}x{c['height']}" for c in good)),
        "fps": by_count(Counter(f"{round(float(c['fps']), 2):g}" for c in good)),
        "codecs": by_count(Counter(c["codec"] for c in good)),
        "audio_share": round(sum(bool(c["has_audio"]) for c in good) / len(good), 4) if good else 0.0,
        "vfr_files": sum(bool(c["is_vfr"]) for c in good),
        "incomplete_files": [{"path": c["path"], "warning": c["warning"]} for c in good if not c["complete"]],
        # Files where some frames could not be decoded (and were replaced by their nearest decoded neighbour).
        "partial_decode_files": [{"path": c["path"], "warning": c["partial"]} for c in good if c.get("partial")],
    }


def scan_dataset(
    root: str | os.PathLike[str] | None = None,
    layout: str = "auto",
    split: int = 1,
    manifest: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    deep: bool = False,
    progress: ProgressFn | None = None,
    spec: DatasetSpec | None = None,
    **layout_options: Any,
) -> ScanResult:
    """Parse a dataset (any layout), check every file, summarise; with `out`, write the outputs there.

    `layout_options`: `val_frac`, `test_frac`, `seed`, `labels`, `splits_dir` (see `load_spec`).
    """
    started = time.perf_counter()
    if spec is None:
        spec = load_spec(root, layout, split, manifest, **layout_options)
    paths = sorted({rec.path for _, rec in spec.all_records()})
    checks = scan_files(paths, deep, workers, progress)
    summary = summarize(spec, checks, deep=deep)
    bad = [(c["path"], c["reason"]) for c in checks if not c["ok"]]
    for m in spec.missing:
        if m.get("path"):
            bad.append((m["path"], f"listed in {Path(m['source']).name} line {m['line']} but not found"))
    summary["seconds"] = round(time.perf_counter() - started, 3)
    result = ScanResult(spec, checks, summary, sorted(bad))
    if out is not None:
        result.outputs = write_scan_outputs(result, out)
    return result


def write_scan_outputs(result: ScanResult, out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write bad_files.csv, scan_summary.json, scan_summary.png (and missing.csv) into `out`."""
    from vidlens.report.scan import plot_scan_summary

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"bad_files": out / "bad_files.csv", "summary": out / "scan_summary.json", "plot": out / "scan_summary.png"}
    _write_csv(paths["bad_files"], ["path", "reason"], [list(b) for b in result.bad])
    missing_csv = out / "missing.csv"
    if result.spec.missing:
        columns = ["source", "line", "path", "youtube_id", "label", "split", "reason"]
        _write_csv(missing_csv, columns, [[m.get(c, "") for c in columns] for m in result.spec.missing])
        paths["missing"] = missing_csv
    else:
        missing_csv.unlink(missing_ok=True)  # a stale list from an earlier scan would mislead
    tmp = paths["summary"].with_name(paths["summary"].name + ".tmp")
    tmp.write_text(json.dumps(result.summary, indent=2) + "\n")
    os.replace(tmp, paths["summary"])
    plot_scan_summary(result.summary, paths["plot"])
    return paths


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
