"""Score every frame of a video with an anomaly model: raw, absolute and per-video normalised scores, heat
maps and events.

Three scores per frame, for three uses: `raw` (the method's units: e.g. negative PSNR), `absolute`
(calibrated on the camera's held-out normal footage: robust z-score; what a live camera thresholds and
what events use) and `normalised` (min-max over this video, as the papers compute frame-level AUC: it
removes per-video offsets but says nothing on its own about whether a video holds an anomaly). The first
`context` frames, which a method cannot score (no history), take the first scored frame's values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.tasks.anomaly.base import AnomalyModel, Progress
from vidlens.tasks.anomaly.events import AnomalyEvent, EventConfig, find_events
from vidlens.tasks.anomaly.frames import Source, describe, iter_frame_chunks


@dataclass
class AnomalyResult:
    """Per-frame scores of one video. Arrays are `(T,)` except `heat`, `float32 (T,h,w)` on the method's grid."""

    video: str
    method: str
    raw: np.ndarray
    absolute: np.ndarray
    normalised: np.ndarray
    heat: np.ndarray
    times: np.ndarray
    frame_indices: np.ndarray
    threshold: float  # absolute score where events start
    low: float  # ... and end
    size: tuple[int, int]
    fps: float
    events: list[AnomalyEvent] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The document `anomaly.json` holds (per-frame values are in the CSV)."""
        return {"video": self.video, "method": self.method, "frames": int(len(self.raw)), "fps": round(self.fps, 3),
                "duration_s": round(float(self.times[-1]) if len(self.times) else 0.0, 3),
                "threshold": round(self.threshold, 4), "threshold_low": round(self.low, 4),
                "max_absolute": round(float(self.absolute.max()), 4),
                "anomalous_frames": int((self.absolute >= self.threshold).sum()),
                "events": [e.to_json() for e in self.events]}


def _normalise(raw: np.ndarray) -> np.ndarray:
    span = float(raw.max() - raw.min())
    return (raw - raw.min()) / span if span > 0 else np.zeros_like(raw)


def _rate(times: np.ndarray, fallback: float) -> float:
    if len(times) < 2:
        return fallback
    step = float(np.median(np.diff(times)))
    return 1.0 / step if step > 0 else fallback


def score_video(model: AnomalyModel, source: Source, *, progress: Progress | None = None, chunk: int = 128,
                events: EventConfig | None = None) -> AnomalyResult:
    """Score every frame of `source` (video file, URL, image folder or list) in chunks of `chunk` frames
    (memory stays bounded by the chunk; scores and low-resolution heat maps are kept for all frames).
    Raises `VideoDecodeError` for an unreadable source or one with no more frames than the method's context."""
    method = model.method
    context = method.context
    raw_parts: list[np.ndarray] = []
    heat_parts: list[np.ndarray] = []
    times: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    first = True
    for part in iter_frame_chunks(source, model.config.size, model.config.fps, chunk=max(chunk, context + 1), context=context):
        if first and len(part.frames) <= context:
            raise VideoDecodeError(describe(source), f"too short: {len(part.frames)} frames, and the "
                                                     f"{model.config.method} method needs more than {context}")
        scored = method.score(part.frames)
        skip = context if first else part.context  # rows of this chunk that are history
        if first and context:  # the frames before the first scored one take its values
            raw_parts.append(np.repeat(scored.scores[:1], context))
            heat_parts.append(np.repeat(scored.heat[:1], context, axis=0))
            skip = 0
        raw_parts.append(scored.scores)
        heat_parts.append(scored.heat.astype(np.float32))
        times.append(part.times[skip:] if not first else part.times)
        indices.append(part.indices[skip:] if not first else part.indices)
        first = False
        if progress:
            progress("score", float(part.times[-1]))
    if first:
        raise VideoDecodeError(describe(source), "no frames decoded")
    return finish_result(model, describe(source), np.concatenate(raw_parts), np.concatenate(heat_parts),
                         np.concatenate(times), np.concatenate(indices), events)


def score_frames(model: AnomalyModel, frames: np.ndarray, times: np.ndarray | None = None, *, name: str = "frames",
                 events: EventConfig | None = None) -> AnomalyResult:
    """Score `uint8 (T,H,W,3)` frames already at the model's working size (times default to 25 fps)."""
    context = model.method.context
    if len(frames) <= context:
        raise VideoDecodeError(name, f"too short: {len(frames)} frames, the method needs more than {context}")
    scored = model.method.score(frames)
    raw = np.concatenate([np.repeat(scored.scores[:1], context), scored.scores])
    heat = np.concatenate([np.repeat(scored.heat[:1], context, axis=0), scored.heat]).astype(np.float32)
    times = np.arange(len(frames)) / 25.0 if times is None else np.asarray(times, dtype=np.float64)
    return finish_result(model, name, raw, heat, times, np.arange(len(frames)), events)


def finish_result(model: AnomalyModel, name: str, raw: np.ndarray, heat: np.ndarray, times: np.ndarray,
                  indices: np.ndarray, events: EventConfig | None = None) -> AnomalyResult:
    """Calibrate, normalise and find events for per-frame raw scores `(T,)` and heat `(T,h,w)`."""
    raw = np.asarray(raw, dtype=np.float64)
    absolute = model.calibration.absolute(raw)
    settings = events or EventConfig()
    high, low = settings.thresholds(model.calibration.threshold)
    found = find_events(absolute, times, indices, high, low, heat=heat, gap_s=settings.gap_s,
                        min_duration_s=settings.min_duration_s)
    return AnomalyResult(name, model.config.method, raw, absolute, _normalise(raw), heat, times, indices, high, low,
                         tuple(model.config.size), _rate(times, model.config.fps or 25.0), found)
