"""Synthetic shot boundary videos: random scenes joined by cuts, fades and dissolves, with ground truth.

Timeline convention (all frame indices 0-based, all `end_frame`s exclusive):

- Shot `i` shows `length_i` *pure* frames (only its own content, at full brightness).
- Between shots `i` and `i+1` comes transition `i` of `k` frames: `k = 0` for a cut,
  8-20 by default for a fade or a dissolve. So `num_frames = sum(length_i) + sum(k_i)`.
- A transition's `start_frame` is its first frame that is not pure old shot and its
  `end_frame` the first pure frame of the new shot; a cut has `start_frame == end_frame`
  == the first frame of the new shot.
- A fade through black of `k` frames is `k // 2` fade-out frames (the old shot dims
  linearly, its last fade-out frame is black) then `k - k // 2` fade-in frames (the new
  shot brightens linearly from black). A dissolve of `k` frames is a linear cross-fade,
  weight of the new shot `(j + 1) / (k + 1)` in its `j`-th frame; both shots keep moving.
- Scenes partition the video: scene `i` runs from the middle of transition `i-1`
  (`start_frame + k // 2`, the first fade-in frame of a fade) to the middle of transition `i`.

Within shots there are hard cases that are *not* boundaries, listed in `hard_cases`:
brightness flashes of 1-2 frames, fast objects crossing the frame in a few frames, and
fast camera pans; every shot also has slow pan/zoom, moving objects and pixel noise.
Camera motion is bounded, so shots of any length look like one camera on one scene: the
pan sways smoothly back and forth within the shot's canvas (1.8x the frame; fastest through
the middle, turning at the edges) and the zoom sways within `ZOOM_RANGE`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidlens.data.synthetic import render
from vidlens.data.parallel import Progress, run_jobs
from vidlens.data.synthetic._common import GENERATOR, even_hw, prepare_out_dir
from vidlens.errors import ConfigError

TRANSITION_TYPES = ("cut", "fade", "dissolve")
ZOOM_RANGE = (1.0, 1.5)  # the slow zoom of every shot stays within these factors (>= 1: the view fits the canvas)
CONVENTION = "0-based frames; end_frame exclusive; cut: start_frame == end_frame == first frame of the new shot"


@dataclass
class Transition:
    """One shot change; frames `[start_frame, end_frame)` (empty for a cut)."""

    type: str
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


@dataclass
class Scene:
    """One scene of the partition; frames `[start_frame, end_frame)`."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


