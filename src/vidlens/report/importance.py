"""The importance curve of a summarized video, with the kept segments shaded."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vidlens.report.png import save_png


def plot_importance(times_s: np.ndarray, scores: np.ndarray, segments: Sequence[tuple[float, float, bool]],
                    path: str | Path, *, title: str = "") -> Path:
    """`scores (N,)` at `times_s (N,)`; `segments`: `(start_s, end_s, kept)`, kept ones shaded, all edges ticked."""
    fig = Figure(figsize=(11, 3.4))
    ax = fig.subplots()
    for start, end, kept in segments:
        if kept:
            ax.axvspan(start, end, color="tab:orange", alpha=0.35, lw=0)
        ax.axvline(start, color="0.85", lw=0.6, zorder=0)
    ax.plot(times_s, scores, color="tab:blue", lw=1.4, label="frame importance")
    ax.fill_between([], [], color="tab:orange", alpha=0.35, label="kept in the summary")
    ax.set_xlim(0, max([end for _, end, _ in segments] + [float(times_s[-1]) if len(times_s) else 1.0]))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("importance")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
