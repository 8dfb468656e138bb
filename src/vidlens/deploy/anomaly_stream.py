"""Live anomaly scoring of a camera, URL or file (`vidlens stream SOURCE --anomaly MODEL`).

The same reader as classification streams (deploy/stream.py): a thread decodes at the model's rate and
working size into a ring buffer of `every + context` frames and, from a live source, never waits: when
scoring falls behind, old frames fall out (counted as dropped) and the next decision is about the newest
frames. Offline (a file with `realtime=False`) every frame is scored. Every `every` new frames the model
scores them (with `context` frames of history when those are still in the ring), the absolute score is
thresholded with hysteresis (`EventTracker`), and `start` / `end` events go out the moment they are known.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vidlens.deploy.stream import StreamStats, _iter_device, _Reader, _source_fps, resolve_source
from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io import iter_frames, resize_image
from vidlens.tasks.anomaly.base import AnomalyModel
from vidlens.tasks.anomaly.events import EventConfig, EventTracker


def _device_frames(path: str, fps: float | None, size: tuple[int, int]) -> Any:
    for frame in _iter_device(path, fps, None):
        frame.image = resize_image(frame.image, *size)
        yield frame


def run_anomaly_stream(source: str | int | os.PathLike[str], model: AnomalyModel, *, every: int = 8,
                       realtime: bool | None = None, events: EventConfig | None = None, max_seconds: float | None = None,
                       on_decision: Callable[[dict[str, Any]], None] | None = None,
                       on_event: Callable[[dict[str, Any]], None] | None = None) -> StreamStats:
    """Score `source` live; `on_decision` gets `{"t_s", "frames", "score", "anomalous", "latency_ms"}` every
    `every` frames (score: the highest absolute score among them), `on_event` gets `{"event": "start"|"end",
    ...AnomalyEvent}`. Blocks until the source ends or `max_seconds` of stream time."""
    if every < 1:
        raise ConfigError(None, f"every must be >= 1, got {every}")
    path, kind = resolve_source(source)
    native_fps = _source_fps(path, kind)  # checks a file exists and is a video
    fps = model.config.fps or native_fps
    size = tuple(model.config.size)
    realtime = realtime if realtime is not None else kind == "file"
    lossless = kind == "file" and not realtime
    context = model.method.context
    frames = _device_frames(path, fps, size) if kind == "device" else iter_frames(path, fps=fps, size=size, keep_aspect=False)
    reader = _Reader(frames, every + context, realtime, max_seconds, None, lossless=lossless, every=every)
    settings = events or EventConfig()
    high, low = settings.thresholds(model.calibration.threshold)
    tracker = EventTracker(high, low, settings.gap_s, settings.min_duration_s)
    stats = StreamStats(target_fps=float(fps or 0.0), window_s=(every + context) / fps if fps else 0.0)
    latencies: list[float] = []
    last = 0  # frame count scored up to
    last_t = 0.0
    start = time.monotonic()

    def emit_events(found: list[tuple[str, Any]]) -> None:
        for kind_, event in found:
            stats.events += kind_ == "end"
            if on_event is not None:
                on_event({"event": kind_, **event.to_json()})

    reader.start()
    try:
        while True:
            need = every if last else every + context
            with reader.cond:
                while not reader.done and reader.count - last < need:
                    reader.cond.wait(timeout=0.5)
                ring, count, finished = list(reader.ring), reader.count, reader.done
                reader.decided = count
                reader.cond.notify_all()
            if reader.error is not None:
                raise reader.error
            new = [item for item in ring if item[0] > last]
            if not new:
                if finished:
                    break
                continue
            history = [item for item in ring if item[0] <= last][-context:] if context else []
            if history and history[-1][0] != new[0][0] - 1:
                history = []  # frames between them were dropped: no history
            window = history + new
            if len(window) <= context:
                if finished:
                    break
                continue
            scored = model.method.score(np.stack([item[2] for item in window]))
            rows = window[context:]
            absolute = model.calibration.absolute(scored.scores)
            now = time.monotonic()
            latencies.append((now - rows[-1][3]) * 1000.0)
            first_due = last + 1 + (0 if last else context)  # the stream's first `context` frames are history only
            stats.dropped_frames += max(0, rows[0][0] - first_due)
            for item, value, heat in zip(rows, absolute, scored.heat):
                emit_events(tracker.update(item[0] - 1, item[1], float(value), heat))
            last, last_t = count, rows[-1][1]
            stats.decisions += 1
            if on_decision is not None:
                on_decision({"t_s": round(last_t, 3), "frames": len(rows), "score": round(float(absolute.max()), 4),
                             "anomalous": bool(absolute.max() >= high), "latency_ms": round(latencies[-1], 2)})
            if finished and count == last:
                break
    finally:
        reader.stop.set()
        reader.join(timeout=5.0)
    if reader.error is not None:
        raise reader.error
    emit_events(tracker.finish())
    stats.frames = reader.count
    stats.wall_s = time.monotonic() - start
    if reader.first_arrival is not None and reader.last_arrival is not None and reader.count > 1:
        span = reader.last_arrival - reader.first_arrival
        stats.input_fps = (reader.count - 1) / span if span > 0 else 0.0
    if latencies:
        stats.latency_p50_ms, stats.latency_p90_ms, stats.latency_p99_ms = (float(v) for v in np.percentile(latencies, [50, 90, 99]))
    if stats.frames == 0:
        raise VideoDecodeError(path, "no frames were read from the source")
    return stats
