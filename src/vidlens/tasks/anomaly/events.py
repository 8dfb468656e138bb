"""Anomaly events from per-frame absolute scores, with hysteresis: an event starts when the score reaches
`high` and ends when it stays below `low` for longer than `gap_s`; events shorter than `min_duration_s` are
dropped. One `EventTracker` serves files (fed every frame, then `finish`) and live streams (fed as frames
arrive; it emits `start` and `end` the moment they are known).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class EventConfig:
    """`high`: start threshold on the absolute score (None: the model's calibrated threshold); `low`: end
    threshold (None: `high * low_ratio`)."""

    high: float | None = None
    low: float | None = None
    low_ratio: float = 0.6
    gap_s: float = 0.5  # a dip below `low` shorter than this does not end the event
    min_duration_s: float = 0.2

    def thresholds(self, calibrated: float) -> tuple[float, float]:
        high = calibrated if self.high is None else self.high
        low = high * self.low_ratio if self.low is None else self.low
        return high, min(low, high)


@dataclass
class AnomalyEvent:
    """One anomalous stretch: frame indices and seconds (3 decimals) of start, end (inclusive) and peak, the
    peak and mean absolute score, and where the peak was (`peak_xy`: heat-map maximum, x and y in [0,1]
    of the frame)."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    peak_frame: int
    peak_s: float
    peak_score: float
    mean_score: float
    peak_xy: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start_s", "end_s", "peak_s"):
            out[key] = round(out[key], 3)
        out["peak_score"], out["mean_score"] = round(self.peak_score, 4), round(self.mean_score, 4)
        out["duration_s"] = round(self.end_s - self.start_s, 3)
        out["peak_xy"] = None if self.peak_xy is None else [round(v, 3) for v in self.peak_xy]
        return out


def heat_peak(heat: np.ndarray) -> tuple[float, float]:
    """(x, y) in [0,1] of the maximum of one `(h,w)` heat map (cell centres)."""
    y, x = np.unravel_index(int(np.nanargmax(heat)), heat.shape)
    return (x + 0.5) / heat.shape[1], (y + 0.5) / heat.shape[0]


class EventTracker:
    """Online hysteresis over `(frame index, time_s, absolute score, heat (h,w) or None)` updates."""

    def __init__(self, high: float, low: float, gap_s: float = 0.5, min_duration_s: float = 0.2) -> None:
        self.high, self.low, self.gap_s, self.min_duration_s = high, low, gap_s, min_duration_s
        self._open: dict[str, Any] | None = None  # the event being built
        self._last_above: tuple[int, float] | None = None  # last frame >= low in the open event

    @property
    def active(self) -> bool:
        return self._open is not None

    def update(self, frame: int, time_s: float, score: float, heat: np.ndarray | None = None) -> list[tuple[str, AnomalyEvent]]:
        """Feed one frame; returns `("start", partial event)` when an event begins and `("end", event)` when
        one is complete (kept events only)."""
        out: list[tuple[str, AnomalyEvent]] = []
        event = self._open
        if event is not None:
            if score >= self.low:
                self._extend(frame, time_s, score, heat)
            elif self._last_above is not None and time_s - self._last_above[1] > self.gap_s:
                out += self._close()
        if self._open is None and score >= self.high:
            self._open = {"start": (frame, time_s), "scores": [], "peak": (frame, time_s, score, heat)}
            self._extend(frame, time_s, score, heat)
            out.append(("start", self._event()))
        return out

    def _extend(self, frame: int, time_s: float, score: float, heat: np.ndarray | None) -> None:
        assert self._open is not None
        self._open["scores"].append(score)
        self._last_above = (frame, time_s)
        if score > self._open["peak"][2]:
            self._open["peak"] = (frame, time_s, score, heat)

    def _event(self) -> AnomalyEvent:
        assert self._open is not None and self._last_above is not None
        (f0, t0), (f1, t1) = self._open["start"], self._last_above
        pf, pt, ps, ph = self._open["peak"]
        return AnomalyEvent(f0, f1, t0, t1, pf, pt, float(ps), float(np.mean(self._open["scores"])),
                            None if ph is None else heat_peak(ph))

    def _close(self) -> list[tuple[str, AnomalyEvent]]:
        event = self._event()
        self._open, self._last_above = None, None
        return [("end", event)] if event.end_s - event.start_s >= self.min_duration_s else []

    def finish(self) -> list[tuple[str, AnomalyEvent]]:
        """End of input: close the open event, if any."""
        return self._close() if self._open is not None else []


def find_events(absolute: np.ndarray, times: np.ndarray, frames: np.ndarray, high: float, low: float, *,
                heat: np.ndarray | None = None, gap_s: float = 0.5, min_duration_s: float = 0.2) -> list[AnomalyEvent]:
    """Events of a whole video: `absolute (T,)` scores, `times (T,)` seconds, `frames (T,)` indices,
    `heat (T,h,w)` or None."""
    tracker = EventTracker(high, low, gap_s, min_duration_s)
    events: list[AnomalyEvent] = []
    for i in range(len(absolute)):
        for kind, event in tracker.update(int(frames[i]), float(times[i]), float(absolute[i]), None if heat is None else heat[i]):
            if kind == "end":
                events.append(event)
    events += [event for kind, event in tracker.finish() if kind == "end"]
    return events
