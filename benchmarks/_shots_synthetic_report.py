"""Tallies, tables and the RESULTS.md body of the synthetic and long-video sections of bench_shots.py.

Rows: each input (`_shots_media.py`; real ones first), the real and synthetic ones pooled, all pooled;
every detector scored by `vidlens.tasks.shots.match_boundaries`; a summary of verdicts against the
targets (F1 no lower than PySceneDetect's best detector, speed at least equal, flat memory on the
long video).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import _common as common
from _shots_media import Input

from vidlens.data.synthetic.shots import ShotGroundTruth

SECTION = "Shot detection (bench_shots.py)"
F1_TARGET = "F1 >= PySceneDetect's best"
SPEED_TARGET = 1.0  # vidlens frames/s / PySceneDetect (most accurate detector) frames/s, at least
# Memory "stays flat": the peak RSS may grow from the first minute to the full length by the per-frame
# score arrays only, at most this many bytes per extra frame (one 96 px RGB thumbnail kept per frame
# would already be ~27 KB; keeping decoded 720p frames, 2.7 MB each).
MEMORY_PER_FRAME = 1024
CUT_TOL, GRADUAL_TOL = 1, 2

VIDLENS = "vidlens"
PYSD = {  # label -> detector class names added to one SceneManager
    "PySD Content": ("ContentDetector",),
    "PySD Adaptive": ("AdaptiveDetector",),
    "PySD Threshold": ("ThresholdDetector",),
    "PySD Content+Threshold": ("ContentDetector", "ThresholdDetector"),
}
DETECTORS = (VIDLENS, *PYSD)


@dataclass
class Tally:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    kind_tp: dict[str, int] = field(default_factory=dict)
    kind_fn: dict[str, int] = field(default_factory=dict)
    fp_hard: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, scores, truth: ShotGroundTruth, video: str) -> None:
        self.tp += scores.tp
        self.fp += scores.fp
        self.fn += scores.fn
        for kind, entry in scores.per_kind.items():
            self.kind_tp[kind] = self.kind_tp.get(kind, 0) + int(entry["tp"])
            self.kind_fn[kind] = self.kind_fn.get(kind, 0) + int(entry["fn"])
        missed = [t for t in truth.transitions
                  if any(t.start_frame + (t.end_frame - t.start_frame) // 2 == f for f in scores.fn_frames)]
        for t in missed:
            span = f"{t.start_frame}" if t.type == "cut" else f"{t.start_frame}-{t.end_frame - 1}"
            self.errors.append(f"{video}: missed {t.type} at frame {span}")
        for f in scores.fp_frames:
            hard = hard_case_at(truth, f)
            self.fp_hard += hard is not None
            self.errors.append(f"{video}: false boundary at frame {f}" + (f" ({hard})" if hard else ""))

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def kind_recall(self, kinds: tuple[str, ...]) -> str:
        tp = sum(self.kind_tp.get(k, 0) for k in kinds)
        n = tp + sum(self.kind_fn.get(k, 0) for k in kinds)
        return f"{tp / n:.2f} ({tp}/{n})" if n else "-"


def hard_case_at(truth: ShotGroundTruth, frame: int) -> str | None:
    """The hard case a false boundary falls on (flash / fast object +-2 frames, fast-pan shot), if any."""
    for case in truth.hard_cases:
        pad = 0 if case["type"] == "camera_motion" else 2
        if case["start_frame"] - pad <= frame < case["end_frame"] + pad:
            return case["type"]
    return None


@dataclass
class ChildRun:
    label: str
    video_s: float
    seconds: float  # detection wall time inside the child (imports excluded)
    process_s: float  # whole child process, interpreter start and imports included
    frames: int
    boundaries: list[int]
    peak_rss_mb: float
    import_rss_mb: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def realtime(self) -> float:
        return self.video_s / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Timed:
    seconds: float = 0.0
    cpu: float = 0.0
    frames: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Report:
    inputs: list[Input] = field(default_factory=list)
    tally: dict[tuple[str, str], Tally] = field(default_factory=dict)  # (input, detector)
    timed: dict[tuple[str, str], Timed] = field(default_factory=dict)
    long_runs: list[ChildRun] = field(default_factory=list)
    long_f1: dict[str, Tally] = field(default_factory=dict)
    notes: common.Notes = field(default_factory=common.Notes)
    best_pysd: str = ""
    summary: list[list[str]] = field(default_factory=list)

    def row_groups(self) -> list[tuple[str, int, Callable[[str], Tally], Callable[[str], Timed]]]:
        """The rows of every table, in order: each real input, the real ones pooled, each synthetic input,
        the synthetic ones pooled, all pooled (pooled rows only over several inputs).
        Each: (name, frames, detector -> Tally, detector -> Timed)."""
        groups = []
        for kind in ("real:", "synthetic:"):
            mine = [i for i in self.inputs if i.name.startswith(kind)]
            for inp in mine:
                groups.append((inp.name, inp.frames, lambda n, inp=inp: self.tally[(inp.name, n)],
                               lambda n, inp=inp: self.timed[(inp.name, n)]))
            if len(mine) > 1:
                groups.append((f"{kind} all {kind[:-1]} inputs pooled", sum(i.frames for i in mine),
                               lambda n, k=kind: self.pooled_tally(n, k), lambda n, k=kind: self.pooled_timed(n, k)))
        if len(self.inputs) > 1:
            groups.append(("all inputs pooled", sum(i.frames for i in self.inputs), self.pooled_tally, self.pooled_timed))
        return groups

    def pooled_tally(self, detector: str, prefix: str = "") -> Tally:
        out = Tally()
        for inp in (i for i in self.inputs if i.name.startswith(prefix)):
            t = self.tally[(inp.name, detector)]
            out.tp, out.fp, out.fn = out.tp + t.tp, out.fp + t.fp, out.fn + t.fn
            for k, v in t.kind_tp.items():
                out.kind_tp[k] = out.kind_tp.get(k, 0) + v
            for k, v in t.kind_fn.items():
                out.kind_fn[k] = out.kind_fn.get(k, 0) + v
            out.fp_hard += t.fp_hard
        return out

    def pooled_timed(self, detector: str, prefix: str = "") -> Timed:
        out = Timed()
        for inp in (i for i in self.inputs if i.name.startswith(prefix)):
            t = self.timed[(inp.name, detector)]
            out.seconds, out.cpu, out.frames = out.seconds + t.seconds, out.cpu + t.cpu, out.frames + t.frames
        return out


ACC_HEADERS = ["input", "detector", "P", "R", "F1", "TP", "FP", "FN", "cut R", "gradual R", "fade R", "dissolve R",
               "FP on hard cases"]
SPEED_HEADERS = ["input", "frames", *[f"{d} f/s" for d in DETECTORS], "vidlens / PySD best", "vidlens / PySD fastest",
                 "CPU: PySD best / vidlens"]
LONG_HEADERS = ["run", "frames", "detect s", "frames/s", "realtime x", "process s", "peak RSS MB",
                "RSS after imports MB", "F1"]
SUMMARY_HEADERS = ["measure", "result", "target", "verdict"]


def accuracy_row(input_name: str, detector: str, t: Tally) -> list:
    kinds = (("cut",), ("fade", "dissolve"), ("fade",), ("dissolve",))
    return [input_name, detector, f"{t.precision:.3f}", f"{t.recall:.3f}", f"{t.f1:.3f}", t.tp, t.fp, t.fn,
            *[t.kind_recall(k) for k in kinds], t.fp_hard]


def tables(report: Report) -> tuple[list, list, list]:
    groups = report.row_groups()
    acc = [accuracy_row(name, det, tally(det)) for name, _, tally, _ in groups for det in DETECTORS]
    speed = []
    for name, frames, _, timed_fn in groups:
        timed = {n: timed_fn(n) for n in DETECTORS}
        fastest = max(PYSD, key=lambda n: timed[n].fps)
        speed.append([name, frames, *[common.fmt_rate(timed[n].fps) for n in DETECTORS],
                      f"{timed[VIDLENS].fps / timed[report.best_pysd].fps:.2f}",
                      f"{timed[VIDLENS].fps / timed[fastest].fps:.2f} ({fastest})",
                      f"{timed[report.best_pysd].cpu / timed[VIDLENS].cpu:.2f}" if timed[VIDLENS].cpu > 0 else "-"])
    long_rows = []
    for run in report.long_runs:
        long_rows.append([run.label, run.frames, f"{run.seconds:.1f}", common.fmt_rate(run.fps), f"{run.realtime:.1f}",
                          f"{run.process_s:.1f}", f"{run.peak_rss_mb:.0f}", f"{run.import_rss_mb:.0f}",
                          f"{report.long_f1[run.label].f1:.3f}"])
    return acc, speed, long_rows


def summarize(report: Report) -> None:
    best = report.best_pysd
    groups = [(name, tally, timed) for name, _, tally, timed in report.row_groups()]
    for name, tally, _ in groups:
        top = max(PYSD, key=lambda n: tally(n).f1)
        ours, theirs = tally(VIDLENS).f1, tally(top).f1
        report.summary.append([f"F1, {name}", f"vidlens {ours:.3f} vs {top} {theirs:.3f}", F1_TARGET,
                               common.verdict(ours >= theirs - 1e-9)])
    for name, _, timed in groups:
        ratio = timed(VIDLENS).fps / timed(best).fps
        report.summary.append([f"speed, {name}", f"vidlens {timed(VIDLENS).fps:.0f} f/s / {best} {timed(best).fps:.0f} f/s"
                               f" = {ratio:.2f}", f">= {SPEED_TARGET:.1f}", common.verdict(ratio >= SPEED_TARGET)])
    runs = {r.label: r for r in report.long_runs}
    vl = [r for r in report.long_runs if r.label.startswith("vidlens")]
    if len(vl) == 2:
        first, full = vl
        extra = max(1, full.frames - first.frames)
        per_frame = max(0.0, full.peak_rss_mb - first.peak_rss_mb) * 1024 * 1024 / extra
        report.summary.append([f"long video memory, vidlens ({full.label.split(', ')[1]} vs {first.label.split(', ')[1]})",
                               f"peak RSS {full.peak_rss_mb:.0f} MB vs {first.peak_rss_mb:.0f} MB: "
                               f"{per_frame:.0f} bytes per extra frame",
                               f"<= {MEMORY_PER_FRAME} bytes/frame", common.verdict(per_frame <= MEMORY_PER_FRAME)])
        report.summary.append(["long video speed, vidlens", f"{full.fps:.0f} frames/s, {full.realtime:.1f}x realtime",
                               "-", "-"])
        pysd = [r for r in runs.values() if r.label.startswith("PySD")]
        if pysd:
            ours, theirs = report.long_f1[full.label].f1, report.long_f1[pysd[0].label].f1
            report.summary.append([f"F1, long video ({full.label.split(', ')[1]})",
                                   f"vidlens {ours:.3f} vs {best} {theirs:.3f}", F1_TARGET,
                                   common.verdict(ours >= theirs - 1e-9)])
            ratio = full.fps / pysd[0].fps
            report.summary.append([f"long video speed vs {best}", f"{full.fps:.0f} / {pysd[0].fps:.0f} f/s = {ratio:.2f}",
                                   f">= {SPEED_TARGET:.1f}", common.verdict(ratio >= SPEED_TARGET)])


def render(report: Report, args, command: str, elapsed: float) -> str:
    versions = common.library_versions(["vidlens", "scenedetect", "av", "opencv-python-headless", "numpy"])
    extra = [
        f"Settings: both libraries at default settings; one timed run per video and detector after a warm-up on a "
        f"small file, detectors in rotating order; seed {args.synthetic_seed}; whole run {elapsed:.0f} s"
        + (". QUICK MODE: tiny files, figures not meaningful" if args.quick else ""),
    ]
    out = [common.section_preamble(command, versions, extra, started=args.started, machine=args.machine)]
    acc, speed, long_rows = tables(report)
    out.append("\n### Summary\n\n")
    out.append(common.markdown_table(SUMMARY_HEADERS, report.summary, "llll"))
    # Headline: the pooled figures (the last of each kind, or the only input's), then the long video's.
    def last(pred: Callable[[str], bool]) -> list[str] | None:
        rows = [r for r in report.summary if pred(r[0])]
        return rows[-1] if rows else None

    def pooled(kind: str) -> list[list[str] | None]:
        return [last(lambda m: m.startswith(f"F1, {kind}") and "long video" not in m),
                last(lambda m: m.startswith(f"speed, {kind}"))]

    picks = [*pooled("real:"), *pooled("synthetic:"),
             last(lambda m: m.startswith("F1, long video")), last(lambda m: m.startswith("long video speed vs"))]
    headline = [f"**{r[0]}: {r[1]}** (target {r[2]}: {r[3]})" for r in picks if r]
    if headline:
        out.append("\n" + ". ".join(headline) + ".\n")
    out.append("\n### Inputs\n\n")
    out.append("".join(f"- {inp.name}: {inp.description}\n" for inp in report.inputs))
    out.append("\n### Accuracy\n\n")
    out.append(common.markdown_table(ACC_HEADERS, acc, "llrrrrrrrrrrr"))
    out.append("\n### Speed (frames/s, decoding included)\n\n")
    out.append(common.markdown_table(SPEED_HEADERS, speed))
    if long_rows:
        out.append("\n### Long video (synthetic)\n\n")
        out.append(common.markdown_table(LONG_HEADERS, long_rows))
    vl_errors = [e for inp in report.inputs for e in report.tally[(inp.name, VIDLENS)].errors]
    vl_errors += [e for label, t in report.long_f1.items() if label.startswith("vidlens") for e in t.errors]
    notes = [
        f"PySD = PySceneDetect {versions['scenedetect']}, `open_video(path, backend=\"opencv\")` + `SceneManager` at "
        "default settings (its OpenCV decoder, frames downscaled automatically to ~256 px wide before detection, "
        "decoding in a background thread); boundaries = start frames of `get_scene_list()` after the first. "
        "`Content+Threshold`: both detectors in one `SceneManager`.",
        f"vidlens = `detect_shots(path, ShotConfig(model=...))`, the default method ({args.method_note}; PyAV "
        "decoding). Each library decodes with its own decoder: the speed figures are whole pipelines from the file. "
        "Real dissolves, fades and wipes: the section 'Shot detection on real transitions (bench_shots.py)'.",
        f"Matching (all detectors): `vidlens.tasks.shots.match_boundaries`, cut +-{CUT_TOL} frame, fade/dissolve "
        f"inside the transition +-{GRADUAL_TOL} frames, one-to-one; P/R/F1 from tp/fp/fn pooled over the videos of "
        "an input. `cut R`/`gradual R` (fade + dissolve)/`fade R`/`dissolve R`: recall per true transition kind. `FP on hard cases`: false "
        "boundaries on a flash or a fast object (+-2 frames) or in a fast-pan shot.",
        f"`PySD best` = the PySceneDetect detector with the highest F1 over all inputs ({report.best_pysd}); "
        "F1 verdicts compare with the best PySD detector on each input; speed verdicts with `PySD best`.",
        "Speed: frames / wall seconds of one run per video (summed over the videos of an input), timed in this "
        "process. `CPU: PySD best / vidlens`: CPU seconds (all threads of the process) PySD best spent over those "
        "vidlens spent on the same frames (> 1: vidlens does the work with less CPU); it is much less disturbed by "
        "other load than wall time, and shows how much of a wall-time gap is parallelism (PySD decodes in a "
        "background thread with OpenCV's threaded FFmpeg decoder).",
        "Long video: each run in a fresh child process; `detect s` excludes the interpreter start and imports, "
        "`process s` includes them; `realtime x` = video seconds / `detect s`; `peak RSS` = the child's resident-set "
        "high-water mark (`VmHWM`, /proc/self/status) at the end, `RSS after imports` the same just before "
        "detection started.",
        *report.notes.lines,
    ]
    if vl_errors:
        shown = vl_errors[:12]
        notes.append("vidlens errors (first {} of {}): ".format(len(shown), len(vl_errors)) + "; ".join(shown) + ".")
    out.append("\n### Notes\n\n")
    out.append("".join(f"- {line}\n" for line in notes))
    return "".join(out)
