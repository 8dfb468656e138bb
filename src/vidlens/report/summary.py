"""Video summarization plots (standalone functions): per-fold F-scores of a SumMe/TVSum evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from vidlens.report.png import save_png


def plot_fold_fscores(f_scores: Sequence[float], path: str | os.PathLike[str], title: str = "") -> Path:
    """Bar chart of per-fold F-scores `(n_folds,)` in [0, 1] with the mean as a dashed line, written atomically to `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    values = [float(v) for v in f_scores]
    fig = Figure(figsize=(max(4.5, 0.9 * len(values) + 2), 3.6), dpi=80)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.14, top=0.86)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    xs = list(range(len(values)))
    bars = ax.bar(xs, values, color="tab:blue", alpha=0.8)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom", fontsize=8)
    if values:
        mean = sum(values) / len(values)
        ax.axhline(mean, color="tab:red", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set(xticks=xs, xticklabels=[f"fold {i}" for i in xs], ylabel="F-score", ylim=(0, 1.05))
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    return save_png(fig, path)
