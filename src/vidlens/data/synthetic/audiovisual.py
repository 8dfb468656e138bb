"""Synthetic audio-visual sentiment: cartoon faces whose mouth, and tones whose pitch glide, tell the class.

Three classes, `AV_CLASSES = ("negative", "neutral", "positive")` (emotions sad / neutral / happy):

- video: a cartoon face (skin-toned disc, two eyes, a mouth arc) on a random textured background;
  random position, size, skin tone, a slow drift and jitter, pixel noise. The mouth's curvature is
  the cue: a smile (corners up) = positive, a frown (corners down) = negative, straight = neutral.
- audio: a tone plus white noise whose pitch rises (positive), falls (negative) or stays flat
  (neutral); random base pitch, loudness, start and end, so only the glide tells.

`signal` sets which modality carries the class:

- `"both"`: both show the label's cue;
- `"split"`: each clip draws one modality at random (`carrier`) that shows the label's cue; the other
  shows `split_other`: `"neutral"` (default) or `"random"` (a random class). With `"neutral"` a
  single modality is ambiguous whenever it looks neutral: the best single-modality accuracy is 2/3
  (three balanced classes), while the pair settles every clip (1.0). With `"random"` the pair is
  ambiguous too (the best any model can do is 2/3), a control where fusion cannot help;
- `"video"` / `"audio"`: only that modality carries the class; the other follows `split_other`.

`visual_noise` (pixel noise std as a fraction of 255) and `audio_noise` (noise RMS relative to the
tone's RMS) make either cue harder. Deterministic by `seed`: clip `k` of class `c` comes from
`np.random.default_rng([seed, c, k, 31])`, whatever `workers` is.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
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

AV_CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
AV_EMOTIONS: dict[str, str] = {"negative": "sad", "neutral": "neutral", "positive": "happy"}
MOUTHS = {"negative": "frown", "neutral": "straight", "positive": "smile"}
GLIDES = {"negative": "falling", "neutral": "flat", "positive": "rising"}
SIGNAL_MODES = ("both", "split", "video", "audio")
AUDIO_RATE = 16000
_SS = 4  # sub-pixel bits for cv2 drawing (coordinates x 16)


@dataclass
class AudioVisualDatasetInfo(ManifestPaths):
    """What `make_audiovisual_dataset` wrote. `records` are the lines of ground_truth.jsonl."""

    root: Path
    classes: list[str]
    num_clips: int
    num_frames: int
    size: tuple[int, int]
    fps: float
    seed: int
    signal: str
    seconds: float
    records: list[dict] = field(default_factory=list, repr=False)


def _check_class(name: str) -> None:
    if name not in AV_CLASSES:
        raise ConfigError(None, f"unknown audio-visual class {name!r}; expected one of {list(AV_CLASSES)}")


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * (1 << _SS))), int(round(y * (1 << _SS)))


def render_face_clip(cue: str, rng: np.random.Generator, num_frames: int = 12, size: int | tuple[int, int] = 48,
                     visual_noise: float = 0.03) -> tuple[np.ndarray, dict]:
    """A cartoon face whose mouth shows `cue` (a class name): `uint8 (T,H,W,3)` RGB and its parameters.

    `visual_noise`: std of the pixel noise as a fraction of 255.
    """
    _check_class(cue)
    h, w = as_hw(size)
    short = min(h, w)
    radius = rng.uniform(0.3, 0.42) * short
    margin = radius + 1
    cx0, cy0 = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    heading = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(0.0, 0.08) * short  # total drift over the clip
    t = np.linspace(0.0, 1.0, num_frames)
    cx = np.clip(cx0 + drift * math.cos(heading) * t + rng.normal(0, 0.4, num_frames), margin, w - margin)
    cy = np.clip(cy0 + drift * math.sin(heading) * t + rng.normal(0, 0.4, num_frames), margin, h - margin)
    skin = render.hsv_color(rng.uniform(0.03, 0.11), rng.uniform(0.25, 0.65), rng.uniform(0.45, 0.98))
    dark = render.hsv_color(rng.uniform(0, 1), rng.uniform(0, 0.5), rng.uniform(0.0, 0.2))
    lips = render.hsv_color(rng.uniform(-0.03, 0.03), rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.35))
    magnitude = rng.uniform(0.22, 0.34)  # mouth sag at the centre, in face radii
    curvature = {"positive": magnitude, "negative": -magnitude, "neutral": rng.uniform(-0.03, 0.03)}[cue]
    mouth_half = rng.uniform(0.38, 0.55) * radius
    mouth_y = rng.uniform(0.3, 0.45) * radius
    eye_dx, eye_dy, eye_r = rng.uniform(0.3, 0.42) * radius, rng.uniform(0.2, 0.32) * radius, rng.uniform(0.09, 0.14) * radius
    thickness = max(1, int(round(0.14 * radius)))
    background = render.texture(rng, h, w, render.palette(rng, 3, spread=0.35, value=(0.2, 0.8)))
    background = background * rng.uniform(0.5, 0.9) + rng.uniform(0, 40)
    sigma = float(visual_noise) * 255.0
    xs = np.linspace(-1.0, 1.0, 9)
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for i in range(num_frames):
        frame = background.astype(np.float32, copy=True)
        x, y = cx[i], cy[i]
        cv2.circle(frame, _pt(x, y), int(round(radius * (1 << _SS))), skin.tolist(), -1, cv2.LINE_AA, _SS)
        for side in (-1, 1):
            cv2.circle(frame, _pt(x + side * eye_dx, y - eye_dy), max(1, int(round(eye_r * (1 << _SS)))),
                       dark.tolist(), -1, cv2.LINE_AA, _SS)
        # y grows downwards: a smile's corners are higher (smaller y) than its centre.
        pts = np.array([_pt(x + u * mouth_half, y + mouth_y + curvature * radius * (1 - u * u) - curvature * radius * 0.5)
                        for u in xs], np.int32)
        cv2.polylines(frame, [pts], False, lips.tolist(), thickness, cv2.LINE_AA, _SS)
        render.add_noise(frame, rng, sigma)
        frames[i] = render.to_uint8(frame)
    params = {"mouth": MOUTHS[cue], "curvature": round(float(curvature), 4), "face_radius": round(float(radius), 2),
              "face_center": [round(float(cx[0]), 2), round(float(cy[0]), 2)],
              "skin": [round(float(c), 1) for c in skin], "visual_noise": round(float(visual_noise), 4)}
    return frames, params


def render_tone_audio(cue: str, rng: np.random.Generator, seconds: float = 1.0, rate: int = AUDIO_RATE,
                      audio_noise: float = 0.15) -> tuple[np.ndarray, dict]:
    """A tone gliding up (positive), down (negative) or flat (neutral) in noise: `float32 (1,S)`, info.

    `audio_noise`: RMS of the white noise relative to the tone's RMS. The tone starts in the first
    15% and ends in the last 15% of the clip (silence around it), with 10 ms fades.
    """
    _check_class(cue)
    n = max(1, int(round(seconds * rate)))
    f0 = math.exp(rng.uniform(math.log(250.0), math.log(900.0)))
    ratio = {"positive": rng.uniform(1.6, 2.4), "negative": 1.0 / rng.uniform(1.6, 2.4), "neutral": rng.uniform(0.97, 1.03)}[cue]
    start = int(rng.uniform(0.0, 0.15) * n)
    end = n - int(rng.uniform(0.0, 0.15) * n)
    m = max(end - start, 1)
    t = np.arange(m) / rate
    dur = m / rate
    k = math.log(ratio) / dur
    phase = 2 * math.pi * f0 * (t if abs(k) < 1e-9 else (np.exp(k * t) - 1) / k) + rng.uniform(0, 2 * math.pi)
    amplitude = rng.uniform(0.15, 0.35)
    ramp = np.minimum(1.0, np.minimum(t, dur - t) / 0.01)
    samples = np.zeros(n, np.float64)
    samples[start:end] = amplitude * ramp * np.sin(phase)
    noise_rms = float(audio_noise) * amplitude / math.sqrt(2.0)
    samples += noise_rms * rng.standard_normal(n)
    info = {"glide": GLIDES[cue], "f_start": round(f0, 2), "f_end": round(f0 * ratio, 2),
            "tone_start_s": round(start / rate, 4), "tone_end_s": round(end / rate, 4), "rate": rate,
            "audio_noise": round(float(audio_noise), 4)}
    return np.clip(samples, -1, 1).astype(np.float32)[None], info


def clip_cues(label: str, signal: str, rng: np.random.Generator, split_other: str = "neutral") -> tuple[str, str, str]:
    """`(video_cue, audio_cue, carrier)` for one clip of `label` (carrier: "both", "video" or "audio")."""
    _check_class(label)
    if signal not in SIGNAL_MODES:
        raise ConfigError(None, f"signal must be one of {list(SIGNAL_MODES)}, got {signal!r}")
    if split_other not in ("neutral", "random"):
        raise ConfigError(None, f"split_other must be 'neutral' or 'random', got {split_other!r}")
    carrier = "both" if signal == "both" else str(rng.choice(["video", "audio"])) if signal == "split" else signal
    other = "neutral" if split_other == "neutral" else AV_CLASSES[int(rng.integers(len(AV_CLASSES)))]
    video = label if carrier in ("both", "video") else other
    audio = label if carrier in ("both", "audio") else other
    return video, audio, carrier


def _write_clip(job: dict) -> dict:
    """Worker: draw cues, render, encode and describe one clip."""
    from vidlens.io import VideoWriter

    ci, k, seed = job["class_index"], job["clip_index"], job["seed"]
    label = AV_CLASSES[ci]
    rng = np.random.default_rng([seed, ci, k, 31])
    video_cue, audio_cue, carrier = clip_cues(label, job["signal"], rng, job["split_other"])
    frames, vparams = render_face_clip(video_cue, rng, job["num_frames"], job["size"], job["visual_noise"])
    samples, ainfo = render_tone_audio(audio_cue, rng, job["num_frames"] / job["fps"], AUDIO_RATE, job["audio_noise"])
    rel = clip_path(label, k)
    with VideoWriter(Path(job["root"]) / rel, job["fps"], preset=job["preset"], crf=job["crf"], audio_rate=AUDIO_RATE,
                     options={"threads": "1"}) as writer:
        writer.write(frames)
        writer.write_audio(samples)
    return {"path": rel, "label": label, "label_index": ci, "emotion": AV_EMOTIONS[label], "clip_index": k,
            "seed": [seed, ci, k, 31], "carrier": carrier, "video_cue": video_cue, "audio_cue": audio_cue,
            "video": vparams, "audio": ainfo}


def make_audiovisual_dataset(
    out_dir: str | os.PathLike[str],
    num_per_class: int = 60,
    num_frames: int = 12,
    size: int | tuple[int, int] = 48,
    fps: float = 12,
    seed: int = 0,
    signal: str = "both",
    workers: int = 2,
    progress: Progress | None = None,
    *,
    split_other: str = "neutral",
    visual_noise: float = 0.03,
    audio_noise: float = 0.15,
    splits: tuple[float, float, float] = (0.6, 0.2, 0.2),
    preset: str = "veryfast",
    crf: int = 20,
    overwrite: bool = False,
) -> AudioVisualDatasetInfo:
    """Write the synthetic audio-visual sentiment set: H.264 `.mp4` clips with an AAC track (16 kHz mono).

    Layout as the action set: `<class>/<class>_<nnnn>.mp4`, `labels.json`, `ground_truth.jsonl` (per
    clip: label, emotion, carrier, video_cue, audio_cue, face and tone parameters), `manifest.csv`
    (`path,label,split`, seeded stratified split) and `dataset.json`. Clips last `num_frames / fps` s.
    """
    t0 = time.perf_counter()
    check_clip_set(num_per_class, num_frames, fps)
    if visual_noise < 0 or audio_noise < 0:
        raise ConfigError(None, "visual_noise and audio_noise must be >= 0")
    clip_cues(AV_CLASSES[0], signal, np.random.default_rng(0), split_other)  # validates signal / split_other
    hw = even_hw(size)
    root = prepare_out_dir(out_dir, "audiovisual", overwrite)
    jobs = [
        {"root": str(root), "class_index": ci, "clip_index": k, "seed": int(seed), "num_frames": int(num_frames),
         "size": hw, "fps": float(fps), "signal": signal, "split_other": split_other,
         "visual_noise": float(visual_noise), "audio_noise": float(audio_noise), "preset": preset, "crf": crf}
        for ci in range(len(AV_CLASSES)) for k in range(num_per_class)
    ]
    records = run_jobs(_write_clip, jobs, workers, progress)
    write_clip_index(root, records, AV_CLASSES, splits, seed)
    from vidlens import __version__

    meta = {
        "name": "vidlens-synthetic-audiovisual",
        "generator": GENERATOR,
        "kind": "audiovisual",
        "classes": list(AV_CLASSES),
        "emotions": dict(AV_EMOTIONS),
        "num_per_class": num_per_class,
        "num_clips": len(records),
        "num_frames": num_frames,
        "size": list(hw),
        "fps": fps,
        "seed": seed,
        "signal": signal,
        "split_other": split_other,
        "visual_noise": visual_noise,
        "audio_noise": audio_noise,
        "hflip_safe": True,
        "vflip_safe": False,  # a flipped smile is a frown
        "time_reversal_safe": False,  # a reversed rising tone falls
        "audio": {"rate": AUDIO_RATE, "codec": "aac", "channels": 1},
        "splits": dict(zip(("train", "val", "test"), splits, strict=True)),
        "codec": "h264",
        "vidlens_version": __version__,
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return AudioVisualDatasetInfo(root=root, classes=list(AV_CLASSES), num_clips=len(records), num_frames=num_frames,
                                  size=hw, fps=fps, seed=seed, signal=signal, seconds=time.perf_counter() - t0,
                                  records=records)
