"""`vidlens batch TASK INPUT --out OUT`: one task over many videos, resumable, on local workers or a Ray cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from vidlens.cli.common import console, console_err, exit_if_failed, make_progress
from vidlens.errors import ConfigError

# flag -> (option name, tasks that take it)
_TASK_FLAGS = {
    "checkpoint": ("checkpoint", ("classify",)),
    "top_k": ("top_k", ("classify",)),
    "test_clips": ("test_clips", ("classify",)),
    "fps": ("fps", ("keyframes", "summarize", "emotion")),
    "method": ("method", ("shots", "summarize")),
    "model": ("model", ("shots", "summarize")),
    "features": ("features", ("keyframes", "summarize", "features")),
    "ratio": ("ratio", ("summarize",)),
    "frames": ("frames", ("features",)),
    "av_model": ("av_model", ("emotion",)),
    "detector": ("detector", ("emotion",)),
    "plot": ("plot", ("shots",)),
    "device": ("device", ("classify", "keyframes", "summarize", "features")),
}


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs (dashes in KEY read as underscores); values read as YAML scalars (2, 0.5, true, null, [a,b])."""
    import yaml

    options: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(None, f"--option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        options[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return options


def batch_command(
    task: str = typer.Argument(..., help="classify | shots | keyframes | summarize | emotion | features | tags."),
    inputs: str = typer.Argument(..., help="A folder (recursive), a glob ('clips/**/*.mp4') or a manifest "
                                           "(.csv with a path column, .txt with one path a line)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<video stem>/ per video, results.jsonl, results.parquet."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (local: default one per core) or actors (ray)."),
    engine: str = typer.Option("local", "--engine", help="local (a process pool on this machine) or ray (Ray Data actor pool)."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address (auto, ray://HOST:PORT); default: start a local Ray."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="ray: GPUs per actor (0: CPU actors)."),
    checkpoint: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="classify: checkpoint from `vidlens train` (repeat for an ensemble)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="classify: labels kept per video (default 5)."),
    test_clips: Optional[int] = typer.Option(None, "--test-clips", help="classify: clips averaged per video."),
    fps: Optional[float] = typer.Option(None, "--fps", help="keyframes/summarize/emotion: frames analysed per second (task default)."),
    method: Optional[str] = typer.Option(None, "--method", help="shots: learned | classic | both; summarize: diverse | dsn | kmeans | uniform."),
    model: Optional[Path] = typer.Option(None, "--model", help="shots: a shotnet.onnx; summarize: a DSN checkpoint."),
    features: Optional[str] = typer.Option(None, "--features", help="keyframes/summarize/features: mobilenet_v2 or hsv."),
    ratio: Optional[float] = typer.Option(None, "--ratio", help="summarize: summary length / video length."),
    frames: Optional[int] = typer.Option(None, "--frames", help="features: frames sampled uniformly and mean-pooled (default 16)."),
    av_model: Optional[Path] = typer.Option(None, "--av-model", help="emotion: an audio-visual model from `vidlens emotion train-av`."),
    detector: Optional[str] = typer.Option(None, "--detector", help="emotion: auto | mtcnn | haar."),
    plot: Optional[bool] = typer.Option(None, "--plot/--no-plot", help="shots: write scores.png (default yes)."),
    device: Optional[str] = typer.Option(None, "--device", help="classify/keyframes/summarize/features: auto (cuda when the worker sees a GPU), cpu or cuda."),
    skip_failed: bool = typer.Option(False, "--skip-failed", help="Do not retry videos that failed in an earlier run "
                                     "(a corrupt file stays failed; worker deaths are always retried)."),
    option: Optional[list[str]] = typer.Option(None, "--option", help="Any other task option KEY=VALUE (repeatable), "
                                               "e.g. --option min_shot_s=1.0; names as in the task's config."),
) -> None:
    """Run TASK over every video of INPUT: each video's usual files in OUT/<stem>/, a results table for all.

    Resumable: a video whose result exists for the same file content and options is skipped, so a rerun
    after a kill or a crash finishes only what is missing. A video that fails is recorded with its reason;
    the exit status is 2 when any video failed.
    """
    from vidlens.batch import ResultStore, get_task, plan_batch, resolve_options

    spec = get_task(task)
    if engine not in ("local", "ray"):
        raise typer.BadParameter("must be local or ray", param_hint="--engine")
    if workers is not None and workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--workers")
    given = dict(locals())
    options: dict[str, Any] = {}
    for flag, (name, tasks) in _TASK_FLAGS.items():
        value = given.get(flag)
        if value is None or value == []:
            continue
        if task not in tasks:
            raise ConfigError(None, f"--{flag.replace('_', '-')} is not an option of {task} (it is for {', '.join(tasks)})")
        if isinstance(value, Path):
            value = str(value.resolve())
        elif isinstance(value, list):
            value = [str(Path(v).resolve()) for v in value]
        options[name] = value
    options.update(parse_options(option))
    if task == "classify" and not options.get("checkpoint"):
        raise ConfigError(None, "classify needs --checkpoint (a model from `vidlens train`)")
    resolved = resolve_options(spec, options)
    store = ResultStore(out)
    todo, done = plan_batch(inputs, task, options, out, store, skip_failed=skip_failed)
    console_err.print(f"{task}: {len(todo) + len(done)} videos, {len(done)} already {'handled' if skip_failed else 'done'}, {len(todo)} to run "
                      f"({engine} engine)", highlight=False)
    try:
        rows = _run(engine, todo, task, resolved, store, workers, address, gpus_per_worker) if todo else []
    finally:  # Ctrl-C too: the table holds every row written so far
        table = store.write_table()
    failed = [r for r in rows if r.get("status") != "done"]
    console.print(f"{task}: {len(rows) - len(failed)} done, {len(done)} skipped (already done), {len(failed)} failed",
                  highlight=False)
    for row in failed:
        console_err.print(f"  [yellow]{escape(str(row.get('video')))}: {escape(str(row.get('error')))}[/yellow]",
                          highlight=False, soft_wrap=True)
    console.print(f"results: {store.jsonl}, {table}", highlight=False, soft_wrap=True)
    exit_if_failed([str(r.get("video")) for r in failed], len(rows))


def _run(engine: str, todo: list, task: str, options: dict, store: Any, workers: int | None, address: str | None,
         gpus_per_worker: float) -> list[dict[str, Any]]:
    """Run on the chosen engine under a bar: videos done of all, videos/s, frames/s, failures and ETA, as rows arrive."""
    with make_progress() as bar:
        handle = bar.add_task(f"batch {task}", total=len(todo))
        start = time.monotonic()
        count = [0, 0, 0]  # done, failed, frames of the done videos

        def progress(row: dict[str, Any]) -> None:
            done = row.get("status") == "done"
            count[0 if done else 1] += 1
            count[2] += int(row.get("video_frames") or 0) if done else 0
            n, elapsed = count[0] + count[1], max(time.monotonic() - start, 1e-9)
            bar.update(handle, completed=n,
                       description=f"batch {task} ({n / elapsed:.2f} videos/s, {count[2] / elapsed:.0f} frames/s, "
                                   f"{count[1]} failed)")

        if engine == "ray":
            try:
                from vidlens.batch.ray_engine import run_ray
            except ImportError as exc:
                if (exc.name or "").split(".")[0] == "ray":
                    raise ConfigError(None, f"--engine ray needs Ray: pip install 'vidlens[ray]' ({exc})") from None
                raise ConfigError(None, f"the Ray engine is not available in this vidlens ({exc})") from None
            return run_ray(todo, task, options, store, address=address, gpus_per_worker=gpus_per_worker,
                           workers=workers, progress=progress)
        if address is not None or gpus_per_worker:
            raise ConfigError(None, "--address and --gpus-per-worker are options of --engine ray")
        from vidlens.batch.local import run_local

        return run_local(todo, task, options, store, workers, progress)


def register(app: typer.Typer) -> None:
    """Add the `batch` command to the root app."""
    app.command("batch")(batch_command)
