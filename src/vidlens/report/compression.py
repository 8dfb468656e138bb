"""The compression report as a PNG: size, latency and top-1 per exported/compressed variant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vidlens.report.png import save_png


def plot_compression(rows: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> Path:
    """Three bar panels (file size MB, CPU latency ms per clip, top-1) over `rows` (`VariantRow.to_dict()`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [str(r["variant"]) for r in rows]
    fig = Figure(figsize=(13, 3.8), dpi=80)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.25, top=0.86, wspace=0.25)
    FigureCanvasAgg(fig)
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd"]
    for ax, key, label in zip(fig.subplots(1, 3), ("size_mb", "latency_ms", "top1"),
                              ("file size (MB)", "CPU latency per clip (ms, median)", "top-1 (validation)")):
        values = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        bars = ax.bar(range(len(rows)), values, color=[colors[i % len(colors)] for i in range(len(rows))])
        ax.set_xticks(range(len(rows)), names, rotation=25, ha="right", fontsize=8)
        ax.set_title(label, fontsize=10)
        if key == "top1":
            ax.set_ylim(0, 1.05)
        for bar, r in zip(bars, rows):
            text = "n/a" if r.get(key) is None else (f"{r[key]:.3f}" if key == "top1" else f"{r[key]:.3g}")
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), text, ha="center", va="bottom", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_png(fig, path)
