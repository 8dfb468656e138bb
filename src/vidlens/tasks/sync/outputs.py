"""Files of an audio-video sync estimate, written all-or-nothing (`vidlens.outputs.staged_output`).

`write_sync(result, out_dir)` writes:

- `sync.json`: `SyncResult.to_dict()` (offset, confidence, verdict, reason, correlation curve, windows, drift) plus
  `files` (the names below);
- `sync_windows.csv`: one row per window: `start_s, end_s, center_s, offset_ms` (empty = this window cannot tell),
  `confidence`;
- `sync.png`: the whole-video correlation over the lags searched with the chosen peak marked, and the offset over
  time (each window's offset, filled when confident, hollow when not) with the whole-video offset and, when drift
  was found, its line.
"""

from __future__ import annotations

import csv
import json
import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.outputs import staged_output

__all__ = ["SYNC_FILES", "write_sync", "drift_line", "summary_line", "moved"]

SYNC_FILES = ("sync.json", "sync_windows.csv", "sync.png")
CONFIDENT = 0.5  # the contract's `base.CONFIDENT`; read from base when it is importable


def _confident() -> float:
    try:
        from vidlens.tasks.sync.base import CONFIDENT as value
    except ImportError:  # pragma: no cover - base is part of the package
        return CONFIDENT
    return float(value)


def summary_line(result: Any) -> str:
    """One line for a person: `name: audio late by 200 ms (confidence 0.83, speech)` or `name: cannot tell (...)`."""
    name = Path(str(result.video)).name
    if result.offset_ms is None:
        return f"{name}: cannot tell ({result.reason}) [{result.method}]"
    text = f"{name}: {result.verdict}, offset {result.offset_ms:+.0f} ms (confidence {result.confidence:.2f}, {result.method})"
    if result.drift_ms_per_min is not None:
        text += f", drift {result.drift_ms_per_min:+.1f} ms/min"
    return text


def moved(offset_ms: float) -> str:
    """What a fix by `offset_ms` does to the audio, in words: "audio moved 200 ms earlier" (offset > 0: it was late)."""
    return f"audio moved {abs(offset_ms):.0f} ms {'earlier' if offset_ms > 0 else 'later'}"


def drift_line(result: Any) -> tuple[float, float] | None:
    """(offset at t=0 in ms, slope in ms/s) of the drift line through the windows' offsets, or None without drift.
    The slope is the result's; the intercept is the median that puts the line through the confident windows (all
    windows with an offset when none is confident, the whole-video offset at mid-video when there are none)."""
    if result.drift_ms_per_min is None:
        return None
    slope = float(result.drift_ms_per_min) / 60.0
    usable = [w for w in result.windows if w.offset_ms is not None]
    sure = [w for w in usable if w.confidence >= _confident()] or usable
    if sure:
        intercept = float(np.median([w.offset_ms - slope * (w.start_s + w.end_s) / 2 for w in sure]))
    elif result.offset_ms is not None:
        intercept = float(result.offset_ms) - slope * float(result.duration_s) / 2
    else:
        return None
    return intercept, slope


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _write_csv(result: Any, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["start_s", "end_s", "center_s", "offset_ms", "confidence"])
        for w in result.windows:
            out.writerow([f"{w.start_s:.3f}", f"{w.end_s:.3f}", f"{(w.start_s + w.end_s) / 2:.3f}",
                          "" if w.offset_ms is None else f"{w.offset_ms:.1f}", f"{w.confidence:.3f}"])


def _write_png(result: Any, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6.4))
    top, bottom = fig.subplots(2, 1)
    lags = np.asarray(result.lags_ms, dtype=np.float64)
    corr = np.asarray(result.correlation, dtype=np.float64)
    if lags.size and corr.size == lags.size:
        top.plot(lags, corr, color="tab:blue", lw=1.2, label="whole-video correlation")
        peak = int(np.nanargmax(corr)) if np.isfinite(corr).any() else None
        if result.offset_ms is not None:
            at = int(np.argmin(np.abs(lags - float(result.offset_ms))))
            top.plot([result.offset_ms], [corr[at]], "v", color="tab:red", ms=10,
                     label=f"offset {result.offset_ms:+.0f} ms (confidence {result.confidence:.2f})")
        elif peak is not None:
            top.plot([lags[peak]], [corr[peak]], "x", color="0.4", ms=9,
                     label=f"highest score at {lags[peak]:+.0f} ms: not trusted")
    else:
        top.text(0.5, 0.5, "no correlation curve", ha="center", va="center", transform=top.transAxes, color="0.4")
    top.axvline(0.0, color="0.6", lw=0.8, ls=":")
    top.set_xlabel("offset (ms): > 0 = audio late")
    top.set_ylabel("score")
    top.legend(loc="upper right", fontsize=8)
    title = f"{Path(str(result.video)).name}: {result.verdict} ({result.method}) - {result.reason}"
    top.set_title(textwrap.fill(title, 130), fontsize=9)

    sure_t, sure_o, weak_t, weak_o = [], [], [], []
    for w in result.windows:
        if w.offset_ms is None:
            continue
        centre = (w.start_s + w.end_s) / 2
        (sure_t if w.confidence >= _confident() else weak_t).append(centre)
        (sure_o if w.confidence >= _confident() else weak_o).append(w.offset_ms)
    unknown = [(w.start_s + w.end_s) / 2 for w in result.windows if w.offset_ms is None]
    if sure_t:
        bottom.plot(sure_t, sure_o, "o", color="tab:blue", ms=6, label="window offset (confident)")
    if weak_t:
        bottom.plot(weak_t, weak_o, "o", mfc="none", color="tab:blue", ms=6, label="window offset (not confident)")
    if unknown:
        bottom.plot(unknown, [0.0] * len(unknown), "|", color="0.5", ms=12, label="window cannot tell")
    duration = max(float(result.duration_s or 0.0), max((w.end_s for w in result.windows), default=0.0), 1e-3)
    if result.offset_ms is not None:
        bottom.axhline(float(result.offset_ms), color="tab:red", lw=1, ls="--", label=f"whole video {result.offset_ms:+.0f} ms")
    line = drift_line(result)
    if line is not None:
        xs = np.array([0.0, duration])
        bottom.plot(xs, line[0] + line[1] * xs, color="tab:orange", lw=1.5,
                    label=f"drift {result.drift_ms_per_min:+.1f} ms/min")
    bottom.axhline(0.0, color="0.6", lw=0.8, ls=":")
    bottom.set_xlim(0.0, duration)
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("offset (ms)")
    bottom.set_title("offset over time", fontsize=9)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_sync(result: Any, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write sync.json, sync_windows.csv and sync.png for a `SyncResult` into `out_dir` (all or nothing; other
    files there are left alone). Returns {file name: final path}."""
    with staged_output(out_dir) as stage:
        _write_csv(result, stage.path / "sync_windows.csv")
        _write_png(result, stage.path / "sync.png")
        doc = _json_safe(result.to_dict())
        doc["files"] = list(SYNC_FILES)
        (stage.path / "sync.json").write_text(json.dumps(doc, indent=2) + "\n")
        files = {name: stage.final(stage.path / name) for name in SYNC_FILES}
    return files
