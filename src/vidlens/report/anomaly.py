"""The anomaly score of a video over time, events shaded, threshold drawn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vidlens.report.png import save_png


def plot_anomaly_scores(times_s: np.ndarray, absolute: np.ndarray, events: Sequence[tuple[float, float]], threshold: float,
                        path: str | Path, *, low: float | None = None, title: str = "",
                        truth: np.ndarray | None = None) -> Path:
    """`absolute (T,)` scores at `times_s (T,)`; `events`: `(start_s, end_s)` shaded; `truth (T,)` 0/1 drawn as a band."""
    fig = Figure(figsize=(11, 3.4))
    ax = fig.subplots()
    for start, end in events:
        ax.axvspan(start, max(end, start + 0.04), color="tab:red", alpha=0.25, lw=0)
    ax.plot(times_s, absolute, color="tab:blue", lw=1.2, label="anomaly score (absolute)")
    ax.axhline(threshold, color="tab:red", lw=0.9, ls="--", label=f"event threshold {threshold:.2f}")
    if low is not None and low < threshold:
        ax.axhline(low, color="tab:red", lw=0.6, ls=":", label=f"event end {low:.2f}")
    if truth is not None and len(truth) == len(times_s):
        top = float(np.nanmax(absolute)) if len(absolute) else 1.0
        ax.fill_between(times_s, top * 1.05, top * 1.1, where=np.asarray(truth) > 0, color="black", step="mid",
                        label="ground truth")
    ax.fill_between([], [], color="tab:red", alpha=0.25, label="events")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("robust z vs normal footage")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
