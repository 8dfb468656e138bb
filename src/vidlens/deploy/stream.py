"""Real-time inference on a live source (file paced at its own rate, webcam, RTSP/HTTP URL).

A reader thread decodes frames at the checkpoint's fps and size into a ring buffer
(`deque(maxlen=clip span)`). From a live source (camera, URL, or a file paced as one with
`realtime`) it never waits for inference: when the model falls behind, old frames fall out
of the buffer (counted as dropped) instead of queueing up, so a decision is always about the
latest clip and its staleness stays bounded. Offline (a file with `realtime=False`) nothing is
dropped: the reader waits for each decision before overwriting frames not yet classified, and
the last frames get a final decision, so every frame is in a classified clip. The caller's
thread runs the model every `every` new frames on the latest clip, smooths probabilities with
an exponential moving average and emits decisions (and, optionally, start/end events with
hysteresis).

Times: `t_s` is stream time (seconds from the first frame); `latency_ms` is from the arrival
of the clip's last frame to the decision; `stale_s` is how far the decision lags the stream's
"now" (wall time mapped to stream time, origin = arrival of the first frame).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io import iter_frames
from vidlens.io._open import is_url

Decision = dict[str, Any]
Event = dict[str, Any]


@dataclass
class StreamConfig:
    """How `run_stream` reads and decides. `realtime=None`: on for files, off for live sources."""

    every: int = 4  # run the model every k new frames (offline, k above the clip length skips frames by request)
    smooth: float = 0.5  # EMA weight of the past: smoothed = smooth*previous + (1-smooth)*new
    threshold: float = 0.6  # --events: a label starts when its smoothed score reaches this
    hysteresis: float = 0.1  # ... and ends when it falls below threshold - hysteresis
    events: bool = False
    realtime: bool | None = None  # pace a file at its own rate (a live source); False: offline, every frame
    output: str | None = None  # annotated video (every frame read, current label drawn)
    max_seconds: float | None = None  # stop after this much stream time (live sources run forever)

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ConfigError(None, f"every must be >= 1, got {self.every}")
        self.every = int(self.every)
        if not 0.0 <= self.smooth < 1.0:
            raise ConfigError(None, f"smooth must be in [0, 1), got {self.smooth}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError(None, f"threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.hysteresis < self.threshold:
            raise ConfigError(None, f"hysteresis must be in [0, threshold), got {self.hysteresis}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(None, f"max_seconds must be positive, got {self.max_seconds}")


@dataclass
class StreamStats:
    """What a run achieved. Latencies in milliseconds; `dropped_frames`: read but never in a classified clip."""

    frames: int = 0
    input_fps: float = 0.0
    target_fps: float = 0.0
    decisions: int = 0
    dropped_frames: int = 0
    latency_p50_ms: float = 0.0
    latency_p90_ms: float = 0.0
    latency_p99_ms: float = 0.0
    max_stale_s: float = 0.0
    wall_s: float = 0.0
    window_s: float = 0.0
    events: int = 0
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def write_json(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2)


class ScoreSmoother:
    """Exponential moving average of probability vectors: `s = a*s + (1-a)*p` (first value taken as is)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self.value: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        self.value = probs.copy() if self.value is None else self.alpha * self.value + (1 - self.alpha) * probs
        return self.value


@dataclass
class EventTracker:
    """Start/end events per label with hysteresis: start at `>= threshold`, end at `< threshold - hysteresis`."""

    labels: list[str]
    threshold: float = 0.6
    hysteresis: float = 0.1
    active: set[int] = field(default_factory=set)

    def update(self, scores: np.ndarray, t_s: float) -> list[Event]:
        events: list[Event] = []
        for k, score in enumerate(np.asarray(scores, dtype=np.float64)):
            if k in self.active and score < self.threshold - self.hysteresis:
                self.active.discard(k)
                events.append({"event": "end", "label": self.labels[k], "t_s": round(float(t_s), 3)})
        for k, score in enumerate(np.asarray(scores, dtype=np.float64)):
            if k not in self.active and score >= self.threshold:
                self.active.add(k)
                events.append({"event": "start", "label": self.labels[k], "t_s": round(float(t_s), 3)})
        return events

    def close(self, t_s: float) -> list[Event]:
        """End every label still active (the stream stopped)."""
        events = [{"event": "end", "label": self.labels[k], "t_s": round(float(t_s), 3)} for k in sorted(self.active)]
        self.active.clear()
        return events


