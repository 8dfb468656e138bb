"""Worker processes that run the service's jobs, fed from one bounded queue.

Each slot owns one process (spawned, models loaded once) and a thread in the server that hands it
jobs and waits for the answer under the job timeout. A job that overruns is failed with a reason
and its process killed and replaced; a process that dies (out of memory, a crash in a decoder)
fails only the job it was running. The queue is bounded: `submit` refuses when it is full (jobs
brought back from the job store at start-up are queued whatever the bound).

A pool stopped gracefully with `keep_jobs` leaves its queued jobs queued and puts its running ones
back in the queue, in the job store, for the next server on the same work folder.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from typing import Any

from vidlens.errors import ConfigError
from vidlens.serve.config import ServeConfig
from vidlens.serve.jobs import Job, JobStore
from vidlens.serve.worker import worker_main


class _Slot:
    """One worker process and the pipe to it."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool, self.index = pool, index
        self.process: Any = None
        self.conn: Any = None
        self.models: dict[str, Any] = {}
        self.restarts = 0
        self.busy_with: str | None = None

    def start(self) -> None:
        """Spawn the process and wait until it has loaded its models (raises ConfigError if it cannot)."""
        parent, child = self.pool.context.Pipe()
        process = self.pool.context.Process(target=worker_main, args=(child, self.pool.config, self.pool.config.threads_per_worker),
                                             name=f"vidlens-serve-worker-{self.index}", daemon=True)
        process.start()
        child.close()
        if not parent.poll(self.pool.config.startup_timeout_s):
            process.kill()
            raise ConfigError(None, f"worker {self.index} did not load its models within {self.pool.config.startup_timeout_s:g} s")
        try:
            kind, payload = parent.recv()
        except EOFError:
            process.join(1)
            raise ConfigError(None, f"worker {self.index} exited while loading models (exit code {process.exitcode})") from None
        if kind != "ready":
            process.join(5)
            raise ConfigError(None, f"cannot load the models: {payload}")
        self.process, self.conn, self.models = process, parent, payload

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()
        self.process = self.conn = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def replace(self) -> None:
        """Kill this process and start a fresh one (after a timeout or a crash)."""
        self.stop(kill=True)
        self.restarts += 1
        try:
            self.start()
        except ConfigError:  # leave the slot empty; the next job tries again
            self.process = None

    def run(self, job: Job) -> None:
        """Send `job`, relay its progress, record its end. Never raises."""
        store, timeout = self.pool.store, self.pool.config.job_timeout_s
        if not self.alive:
            self.replace()
            if not self.alive:
                store.finish(job, error="no worker process could be started for this job")
                return
        store.started(job)
        self.busy_with = job.id
        conn, process = self.conn, self.process  # stop() may clear the attributes under us
        try:
            try:
                conn.send((job.id, job.kind, str(job.upload), str(job.dir), job.filename, job.options, job.video))
            except OSError:
                store.finish(job, error="the worker process was gone before the job started; submit it again")
                self.replace()
                return
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    store.finish(job, error=f"timed out after {timeout:g} s (the job was stopped)")
                    self.replace()
                    return
                try:
                    ready = conn.poll(min(remaining, 0.5))
                    message = conn.recv() if ready else None
                except (EOFError, OSError):
                    message, ready = None, True
                if message is None:
                    if ready or not process.is_alive():
                        if self.pool.stopping.is_set():
                            if self.pool.config.keeps_jobs:
                                store.requeue(job)
                            else:
                                store.finish(job, error="the server stopped while this job ran")
                            return
                        code = process.exitcode
                        store.finish(job, error=f"the worker process died while running this job (exit code {code})")
                        self.replace()
                        return
                    continue
                kind = message[0]
                if kind == "progress":
                    store.progressed(job, message[2], message[3])
                elif kind == "done":
                    store.finish(job, result=message[2], artifacts=message[3])
                    return
                elif kind == "failed":
                    store.finish(job, error=message[2])
                    return
        finally:
            self.busy_with = None


class WorkerPool:
    """`config.num_workers` worker processes behind a queue of at most `config.queue_size` waiting jobs."""

    def __init__(self, config: ServeConfig, store: JobStore) -> None:
        self.config, self.store = config, store
        self.context = mp.get_context("spawn")  # fork after torch/threads is unsafe
        self.queue: queue.Queue[Job] = queue.Queue()  # bounded by `submit` (reloaded jobs may exceed the bound)
        self._submit_lock = threading.Lock()
        self.slots = [_Slot(self, i) for i in range(config.num_workers)]
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()

    def start(self) -> dict[str, Any]:
        """Start every worker (in parallel) and their threads; returns what the models are."""
        errors: list[BaseException] = []

        def start(slot: _Slot) -> None:
            try:
                slot.start()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        starters = [threading.Thread(target=start, args=(slot,)) for slot in self.slots]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        for slot in self.slots:
            thread = threading.Thread(target=self._serve, args=(slot,), name=f"vidlens-serve-slot-{slot.index}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self.slots[0].models

    def submit(self, job: Job, force: bool = False) -> bool:
        """Queue a job; False when the queue is full (the caller answers 429). `force`: queue it whatever
        the bound (jobs brought back from the job store)."""
        with self._submit_lock:
            if not force and self.queue.qsize() >= self.config.queue_size:
                return False
            self.queue.put_nowait(job)
            return True

    def _serve(self, slot: _Slot) -> None:
        while not self.stopping.is_set():
            try:
                job = self.queue.get(timeout=0.25)
            except queue.Empty:
                continue
            slot.run(job)

    def stop(self) -> None:
        """Fail what is still queued (or, with `keep_jobs`, leave it queued in the job store for the next
        start), stop the threads and the processes."""
        self.stopping.set()
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if not self.config.keeps_jobs:
                self.store.finish(job, error="the server stopped before this job ran")
        for slot in self.slots:
            slot.stop(kill=slot.busy_with is not None)
        for thread in self.threads:
            thread.join(10)

    def health(self) -> dict[str, Any]:
        return {"workers": len(self.slots), "alive": sum(s.alive for s in self.slots), "busy": sum(s.busy_with is not None for s in self.slots),
                "restarts": sum(s.restarts for s in self.slots), "queued": self.queue.qsize(), "queue_size": self.config.queue_size}
