"""Shot boundary detection: cuts, fades through black and dissolves, streaming and flat in memory.

`detect_shots(path, ShotConfig(...))` -> `ShotResult` (boundaries, scenes, score curves);
`write_shot_outputs(result, out_dir)` writes scenes.json, scenes.csv (PySceneDetect's
format) and scores.png; `match_boundaries` scores detections against synthetic ground truth.
See docs/shots.md.
"""

from vidlens.tasks.shots.config import ShotConfig
from vidlens.tasks.shots.detect import detect_shots, find_boundaries
from vidlens.tasks.shots.evaluate import BoundaryScores, match_boundaries, match_boundaries_to_frames
from vidlens.tasks.shots.result import (
    BOUNDARY_KINDS,
    CSV_HEADER,
    Boundary,
    SceneSpan,
    ShotResult,
    confidence_from_margin,
    scene_file_name,
    write_scene_csv,
    write_scene_json,
)
from vidlens.tasks.shots.outputs import write_shot_outputs
from vidlens.tasks.shots.scores import FrameScores, compute_scores

__all__ = [
    "BOUNDARY_KINDS",
    "CSV_HEADER",
    "Boundary",
    "BoundaryScores",
    "FrameScores",
    "SceneSpan",
    "ShotConfig",
    "ShotResult",
    "compute_scores",
    "detect_shots",
    "find_boundaries",
    "match_boundaries",
    "match_boundaries_to_frames",
    "confidence_from_margin",
    "scene_file_name",
    "write_scene_csv",
    "write_scene_json",
    "write_shot_outputs",
]