class ClipScorer:
    """Probabilities `(K,)` for one clip of `uint8 (T,H,W,C)` RGB frames, with each member's eval transform.

    The same pieces the predictor's timelines use: the checkpoint's sampler (clip_len/stride over
    the window), `build_eval_transform` with a centre crop, `view_probabilities`, `fuse`.
    """

    def __init__(self, classifier: Any) -> None:
        from vidlens.data.transforms import TransformConfig, build_eval_transform

        self.classifier = classifier
        self.lead = classifier.members[0]
        self.transforms = [
            build_eval_transform(TransformConfig.from_dict({**m.transform.to_dict(), "test_crop": "center"}))
            for m in classifier.members
        ]
        s = self.lead.sampler
        self.span = (s.clip_len - 1) * s.stride + 1 if s.mode == "clip" else s.clip_len

    def _picks(self, member: Any, frames: list[np.ndarray]) -> list[np.ndarray]:
        s = member.sampler
        if s.mode == "clip":
            stride = s.stride
            # Members with another span take the latest frames that fit theirs.
            span = min(len(frames), (s.clip_len - 1) * stride + 1)
            window = frames[len(frames) - span:]
            picks = window[::stride][: s.clip_len]
        else:
            picks = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, s.clip_len).round()]
        while len(picks) < s.clip_len:  # too short (stream shorter than one window): pad with the last frame
            picks.append(picks[-1])
        return picks

    def __call__(self, frames: list[np.ndarray]) -> np.ndarray:
        from vidlens.tasks.classify import view_probabilities

        out = []
        for member, transform in zip(self.classifier.members, self.transforms, strict=True):
            clip = torch.from_numpy(np.stack(self._picks(member, frames))).permute(0, 3, 1, 2)  # (T,C,H,W)
            with torch.inference_mode():
                probs = view_probabilities(member.model, transform(clip)[None], member.multi_label)
            out.append(probs[0].float().cpu().numpy())
        return np.asarray(self.classifier.fuse(out))


# ---------------------------------------------------------------------------------------- sources


