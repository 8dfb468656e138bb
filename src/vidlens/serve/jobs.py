"""The service's jobs: their states, results and files, kept in memory and on disk.

A job goes `queued -> running -> done | failed` and never back. Its folder (inside the server's
work dir) holds the upload until the job ends, and its artifacts until the job is evicted:
only the newest `max_jobs` finished jobs are kept.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed")


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
    """Thread-safe jobs by id, in creation order; evicts the oldest finished ones past `max_jobs`."""

    def __init__(self, root: Path, max_jobs: int) -> None:
        self.root = root
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, kind: str, filename: str, options: dict[str, Any]) -> Job:
        """A new queued job; its upload goes to `dir/upload/<filename>` (apart from the artifacts, so a
        client's `summary.mp4` cannot collide with ours, and named as the client named it, for titles)."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        (folder / "upload").mkdir(parents=True)
        job = Job(job_id, kind, filename, options, folder, folder / "upload" / filename)
        with self._lock:
            self._jobs[job_id] = job
        return job

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

    def progressed(self, job: Job, stage: str, seconds: float) -> None:
        with self._lock:
            job.stage, job.progress_s = stage, seconds

    def finish(self, job: Job, *, result: dict[str, Any] | None = None, artifacts: dict[str, str] | None = None,
               error: str | None = None) -> None:
        """Mark a job done (result) or failed (error), remove its upload, evict old jobs."""
        with self._lock:
            if job.finished:
                return
            job.finished_at = time.time()
            job.status = "failed" if error is not None else "done"
            job.error, job.result, job.artifacts = error, result, dict(artifacts or {})
        shutil.rmtree(job.upload.parent, ignore_errors=True)
        self._evict()

    def remove(self, job_id: str) -> bool:
        """Delete a finished job and its files; False when it is unknown or not finished."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.finished:
                return False
            del self._jobs[job_id]
        shutil.rmtree(job.dir, ignore_errors=True)
        return True

    def discard(self, job: Job) -> None:
        """Forget a job that was never queued (rejected upload)."""
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    def _evict(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.finished]
            old = finished[: max(0, len(finished) - self.max_jobs)]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            shutil.rmtree(job.dir, ignore_errors=True)
