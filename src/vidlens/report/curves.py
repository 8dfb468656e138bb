"""Training curves: loss, metrics and learning rate per epoch, from `fit`'s history, as a PNG."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from vidlens.report.png import save_png

SKIP = {"epoch", "lr", "seconds", "clips_per_s", "substitutions", "bad_batches", "val_substitutions",
        "val_num_videos", "train_loss", "val_loss"}


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in history:
        value = row.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value)):
            xs.append(float(row["epoch"]))
            ys.append(float(value))
    return xs, ys


def plot_training_curves(history: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Three panels (loss; accuracy-like metrics in [0, 1]; lr) over epochs, written atomically to `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(13, 3.8), dpi=80)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.13, top=0.88, wspace=0.22)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    for key, style in (("train_loss", "-o"), ("val_loss", "-s")):
        xs, ys = _series(history, key)
        if xs:
            ax_loss.plot(xs, ys, style, label=key, markersize=3)
    ax_loss.set(title="loss", xlabel="epoch")
    keys = [k for row in history for k in row]
    metrics = [k for k in dict.fromkeys(keys) if k not in SKIP]
    for key in metrics:
        xs, ys = _series(history, key)
        if xs and all(-1e-9 <= y <= 1 + 1e-9 for y in ys):
            ax_metric.plot(xs, ys, "-o", label=key, markersize=3)
    ax_metric.set(title="metrics", xlabel="epoch", ylim=(-0.02, 1.02))
    xs, ys = _series(history, "lr")
    if xs:
        ax_lr.plot(xs, ys, "-o", markersize=3)
        if min(ys) > 0 and max(ys) / min(ys) > 20:
            ax_lr.set_yscale("log")
    ax_lr.set(title="learning rate (end of epoch)", xlabel="epoch")
    for ax in (ax_loss, ax_metric):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax_lr.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_png(fig, path)
