"""The service's jobs: their states, results and files, in memory, in an SQLite job store and on disk.

A job goes `queued -> running -> done | failed` (a running job goes back to `queued` only when the
server stops or dies under it, once). Its folder (inside the server's work dir) holds the upload
until the job ends, and its artifacts until the job is deleted or evicted: only the newest
`max_jobs` finished jobs are kept. The job store (`WORK/jobs.sqlite3`) is how a restarted server on
the same work folder finds its jobs again.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed")
DB_NAME = "jobs.sqlite3"
MAX_ATTEMPTS = 2  # starts of one job across server deaths: the second death under it fails it
_JOB_ID = re.compile(r"[0-9a-f]{32}")
SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL, filename TEXT NOT NULL,
    options TEXT NOT NULL, dir TEXT NOT NULL, upload TEXT NOT NULL, video TEXT, status TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, stage TEXT, progress_s REAL, result TEXT,
    error TEXT, artifacts TEXT, attempts INTEGER NOT NULL DEFAULT 0)"""


def video_facts(info: Any) -> dict[str, Any]:
    """What a job result says of its video (`info`: a `VideoInfo`), read once when the upload is checked."""
    return {"duration_s": round(info.duration_s, 3), "fps": round(info.fps, 3), "num_frames": info.num_frames,
            "width": info.width, "height": info.height, "has_audio": info.has_audio, "warnings": list(info.warnings)}


@dataclass
class Job:
    id: str
    kind: str
    filename: str  # the client's name for the upload, for display only
    options: dict[str, Any]
    dir: Path  # server side; never shown to clients
    upload: Path
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    stage: str | None = None
    progress_s: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> file name inside `dir`
    video: dict[str, Any] = field(default_factory=dict)  # `video_facts` of the upload, from its probe at upload
    attempts: int = 0  # times it was started (a server death under it puts it back in the queue once)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def public(self) -> dict[str, Any]:
        """What `GET /v1/jobs/{id}` returns: no server paths, artifact URLs instead."""
        def stamp(t: float | None) -> float | None:
            return None if t is None else round(t, 3)

        return {
            "id": self.id, "kind": self.kind, "status": self.status, "filename": self.filename, "options": self.options,
            "created_at": stamp(self.created_at), "started_at": stamp(self.started_at), "finished_at": stamp(self.finished_at),
            "stage": self.stage, "progress_s": None if self.progress_s is None else round(self.progress_s, 2),
            "result": self.result, "error": self.error,
            "artifacts": {name: f"/v1/jobs/{self.id}/artifacts/{name}" for name in sorted(self.artifacts)},
        }


