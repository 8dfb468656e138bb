"""PNG summary of a dataset scan: class counts, duration histogram, resolution table.

Drawn from the ``scan_summary.json`` dict alone (see `vidlens.data.scan.summarize`),
so the picture can be redrawn from the JSON at any time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vidlens.report.png import save_png

SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
MAX_LABELLED_CLASSES = 60


def plot_scan_summary(summary: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a three-panel PNG for a scan summary; returns the path (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    classes: dict[str, dict[str, int]] = summary.get("classes", {})
    names = sorted(classes, key=lambda n: (-classes[n].get("total", 0), n))
    fig = plt.figure(figsize=(14, 8), dpi=100)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.2, 1], width_ratios=[1.6, 1])

    ax = fig.add_subplot(grid[0, :])
    bottom = [0] * len(names)
    for split in ("train", "val", "test"):
        values = [classes[n].get(split, 0) for n in names]
        if any(values):
            ax.bar(range(len(names)), values, bottom=bottom, color=SPLIT_COLOURS[split], label=split, width=0.85)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    bad = [classes[n].get("bad", 0) for n in names]
    if any(bad):
        ax.bar(range(len(names)), bad, color="none", edgecolor="#C44E52", hatch="///", width=0.85, label="bad")
    if len(names) <= MAX_LABELLED_CLASSES:
        ax.set_xticks(range(len(names)), names, rotation=60 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center",
                      fontsize=8 if len(names) > 20 else 9)
    else:
        ax.set_xlabel(f"{len(names)} classes, most to fewest videos")
        ax.set_xticks([])
    ax.set_ylabel("videos")
    ax.set_title(
        f"{summary.get('layout', '')} dataset: {summary.get('total_files', 0)} files, "
        f"{summary.get('bad_files', 0)} bad, {summary.get('missing', 0)} missing, {len(names)} classes"
    )
    if names:
        ax.legend(loc="upper right", fontsize=8)

    ax = fig.add_subplot(grid[1, 0])
    hist = summary.get("duration_histogram", {"edges": [0, 1], "counts": [0]})
    edges, counts = hist["edges"], hist["counts"]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], counts, width=[w or 0.1 for w in widths], align="edge", color="#8172B3", edgecolor="white")
    stats = summary.get("duration_s", {})
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("files")
    ax.set_title(
        f"durations: min {stats.get('min', 0):.2f}, median {stats.get('median', 0):.2f}, "
        f"max {stats.get('max', 0):.2f}, total {stats.get('total', 0) / 3600:.2f} h",
        fontsize=10,
    )

    ax = fig.add_subplot(grid[1, 1])
    ax.axis("off")
    rows = [[res, str(n)] for res, n in list(summary.get("resolutions", {}).items())[:10]] or [["-", "0"]]
    table = ax.table(cellText=rows, colLabels=["resolution", "files"], loc="upper center", cellLoc="center")
    table.scale(1, 1.3)
    fps = ", ".join(f"{k} ({v})" for k, v in list(summary.get("fps", {}).items())[:4])
    codecs = ", ".join(f"{k} ({v})" for k, v in list(summary.get("codecs", {}).items())[:4])
    ax.set_title(f"fps: {fps or '-'}\ncodecs: {codecs or '-'}   audio: {100 * summary.get('audio_share', 0):.0f}%", fontsize=9)

    fig.tight_layout()
    saved = save_png(fig, path)
    plt.close(fig)
    return saved
