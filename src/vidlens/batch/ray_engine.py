"""The Ray engine: the same batch as `local`, as a Ray Data pipeline on a Ray cluster.

    ray.data.from_items(one row per video)                # one video per block (large batches: a few per block)
      -> map_batches(_TaskActor, batch_size=1, ActorPoolStrategy(size=N, max_tasks_in_flight_per_actor=1),
                     num_cpus=1 [, num_gpus=G])
      -> the driver: iter_rows() -> store.append(row) -> progress(row)    # each row as soon as its video is done

Each actor of the pool loads the task's models once (`TaskSpec.load`, torch on one thread), then runs
`items.run_item` for each video it is handed, decoding on the actor's CPU (`num_gpus` reserves a GPU
share; the task's loader decides where its models run). Only the driver writes the results table;
the actors write the per-video folders, so OUT must be a path every node sees (a shared filesystem)
on a multi-node cluster.

Worker death (what Ray 2.60 does, measured by SIGKILLing actor processes and removing a node mid-batch):
Ray restarts a dead actor (`max_restarts=-1`; it loads its models again) and resubmits the call it was
running (`max_task_retries=1`); one video in flight per actor, so a kill touches one video. A block
whose calls all failed is an errored block; `max_errored_blocks=-1` lets the dataset go on. When a
node dies, the resubmitted call fails at once (its actor has no node to restart on yet) without
running: such videos get a second pass on a fresh pool. Each attempt that starts leaves a marker
(OUT/.attempts/<name>/<run>-<n>), so a video is started at most twice per run whatever Ray
resubmits; then it is recorded as failed ("worker died: ..."). A rerun skips the done videos
through `plan_batch`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vidlens.batch.items import BatchItem, failed_row, run_item, worker_name
from vidlens.batch.store import ResultStore
from vidlens.batch.tasks import get_task
from vidlens.errors import ConfigError, VidlensError

__all__ = ["run_ray", "import_ray", "ATTEMPTS"]

ATTEMPTS = 2  # a video whose process dies is started once more, then recorded as failed
ATTEMPTS_DIR = ".attempts"  # OUT/.attempts/<name>/<run>-<n>: which attempts at a video started (see _started)
# Input blocks: one video each up to max(MIN_BLOCKS, BLOCKS_PER_ACTOR x pool) videos, then that many blocks of
# several videos (the driver holds one object per block: 1 M single-video blocks cost ~8 GB and 20 min to make).
# Rows still reach the driver one by one (target_max_block_size=1); a retried block runs all its videos again.
MIN_BLOCKS = 2000
BLOCKS_PER_ACTOR = 8
_LOAD_ERROR = "__load_error__"
_EXECUTOR_LOG = "ray.data._internal.execution.streaming_executor_state"
_PROGRESS_LOG = "ray.data._internal.progress"


def import_ray() -> Any:
    """`ray` with Ray Data, or a `VidlensError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise VidlensError(None, "the Ray engine needs Ray Data: pip install 'vidlens[ray]' "
                                 f"(ray[data] 2.x; {exc})") from None
    return ray


class _TaskActor:
    """One actor of the pool: the task's models, loaded once; one video per call.

    Batches are `{"item": [JSON of a BatchItem]}` (numpy format, batch_size=1); the answer is
    `{"row": [JSON of the row]}`: JSON text keeps every row exactly as the local engine's (no Arrow
    type inference across rows of different shapes)."""

    def __init__(self, task: str, options: dict[str, Any], run: str) -> None:
        self.run = run  # this batch run's id: attempts are counted per run
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            os.environ[name] = "1"
        self.spec = get_task(task)
        self.options = options
        self.models: Any = None
        self.load_error: str | None = None
        start = time.perf_counter()
        try:
            self.models = self.spec.load(options)
        except VidlensError as exc:  # reported by the driver, which stops the batch
            self.load_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - same
            self.load_error = f"{type(exc).__name__}: {exc}"
        self.load_s = round(time.perf_counter() - start, 3)
        if "torch" in sys.modules:  # one intra-op thread (a shots actor never imports torch)
            sys.modules["torch"].set_num_threads(1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        out = []
        for text in batch["item"]:
            if self.load_error is not None:
                out.append(json.dumps({_LOAD_ERROR: self.load_error}))
                continue
            item = BatchItem(**json.loads(str(text)))
            died = _started(item.out_dir, self.run)  # earlier attempts of this run: their processes died
            if len(died) >= ATTEMPTS:  # Ray resubmitted a video whose process died on every attempt
                row = failed_row(item, self.spec.name, f"worker died: its process died on each of its {len(died)} "
                                                      "attempts", worker=worker_name(), attempt=len(died))
                _forget(item.out_dir)
            else:
                _mark(item.out_dir, self.run, len(died) + 1)
                row = run_item(self.spec, self.models, item, self.options)
                row["attempt"] = len(died) + 1
                row["load_s"] = self.load_s
                _forget(item.out_dir, own=worker_name())
            out.append(json.dumps(row, default=str))
        return {"row": out}


def _attempts_dir(out_dir: str) -> Path:
    """OUT/.attempts/<video folder name>/: one marker file per started attempt, `<run>-<n>`, holding the
    attempt's `host:pid`. Found by name (no listing of OUT, which may hold a million folders)."""
    out = Path(out_dir)
    return out.parent / ATTEMPTS_DIR / out.name


def _started(out_dir: str, run: str) -> list[str]:
    """Workers (`host:pid`) of the attempts at this video that started in batch run `run`, in order."""
    folder, found = _attempts_dir(out_dir), []
    while True:
        try:
            found.append((folder / f"{run}-{len(found) + 1}").read_text())
        except OSError:
            return found


def _mark(out_dir: str, run: str, attempt: int) -> None:
    folder = _attempts_dir(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{run}-{attempt}").write_text(worker_name())


def _forget(out_dir: str, own: str | None = None) -> None:
    """Drop the video's attempt markers (of every run) and the staging folders that attempts whose
    process died left beside its folder (`.<name>.partial-<pid>-<hex>`, found by the markers' pids;
    only then is OUT listed). `own`: the worker of the attempt that just finished (not dead)."""
    from vidlens.outputs import STAGING_MARK

    folder = _attempts_dir(out_dir)
    try:
        workers = {m.read_text() for m in folder.iterdir()}
    except OSError:
        return
    shutil.rmtree(folder, ignore_errors=True)
    dead = {w.rsplit(":", 1)[-1] for w in workers if w and w != own}
    if not dead:
        return
    out = Path(out_dir)
    prefixes = tuple(f".{out.name}{STAGING_MARK}{pid}-" for pid in dead)
    try:
        stale = [p for p in out.parent.iterdir() if p.name.startswith(prefixes)]
    except OSError:
        return
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _cluster(ray: Any, address: str | None, workers: int | None) -> Iterator[bool]:
    """Connect to `address` ("auto", "HOST:PORT", "ray://HOST:PORT"), or start a local cluster with
    `workers` CPUs (default: every core) when `address` is None; yields whether we started it. A Ray
    already initialised in this process is used as it is and left running."""
    if ray.is_initialized():
        yield False
        return
    if address is None:
        from vidlens.batch.local import default_workers

        env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a private, local cluster
        saved = {k: os.environ.get(k) for k in env}
        for key, value in env.items():
            os.environ.setdefault(key, value)
        try:
            ray.init(address="local", num_cpus=workers or default_workers(), include_dashboard=False, log_to_driver=False,
                     configure_logging=False, logging_level=logging.WARNING)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    else:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise VidlensError(None, f"cannot connect to the Ray cluster at {address!r}: {exc}") from None
    try:
        yield True
    finally:
        ray.shutdown()


def _pool_size(ray: Any, gpus_per_worker: float, workers: int | None, n_items: int) -> int:
    """Actors in the pool: `workers`, else as many as the cluster's CPUs (or GPUs / gpus_per_worker) hold."""
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        gpus = float(resources.get("GPU", 0))
        if workers is None and gpus <= 0:
            raise ConfigError(None, f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has no GPUs "
                                    "(give --workers N to wait for GPU nodes an autoscaler adds)")
        size = workers or int(gpus / gpus_per_worker + 1e-9)
    else:
        size = workers or int(resources.get("CPU", 1))
    return max(1, min(size, n_items))


class _BlockErrors(logging.Filter):
    """Keeps Ray Data's 'ignoring this errored block' traceback off the console (the driver records
    the video as failed instead) and remembers its reason; drops the 'progress bars disabled' note."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Ignoring this exception" in message:
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                first = (str(exc).strip().splitlines() or [""])[0]
                self.reasons.append(f"{type(exc).__name__}: {first}"[:300])
            return False
        return "Progress bars disabled" not in message


@contextlib.contextmanager
def _data_settings(ray: Any) -> Iterator[_BlockErrors]:
    """Ray Data settings for a batch (restored afterwards): no progress bars (ours is `progress`),
    go on past blocks that failed twice, no 'no progress' timeout (one long video may take hours), every
    output row its own block (it reaches the driver as soon as its video is done, even when an input
    block holds several videos)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")  # max_restarts/max_task_retries
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\.context")  # its own fields
        ctx = ray.data.DataContext.get_current()
        settings = {"enable_progress_bars": False, "enable_operator_progress_bars": False, "max_errored_blocks": -1,
                    "execution_no_progress_timeout_s": -1, "target_max_block_size": 1}  # 1 byte: a block per row
        saved = {name: getattr(ctx, name) for name in settings}
        for name, value in settings.items():
            setattr(ctx, name, value)
        data_log = logging.getLogger("ray.data")
        level = data_log.level
        data_log.setLevel(logging.WARNING)  # not the INFO lines of every execution
        errors = _BlockErrors()
        filtered = [logging.getLogger(_EXECUTOR_LOG), logging.getLogger(_PROGRESS_LOG)]
        for log in filtered:
            log.addFilter(errors)
        try:
            yield errors
        finally:
            for log in filtered:
                log.removeFilter(errors)
            data_log.setLevel(level)
            for name, value in saved.items():
                setattr(ctx, name, value)


def run_ray(items: list[BatchItem], task: str, options: dict, store: ResultStore, address: str | None = None,
            gpus_per_worker: float = 0.0, workers: int | None = None,
            progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run `items` on a Ray Data actor pool; returns the rows (one per item, in finishing order).

    `options`: already resolved (`tasks.resolve_options`). `address`: None starts a local cluster of
    `workers` CPUs (default every core) and stops it at the end; "auto" / "HOST:PORT" /
    "ray://HOST:PORT" connect to a running one. `gpus_per_worker` > 0 gives each actor that share of a
    GPU (0.25: four actors per GPU) and one CPU for decoding; `workers` caps the pool (default: what
    the cluster holds). Every row is appended to `store` as it arrives, then `progress(row)` is called.
    A model that cannot load stops the batch with that `VidlensError`.
    """
    if not items:
        return []
    get_task(task)  # an unknown task fails here, before a cluster starts
    if gpus_per_worker < 0 or (workers is not None and workers < 1):
        raise ConfigError(None, "--gpus-per-worker must be >= 0 and --workers >= 1")
    ray = import_ray()
    rows: list[dict[str, Any]] = []
    answered: set[str] = set()
    run = uuid.uuid4().hex[:12]

    def finish(row: dict[str, Any]) -> None:
        store.append(row)
        rows.append(row)
        if progress is not None:
            progress(row)

    with _cluster(ray, address, workers), _data_settings(ray) as errors:
        size = _pool_size(ray, gpus_per_worker, workers, len(items))
        resources: dict[str, Any] = {"num_cpus": 1}
        if gpus_per_worker > 0:
            resources["num_gpus"] = gpus_per_worker
        todo = list(items)
        for _ in range(ATTEMPTS):  # a second pass only for videos whose retry found no live actor (a dead node)
            blocks = min(len(todo), max(MIN_BLOCKS, BLOCKS_PER_ACTOR * size))
            ds = ray.data.from_items([{"item": json.dumps(asdict(item))} for item in todo], override_num_blocks=blocks)
            ds = ds.map_batches(
                _TaskActor, batch_size=1, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(size, len(todo)), max_tasks_in_flight_per_actor=1),
                fn_constructor_kwargs={"task": task, "options": dict(options), "run": run},
                max_restarts=-1, max_task_retries=ATTEMPTS - 1, **resources)
            results = iter(ds.iter_rows())
            try:
                for out in results:
                    row = json.loads(out["row"])
                    if _LOAD_ERROR in row:
                        raise VidlensError(None, f"cannot load the {task} models on a Ray worker: {row[_LOAD_ERROR]}")
                    if row.get("out_dir") in answered:  # a video run again with its retried block: answered already
                        continue
                    answered.add(row.get("out_dir"))
                    finish(row)
            finally:
                close = getattr(results, "close", None)
                if close is not None:  # stopped early (an error, Ctrl-C): end the execution, free the actors now
                    close()
            todo = [item for item in items if item.out_dir not in answered and len(_started(item.out_dir, run)) < ATTEMPTS]
            if not todo:
                break
        reason = errors.reasons[-1] if errors.reasons else "no result came back"
        for item in items:
            if item.out_dir not in answered:
                tried = max(len(_started(item.out_dir, run)), 1)
                _forget(item.out_dir)  # its markers and what its attempts had staged
                finish(failed_row(item, task, f"worker died: {reason} (tried {tried} times)",
                                  worker="ray actor", attempt=tried))
    return rows
