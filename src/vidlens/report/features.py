"""A PNG of a `FeatureTable`'s scalar features over time (matplotlib, Agg, no display).

One panel per feature group (the name up to the first underscore: hsv, diff, flow,
edge), each scalar feature of the group a line; time in seconds on a shared x axis.
Uses `matplotlib.figure.Figure` with the Agg canvas directly, so it never touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from vidlens.report.png import save_png

if TYPE_CHECKING:
    from vidlens.features.table import FeatureTable

_LABELS = {
    "hsv": "HSV histogram distance",
    "diff": "frame difference",
    "flow": "optical flow (px/step)",
    "edge": "edges",
}


def plot_feature_curves(
    table: FeatureTable,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Draw every scalar column of `table` against `table.times` into a PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for name in table.scalar_columns():
        groups.setdefault(name.split("_", 1)[0], []).append(name)
    rows = max(len(groups), 1)
    fig = Figure(figsize=(10, 1.9 * rows + 0.8), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    times = table.times
    if not groups:
        axes[0].text(0.5, 0.5, "no scalar features", ha="center", va="center", transform=axes[0].transAxes)
    for ax, (group, names) in zip(axes, groups.items()):
        for name in names:
            values = table.column(name)
            if len(table) == 1:
                ax.plot(times, values, "o", label=name)
            else:
                ax.plot(times, values, linewidth=1.0, label=name)
        ax.set_ylabel(_LABELS.get(group, group), fontsize=8)
        ax.legend(loc="upper right", fontsize=7, ncols=min(len(names), 4), framealpha=0.7)
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if title is None:
        source = table.meta.get("source")
        title = f"features of {Path(source).name}" if source else "features"
    fig.suptitle(title, fontsize=10)
    return save_png(fig, path)
