"""Keyframes: a few representative, mutually different frames per shot.

Per shot, the frames sampled at `fps` (away from its transitions) are clustered by k-means on
their L2-normalised embeddings; each cluster contributes its medoid (the member nearest the
centroid), larger clusters first. Diversity: a candidate whose cosine similarity to an
already chosen keyframe exceeds `max_similarity` is dropped, so a shot that returns to the
same view, or two shots of the same scene, do not repeat a picture.

Numbering: shots and keyframes are numbered from 1 wherever a person reads them (`Keyframe.shot`,
keyframes.json, contact sheet captions, `kf_001_...` image names), as scenes.csv and split files
(`<stem>-Scene-001.mp4`) number scenes: keyframe shot `n` is `scenes[n - 1]`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.cluster import KMeans

from vidlens.errors import ConfigError
from vidlens.io import probe, read_clip
from vidlens.report.contact_sheet import contact_sheet, timecode
from vidlens.tasks.frame_features import FEATURE_KINDS, FrameFeatures, centred_unit_rows, sample_frame_features


class Span(Protocol):
    """A shot: frames `[start_frame, end_frame)` (`vidlens.tasks.shots.SceneSpan` is one)."""

    start_frame: int
    end_frame: int


@dataclass
class KeyframeConfig:
    fps: float = 2.0  # sampling rate of the candidate frames
    features: str = "mobilenet_v2"  # or "hsv" (no network)
    seconds_per_keyframe: float = 10.0  # a shot of L seconds gets 1 + floor(L / this) keyframes ...
    max_per_shot: int = 3  # ... at most this many
    max_similarity: float = 0.9  # cosine similarity above which a candidate repeats a chosen keyframe
    edge_margin_s: float = 0.3  # skip candidates this close to a shot boundary (fades, dissolves)
    image_size: int = 360  # shorter side of the saved images, pixels
    image_format: str = "jpg"  # or "png"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.features not in FEATURE_KINDS:
            raise ConfigError(None, f"features must be one of {', '.join(FEATURE_KINDS)}, got {self.features!r}")
        if self.fps <= 0 or self.seconds_per_keyframe <= 0 or self.image_size <= 0:
            raise ConfigError(None, "fps, seconds_per_keyframe and image_size must be positive")
        if self.max_per_shot < 1:
            raise ConfigError(None, f"max_per_shot must be at least 1, got {self.max_per_shot}")
        if not 0.0 < self.max_similarity <= 1.0:
            raise ConfigError(None, f"max_similarity must be in (0, 1], got {self.max_similarity}")
        if self.image_format not in ("jpg", "png"):
            raise ConfigError(None, f"image_format must be jpg or png, got {self.image_format!r}")


@dataclass
class Keyframe:
    shot: int  # 1-based number of the shot it represents (shots[shot - 1]), as in scenes.csv
    frame: int  # source frame index
    time_s: float
    cluster_size: int  # sampled frames its cluster stands for
    path: str | None = None  # the saved image, relative to the output folder

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time_s"] = round(self.time_s, 3)
        out["timecode"] = timecode(self.time_s)
        return out


@dataclass
class KeyframeResult:
    path: str
    keyframes: list[Keyframe]
    num_shots: int
    files: dict[str, Path] = field(default_factory=dict)


def choose_keyframes(features: FrameFeatures, shots: Sequence[Span], config: KeyframeConfig | None = None) -> list[Keyframe]:
    """Pick keyframes from already computed `features` (rows = sampled frames), shot by shot, in time order."""
    config = config or KeyframeConfig()
    if len(features) == 0:
        return []
    unit = centred_unit_rows(features.features)
    margin = int(round(config.edge_margin_s * features.fps))
    chosen: list[Keyframe] = []
    chosen_vectors: list[np.ndarray] = []
    for shot_id, shot in enumerate(shots):
        rows = _rows_in(features.frames, shot.start_frame, shot.end_frame, margin)
        if rows.size == 0:
            continue
        length_s = (shot.end_frame - shot.start_frame) / max(features.fps, 1e-6)
        k = min(config.max_per_shot, 1 + int(length_s // config.seconds_per_keyframe), rows.size)
        for row, size in _medoids(unit[rows], rows, k, config.seed):
            if chosen_vectors and max(float(v @ unit[row]) for v in chosen_vectors) > config.max_similarity:
                continue
            chosen.append(Keyframe(shot_id + 1, int(features.frames[row]), float(features.frame_times_s[row]), size))
            chosen_vectors.append(unit[row])
    if not chosen:  # everything was a near-duplicate of nothing: impossible, but a video always gets one
        row = len(features) // 2
        chosen.append(Keyframe(1, int(features.frames[row]), float(features.frame_times_s[row]), len(features)))
    chosen.sort(key=lambda kf: kf.frame)
    return chosen


def _rows_in(frames: np.ndarray, start: int, end: int, margin: int) -> np.ndarray:
    """Rows of sampled frames inside `[start, end)`, away from the edges when the shot allows it."""
    inside = np.flatnonzero((frames >= start) & (frames < end))
    if margin and end - start > 4 * margin:
        away = np.flatnonzero((frames >= start + margin) & (frames < end - margin))
        if away.size:
            return away
    return inside


def _medoids(vectors: np.ndarray, rows: np.ndarray, k: int, seed: int) -> list[tuple[int, int]]:
    """`(row, cluster size)` per cluster of `vectors (n,D)`, largest cluster first."""
    if k <= 1 or len(vectors) <= 1:
        centre = vectors.mean(axis=0)
        return [(int(rows[int(np.argmax(vectors @ centre))]), len(rows))]
    k = min(k, len(np.unique(vectors.round(4), axis=0)))
    if k <= 1:
        return [(int(rows[len(rows) // 2]), len(rows))]
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
    out = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        nearest = members[int(np.argmin(np.linalg.norm(vectors[members] - km.cluster_centers_[c], axis=1)))]
        out.append((int(rows[nearest]), int(members.size)))
    return sorted(out, key=lambda item: (-item[1], item[0]))


def save_keyframes(
    video: str | os.PathLike[str],
    keyframes: list[Keyframe],
    out_dir: str | os.PathLike[str],
    config: KeyframeConfig,
    *,
    title: str | None = None,
) -> dict[str, Path]:
    """Write each keyframe as `keyframes/kf_NNN_<time>s.<ext>` (NNN from 001), `keyframes.json` and `contact_sheet.png`."""
    out = Path(out_dir)
    image_dir = out / "keyframes"
    image_dir.mkdir(parents=True, exist_ok=True)
    # strict: the frames chosen are the frames saved; one that cannot be decoded is an error, never a neighbour
    images = read_clip(video, [kf.frame for kf in keyframes], size=config.image_size, strict=True) if keyframes else []
    for i, (kf, image) in enumerate(zip(keyframes, images)):
        name = f"kf_{i + 1:03d}_{kf.time_s:09.3f}s.{config.image_format}"
        cv2.imwrite(str(image_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        kf.path = f"keyframes/{name}"
    sheet = contact_sheet(list(images), [f"{timecode(kf.time_s)}  shot {kf.shot}" for kf in keyframes],
                          out / "contact_sheet.png", title=title)
    doc = {"video": str(video), "config": asdict(config), "keyframes": [kf.to_dict() for kf in keyframes]}
    (out / "keyframes.json").write_text(json.dumps(doc, indent=2) + "\n")
    return {"keyframes.json": out / "keyframes.json", "contact_sheet.png": sheet, "keyframes": image_dir}


def extract_keyframes(
    video: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: KeyframeConfig | None = None,
    *,
    shots: Sequence[Span] | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> KeyframeResult:
    """Detect shots (unless given), embed frames at `config.fps`, choose keyframes and save them.

    `progress(stage, seconds_done)` with stage "shots" then "features".
    """
    config = config or KeyframeConfig()
    info = probe(video)  # unreadable input fails here, with the reason
    if shots is None:
        from vidlens.tasks.shots import detect_shots

        fps = info.fps or 25.0
        shots = detect_shots(video, progress=(lambda n: progress("shots", n / fps)) if progress else None).scenes
    features = sample_frame_features(video, fps=config.fps, kind=config.features,
                                     progress=(lambda t: progress("features", t)) if progress else None)
    keyframes = choose_keyframes(features, shots, config)
    files = save_keyframes(video, keyframes, out_dir, config,
                           title=f"{Path(video).name}: {len(keyframes)} keyframes from {len(shots)} shots")
    return KeyframeResult(str(video), keyframes, len(shots), files)
