"""`vidlens serve --engine ray`: the service's jobs run in a pool of Ray actors that hold the loaded models.

Each actor (`ServeActor`) loads the same models as a local worker process (`worker.load_models`) once,
then runs jobs with the same code (`worker.run_job`), so a job's result is the local engine's. The
job's upload travels as bytes (Ray's object store) and its artifacts come back as bytes: an actor
may sit on another node, and needs no shared filesystem; only checkpoint paths must exist on every node.

The actors are named `vidlens-serve-<models digest>-<i>` in the namespace `vidlens-serve` and created
with `get_if_exists`: several service replicas started with the same models and `--address` share
one pool (an actor runs one job at a time; the replicas' calls wait in its queue). On a cluster
(`--address`) they are detached, so they outlive a replica; on the private local Ray that a server
starts without `--address` they end with the server. Each replica keeps its own job store (SQLite on
its local disk; see docs/scale.md "The service on Ray").

Timeouts and crashes: an overrunning job is failed and its actor killed and restarted by Ray
(`max_restarts=-1`, models loaded again); an actor that dies fails only the job it was running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from vidlens.errors import ConfigError, VidlensError
from vidlens.serve.config import ServeConfig
from vidlens.serve.jobs import Job, JobStore

NAMESPACE = "vidlens-serve"
POLL_S = 0.5


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(None, f"--engine ray needs Ray: pip install 'vidlens[ray]' ({exc})") from None
    return ray


def models_digest(config: ServeConfig) -> str:
    """What the actors load, as a short hash: replicas with the same models share actors, others do not."""
    def file_id(path: str | None) -> Any:
        if path is None:
            return None
        stat = os.stat(path)
        return [os.path.abspath(path), stat.st_size, stat.st_mtime_ns]

    what = {"checkpoints": [file_id(p) for p in config.checkpoints], "summarizer": file_id(config.summarizer),
            "expression": file_id(config.expression_model), "voice": file_id(config.voice_model), "av": file_id(config.av_model),
            "summarize": config.summarize, "emotion": config.emotion,
            "index": os.path.abspath(config.index) if config.index else None}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


class ServeActor:
    """One actor: the service's models, loaded once; runs one job at a time (`run`, under a lock: calls
    from several replicas wait for it), reports the running job's progress (`progress`, answered while
    a job runs: the actor has several threads). The job timeout is counted from when `progress` first
    names the job, so a job waiting behind another replica's does not time out (nor kill that one)."""

    def __init__(self, config: ServeConfig) -> None:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[name] = "1"
        self.config = config
        self.lock = threading.Lock()
        self.current: tuple[str, str, float] | None = None  # (job id, stage, seconds done)
        self.error: str | None = None
        self.models: Any = None
        from vidlens.serve.worker import load_models

        try:
            self.models = load_models(config)
        except VidlensError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by `ready` to the server, which stops
            self.error = f"{type(exc).__name__}: {exc}"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)

    def ready(self) -> tuple[str, Any]:
        """("ready", what the models are) or ("error", why they did not load)."""
        return ("error", self.error) if self.error is not None else ("ready", self.models.describe())

    def progress(self) -> tuple[str, str, float] | None:
        return self.current

    def run(self, job_id: str, kind: str, uploads: dict[str, bytes], video_name: str, name: str,
            options: dict[str, Any], facts: dict[str, Any]) -> tuple[str, Any, dict[str, str], dict[str, bytes]]:
        """Run one job on its uploaded files; ("done", result, artifacts, {artifact file: bytes}) or ("failed", reason, {}, {})."""
        from vidlens.serve.worker import run_job

        with self.lock:
            folder = Path(tempfile.mkdtemp(prefix="vidlens-serve-actor-"))
            try:
                upload = folder / "upload"
                upload.mkdir()
                for file_name, data in uploads.items():
                    (upload / file_name).write_bytes(data)
                out = folder / "out"

                def progress(stage: str, seconds: float) -> None:
                    self.current = (job_id, stage, float(seconds))

                self.current = (job_id, "", 0.0)
                try:
                    result, artifacts = run_job(self.models, self.config, kind, upload / video_name, out, name, options,
                                                progress, facts)
                except VidlensError as exc:
                    return "failed", exc.reason, {}, {}
                except Exception as exc:  # noqa: BLE001 - one bad job must not take the actor down
                    return "failed", f"internal error: {type(exc).__name__}: {exc}", {}, {}
                files = {rel: (out / rel).read_bytes() for rel in set(artifacts.values())}
                return "done", result, artifacts, files
            finally:
                self.current = None
                shutil.rmtree(folder, ignore_errors=True)


class _ActorSlot:
    def __init__(self, index: int, handle: Any) -> None:
        self.index, self.handle = index, handle
        self.busy_with: str | None = None
        self.restarts = 0
        self.alive = True


