"""Write a `ShotResult` for machines and people: scenes.json, scenes.csv and scores.png.

The plot is drawn by `vidlens.report.shots.plot_shot_scores` from plain data (times, score
curves, boundaries as dicts), so `report` never imports `tasks`.
"""

from __future__ import annotations

import os
from pathlib import Path

from vidlens.tasks.shots.result import ShotResult, write_scene_csv, write_scene_json


def plot_result(result: ShotResult, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Draw `result`'s score curves and boundaries into a PNG at `path`."""
    from vidlens.report.shots import plot_shot_scores

    return plot_shot_scores(
        result.times, result.scores, result.threshold, [b.to_dict() for b in result.boundaries], path,
        fps=result.fps, title=title or f"shots of {Path(result.path).name}: {len(result.scenes)} shots",
    )


def write_shot_outputs(result: ShotResult, out_dir: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
    """Write `scenes.json`, `scenes.csv` and (when `plot`) `scores.png` into `out_dir`; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_scene_json(result, out / "scenes.json"), "csv": write_scene_csv(result, out / "scenes.csv")}
    if plot:
        paths["png"] = plot_result(result, out / "scores.png")
    return paths
