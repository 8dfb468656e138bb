"""Synthetic action recognition: one textured object moves, turns or changes size; only time tells which.

Eight classes in four time-reversed pairs (the first of each pair is its partner played backwards):

    move_left / move_right, move_up / move_down, rotate_cw / rotate_ccw, grow / shrink

Single frames carry no class information. Each clip draws one "axis" trajectory per
visible quantity (x, y, angle, radius) from a class-independent generator that makes a
monotone trajectory of random speed and start. The class's own axis uses that trajectory
(forwards or time-reversed); every other axis is frozen at the trajectory's value at a
uniformly random frame, which is exactly a draw from the per-frame distribution of that
axis in the classes where it moves. The axes are drawn independently, so the joint
distribution of (x, y, angle, radius) in a uniformly chosen frame is the same for all
eight classes; background, shape, texture, noise and 1-3 distractors (bouncing, spinning
either way) come from class-independent distributions. A per-frame classifier, or any
average of per-frame predictions, is at chance (1/8). An orderless model of the *set* of
frames can at best tell which quantity changes (the pair: 1/2 accuracy), because a clip
and its time reversal hold the same frames; order (motion direction) settles the rest.

Audio (optional): a logarithmic chirp plus noise. The first class of each pair
(move_left, move_up, rotate_cw, grow) rises, the second (move_right, move_down,
rotate_ccw, shrink) falls; a falling chirp is a rising one played backwards. So audio
carries exactly the bit that an orderless visual model misses.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidlens.data.parallel import Progress, run_jobs
from vidlens.data.synthetic import render
from vidlens.data.synthetic._common import (
    GENERATOR,
    ManifestPaths,
    as_hw,
    check_clip_set,
    clip_path,
    even_hw,
    prepare_out_dir,
    write_clip_index,
)
from vidlens.errors import ConfigError

ACTION_CLASSES: tuple[str, ...] = (
    "move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink",
)
# Optional extra pair (not in the default set): the object's brightness ramps up or down.
# Small 3D CNNs learn it as fast as translation, unlike the direction of a rotation.
EXTRA_ACTION_CLASSES: tuple[str, ...] = ("brighten", "darken")
ALL_ACTION_CLASSES: tuple[str, ...] = ACTION_CLASSES + EXTRA_ACTION_CLASSES
# class -> (axis that changes, +1: the axis generator's increasing trajectory, -1: it time-reversed).
# Image coordinates: x grows rightwards, y downwards; angle grows counter-clockwise as displayed.
CLASS_MOTION: dict[str, tuple[str, int]] = {
    "move_left": ("x", -1), "move_right": ("x", 1),
    "move_up": ("y", -1), "move_down": ("y", 1),
    "rotate_cw": ("angle", -1), "rotate_ccw": ("angle", 1),
    "grow": ("radius", 1), "shrink": ("radius", -1),
    "brighten": ("brightness", 1), "darken": ("brightness", -1),
}
TIME_REVERSED_PAIRS = (("move_left", "move_right"), ("move_up", "move_down"),
                       ("rotate_cw", "rotate_ccw"), ("grow", "shrink"), ("brighten", "darken"))
RISING_CHIRP_CLASSES = tuple(a for a, _ in TIME_REVERSED_PAIRS)  # the others fall
AXES = ("x", "y", "angle", "radius", "brightness")
SPEED_UNITS = {"x": "px/frame", "y": "px/frame", "angle": "deg/frame", "radius": "ratio/frame",
               "brightness": "ratio/frame"}
AUDIO_RATE = 16000

# Where the object's centre may be (fraction of width/height), how big it is (radius as a
# fraction of the shorter side), and how far each kind of motion goes over one clip.
POSITION_RANGE = (0.18, 0.82)
TRAVEL = (0.3, 0.6)  # fraction of the position range covered by a move
RADIUS_RANGE = (0.08, 0.24)
GROWTH = (1.4, 2.0)  # radius ratio between the last and the first frame of grow
TURN_DEG = (120.0, 300.0)  # total rotation over a clip
BRIGHTNESS_RANGE = (0.7, 1.7)  # multiplier of the object's colours (dark objects would hide their size)
BRIGHTENING = (1.6, 2.2)  # brightness ratio between the last and the first frame of brighten


@dataclass
class ActionDatasetInfo(ManifestPaths):
    """What `make_action_dataset` wrote. `records` are the lines of ground_truth.jsonl."""

    root: Path
    classes: list[str]
    num_clips: int
    num_frames: int
    size: tuple[int, int]
    fps: float
    seed: int
    audio: bool
    seconds: float
    records: list[dict] = field(default_factory=list, repr=False)


def _axis_trajectory(axis: str, rng: np.random.Generator, num_frames: int,
                     hw: tuple[int, int]) -> tuple[np.ndarray, float]:
    """An increasing trajectory of one quantity over `num_frames` frames, and its speed."""
    h, w = hw
    lin = np.linspace(0.0, 1.0, num_frames)
    steps = max(num_frames - 1, 1)
    if axis in ("x", "y"):
        extent = w if axis == "x" else h
        lo, hi = POSITION_RANGE[0] * extent, POSITION_RANGE[1] * extent
        travel = rng.uniform(*TRAVEL) * (hi - lo)
        start = rng.uniform(lo, hi - travel)
        return start + travel * lin, travel / steps
    if axis == "angle":
        turn = rng.uniform(*TURN_DEG)
        start = rng.uniform(0.0, 360.0)
        return start + turn * lin, turn / steps
    if axis == "radius":
        short = min(h, w)
        growth = rng.uniform(*GROWTH)
        lo, hi = math.log(RADIUS_RANGE[0] * short), math.log(RADIUS_RANGE[1] * short)
        start = rng.uniform(lo, hi - math.log(growth))
        return np.exp(start + math.log(growth) * lin), growth ** (1.0 / steps)
    if axis == "brightness":
        ratio = rng.uniform(*BRIGHTENING)
        lo, hi = math.log(BRIGHTNESS_RANGE[0]), math.log(BRIGHTNESS_RANGE[1])
        start = rng.uniform(lo, hi - math.log(ratio))
        return np.exp(start + math.log(ratio) * lin), ratio ** (1.0 / steps)
    raise ValueError(axis)


def sample_action_params(class_name: str, rng: np.random.Generator, num_frames: int = 32,
                         size: int | tuple[int, int] = (112, 112)) -> dict:
    """Draw the object's per-frame state for one clip of `class_name` (no pixels).

    Returns `{"x", "y", "angle", "radius", "brightness"}` as `float64 (T,)` arrays (pixels, degrees
    counter-clockwise in [0, 360), pixels, colour multiplier) plus `"speed"` and `"speed_unit"`
    of the moving axis.
    """
    if class_name not in CLASS_MOTION:
        raise ConfigError(None, f"unknown action class {class_name!r}; expected one of {list(ALL_ACTION_CLASSES)}")
    if num_frames < 2:
        raise ConfigError(None, f"num_frames must be at least 2, got {num_frames}")
    hw = as_hw(size)
    moving, direction = CLASS_MOTION[class_name]
    out: dict = {}
    for axis in AXES:
        traj, speed = _axis_trajectory(axis, rng, num_frames, hw)
        if axis == moving:
            out[axis] = traj if direction > 0 else traj[::-1].copy()
            out["speed"] = float(speed)
        else:
            out[axis] = np.full(num_frames, traj[rng.integers(num_frames)])
    out["angle"] = out["angle"] % 360.0
    out["speed_unit"] = SPEED_UNITS[moving]
    return out


def _distractor_tracks(rng: np.random.Generator, count: int, num_frames: int, hw: tuple[int, int]) -> list[dict]:
    """Class-independent distractors: small sprites bouncing at random velocities, spinning either way."""
    h, w = hw
    short = min(h, w)
    t = np.arange(num_frames, dtype=np.float64)
    tracks = []
    for _ in range(count):
        radius = rng.uniform(0.04, 0.09) * short
        heading = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(0.3, 2.0) * short / 112
        x = render.bounce(rng.uniform(0, w), speed * math.cos(heading), 0, w, t)
        y = render.bounce(rng.uniform(0, h), speed * math.sin(heading), 0, h, t)
        angle = rng.uniform(0, 360) + rng.uniform(-6, 6) * t
        tracks.append({"radius": radius, "x": x, "y": y, "angle": angle})
    return tracks


def render_action_clip(class_name: str, rng: np.random.Generator, num_frames: int = 32,
                       size: int | tuple[int, int] = (112, 112)) -> tuple[np.ndarray, dict]:
    """Render one clip in memory: `uint8 (T,H,W,3)` RGB frames and its JSON-ready parameters.

    Everything comes from `rng`, in a fixed order, so the same generator state gives the
    same clip. See the module docstring for why single frames say nothing of the class.
    """
    h, w = hw = as_hw(size)
    state = sample_action_params(class_name, rng, num_frames, hw)
    short = min(h, w)
    sprite_size = int(math.ceil(2 * RADIUS_RANGE[1] * short)) + 2
    shape = str(rng.choice(render.SHAPES))
    sprite = render.make_sprite(rng, sprite_size, shape=shape)
    bg_kind = str(rng.choice(["blobs", "stripes", "checker", "gradient"]))
    background = render.texture(rng, h, w, render.palette(rng, 3, spread=0.35, value=(0.2, 0.8)), kind=bg_kind)
    background = background * rng.uniform(0.6, 1.0) + rng.uniform(0, 40)  # lower contrast than objects
    num_distractors = int(rng.integers(1, 4))
    tracks = _distractor_tracks(rng, num_distractors, num_frames, hw)
    distractor_sprites = [render.make_sprite(rng, max(6, int(2 * d["radius"]) + 2), marker=False) for d in tracks]
    noise_sigma = float(rng.uniform(2.0, 6.0))
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    half = (sprite_size - 1) / 2.0
    for i in range(num_frames):
        frame = background.astype(np.float32, copy=True)
        for track, spr in zip(tracks, distractor_sprites, strict=True):
            render.paste_sprite(frame, spr, track["x"][i], track["y"][i], track["angle"][i], 1.0)
        render.paste_sprite(frame, sprite * np.float32([state["brightness"][i]] * 3 + [1.0]), state["x"][i], state["y"][i],
                            state["angle"][i], state["radius"][i] / half)
        render.add_noise(frame, rng, noise_sigma)
        frames[i] = render.to_uint8(frame)
    moving, _ = CLASS_MOTION[class_name]
    params = {
        "label": class_name,
        "moving": moving,
        "speed": round(state["speed"], 5),
        "speed_unit": state["speed_unit"],
        "start": [round(float(state["x"][0]), 3), round(float(state["y"][0]), 3)],
        "size": round(float(state["radius"][0]), 3),
        "brightness": round(float(state["brightness"][0]), 3),
        "angle": round(float(state["angle"][0]), 3),
        "shape": shape,
        "background": bg_kind,
        "num_distractors": num_distractors,
        "noise_sigma": round(noise_sigma, 3),
        "trajectory": {axis: [round(float(v), 3) for v in state[axis]] for axis in AXES},
    }
    return frames, params


def render_action_audio(class_name: str, rng: np.random.Generator, seconds: float,
                        rate: int = AUDIO_RATE) -> tuple[np.ndarray, dict]:
    """The clip's sound: `float32 (1,S)`, a log chirp (rising for `RISING_CHIRP_CLASSES`) plus noise."""
    if class_name not in CLASS_MOTION:
        raise ConfigError(None, f"unknown action class {class_name!r}")
    n = max(1, int(round(seconds * rate)))
    f_lo = rng.uniform(300.0, 600.0)
    f_hi = f_lo * rng.uniform(2.5, 4.0)
    t = np.arange(n) / rate
    dur = n / rate
    k = math.log(f_hi / f_lo) / dur
    phase = 2 * math.pi * f_lo * (np.exp(k * t) - 1) / k + rng.uniform(0, 2 * math.pi)
    amplitude = rng.uniform(0.2, 0.4)
    ramp = np.minimum(1.0, np.minimum(t, dur - t) / 0.01)  # 10 ms fade in/out, no clicks
    tone = amplitude * ramp * np.sin(phase)
    rising = class_name in RISING_CHIRP_CLASSES
    if not rising:
        tone = tone[::-1]  # a falling chirp is a rising one played backwards
    noise_level = rng.uniform(0.05, 0.2) * amplitude
    samples = tone + noise_level * rng.standard_normal(n)
    info = {"chirp": "rising" if rising else "falling", "f_start": round(f_lo if rising else f_hi, 2),
            "f_end": round(f_hi if rising else f_lo, 2), "rate": rate, "noise": round(noise_level, 4)}
    return np.clip(samples, -1, 1).astype(np.float32)[None], info


