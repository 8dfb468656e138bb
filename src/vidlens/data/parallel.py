"""Worker processes for data jobs (scans, caches, synthetic data).

Workers are started with "spawn", never "fork": forking a process whose OpenCV,
FFmpeg or torch thread pools are already running can leave the child waiting
forever on a lock held by a thread that was not copied (seen here: a test run
hung in a forked worker's `cv2.setNumThreads`). As with DataLoader workers, a
user script that starts workers needs the usual `if __name__ == "__main__":` guard.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any

Progress = Callable[[int, int], None]


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes, each with single-threaded OpenCV."""
    return ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, progress: Progress | None = None) -> list[Any]:
    """`[fn(job) for job in jobs]`, in `workers` processes when > 1; `progress(done, total)` after each.

    Results come back in job order whatever order they finish in; a worker's exception is re-raised.
    """
    total = len(jobs)
    results: list[Any] = [None] * total
    if workers <= 1 or total <= 1:
        for i, job in enumerate(jobs):
            results[i] = fn(job)
            if progress:
                progress(i + 1, total)
        return results
    executor = process_pool(min(workers, total))
    try:
        futures = {executor.submit(fn, job): i for i, job in enumerate(jobs)}
        pending = set(futures)
        done_count = 0
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                results[futures[fut]] = fut.result()
                done_count += 1
                if progress:
                    progress(done_count, total)
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return results
