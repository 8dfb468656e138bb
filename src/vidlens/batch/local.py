"""The local engine: a pool of worker processes on this machine, models loaded once per worker.

Each worker is a 'spawn' process (torch and fork do not mix) with its own pipe to the driver; it
sets one torch/BLAS thread, loads the task's models once, then handles one video at a time. The
driver hands out videos, appends each finished row to the store (fsynced), and watches every
worker's process sentinel: a worker that dies (kill -9, segfault, out of memory) is replaced and
the video it held is given out once more, then recorded as failed ("worker died: ..."). There is
no shared queue whose lock a killed process could hold. Workers ignore SIGINT: Ctrl-C reaches the
driver, which stops the workers; every row written so far stays and a rerun skips those videos.
A worker whose driver disappears (kill -9 of the batch) sees its pipe close and exits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from vidlens.batch.items import BatchItem, failed_row, run_item
from vidlens.batch.store import ResultStore
from vidlens.errors import VidlensError

__all__ = ["run_local", "default_workers", "LocalPool"]

MAX_LOAD_DEATHS = 3  # workers dying before they loaded their models: give up after this many


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _one_thread() -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[name] = "1"


def _worker_main(conn: Connection, task: str, options: dict[str, Any]) -> None:
    """Load once, then: receive an item, send its row; None or a closed pipe ends the worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _one_thread()  # torch reads OMP_NUM_THREADS when (if) a task imports it: shots never does
    from vidlens.batch.tasks import get_task

    start = time.perf_counter()
    spec = get_task(task)
    try:
        models = spec.load(options)
    except VidlensError as exc:
        conn.send(("load_failed", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which stops the batch
        conn.send(("load_failed", f"{type(exc).__name__}: {exc}"))
        return
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    load_s = round(time.perf_counter() - start, 3)
    conn.send(("ready", os.getpid(), load_s))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        row = run_item(spec, models, item, options)
        row["load_s"] = load_s
        try:
            conn.send(("row", row))
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Worker:
    process: Any
    conn: Connection
    pid: int
    ready: bool = False
    item: BatchItem | None = None
    attempt: int = 1


@dataclass
class LocalPool:
    """What `run_local` exposes while it runs: the live workers' pids (tests kill them)."""

    pids: list[int] = field(default_factory=list)


def run_local(items: list[BatchItem], task: str, options: dict, store: ResultStore, workers: int | None = None,
              progress: Callable[[dict[str, Any]], None] | None = None, *,
              on_dispatch: Callable[[BatchItem, int], None] | None = None,
              pool: LocalPool | None = None) -> list[dict[str, Any]]:
    """Run `items` on `workers` processes (default: one per core, at most one per item); returns the rows.

    `options`: already resolved (`tasks.resolve_options`). Every row is appended to `store` as it
    finishes, then `progress(row)` is called. `on_dispatch(item, worker_pid)` is called when a video is
    handed to a worker; `pool.pids` lists the live workers. A model that cannot load (a bad checkpoint)
    stops the batch with that `VidlensError`.
    """
    if not items:
        return []
    n = max(1, min(workers or default_workers(), len(items)))
    ctx = mp.get_context("spawn")
    queue: deque[tuple[BatchItem, int]] = deque((item, 1) for item in items)
    rows: list[dict[str, Any]] = []
    live: dict[int, _Worker] = {}  # keyed by the sentinel's fd-like handle
    load_deaths = 0
    pool = pool if pool is not None else LocalPool()

    def spawn() -> None:
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker_main, args=(child, task, options), daemon=True, name="vidlens-batch-worker")
        process.start()
        child.close()
        live[process.sentinel] = _Worker(process, parent, process.pid)
        pool.pids = [w.pid for w in live.values()]

    def finish(row: dict[str, Any]) -> None:
        store.append(row)
        rows.append(row)
        if progress is not None:
            progress(row)

    def dispatch(w: _Worker) -> None:
        if not queue or w.item is not None or not w.ready:
            return
        item, attempt = queue.popleft()
        w.item, w.attempt = item, attempt
        try:
            w.conn.send(item)
        except (BrokenPipeError, OSError):
            return  # its death is noticed through the sentinel; the item is requeued then
        if on_dispatch is not None:
            on_dispatch(item, w.pid)

    def bury(sentinel: int, reason: str) -> None:
        nonlocal load_deaths
        w = live.pop(sentinel)
        w.conn.close()
        w.process.join(timeout=5)
        pool.pids = [x.pid for x in live.values()]
        if not w.ready:
            load_deaths += 1
            if load_deaths > MAX_LOAD_DEATHS:
                raise VidlensError(None, f"batch workers keep dying while loading the {task} models ({reason}); "
                                        "a script that calls run_local needs `if __name__ == \"__main__\":` (spawn)")
        if w.item is not None:
            if w.attempt < 2:
                queue.appendleft((w.item, w.attempt + 1))
            else:
                finish(failed_row(w.item, task, f"{reason} (tried {w.attempt} times)", f"pid {w.pid}", w.attempt))
        if queue or any(x.item is not None for x in live.values()):
            if len(live) < min(n, len(queue) + sum(x.item is not None for x in live.values())):
                spawn()

    def handle(w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "load_failed":
            raise VidlensError(None, f"cannot load the {task} models: {message[1]}")
        if kind == "ready":
            w.ready = True
        elif kind == "row":
            row = message[1]
            row["attempt"] = w.attempt
            w.item = None
            finish(row)

    try:
        for _ in range(n):
            spawn()
        while queue or any(w.item is not None for w in live.values()):
            if not live:
                spawn()
            handles: list[Any] = []
            for sentinel, w in live.items():
                handles.extend([w.conn, sentinel])
            touched = {s for ready in wait(handles, timeout=1.0)
                       for s, w in live.items() if ready is w.conn or ready == s}
            for sentinel in touched:
                w = live[sentinel]
                closed = False
                try:
                    while w.conn.poll():  # every message it sent before dying counts
                        handle(w, w.conn.recv())
                except (EOFError, OSError):
                    closed = True
                if closed or not w.process.is_alive():
                    w.process.join(timeout=5)
                    bury(sentinel, _death_reason(w.process))
                else:
                    dispatch(w)
    finally:
        for w in list(live.values()):
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + 2.0
        for w in list(live.values()):
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()
        live.clear()
        pool.pids = []
    return rows


def _death_reason(process: Any) -> str:
    code = process.exitcode
    if code is None:
        return "worker died: its pipe closed"
    if code < 0:
        try:
            return f"worker died: killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"worker died: signal {-code}"
    return f"worker died: exit code {code}"
