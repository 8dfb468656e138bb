"""A long video's timeline as a picture: label probabilities over time and the merged segments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from vidlens.report.png import save_png


def plot_timeline(timeline: Any, path: str | Path, *, top: int = 6) -> Path:
    """`timeline`: a `vidlens.tasks.predictor.Timeline`. Curves of the `top` most likely labels, segments below."""
    probs = np.asarray(timeline.probs)
    order = np.argsort(-probs.max(axis=0))[:top]
    colours = colormaps["tab10"]
    colour_of = {timeline.labels[k]: colours(i % 10) for i, k in enumerate(np.argsort(-probs.mean(axis=0)))}
    fig = Figure(figsize=(11, 4.2))
    ax, bar = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for k in order:
        name = timeline.labels[k]
        ax.plot(timeline.centers_s, probs[:, k], label=name, color=colour_of[name], lw=1.6)
    ax.set_ylabel("probability")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right", fontsize=8, ncol=min(3, len(order)))
    ax.set_title(f"{Path(timeline.path).name}: {len(timeline.segments)} segments")
    for seg in timeline.segments:
        bar.barh(0, seg.end_s - seg.start_s, left=seg.start_s, color=colour_of.get(seg.label, "grey"), edgecolor="white")
        if seg.end_s - seg.start_s > 0.06 * max(timeline.duration_s, 1e-6):
            bar.text((seg.start_s + seg.end_s) / 2, 0, seg.label, ha="center", va="center", fontsize=7)
    bar.set_yticks([])
    bar.set_xlabel("time (s)")
    bar.set_xlim(0, max(timeline.duration_s, float(timeline.centers_s[-1]) if len(timeline.centers_s) else 1.0))
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