def _iter_device(device: str, fps: float | None, size: int | None) -> Iterator[Any]:
    """Frames from a V4L2 camera (`/dev/videoN`), as `iter_frames` yields them (native rate, resampled by dropping)."""
    import av

    from vidlens.io.convert import FrameConverter
    from vidlens.io.reader import Frame

    try:
        container = av.open(device, format="v4l2", mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoDecodeError(device, f"cannot open camera ({exc})") from None
    convert = FrameConverter(size, True)
    t0: float | None = None
    next_tick = 0.0
    try:
        for i, frame in enumerate(container.decode(video=0)):
            now = time.monotonic()
            t0 = now if t0 is None else t0
            t = now - t0
            if fps and t < next_tick - 1e-9:
                continue
            next_tick = (next_tick + 1.0 / fps) if fps else t
            yield Frame(i, round(t, 6), convert(frame))
    finally:
        container.close()


def resolve_source(source: str | int | os.PathLike[str]) -> tuple[str, str]:
    """(path or URL, kind) with kind 'file', 'url' or 'device'; a bare integer is a webcam index."""
    text = os.fspath(source) if not isinstance(source, int) else str(source)
    if text.isdigit():
        return f"/dev/video{int(text)}", "device"
    if text.startswith("/dev/video"):
        return text, "device"
    return text, ("url" if is_url(text) else "file")


def _source_fps(path: str, kind: str) -> float | None:
    if kind != "file":
        return None
    from vidlens.io import probe

    return float(probe(path).fps) or None


# ---------------------------------------------------------------------------------------- the loop


class _Reader(threading.Thread):
    """Decodes into a ring buffer; never waits for the consumer. Its exception is kept for the caller."""

    def __init__(self, frames: Iterator[Any], span: int, realtime: bool, max_seconds: float | None,
                 on_frame: Callable[[Any], None] | None, lossless: bool = False, every: int = 1) -> None:
        super().__init__(name="vidlens-stream-reader", daemon=True)
        self.frames = frames
        self.ring: deque[tuple[int, float, np.ndarray, float]] = deque(maxlen=span)  # (count, t_s, image, arrival)
        self.cond = threading.Condition()
        self.count = 0
        self.decided = 0  # frame count of the latest clip taken for a decision (lossless waits on it)
        self.lossless = lossless
        self.every = every
        self.done = False
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.realtime = realtime
        self.max_seconds = max_seconds
        self.on_frame = on_frame
        self.origin: float | None = None  # monotonic time of stream time 0
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self.first_time: float | None = None  # stream times of the first and last frames read
        self.last_time: float | None = None

    def run(self) -> None:
        try:
            for frame in self.frames:
                if self.stop.is_set():
                    break
                if self.max_seconds is not None and frame.time_s >= self.max_seconds:
                    break
                now = time.monotonic()
                if self.origin is None:
                    self.origin = now - frame.time_s
                elif self.realtime:
                    wait = self.origin + frame.time_s - now
                    if wait > 0 and self.stop.wait(wait):
                        break
                    now = time.monotonic()
                self.first_arrival = self.first_arrival or now
                self.last_arrival = now
                if self.first_time is None:
                    self.first_time = float(frame.time_s)
                self.last_time = float(frame.time_s)
                with self.cond:
                    if self.lossless:
                        # Offline: a decision is due; wait for it before the ring drops an unclassified frame.
                        while (len(self.ring) == self.ring.maxlen and self.count - self.decided >= self.every
                               and not self.stop.is_set()):
                            self.cond.wait(timeout=0.5)
                    self.count += 1
                    self.ring.append((self.count, float(frame.time_s), frame.image, now))
                    self.cond.notify_all()
                if self.on_frame is not None:
                    self.on_frame(frame)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.error = exc
        finally:
            close = getattr(self.frames, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a generator that already failed
                    pass
            with self.cond:
                self.done = True
                self.cond.notify_all()


def _draw_label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    scale = max(0.25, w / 400)
    thick = max(1, int(round(scale * 2)))
    org = (max(2, w // 50), max(10, int(22 * scale) + 2))
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def run_stream(
    source: str | int | os.PathLike[str],
    classifier: Any,
    config: StreamConfig | None = None,
    on_decision: Callable[[Decision], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> StreamStats:
    """Classify `source` live with a `VideoClassifier` (or `OnnxClassifier`); returns `StreamStats`.

    Blocks until the source ends (or `config.max_seconds` of stream time, or KeyboardInterrupt).
    A source that cannot be opened or decoded raises `VideoDecodeError` here, in the caller's thread.
    """
    config = config or StreamConfig()
    path, kind = resolve_source(source)
    scorer = ClipScorer(classifier)
    lead = scorer.lead
    native_fps = _source_fps(path, kind)  # also checks a file exists and is a video (VideoDecodeError)
    fps = lead.sampler.fps or native_fps
    realtime = config.realtime if config.realtime is not None else kind == "file"
    lossless = kind == "file" and not realtime  # offline: every frame is classified; drops are for live sources
    size = lead.decode_size
    if kind == "device":
        frames = _iter_device(path, fps, size)
    else:
        frames = iter_frames(path, fps=fps, size=size)

    writer = None
    current = {"text": ""}
    if config.output:
        from vidlens.io import VideoWriter

        writer = VideoWriter(config.output, fps or native_fps or 25.0)

    def on_frame(frame: Any) -> None:
        writer.write(_draw_label(frame.image, current["text"]))

    reader = _Reader(frames, scorer.span, realtime, config.max_seconds, on_frame if writer else None,
                     lossless=lossless, every=config.every)
    smoother = ScoreSmoother(config.smooth)
    tracker = EventTracker(list(classifier.labels), config.threshold, config.hysteresis)
    latencies: list[float] = []
    stats = StreamStats(target_fps=float(fps or 0.0), window_s=scorer.span / fps if fps else 0.0, output=config.output)
    covered = 0  # highest frame count that was inside a classified clip
    last_decided = 0
    last_t = 0.0
    start = time.monotonic()
    reader.start()
    try:
        while True:
            with reader.cond:
                while not reader.done and not (
                    len(reader.ring) == reader.ring.maxlen and reader.count - last_decided >= config.every
                ):
                    reader.cond.wait(timeout=0.5)
                ring = list(reader.ring)
                count, finished = reader.count, reader.done
                if len(ring) == reader.ring.maxlen and count - last_decided >= config.every:
                    reader.decided = count  # the reader may go on: these frames are being classified
                    reader.cond.notify_all()
            if reader.error is not None:
                raise reader.error
            ready = len(ring) == scorer.span and count - last_decided >= config.every
            if not ready:
                if finished and ring and stats.decisions == 0 and count > last_decided:
                    ready = True  # shorter than one window: one padded decision, as timelines do
                elif finished and lossless and count > last_decided:
                    ready = True  # offline: the last frames (fewer than `every`) get a final decision
                else:
                    break
            probs = scorer([item[2] for item in ring])
            now = time.monotonic()
            smoothed = smoother.update(probs)
            k = int(np.argmax(smoothed))
            first_count, t_s, arrival = ring[0][0], ring[-1][1], ring[-1][3]
            latency_ms = (now - arrival) * 1000.0
            origin = reader.origin if reader.origin is not None else arrival - t_s
            stale_s = now - (origin + t_s)
            stats.dropped_frames += max(0, first_count - 1 - covered)
            covered, last_decided, last_t = count, count, t_s
            latencies.append(latency_ms)
            stats.decisions += 1
            stats.max_stale_s = max(stats.max_stale_s, stale_s)
            label, score = classifier.labels[k], float(smoothed[k])
            current["text"] = f"{label} {score:.2f}"
            if on_decision is not None:
                on_decision({"t_s": round(t_s, 3), "label": label, "score": round(score, 4),
                             "latency_ms": round(latency_ms, 2), "stale_s": round(stale_s, 3)})
            if config.events:
                for event in tracker.update(smoothed, t_s):
                    stats.events += 1
                    if on_event is not None:
                        on_event(event)
            if finished and count == last_decided:
                break
    finally:
        reader.stop.set()
        reader.join(timeout=5.0)
        if writer is not None:
            writer.close()
    if reader.error is not None:
        raise reader.error
    if config.events:
        for event in tracker.close(last_t):
            stats.events += 1
            if on_event is not None:
                on_event(event)
    stats.frames = reader.count
    stats.wall_s = time.monotonic() - start
    if reader.first_arrival is not None and reader.last_arrival is not None and reader.count > 1:
        span = reader.last_arrival - reader.first_arrival
        stats.input_fps = (reader.count - 1) / span if span > 0 else 0.0
    if not fps and reader.count > 1 and reader.first_time is not None and reader.last_time is not None:
        # A live source's rate is known only once frames arrived: report the one its timestamps show.
        measured = (reader.count - 1) / max(reader.last_time - reader.first_time, 1e-9)
        stats.target_fps, stats.window_s = measured, scorer.span / measured
    if latencies:
        stats.latency_p50_ms, stats.latency_p90_ms, stats.latency_p99_ms = (
            float(v) for v in np.percentile(latencies, [50, 90, 99]))
    if stats.frames == 0:
        raise VideoDecodeError(path, "no frames were read from the source")
    return stats
