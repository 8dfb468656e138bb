"""What a `vidlens serve` instance runs with: models, limits and where it keeps files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vidlens.errors import ConfigError

TASKS = ("classify", "summarize", "emotion", "search", "index")
API_KEY_ENV = "VIDLENS_API_KEY"
ENGINES = ("local", "ray")


def usable_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ServeConfig:
    """Settings of one server. Checkpoints are loaded once per worker process at start-up.

    `workers` 0 means sized to the machine: one process per CPU, each with one torch thread (decoding
    is single-threaded per job, so processes scale where threads do not: measured 1.2-1.7x the jobs/s of
    one 2-thread worker on 2 CPUs, benchmarks/RESULTS.md). Fewer workers with more threads each
    (`cpus // workers`) suit big models, and use less memory.
    """

    checkpoints: list[str] = field(default_factory=list)  # classifiers; several form an ensemble
    summarizer: str | None = None  # a summarizer trained with `vidlens summarize train --videos` (default: the content-diverse selection)
    expression_model: str | None = None  # fine-tuned face expression checkpoint (default: FER2013 weights)
    voice_model: str | None = None  # voice emotion checkpoint (default: faces only)
    av_model: str | None = None  # audio-visual model from `vidlens emotion train-av`, applied per face track in emotion jobs
    summarize: bool = True  # offer /v1/summarize (MobileNetV2 features; needs its weights installed)
    emotion: bool = True  # offer /v1/emotion (faces, expressions, voice activity; several files = a folder job)
    index: str | None = None  # a vidlens index folder (created empty when missing): offers /v1/search and /v1/index
    workers: int = 0
    queue_size: int = 16  # jobs waiting (not counting those running); more get 429
    max_upload_mb: float = 200.0
    job_timeout_s: float = 600.0
    max_jobs: int = 200  # finished jobs kept (results and artifacts); older ones are deleted
    work_dir: str | None = None  # the job store (jobs.sqlite3), uploads and artifacts (default: a fresh folder in the system temp dir)
    keep_jobs: bool = True  # with work_dir: jobs survive a stop or crash (a restart on the same folder runs/keeps them)
    engine: str = "local"  # "local": worker processes; "ray": a Ray actor pool (engine_ray.py)
    ray_address: str | None = None  # with engine "ray": "auto", "HOST:PORT" or "ray://HOST:PORT" (default: a private local Ray)
    api_key: str | None = None  # required on every route but /healthz when set
    startup_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.workers < 0 or self.queue_size < 1 or self.max_upload_mb <= 0 or self.job_timeout_s <= 0 or self.max_jobs < 1:
            raise ConfigError(None, "workers >= 0, queue_size >= 1, max_jobs >= 1 and positive max_upload_mb / job_timeout_s, please "
                                    f"(got {self.workers}, {self.queue_size}, {self.max_jobs}, {self.max_upload_mb}, {self.job_timeout_s})")
        if self.engine not in ENGINES:
            raise ConfigError(None, f"unknown engine {self.engine!r}: use one of {', '.join(ENGINES)}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError(None, "the API key must be at least 8 characters")
        for path in [*self.checkpoints, self.summarizer, self.expression_model, self.voice_model, self.av_model]:
            if path is not None and not os.path.isfile(path):
                raise ConfigError(path, "no such checkpoint file")
        if self.index is not None and os.path.exists(self.index) and not os.path.isdir(self.index):
            raise ConfigError(self.index, "--index must be a video index folder (or a new folder to create one in)")

    @property
    def keeps_jobs(self) -> bool:
        """Whether jobs outlive this server: a work folder given and `keep_jobs` (else a private temp folder, deleted at exit)."""
        return self.keep_jobs and self.work_dir is not None

    @property
    def num_workers(self) -> int:
        return self.workers or usable_cpus()

    @property
    def threads_per_worker(self) -> int:
        return max(1, usable_cpus() // self.num_workers)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def tasks(self) -> list[str]:
        """The job kinds this server offers."""
        offered = {"classify": bool(self.checkpoints), "summarize": self.summarize, "emotion": self.emotion,
                   "search": self.index is not None, "index": self.index is not None}
        return [t for t in TASKS if offered[t]]
