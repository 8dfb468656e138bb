"""A PNG of shot detection scores: the cut score, its adaptive threshold and the boundaries found.

Top panel: `scores["cut"]` and `threshold` over time, cuts marked with red lines, gradual
transitions shaded over their `[start_frame, end_frame)` span. Bottom panel: the long-range
histogram distance (dissolves) and the mean luma (fades through black). Uses
`matplotlib.figure.Figure` with the Agg canvas directly (no pyplot state, no display).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vidlens.tasks.shots.result import ShotResult

_KIND_COLORS = {"cut": "tab:red", "fade": "tab:purple", "dissolve": "tab:green", "gradual": "tab:olive"}


def plot_shot_scores(result: ShotResult, path: str | os.PathLike[str], *, title: str | None = None, dpi: int = 100) -> Path:
    """Draw `result`'s score curves, threshold and boundaries into a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    t = np.asarray(result.times, dtype=np.float64)
    style = "o" if t.size == 1 else "-"
    cut = result.scores.get("cut", np.zeros_like(t))
    top.plot(t, cut, style, linewidth=0.9, color="tab:blue", label="cut score")
    if len(result.threshold):
        top.plot(t, result.threshold, style, linewidth=0.9, color="tab:orange", alpha=0.8, label="adaptive threshold")
    for name, color in (("long_hist", "tab:green"), ("luma", "0.3")):
        if name in result.scores:
            bottom.plot(t, result.scores[name], style, linewidth=0.9, color=color,
                        label="long-range histogram distance" if name == "long_hist" else "mean luma")
    fps = result.fps or 1.0
    seen: set[str] = set()
    for b in result.boundaries:
        color = _KIND_COLORS.get(b.kind, "k")
        label = b.kind if b.kind not in seen else None
        seen.add(b.kind)
        for ax in (top, bottom):
            if b.kind == "cut":
                ax.axvline(b.time_s, color=color, linewidth=1.0, alpha=0.7, label=label if ax is top else None)
            else:
                ax.axvspan(b.start_frame / fps, b.end_frame / fps, color=color, alpha=0.2, label=label if ax is top else None)
                ax.axvline(b.time_s, color=color, linewidth=1.0, linestyle="--", alpha=0.8)
    top.set_ylabel("score (0..1)", fontsize=8)
    bottom.set_ylabel("gradual cues", fontsize=8)
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
    counts = ", ".join(f"{sum(b.kind == k for b in result.boundaries)} {k}" for k in _KIND_COLORS
                       if any(b.kind == k for b in result.boundaries)) or "no boundaries"
    fig.suptitle(title or f"shots of {Path(result.path).name}: {len(result.scenes)} shots ({counts})", fontsize=10)
    fig.savefig(path, format="png")
    return path
