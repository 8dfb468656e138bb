"""What `detect_shots` returns (`ShotResult`) and the files it is written to.

Frames are 0-based source frame indices; `end_frame`s are exclusive. A boundary's
`frame` is the first frame of the new shot for a cut and the middle of the transition
(`start_frame + (end_frame - start_frame) // 2`) for a fade or dissolve, the same
convention as `vidlens.data.synthetic.shots`.

Shot (scene) numbers that people read are 1-based: scene `i` of `ShotResult.scenes` (a 0-based
Python list) is "scene i + 1" in scenes.csv, in split file names (`<stem>-Scene-001.mp4`) and in
keyframes.json / contact sheets, as PySceneDetect numbers them. Frame indices stay 0-based.

This module holds data and plain-file writers only; the plot is drawn from plain data by
`vidlens.report.shots` (called from `vidlens.tasks.shots.outputs`), so report never imports tasks.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vidlens.report.contact_sheet import timecode  # HH:MM:SS.mmm, as PySceneDetect's get_timecode() writes it

# What a boundary is. The classic detector finds cuts, fades (through black) and dissolves; wipes come
# from detectors that can tell them (the learned one).
BOUNDARY_KINDS = ("cut", "dissolve", "fade", "wipe")

# PySceneDetect's scene list CSV header (scenedetect.output.write_scene_list, 0.7.x).
CSV_HEADER = [
    "Scene Number",
    "Start Frame",
    "Start Timecode",
    "Start Time (seconds)",
    "End Frame",
    "End Timecode",
    "End Time (seconds)",
    "Length (frames)",
    "Length (timecode)",
    "Length (seconds)",
]


@dataclass
class Boundary:
    """One shot change. Transition frames `[start_frame, end_frame)`; a cut has start == end == frame.

    `score`: the detector's raw evidence (units depend on the detector and kind); `confidence`: in
    [0, 1], comparable across kinds and detectors, 0.5 at the detector's decision threshold
    (`confidence_from_margin`).
    """

    frame: int
    time_s: float
    kind: str  # one of BOUNDARY_KINDS
    score: float
    start_frame: int
    end_frame: int
    confidence: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SceneSpan:
    """One scene (shot) of the partition: frames `[start_frame, end_frame)`, seconds `[start_s, end_s)`."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ShotResult:
    """Boundaries and scenes of one video, with the per-frame score curves they came from.

    `times`: `float64 (N,)` seconds of each analysed frame. `scores`: name -> `float32 (N,)`
    (value at frame t compares frame t with an earlier frame; 0 at t = 0). `threshold`:
    `float32 (N,)` the adaptive cut threshold each frame's `scores["cut"]` was held against.
    """

    path: str
    fps: float
    num_frames: int
    duration_s: float
    boundaries: list[Boundary]
    scenes: list[SceneSpan]
    times: np.ndarray
    scores: dict[str, np.ndarray]
    threshold: np.ndarray
    config: dict = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the detection

    @property
    def cut_frames(self) -> list[int]:
        return [b.frame for b in self.boundaries]

    @property
    def cut_times(self) -> list[float]:
        return [round(b.time_s, 3) for b in self.boundaries]

    def to_dict(self) -> dict:
        """JSON-ready summary (the `scenes.json` schema, without the per-frame curves)."""
        kinds = {k: sum(b.kind == k for b in self.boundaries) for k in BOUNDARY_KINDS}
        return {
            "path": self.path,
            "fps": round(self.fps, 6),
            "num_frames": self.num_frames,
            "duration_s": round(self.duration_s, 3),
            "num_scenes": len(self.scenes),
            "cuts": self.cut_times,
            "boundaries": [
                {**b.to_dict(), "time_s": round(b.time_s, 3), "score": round(float(b.score), 4),
                 "confidence": round(float(b.confidence), 4)}
                for b in self.boundaries
            ],
            "boundary_kinds": {k: v for k, v in kinds.items() if v},
            "scenes": [
                {"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                 "start_frame": s.start_frame, "end_frame": s.end_frame}
                for s in self.scenes
            ],
            "config": dict(self.config),
            "seconds": round(self.seconds, 3),
        }


def confidence_from_margin(score: float, threshold: float) -> float:
    """`score / (score + threshold)` in [0, 1]: 0.5 for a score at the threshold, towards 1 as it dominates.

    Scores and thresholds are non-negative; a zero threshold gives 1 for any positive score.
    """
    score, threshold = max(float(score), 0.0), max(float(threshold), 0.0)
    if score + threshold <= 0:
        return 0.0
    return score / (score + threshold)


def scene_file_name(stem: str, number: int, suffix: str) -> str:
    """`<stem>-Scene-NNN<suffix>` for 1-based scene `number` (PySceneDetect's `split-video` names)."""
    return f"{stem}-Scene-{number:03d}{suffix}"


def scenes_from_boundaries(boundary_frames: list[int], num_frames: int, fps: float) -> list[SceneSpan]:
    """Partition `[0, num_frames)` at the given boundary frames (sorted, each in 1..num_frames-1)."""
    edges = [0, *[f for f in boundary_frames if 0 < f < num_frames], max(num_frames, 1)]
    return [SceneSpan(a, b, a / fps, b / fps) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def write_scene_csv(result: ShotResult, path: str | os.PathLike[str]) -> Path:
    """The scene list in PySceneDetect's CSV format, as `scenedetect ... list-scenes` writes it.

    Row 1: `Timecode List:` then each boundary's timecode; row 2: `CSV_HEADER`; then one row
    per scene. Start Frame is 1-based (0-based start + 1), End Frame is the 0-based exclusive
    end (= 1-based last frame); times are `frame / fps` so they follow the nominal frame rate.
    """
    path = Path(path)
    fps = result.fps
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["Timecode List:", *[timecode(s.start_frame / fps) for s in result.scenes[1:]]])
        writer.writerow(CSV_HEADER)
        for i, s in enumerate(result.scenes):
            n = s.end_frame - s.start_frame
            writer.writerow([
                f"{i + 1:d}", f"{s.start_frame + 1:d}", timecode(s.start_frame / fps), f"{s.start_frame / fps:.3f}",
                f"{s.end_frame:d}", timecode(s.end_frame / fps), f"{s.end_frame / fps:.3f}",
                f"{n:d}", timecode(n / fps), f"{n / fps:.3f}",
            ])
    return path


def write_scene_json(result: ShotResult, path: str | os.PathLike[str]) -> Path:
    """`result.to_dict()` as `scenes.json` (written to a temp file, then renamed)."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path