def _write_clip(job: dict) -> dict:
    """Worker: render, encode and describe one clip (runs in a child process)."""
    from vidlens.io import VideoWriter

    ci, k, seed = job["class_index"], job["clip_index"], job["seed"]
    name = ALL_ACTION_CLASSES[ci]
    rng = np.random.default_rng([seed, ci, k])
    frames, params = render_action_clip(name, rng, job["num_frames"], job["size"])
    rel = clip_path(name, k)
    record = {"path": rel, "label": name, "label_index": ci, "clip_index": k, "seed": [seed, ci, k]}
    audio_rate = AUDIO_RATE if job["audio"] else None
    with VideoWriter(Path(job["root"]) / rel, job["fps"], preset=job["preset"], crf=job["crf"],
                     audio_rate=audio_rate, options={"threads": "1"}) as writer:
        writer.write(frames)
        if audio_rate:
            samples, audio_info = render_action_audio(name, rng, job["num_frames"] / job["fps"], audio_rate)
            writer.write_audio(samples)
            record["audio"] = audio_info
    record.update(params)
    return record


def make_action_dataset(
    out_dir: str | os.PathLike[str],
    num_per_class: int = 40,
    num_frames: int = 32,
    size: int | tuple[int, int] = (112, 112),
    fps: float = 16,
    seed: int = 0,
    audio: bool = False,
    workers: int = 2,
    progress: Progress | None = None,
    *,
    classes: tuple[str, ...] = ACTION_CLASSES,
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15),
    preset: str = "veryfast",
    crf: int = 20,
    overwrite: bool = False,
) -> ActionDatasetInfo:
    """Write the synthetic action dataset as H.264 `.mp4` clips with ground truth.

    Layout of `out_dir`: `<class>/<class>_<nnnn>.mp4` (the folder format), `labels.json`
    (ordered class list), `ground_truth.jsonl` (one record per clip), `manifest.csv`
    (`path,label,split`, a seeded stratified train/val/test split) and `dataset.json`.
    Clip `k` of class `c` is rendered from `np.random.default_rng([seed, c, k])`, so the
    output does not depend on `workers`. `progress(done, total)` is called after each clip.
    """
    t0 = time.perf_counter()
    unknown = [c for c in classes if c not in ALL_ACTION_CLASSES]
    if unknown or not classes:
        raise ConfigError(None, f"unknown action classes {unknown}; expected a subset of {list(ALL_ACTION_CLASSES)}")
    check_clip_set(num_per_class, num_frames, fps)
    hw = even_hw(size)
    root = prepare_out_dir(out_dir, "actions", overwrite)
    jobs = [
        {"root": str(root), "class_index": ALL_ACTION_CLASSES.index(c), "clip_index": k, "seed": int(seed),
         "num_frames": int(num_frames), "size": hw, "fps": fps, "audio": bool(audio), "preset": preset, "crf": crf}
        for c in classes for k in range(num_per_class)
    ]
    records = run_jobs(_write_clip, jobs, workers, progress)
    write_clip_index(root, records, classes, splits, seed)
    from vidlens import __version__

    meta = {
        "name": "vidlens-synthetic-actions",
        "generator": GENERATOR,
        "kind": "actions",
        "classes": list(classes),
        "num_per_class": num_per_class,
        "num_clips": len(records),
        "num_frames": num_frames,
        "size": list(hw),
        "fps": fps,
        "seed": seed,
        "hflip_safe": False,
        "vflip_safe": False,
        "time_reversal_safe": False,
        "time_reversed_pairs": [list(p) for p in TIME_REVERSED_PAIRS if p[0] in classes and p[1] in classes],
        "audio": {"rate": AUDIO_RATE, "codec": "aac", "channels": 1,
                  "rising": [c for c in classes if c in RISING_CHIRP_CLASSES],
                  "falling": [c for c in classes if c not in RISING_CHIRP_CLASSES]} if audio else None,
        "splits": dict(zip(("train", "val", "test"), splits, strict=True)),
        "codec": "h264",
        "vidlens_version": __version__,
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ActionDatasetInfo(root=root, classes=list(classes), num_clips=len(records), num_frames=num_frames,
                             size=hw, fps=fps, seed=seed, audio=audio, seconds=time.perf_counter() - t0,
                             records=records)