class RayPool:
    """The `WorkerPool` interface (start, submit, stop, health) over a pool of `ServeActor`s: one thread
    per actor in the server hands it jobs from one bounded queue."""

    def __init__(self, config: ServeConfig, store: JobStore) -> None:
        self.config, self.store = config, store
        self.queue: queue.Queue[Job] = queue.Queue()
        self._submit_lock = threading.Lock()
        self.stopping = threading.Event()
        self.slots: list[_ActorSlot] = []
        self.threads: list[threading.Thread] = []
        self.ray: Any = None
        self.started_ray = False

    def start(self) -> dict[str, Any]:
        ray = self.ray = import_ray()
        self._connect(ray)
        try:
            actor_class = ray.remote(ServeActor)
            digest = models_digest(self.config)
            options: dict[str, Any] = {"namespace": NAMESPACE, "get_if_exists": True, "num_cpus": 1, "max_restarts": -1,
                                       "max_task_retries": 0, "max_concurrency": 16}
            if self.config.ray_address is not None:
                options["lifetime"] = "detached"  # shared by the replicas; outlives each of them
            handles = [actor_class.options(name=f"vidlens-serve-{digest}-{i}", **options).remote(self.config)
                       for i in range(self.config.num_workers)]
            try:
                answers = ray.get([h.ready.remote() for h in handles], timeout=self.config.startup_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise ConfigError(None, f"the Ray actors did not load their models within {self.config.startup_timeout_s:g} s "
                                        "(not enough CPUs in the cluster?)") from None
            for kind, payload in answers:
                if kind != "ready":
                    if self.config.ray_address is None:
                        for h in handles:
                            ray.kill(h)
                    raise ConfigError(None, f"cannot load the models: {payload}")
        except BaseException:
            self._disconnect()
            raise
        self.slots = [_ActorSlot(i, h) for i, h in enumerate(handles)]
        for slot in self.slots:
            thread = threading.Thread(target=self._serve, args=(slot,), name=f"vidlens-serve-ray-{slot.index}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return answers[0][1]

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        saved = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        try:
            self._init(ray)
        finally:
            if saved is not None:  # ray.init makes SIGTERM exit at once; the server's graceful stop needs it
                signal.signal(signal.SIGTERM, saved)
        self.started_ray = True

    def _init(self, ray: Any) -> None:
        quiet = {"log_to_driver": False, "configure_logging": False, "logging_level": logging.WARNING}
        if self.config.ray_address is None:  # a private local Ray, one CPU per actor
            for key, value in {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}.items():
                os.environ.setdefault(key, value)
            ray.init(address="local", num_cpus=self.config.num_workers, include_dashboard=False, namespace=NAMESPACE, **quiet)
        else:
            try:
                ray.init(address=self.config.ray_address, namespace=NAMESPACE, **quiet)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                raise ConfigError(None, f"cannot connect to the Ray cluster at {self.config.ray_address!r}: {exc}") from None

    def _disconnect(self) -> None:
        if self.started_ray and self.ray is not None:
            self.ray.shutdown()  # a private local Ray ends with its actors; a cluster's detached actors stay
            self.started_ray = False

    def submit(self, job: Job, force: bool = False) -> bool:
        with self._submit_lock:
            if not force and self.queue.qsize() >= self.config.queue_size:
                return False
            self.queue.put_nowait(job)
            return True

    def _serve(self, slot: _ActorSlot) -> None:
        while not self.stopping.is_set():
            try:
                job = self.queue.get(timeout=0.25)
            except queue.Empty:
                continue
            slot.busy_with = job.id
            try:
                self._run(slot, job)
            except Exception as exc:  # noqa: BLE001 - a job must end whatever happens here
                self.store.finish(job, error=f"internal error in the Ray engine: {type(exc).__name__}: {exc}")
            finally:
                slot.busy_with = None

    def _run(self, slot: _ActorSlot, job: Job) -> None:
        """Send `job` to the slot's actor, relay its progress, record its end."""
        ray, store, timeout = self.ray, self.store, self.config.job_timeout_s
        uploads = {p.name: p.read_bytes() for p in sorted(job.upload.parent.iterdir()) if p.is_file()}
        store.started(job)
        ref = slot.handle.run.remote(job.id, job.kind, uploads, job.upload.name, job.filename, job.options, job.video)
        deadline: float | None = None  # from when the actor starts it: waiting behind another replica's job is not ours
        while True:
            ready, _ = ray.wait([ref], timeout=POLL_S)
            if ready:
                break
            if self.stopping.is_set():
                if self.config.keeps_jobs:
                    store.requeue(job)
                else:
                    store.finish(job, error="the server stopped while this job ran")
                return
            if deadline is not None and time.monotonic() > deadline:
                store.finish(job, error=f"timed out after {timeout:g} s (the job was stopped)")
                slot.restarts += 1
                ray.kill(slot.handle, no_restart=False)  # Ray restarts the actor (models loaded again)
                return
            try:
                current = ray.get(slot.handle.progress.remote(), timeout=POLL_S)
            except Exception:  # noqa: BLE001 - progress is best effort
                current = None
            if current is not None and current[0] == job.id:
                if deadline is None:
                    deadline = time.monotonic() + timeout
                if current[1]:
                    store.progressed(job, current[1], current[2])
            elif deadline is None and job.stage is None:
                store.progressed(job, "waiting for a Ray actor", 0.0)
        try:
            status, payload, artifacts, files = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            slot.restarts += 1
            store.finish(job, error=f"the Ray actor died while running this job ({type(exc).__name__})")
            return
        if status != "done":
            store.finish(job, error=payload)
            return
        for rel, data in files.items():
            path = job.dir / rel
            if job.dir.resolve() not in path.resolve().parents:  # names come from our own code; never outside the job
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            partial.write_bytes(data)
            partial.replace(path)
        store.finish(job, result=payload, artifacts=artifacts)

    def stop(self) -> None:
        """Fail what is still queued (or, with `keep_jobs`, leave it in the job store), stop the threads;
        a private local Ray ends with its actors."""
        self.stopping.set()
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if not self.config.keeps_jobs:
                self.store.finish(job, error="the server stopped before this job ran")
        for thread in self.threads:
            thread.join(10)
        self._disconnect()

    def health(self) -> dict[str, Any]:
        return {"workers": len(self.slots), "alive": sum(s.alive for s in self.slots),
                "busy": sum(s.busy_with is not None for s in self.slots), "restarts": sum(s.restarts for s in self.slots),
                "queued": self.queue.qsize(), "queue_size": self.config.queue_size, "engine": "ray"}
