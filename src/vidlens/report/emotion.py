"""The emotion timeline of a video as a picture: per-second probabilities, valence per face track, voice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from vidlens.report.png import save_png


def plot_emotion_timeline(result: Any, path: str | Path) -> Path:
    """`result`: a `vidlens.tasks.emotion.EmotionResult`. Stacked emotion probabilities (whole video),
    valence per track and for the video below, voice activity shaded."""
    labels = list(result.labels)
    colours = colormaps["tab10"]
    duration = max(float(result.info.duration_s), 1.0)
    fig = Figure(figsize=(11, 5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    if result.seconds:
        x = np.array([row["start_s"] for row in result.seconds]) + 0.5
        probs = np.array([[row["probs"][label] for label in labels] for row in result.seconds])
        base = np.zeros(len(x))
        for k, label in enumerate(labels):  # stacked bars, one per second: seconds without faces stay empty
            top.bar(x, probs[:, k], width=0.95, bottom=base, color=colours(k), label=label, alpha=0.85)
            base += probs[:, k]
        top.legend(loc="upper right", fontsize=7, ncol=4)
        bottom.plot(x, [row["valence"] for row in result.seconds], color="black", lw=2, label="video")
    else:
        top.text(0.5, 0.5, "; ".join(result.notes) or "nothing to show", ha="center", va="center", transform=top.transAxes)
    for track in result.tracks:
        rows = result.track_seconds[track.id]
        if rows:
            bottom.plot([r["start_s"] + 0.5 for r in rows], [r["valence"] for r in rows], lw=1, marker=".",
                        label=f"face #{track.id}")
    for start, end in result.voice_active_s:
        bottom.axvspan(start, end, color="tab:green", alpha=0.12, lw=0)
    top.set_ylabel("emotion probability")
    top.set_ylim(0, 1)
    top.set_title(f"{Path(result.path).name}: {len(result.tracks)} face tracks"
                  + (", voice fused" if result.voice_used else ""))
    bottom.axhline(0, color="0.6", lw=0.8)
    bottom.set_ylim(-1, 1)
    bottom.set_ylabel("valence")
    bottom.set_xlabel("time (s)  (green: voice activity)")
    bottom.set_xlim(0, duration)
    if result.tracks or result.seconds:
        bottom.legend(loc="lower right", fontsize=7, ncol=3)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