class JobStore:
    """Jobs by id, in creation order, in memory (what long polls read) and in SQLite (`WORK/jobs.sqlite3`).

    Every change of state is committed (WAL, synchronous=FULL) before the call returns, so what the
    server acknowledged survives a kill -9: `reload()` at start-up brings the jobs back. One connection
    behind the store's lock (the server's threads share it). Progress is written at most once a second.
    Evicts the oldest finished jobs past `max_jobs`.
    """

    def __init__(self, root: Path, max_jobs: int, db: Path | None = None) -> None:
        """`root`: the folder of the jobs' folders; `db`: the SQLite file (default `root/jobs.sqlite3`)."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.RLock()
        self._progress_saved: dict[str, float] = {}
        self.path = db or root / DB_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(SCHEMA)

    # -- SQLite -----------------------------------------------------------------------------------
    def _write(self, sql: str, args: tuple = ()) -> None:
        """One committed statement (autocommit mode: committed when `execute` returns)."""
        self._db.execute(sql, args)

    def _save(self, job: Job) -> None:
        self._write("UPDATE jobs SET status=?, started_at=?, finished_at=?, stage=?, progress_s=?, result=?, error=?, "
                    "artifacts=?, attempts=? WHERE id=?",
                    (job.status, job.started_at, job.finished_at, job.stage, job.progress_s, _dumps(job.result), job.error,
                     _dumps(job.artifacts), job.attempts, job.id))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def reload(self) -> list[Job]:
        """Bring back the jobs of an earlier server on this folder; returns those to queue again, in order.

        Finished jobs come back as they were. Queued ones are queued again. A job that was running when
        the server died is queued again once (`attempts` counts its starts); one that was running at a
        second death is failed with that reason. A job whose upload is gone is failed. Folders of
        uploads that never became jobs (the server died while receiving them) are removed."""
        rows = self._db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        names = [d[0] for d in self._db.execute("SELECT * FROM jobs LIMIT 0").description]
        again: list[Job] = []
        with self._lock:
            for values in rows:
                row = dict(zip(names, values))
                job = Job(row["id"], row["kind"], row["filename"], json.loads(row["options"]), Path(row["dir"]),
                          Path(row["upload"]), status=row["status"], created_at=row["created_at"],
                          started_at=row["started_at"], finished_at=row["finished_at"], stage=row["stage"],
                          progress_s=row["progress_s"], result=_loads(row["result"]), error=row["error"],
                          artifacts=_loads(row["artifacts"]) or {}, video=_loads(row["video"]) or {},
                          attempts=row["attempts"])
                self._jobs[job.id] = job
                if job.finished:
                    continue
                if job.status == "running" and job.attempts >= MAX_ATTEMPTS:
                    self._fail(job, f"the server stopped while this job was running (tried {job.attempts} times)")
                elif not job.upload.parent.is_dir():
                    self._fail(job, "the upload was lost while the server was down; submit it again")
                else:
                    job.status, job.stage, job.progress_s = "queued", None, None
                    self._save(job)
                    again.append(job)
        known = set(self._jobs)
        for path in self.root.iterdir():
            if path.is_dir() and _JOB_ID.fullmatch(path.name) and path.name not in known:
                shutil.rmtree(path, ignore_errors=True)
        self._evict()
        return again

    def _fail(self, job: Job, error: str) -> None:
        job.status, job.error, job.finished_at = "failed", error, time.time()
        self._save(job)
        shutil.rmtree(job.upload.parent, ignore_errors=True)

    # -- the jobs ---------------------------------------------------------------------------------
    def create(self, kind: str, filename: str, options: dict[str, Any]) -> Job:
        """A new job, not yet stored (`accept` stores it); its upload goes to `dir/upload/<filename>` (apart
        from the artifacts, so a client's `summary.mp4` cannot collide with ours, and named as the client
        named it, for titles)."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        (folder / "upload").mkdir(parents=True)
        job = Job(job_id, kind, filename, options, folder, folder / "upload" / filename)
        with self._lock:
            self._jobs[job_id] = job
        return job

    def accept(self, job: Job) -> None:
        """Store a checked job (committed), before it is queued and before the client hears 202."""
        with self._lock:
            self._write("INSERT INTO jobs (id, kind, filename, options, dir, upload, video, status, created_at, attempts) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                        (job.id, job.kind, job.filename, json.dumps(job.options), str(job.dir), str(job.upload),
                         json.dumps(job.video), job.status, job.created_at))

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {state: sum(j.status == state for j in jobs) for state in STATES}

    def started(self, job: Job) -> None:
        with self._lock:
            job.status, job.started_at = "running", time.time()
            job.attempts += 1
            self._save(job)

    def progressed(self, job: Job, stage: str, seconds: float) -> None:
        with self._lock:
            changed = stage != job.stage
            job.stage, job.progress_s = stage, seconds
            now = time.monotonic()
            if changed or now - self._progress_saved.get(job.id, 0.0) >= 1.0:
                self._progress_saved[job.id] = now
                self._write("UPDATE jobs SET stage=?, progress_s=? WHERE id=? AND status='running'", (stage, seconds, job.id))

    def requeue(self, job: Job) -> None:
        """A running job the server stops gracefully: queued again for the next start (not an attempt)."""
        with self._lock:
            if job.finished:
                return
            job.status, job.stage, job.progress_s = "queued", None, None
            job.attempts = max(0, job.attempts - 1)
            self._save(job)

    def finish(self, job: Job, *, result: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None,
               error: str | None = None) -> None:
        """Mark a job done (result) or failed (error), remove its upload, evict old jobs."""
        with self._lock:
            if job.finished:
                return
            job.finished_at = time.time()
            job.status = "failed" if error is not None else "done"
            job.error, job.result, job.artifacts = error, result, dict(artifacts or {})
            self._progress_saved.pop(job.id, None)
            self._save(job)
        shutil.rmtree(job.upload.parent, ignore_errors=True)
        self._evict()

    def remove(self, job_id: str) -> bool:
        """Delete a finished job and its files; False when it is unknown or not finished."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.finished:
                return False
            del self._jobs[job_id]
            self._write("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(job.dir, ignore_errors=True)
        return True

    def discard(self, job: Job) -> None:
        """Forget a job that was never queued (rejected upload, full queue)."""
        with self._lock:
            self._jobs.pop(job.id, None)
            self._write("DELETE FROM jobs WHERE id=?", (job.id,))
        shutil.rmtree(job.dir, ignore_errors=True)

    def _evict(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.finished]
            old = finished[: max(0, len(finished) - self.max_jobs)]
            for job in old:
                del self._jobs[job.id]
                self._write("DELETE FROM jobs WHERE id=?", (job.id,))
        for job in old:
            shutil.rmtree(job.dir, ignore_errors=True)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