@dataclass
class ShotGroundTruth:
    """Ground truth of one shot video, saved as `<name>.json` beside it.

    `shots` gives each shot's pure frames `[start_frame, end_frame)` and how it was made;
    `hard_cases` are within-shot events that a detector must not call boundaries.
    """

    fps: float
    num_frames: int
    size: tuple[int, int]
    seed: list[int]
    transitions: list[Transition]
    scenes: list[Scene]
    shots: list[dict] = field(default_factory=list)
    hard_cases: list[dict] = field(default_factory=list)
    path: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["size"] = list(self.size)
        out["convention"] = CONVENTION
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ShotGroundTruth:
        return cls(
            fps=data["fps"], num_frames=data["num_frames"], size=tuple(data["size"]), seed=list(data["seed"]),
            transitions=[Transition(**t) for t in data["transitions"]], scenes=[Scene(**s) for s in data["scenes"]],
            shots=data.get("shots", []), hard_cases=data.get("hard_cases", []), path=data.get("path"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShotGroundTruth:
        """Read a ground-truth JSON (give the `.json` or the video path beside it)."""
        path = Path(path)
        return cls.from_dict(json.loads(path.with_suffix(".json").read_text()))

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


@dataclass
class ShotDatasetInfo:
    """What `make_shot_dataset` wrote."""

    root: Path
    videos: list[Path]
    ground_truth: list[ShotGroundTruth]
    seconds: float

    @property
    def num_frames(self) -> int:
        return sum(gt.num_frames for gt in self.ground_truth)


class _Sway:
    """A smooth bounded motion: `x(tau) = mid + amp * sin(phase + omega * tau)` within `[lo, hi]`,
    with `x(0) = start` (clipped into the range) and moving in the direction of `rate` at up to |rate| per frame."""

    def __init__(self, start: float, rate: float, lo: float, hi: float) -> None:
        self.mid, self.amp = (lo + hi) / 2, max((hi - lo) / 2, 1e-9)
        u = max(-1.0, min(1.0, (start - self.mid) / self.amp))
        phase = math.asin(u)  # cos(phase) >= 0: increasing at tau = 0
        self.phase = phase if rate >= 0 else math.pi - phase
        self.omega = abs(rate) / self.amp

    def __call__(self, tau: float) -> float:
        return self.mid + self.amp * math.sin(self.phase + self.omega * tau)


class _ShotScene:
    """One shot's content as a function of its local time `tau` (0 = first pure frame)."""

    def __init__(self, rng: np.random.Generator, hw: tuple[int, int], hue: float, hard: dict) -> None:
        h, w = hw
        self.hw = hw
        self.rng = rng
        scale = max(h, w) / 256.0
        ch, cw = int(h * 1.8), int(w * 1.8)
        lo = rng.uniform(0.05, 0.45)
        colors = render.palette(rng, 4, hue=hue, spread=0.12, value=(lo, min(1.0, lo + rng.uniform(0.3, 0.6))))
        self.canvas = render.texture(rng, ch, cw, colors, detail=rng.uniform(0.8, 1.6))
        for _ in range(int(rng.integers(2, 6))):  # static scenery
            spr = render.make_sprite(rng, int(rng.uniform(0.15, 0.35) * min(ch, cw)), marker=False,
                                     colors=render.palette(rng, 3, hue=hue + rng.uniform(-0.2, 0.2), spread=0.15))
            render.paste_sprite(self.canvas, spr, rng.uniform(0, cw), rng.uniform(0, ch), rng.uniform(0, 360), 1.0)
        self.fast_pan = bool(hard.get("fast_pan"))
        pan_speed = rng.uniform(2.5, 4.0) if self.fast_pan else rng.uniform(0.0, 0.8)
        heading = rng.uniform(0, 2 * math.pi)
        self.pan = np.array([math.cos(heading), math.sin(heading)]) * pan_speed * scale
        self.pan_speed = pan_speed * scale
        self.center0 = np.array([cw / 2, ch / 2]) + rng.uniform(-0.1, 0.1, 2) * np.array([cw, ch])
        self.zoom0 = rng.uniform(1.0, 1.25)
        zoom_rate = rng.uniform(-0.004, 0.004)
        # Bounded camera motion (shots of any length stay on real content, never on mirrored borders):
        # each coordinate of the view's centre sways smoothly between the walls [w/2, cw - w/2] and
        # [h/2, ch - h/2] (the view, w/zoom x h/zoom with zoom >= 1, then always fits the canvas), at
        # `pan` px/frame through the middle (a little less at the start), slowing to turn at the walls like
        # a camera operator sweeping back and forth; log zoom sways the same way within ZOOM_RANGE at up to
        # |zoom_rate| per frame (a period of at least ~13 s). Over a short shot both look like the
        # steady pan and zoom they start with.
        self.sway_x = _Sway(self.center0[0], self.pan[0], w / 2, cw - w / 2)
        self.sway_y = _Sway(self.center0[1], self.pan[1], h / 2, ch - h / 2)
        self.sway_zoom = _Sway(math.log(self.zoom0), zoom_rate, *(math.log(z) for z in ZOOM_RANGE))
        self.objects = []
        for _ in range(int(rng.integers(1, 5))):
            radius = rng.uniform(0.05, 0.12) * min(h, w) * 1.5
            spr = render.make_sprite(rng, max(8, int(2 * radius)), colors=render.palette(rng, 3, spread=0.3))
            heading = rng.uniform(0, 2 * math.pi)
            speed = rng.uniform(0.3, 2.0) * scale
            self.objects.append({"sprite": spr, "x0": rng.uniform(0, w), "y0": rng.uniform(0, h),
                                 "vx": speed * math.cos(heading), "vy": speed * math.sin(heading),
                                 "a0": rng.uniform(0, 360), "spin": rng.uniform(-4, 4)})
        self.fast_object = None
        if hard.get("fast_object"):
            start, duration = hard["fast_object"]
            radius = rng.uniform(0.08, 0.14) * min(h, w)
            spr = render.make_sprite(rng, max(8, int(2 * radius)), colors=render.palette(rng, 3, spread=0.3))
            y = rng.uniform(0.25, 0.75) * h
            direction = 1 if rng.random() < 0.5 else -1
            self.fast_object = {"sprite": spr, "start": start, "duration": duration, "y": y, "dir": direction,
                                "radius": radius}
        self.flash = hard.get("flash")  # (start, duration, strength) or None
        self.noise = rng.uniform(1.5, 4.0)

    def zoom_at(self, tau: float) -> float:
        """Zoom factor at local time `tau`, within ZOOM_RANGE whatever `tau` (negative too: transitions)."""
        return math.exp(self.sway_zoom(tau))

    def center_at(self, tau: float) -> tuple[float, float]:
        """Canvas point at the centre of the view at local time `tau` (the view stays on the canvas)."""
        return self.sway_x(tau), self.sway_y(tau)

    def frame(self, tau: int) -> np.ndarray:
        h, w = self.hw
        zoom = self.zoom_at(tau)
        cx, cy = self.center_at(tau)
        m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]], np.float64)
        img = cv2.warpAffine(self.canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        for o in self.objects:
            x = render.bounce(o["x0"], o["vx"], 0, w, np.array([tau]))[0]
            y = render.bounce(o["y0"], o["vy"], 0, h, np.array([tau]))[0]
            render.paste_sprite(img, o["sprite"], x, y, o["a0"] + o["spin"] * tau, 1.0)
        fo = self.fast_object
        if fo and fo["start"] <= tau < fo["start"] + fo["duration"]:
            u = (tau - fo["start"] + 0.5) / fo["duration"]
            x = -fo["radius"] + u * (w + 2 * fo["radius"])
            render.paste_sprite(img, fo["sprite"], x if fo["dir"] > 0 else w - x, fo["y"], 0.0, 1.0)
        if self.flash and self.flash[0] <= tau < self.flash[0] + self.flash[1]:
            img += (255.0 - img) * np.float32(self.flash[2])
        return render.add_noise(img, self.rng, self.noise)


def _plan(rng: np.random.Generator, num_shots: int, fps: float, shot_seconds: tuple[float, float],
          transitions: Sequence[str], transition_frames: tuple[int, int]) -> tuple[list[int], list[tuple[str, int]]]:
    """Shot lengths (pure frames) and the transitions between them (type, frames).

    Types are dealt from shuffled rounds of `transitions`, so every listed type appears
    before any repeats (each type shows up once there are enough boundaries).
    """
    lengths = [max(2, int(round(rng.uniform(*shot_seconds) * fps))) for _ in range(num_shots)]
    types: list[str] = []
    while len(types) < num_shots - 1:
        types.extend(str(t) for t in rng.permutation(list(transitions)))
    plan = []
    for kind in types[: num_shots - 1]:
        k = 0 if kind == "cut" else int(rng.integers(transition_frames[0], transition_frames[1] + 1))
        plan.append((kind, k))
    return lengths, plan


def _hard_cases(rng: np.random.Generator, length: int, probs: dict[str, float]) -> dict:
    hard: dict = {}
    if length >= 12 and rng.random() < probs.get("flash", 0.0):
        duration = int(rng.integers(1, 3))
        hard["flash"] = (int(rng.integers(4, length - 4 - duration + 1)), duration, float(rng.uniform(0.45, 0.75)))
    if length >= 16 and rng.random() < probs.get("fast_object", 0.0):
        duration = int(rng.integers(4, 9))
        hard["fast_object"] = (int(rng.integers(3, max(4, length - 3 - duration))), duration)
    if rng.random() < probs.get("fast_pan", 0.0):
        hard["fast_pan"] = True
    return hard


def _seconds(frame: int, fps: float) -> float:
    return round(frame / fps, 3)


def make_shot_video(
    path: str | os.PathLike[str],
    num_shots: int = 6,
    fps: float = 25,
    size: int | tuple[int, int] = (144, 256),
    seed: int | Sequence[int] = 0,
    transitions: Sequence[str] = TRANSITION_TYPES,
    *,
    shot_seconds: tuple[float, float] = (1.5, 5.0),
    transition_frames: tuple[int, int] = (8, 20),
    hard_case_prob: dict[str, float] | None = None,
    preset: str = "veryfast",
    crf: int = 20,
) -> ShotGroundTruth:
    """Write a shot-boundary test video (H.264) and its ground truth `<stem>.json` beside it.

    `transitions`: the types to use ("cut", "fade", "dissolve"), dealt so each appears
    before any repeats. `hard_case_prob`: chance per shot of a `flash`, a `fast_object`
    and a `fast_pan` (defaults 0.35, 0.35, 0.3). See the module docstring for the frame
    conventions. Deterministic given `seed` (an int or a sequence of ints).
    """
    from vidlens.io import VideoWriter

    hw = even_hw(size)
    bad = [t for t in transitions if t not in TRANSITION_TYPES]
    if bad or not transitions:
        raise ConfigError(None, f"unknown transition types {bad}; expected some of {list(TRANSITION_TYPES)}")
    if num_shots < 1:
        raise ConfigError(None, f"num_shots must be at least 1, got {num_shots}")
    if fps <= 0 or not 0 < shot_seconds[0] <= shot_seconds[1]:
        raise ConfigError(None, f"bad fps {fps} or shot_seconds {shot_seconds}")
    if not 2 <= transition_frames[0] <= transition_frames[1]:
        raise ConfigError(None, f"transition_frames must be (lo, hi) with 2 <= lo <= hi, got {transition_frames}")
    probs = {"flash": 0.35, "fast_object": 0.35, "fast_pan": 0.3}
    unknown = set(hard_case_prob or {}) - set(probs)
    if unknown:
        raise ConfigError(None, f"unknown hard cases {sorted(unknown)}; expected some of {sorted(probs)}")
    probs.update(hard_case_prob or {})
    seed_list = [int(seed)] if isinstance(seed, int | np.integer) else [int(s) for s in seed]
    rng = np.random.default_rng(seed_list)
    lengths, plan = _plan(rng, num_shots, fps, shot_seconds, transitions, transition_frames)
    hue = rng.random()
    scenes_content: list[_ShotScene] = []
    hard_cases: list[dict] = []
    shots: list[dict] = []
    pos = 0
    for i, length in enumerate(lengths):
        if i:
            hue = (hue + rng.uniform(0.25, 0.75)) % 1.0  # far from the previous shot's palette
        hard = _hard_cases(rng, length, probs)
        scene = _ShotScene(np.random.default_rng(seed_list + [i]), hw, hue, hard)
        scenes_content.append(scene)
        shots.append({"index": i, "start_frame": pos, "end_frame": pos + length, "length": length,
                      "hue": round(hue, 4), "pan_speed": round(scene.pan_speed, 3),
                      "num_objects": len(scene.objects)})
        if "flash" in hard:
            s, d, _ = hard["flash"]
            hard_cases.append({"type": "flash", "shot": i, "start_frame": pos + s, "end_frame": pos + s + d})
        if "fast_object" in hard:
            s, d = hard["fast_object"]
            hard_cases.append({"type": "fast_object", "shot": i, "start_frame": pos + s, "end_frame": pos + s + d})
        if scene.fast_pan:
            hard_cases.append({"type": "camera_motion", "shot": i, "start_frame": pos, "end_frame": pos + length,
                               "pan_px_per_frame": round(scene.pan_speed, 3)})
        pos += length + (plan[i][1] if i < len(plan) else 0)
    num_frames = pos
    for case in hard_cases:
        case["start_s"], case["end_s"] = _seconds(case["start_frame"], fps), _seconds(case["end_frame"], fps)
    transitions_gt: list[Transition] = []
    for i, (kind, k) in enumerate(plan):
        start = shots[i]["end_frame"]
        transitions_gt.append(Transition(kind, start, start + k, _seconds(start, fps), _seconds(start + k, fps)))
    cuts = [0] + [t.start_frame + (t.end_frame - t.start_frame) // 2 for t in transitions_gt] + [num_frames]
    scenes_gt = [Scene(a, b, _seconds(a, fps), _seconds(b, fps)) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]

    path = Path(path)
    with VideoWriter(path, fps, preset=preset, crf=crf, options={"threads": "1"}) as writer:
        for i, scene in enumerate(scenes_content):
            for tau in range(lengths[i]):
                writer.write(render.to_uint8(scene.frame(tau)))
            if i == len(plan):
                break
            kind, k = plan[i]
            nxt = scenes_content[i + 1]
            if kind == "dissolve":
                for j in range(k):
                    alpha = np.float32((j + 1) / (k + 1))
                    mix = scene.frame(lengths[i] + j) * (1 - alpha) + nxt.frame(-k + j) * alpha
                    writer.write(render.to_uint8(mix))
            elif kind == "fade":
                k_out, k_in = k // 2, k - k // 2
                for j in range(k_out):
                    writer.write(render.to_uint8(scene.frame(lengths[i] + j) * np.float32(1 - (j + 1) / k_out)))
                for j in range(k_in):
                    writer.write(render.to_uint8(nxt.frame(-k_in + j) * np.float32((j + 1) / (k_in + 1))))
        written = writer.frames_written
    if written != num_frames:  # pragma: no cover - a bug in the timeline above
        raise RuntimeError(f"wrote {written} frames, planned {num_frames}")
    gt = ShotGroundTruth(fps=fps, num_frames=num_frames, size=hw, seed=seed_list, transitions=transitions_gt,
                         scenes=scenes_gt, shots=shots, hard_cases=hard_cases, path=path.name)
    gt.save(path.with_suffix(".json"))
    return gt


def _write_video(job: dict) -> dict:
    gt = make_shot_video(job["path"], seed=job["seed"], **job["kwargs"])
    return gt.to_dict()


def make_shot_dataset(
    out_dir: str | os.PathLike[str],
    num_videos: int = 5,
    *,
    num_shots: int | tuple[int, int] = (4, 8),
    fps: float = 25,
    size: int | tuple[int, int] = (144, 256),
    seed: int = 0,
    transitions: Sequence[str] = TRANSITION_TYPES,
    workers: int = 2,
    progress: Progress | None = None,
    overwrite: bool = False,
    **video_options,
) -> ShotDatasetInfo:
    """Write `num_videos` shot videos `video_<nnnn>.mp4` with `video_<nnnn>.json` ground truth.

    Video `i` is `make_shot_video(..., seed=[seed, i])` with a number of shots drawn from
    `num_shots` (inclusive range) by `default_rng([seed, i, 1])`. Also writes `dataset.json`.
    `progress(done, total)` is called after each video.
    """
    t0 = time.perf_counter()
    if num_videos < 1:
        raise ConfigError(None, f"num_videos must be at least 1, got {num_videos}")
    lo, hi = (num_shots, num_shots) if isinstance(num_shots, int) else num_shots
    if not 1 <= lo <= hi:
        raise ConfigError(None, f"num_shots must be >= 1 (or a range lo <= hi), got {num_shots}")
    hw = even_hw(size)
    root = prepare_out_dir(out_dir, "shots", overwrite)
    jobs = []
    for i in range(num_videos):
        n = int(np.random.default_rng([seed, i, 1]).integers(lo, hi + 1))
        kwargs = {"num_shots": n, "fps": fps, "size": hw, "transitions": tuple(transitions), **video_options}
        jobs.append({"path": str(root / f"video_{i:04d}.mp4"), "seed": [int(seed), i], "kwargs": kwargs})
    results = [ShotGroundTruth.from_dict(r) for r in run_jobs(_write_video, jobs, workers, progress)]
    from vidlens import __version__

    meta = {
        "name": "vidlens-synthetic-shots",
        "generator": GENERATOR,
        "kind": "shots",
        "num_videos": num_videos,
        "videos": [f"video_{i:04d}.mp4" for i in range(num_videos)],
        "num_frames": [gt.num_frames for gt in results],
        "fps": fps,
        "size": list(hw),
        "seed": seed,
        "num_shots": [lo, hi],
        "transitions": list(transitions),
        "convention": CONVENTION,
        "vidlens_version": __version__,
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ShotDatasetInfo(root=root, videos=[Path(j["path"]) for j in jobs], ground_truth=results,
                           seconds=time.perf_counter() - t0)
