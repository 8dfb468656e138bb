"""The results table of a batch: OUT/results.jsonl while it runs, OUT/results.parquet at the end.

`results.jsonl` is append-only: one JSON object per finished video, written, flushed and fsynced
before the next, so a batch killed at any moment keeps every row it wrote (a half-written last
line, from a kill in the middle of a write, is ignored on reading). A video run again (a rerun after
a failure, or with other options) appends a new row; `results.parquet` holds the latest row per video.
Only the driver process (the local engine's main process, Ray's driver) appends.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResultStore", "BASE_COLUMNS"]

# Table columns in order; the task's headline fields follow, then anything else rows carry.
BASE_COLUMNS = ("video", "status", "error", "task", "seconds", "started", "worker", "attempt", "out_dir", "key")
TAIL_COLUMNS = ("load_s",)


class ResultStore:
    """OUT/results.jsonl (append + flush + fsync per row: a killed batch loses nothing written)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.out / "results.jsonl"
        self.parquet = self.out / "results.parquet"
        self._lock = threading.Lock()  # Ray's driver may append from callback threads

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row, in the order written."""
        try:
            text = self.jsonl.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        rows = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # the tail of a write the kill interrupted
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def done_rows(self) -> dict[str, dict[str, Any]]:
        """key -> its latest `done` row, for keys whose latest row is done and whose out_dir exists."""
        latest: dict[str, dict[str, Any]] = {}
        for row in self.rows():
            if "key" in row:
                latest[row["key"]] = row
        return {k: r for k, r in latest.items()
                if r.get("status") == "done" and r.get("out_dir") and os.path.isdir(r["out_dir"])}

    def failed_rows(self) -> dict[str, dict[str, Any]]:
        """key -> its latest row when that row failed for a reason of the video's own (not "worker died")."""
        latest: dict[str, dict[str, Any]] = {}
        for row in self.rows():
            if "key" in row:
                latest[row["key"]] = row
        return {k: r for k, r in latest.items()
                if r.get("status") == "failed" and not str(r.get("error") or "").startswith("worker died")}

    def done_keys(self) -> set[str]:
        """Keys whose status is "done" and whose out_dir exists."""
        return set(self.done_rows())

    def append(self, row: dict) -> None:
        """Write one row and make it durable before returning."""
        line = json.dumps(row, default=str, ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.jsonl, "a", encoding="utf-8") as handle:
                if handle.tell() > 0 and not self._ends_with_newline():
                    handle.write("\n")  # a row cut by a kill must not glue onto this one
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.jsonl, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def latest_rows(self) -> list[dict[str, Any]]:
        """The latest row per video, in the order videos first appeared."""
        latest: dict[str, dict[str, Any]] = {}
        for row in self.rows():
            video = row.get("video")
            if video is None:
                continue
            latest.pop(video, None)
            latest[video] = row
        order: dict[str, int] = {}
        for i, row in enumerate(self.rows()):
            order.setdefault(row.get("video"), i)
        return sorted(latest.values(), key=lambda r: order.get(r.get("video"), 0))

    def write_table(self) -> Path:
        """OUT/results.parquet (pyarrow) from the latest row per video; also returns the path.
        Written beside and renamed, so a reader never sees half a table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.latest_rows()
        names: list[str] = [c for c in BASE_COLUMNS if any(c in r for r in rows)] or list(BASE_COLUMNS[:3])
        for row in rows:
            names.extend(k for k in row if k not in names and k not in TAIL_COLUMNS)
        names.extend(c for c in TAIL_COLUMNS if any(c in r for r in rows))
        columns = {}
        for name in names:
            values = [_cell(r.get(name)) for r in rows]
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across tasks/rows: text
                columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
        table = pa.table(columns) if columns else pa.table({"video": pa.array([], pa.string())})
        tmp = self.parquet.with_name(f".{self.parquet.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.parquet)
        return self.parquet


def _cell(value: Any) -> Any:
    """Scalars stay; lists and dicts become JSON text (one column type per table)."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value
