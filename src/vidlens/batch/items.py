"""Planning a batch: which videos, their content keys and output folders, and running one of them.

A video's key is sha256 over (sha256 of the file's bytes, task name, canonical JSON of the resolved
options plus the content hashes of files they name, vidlens version): a rerun skips a video whose
key already has a `done` row, so renaming or moving a file does not redo it and editing it does.
The file is hashed whole, in 1 MiB chunks, 4 files at a time (fine for clips up to a few hundred MB;
hashes are cached in OUT/.content_hashes.json by (path, size, mtime), so a rerun reads nothing again).
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidlens.batch.tasks import PATH_OPTIONS, TaskSpec, get_task, resolve_options
from vidlens.errors import VidlensError
from vidlens.io.content import HASH_CACHE, HashCache, canonical_json, content_hash, item_key  # noqa: F401
from vidlens.io.inputs import MANIFEST_SUFFIXES, list_videos, read_manifest  # noqa: F401 (part of this module's API)

if TYPE_CHECKING:
    from vidlens.batch.store import ResultStore

__all__ = ["BatchItem", "plan_batch", "run_item", "list_videos", "content_hash", "item_key", "canonical_json",
           "RESERVED_NAMES", "failed_row"]

RESERVED_NAMES = ("results.jsonl", "results.parquet", HASH_CACHE)


@dataclass(frozen=True)
class BatchItem:
    video: str  # absolute path
    key: str  # sha256 over (file content hash, task name, canonical JSON of options, vidlens version)
    out_dir: str  # OUT/<unique stem>/


def _folder_names(videos: list[Path]) -> list[str]:
    """OUT/<name> per video: its stem; stems shared by several inputs get `_<8 hex of the path>` each
    (stable when the input list changes order), compared without case."""
    counts: dict[str, int] = {}
    for v in videos:
        counts[(v.stem or "video").lower()] = counts.get((v.stem or "video").lower(), 0) + 1
    names = []
    reserved = {n.lower() for n in RESERVED_NAMES}
    for v in videos:
        stem = v.stem or "video"
        if counts[stem.lower()] > 1 or stem.lower() in reserved or stem.startswith("."):
            stem = f"{stem.lstrip('.') or 'video'}_{hashlib.sha256(str(v).encode()).hexdigest()[:8]}"
        names.append(stem)
    return names


def option_fingerprint(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options plus the content hash of every file a path option names (a retrained checkpoint
    saved over the old one changes the key)."""
    files = {}
    for name in PATH_OPTIONS:
        value = options.get(name)
        for p in ([value] if isinstance(value, str) else value or []):
            if isinstance(p, str) and os.path.isfile(p):
                files[p] = content_hash(p)
    return {"options": dict(options), "files": files}


def plan_batch(inputs: str | Path, task: str, options: dict, out: Path, store: ResultStore, *,
               skip_failed: bool = False) -> tuple[list[BatchItem], list[BatchItem]]:
    """`(todo, already_done)` for the videos of `inputs` (folder, glob or manifest).

    `options` are resolved against the task's defaults first (unknown names: `ConfigError`). A video
    whose key has a `done` row in `store` (and whose folder still exists) is already done; its item
    carries the folder recorded then. Unreadable files are planned too: running them records why.
    A video that failed before is run again, unless `skip_failed` (then it counts as done: a corrupt
    file is not decoded again; "worker died" failures are always run again).
    """
    spec = get_task(task)
    resolved = resolve_options(spec, options)
    out = Path(os.path.abspath(out))
    out.mkdir(parents=True, exist_ok=True)
    videos = list_videos(inputs, out)
    names = _folder_names(videos)
    fingerprint = option_fingerprint(resolved)
    cache = HashCache(out)
    cache.fill(videos)
    done = store.done_rows()
    if skip_failed:
        done = {**store.failed_rows(), **done}
    todo: list[BatchItem] = []
    skipped: list[BatchItem] = []
    for video, name in zip(videos, names):
        digest = cache.get(video)
        if digest is None:  # missing or unreadable: a key of its own, never "done"
            digest = "unreadable:" + hashlib.sha256(str(video).encode()).hexdigest()
        key = item_key(digest, spec.name, fingerprint)
        if key in done:
            skipped.append(BatchItem(str(video), key, str(done[key].get("out_dir") or out / name)))
        else:
            todo.append(BatchItem(str(video), key, str(out / name)))
    cache.save()
    return todo, skipped


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def failed_row(item: BatchItem, task: str, error: str, worker: str = "", attempt: int | None = None) -> dict[str, Any]:
    """The row of a video no worker could finish (its worker died): engines append it to the store."""
    return {"video": item.video, "key": item.key, "out_dir": item.out_dir, "task": task, "status": "failed",
            "error": error, "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "seconds": None, "worker": worker, "attempt": attempt}


def _video_facts(video: str, row: dict[str, Any]) -> None:
    """`video_frames` and `duration_s` from the container header; left None when it cannot be read (the task says why)."""
    from vidlens.io import probe

    try:
        info = probe(video)
    except Exception:  # noqa: BLE001 - the task's own run reports the reason
        return
    row["video_frames"], row["duration_s"] = int(info.num_frames), round(float(info.duration_s), 3)


def run_item(spec: TaskSpec, models: Any, item: BatchItem, options: dict) -> dict[str, Any]:
    """Run one video; never raises (but lets KeyboardInterrupt through).

    Returns the row `{video, key, out_dir, status: "done"|"failed", error, task, started, seconds, worker,
    <headline...>, video_frames, duration_s}`; the video's files are staged beside `out_dir` and moved into it only on success,
    so a failed or killed run leaves no half-written folder.
    """
    from vidlens.outputs import staged_output

    row: dict[str, Any] = {"video": item.video, "key": item.key, "out_dir": item.out_dir, "task": spec.name,
                           "status": "failed", "error": None,
                           "started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                           "seconds": None, "worker": worker_name()}
    for name in spec.headline:
        row[name] = None
    row["video_frames"] = row["duration_s"] = None  # of the video, when its header can be read (for frames/s)
    start = time.perf_counter()
    try:
        if not os.path.isfile(item.video):
            raise VidlensError(item.video, "file not found")
        _video_facts(item.video, row)
        with staged_output(item.out_dir) as stage:
            fields = spec.run(models, Path(item.video), stage.path, options)
        row.update({k: fields.get(k) for k in spec.headline})
        row["status"] = "done"
    except VidlensError as exc:
        row["error"] = exc.reason
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a decoder's or a model's own error on a damaged file: one row, not the batch
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
        row["error"] = f"{type(exc).__name__}: {exc}{where}"
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row
