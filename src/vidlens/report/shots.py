"""A PNG of shot detection scores: the score curves, the adaptive threshold and the boundaries found.

Top panel: the classic cut score `scores["cut"]` with its adaptive `threshold`, and the learned
detector's per-frame transition probability `scores["learned"]` when present; cuts marked with
lines, gradual transitions (fade, dissolve, wipe) shaded over their `[start_frame, end_frame)`
span. Bottom panel: the long-range histogram distance (dissolves) and the mean luma (fades), and the
learned detector's "inside a transition" probability `scores["gradual"]` when present.

Takes plain data (arrays, dicts), never a task's result object, so `report` does not import
`tasks`. Uses `matplotlib.figure.Figure` with the Agg canvas directly (no pyplot state, no display).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vidlens.report.png import save_png

KIND_COLORS = {"cut": "tab:red", "fade": "tab:purple", "dissolve": "tab:green", "wipe": "tab:brown"}
# Top-panel curves, in drawing order: score name -> (label, colour).
TOP_CURVES = {"cut": ("classic cut score", "tab:blue"), "learned": ("learned boundary probability", "tab:cyan"),
              "diff": ("mean frame difference (48x27)", "0.6")}
BOTTOM_CURVES = {"long_hist": ("long-range histogram distance", "tab:green"), "luma": ("mean luma", "0.3"),
                 "gradual": ("learned: inside a transition", "tab:olive")}


def plot_shot_scores(
    times: np.ndarray,
    scores: Mapping[str, np.ndarray],
    threshold: np.ndarray,
    boundaries: Sequence[Mapping],
    path: str | os.PathLike[str],
    *,
    fps: float,
    title: str = "shot scores",
    dpi: int = 100,
) -> Path:
    """Draw score curves and boundaries into a PNG at `path`.

    `times`: `float64 (N,)` seconds; `scores`: name -> `(N,)` curves; `threshold`: `(N,)` or empty;
    `boundaries`: dicts with `kind`, `time_s`, `start_frame`, `end_frame` (as `Boundary.to_dict()`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    t = np.asarray(times, dtype=np.float64)
    style = "o" if t.size == 1 else "-"
    for name, (label, color) in TOP_CURVES.items():
        if name in scores and len(scores[name]) == t.size:
            top.plot(t, scores[name], style, linewidth=0.9, color=color, label=label)
    if len(threshold) == t.size and t.size:
        top.plot(t, threshold, style, linewidth=0.9, color="tab:orange", alpha=0.8, label="adaptive threshold")
    for name, (label, color) in BOTTOM_CURVES.items():
        if name in scores and len(scores[name]) == t.size:
            bottom.plot(t, scores[name], style, linewidth=0.9, color=color, label=label)
    fps = fps or 1.0
    seen: set[str] = set()
    for b in boundaries:
        kind = str(b["kind"])
        color = KIND_COLORS.get(kind, "k")
        label = kind if kind not in seen else None
        seen.add(kind)
        for ax in (top, bottom):
            if kind == "cut":
                ax.axvline(b["time_s"], color=color, linewidth=1.0, alpha=0.7, label=label if ax is top else None)
            else:
                ax.axvspan(b["start_frame"] / fps, b["end_frame"] / fps, color=color, alpha=0.2,
                           label=label if ax is top else None)
                ax.axvline(b["time_s"], color=color, linewidth=1.0, linestyle="--", alpha=0.8)
    top.set_ylabel("score (0..1)", fontsize=8)
    bottom.set_ylabel("gradual cues", fontsize=8)
    bottom.set_xlabel("time (s)")
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
    counts = ", ".join(f"{sum(b['kind'] == k for b in boundaries)} {k}" for k in KIND_COLORS
                       if any(b["kind"] == k for b in boundaries)) or "no boundaries"
    fig.suptitle(f"{title} ({counts})", fontsize=10)
    return save_png(fig, path)
