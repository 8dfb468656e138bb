"""The sync result, the registry of sync methods and `estimate_sync`.

Sign convention: `offset_ms > 0` = audio late (a sound is heard after the picture that made it).

A sync method is `fn(video: str, options: SyncOptions) -> SyncResult`, registered by name with
`register_sync_method(name)`. `video` is a path that `estimate_sync` has already checked (it opens, has a
video and an audio stream, is long enough for `options.max_offset_ms`). `options.cache` is a dict the methods
share within one `estimate_sync` call (decoded audio, frames, face tracks), so `auto` decodes once.
Built-in method modules are imported lazily on first use (`methods` registers speech/events/baseline,
`learned` registers learned).

Verdict rule: |offset| <= 45 ms is "in sync" (the late-audio edge of ITU-R BT.1359's detectability window,
-125..+45 ms, taken on both sides); confidence below CONFIDENT (0.5) or no offset is "cannot tell".
Too-short clips: a clip shorter than MIN_DURATION_S, or shorter than 3 x max_offset_ms, raises ConfigError.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.tasks.plugins import import_builtins

SYNC_METHODS = ("speech", "events", "learned", "baseline")  # plus "auto" accepted by estimate_sync
CONFIDENT = 0.5
IN_SYNC_MS = 45.0
MIN_DURATION_S = 2.0
BUILTIN_MODULES = ("vidlens.tasks.sync.methods", "vidlens.tasks.sync.learned")

Progress = Callable[[str, float], None]  # (stage, fraction done 0..1)


@dataclass
class WindowOffset:
    """The offset measured in one window of the video."""

    start_s: float
    end_s: float
    offset_ms: float | None  # None: this window cannot tell
    confidence: float  # 0..1


@dataclass
class SyncResult:
    """What a sync method found for one video."""

    video: str  # path as given
    method: str  # the method that produced the answer (for auto: the one chosen)
    offset_ms: float | None  # None = "cannot tell"
    confidence: float  # 0..1; >= CONFIDENT means "trust the number"
    verdict: str  # "in sync" | "audio late" | "audio early" | "cannot tell"
    reason: str  # one readable sentence why
    fps: float
    duration_s: float
    lags_ms: np.ndarray  # (L,) float32 candidate offsets searched, ascending
    correlation: np.ndarray  # (L,) float32 score per lag (higher = better match) for the whole video
    windows: list[WindowOffset]  # offsets over time (drift)
    drift_ms_per_min: float | None  # slope of offset over time when drift is significant, else None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-safe dict (arrays -> lists, floats rounded to 4 decimals)."""

        def r(x: float | None) -> float | None:
            return None if x is None or not np.isfinite(x) else round(float(x), 4)

        return {
            "video": self.video,
            "method": self.method,
            "offset_ms": r(self.offset_ms),
            "confidence": r(self.confidence),
            "verdict": self.verdict,
            "reason": self.reason,
            "fps": r(self.fps),
            "duration_s": r(self.duration_s),
            "lags_ms": [round(float(v), 3) for v in np.asarray(self.lags_ms).ravel()],
            "correlation": [round(float(v), 5) if np.isfinite(v) else None for v in np.asarray(self.correlation).ravel()],
            "windows": [{k: (r(v) if isinstance(v, float) else v) for k, v in asdict(w).items()} for w in self.windows],
            "drift_ms_per_min": r(self.drift_ms_per_min),
            "notes": list(self.notes),
        }


@dataclass
class SyncOptions:
    """What every method gets besides the path."""

    max_offset_ms: float = 1000.0  # lags searched: -max..+max at LAG_STEP_MS
    window_s: float = 4.0  # window length for offsets over time (hop window_s / 2)
    checkpoint: str | None = None  # learned method's checkpoint
    progress: Progress | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # shared by methods within one estimate_sync call


SyncMethodFn = Callable[[str, SyncOptions], SyncResult]
SYNC_METHOD_FNS: dict[str, SyncMethodFn] = {}
_FAILED: dict[str, str] = {}
_loaded = False


def register_sync_method(name: str):
    """Decorator: make `fn(video: str, options: SyncOptions) -> SyncResult` available as `method=name`."""

    def wrap(fn: SyncMethodFn) -> SyncMethodFn:
        SYNC_METHOD_FNS[name] = fn
        return fn

    return wrap


def load_builtin_methods() -> None:
    """Import the built-in method modules that exist (each registers itself)."""
    global _loaded
    if _loaded:
        return
    import_builtins(BUILTIN_MODULES, _FAILED)
    _loaded = True


def verdict_for(offset_ms: float | None, confidence: float) -> str:
    """"in sync" (|offset| <= 45 ms), "audio late", "audio early", or "cannot tell" (no offset / not confident)."""
    if offset_ms is None or not np.isfinite(offset_ms) or confidence < CONFIDENT:
        return "cannot tell"
    if abs(offset_ms) <= IN_SYNC_MS:
        return "in sync"
    return "audio late" if offset_ms > 0 else "audio early"


def make_result(video: str, method: str, *, offset_ms: float | None, confidence: float, reason: str, fps: float,
                duration_s: float, lags_ms: np.ndarray, correlation: np.ndarray,
                windows: list[WindowOffset] | None = None, notes: list[str] | None = None) -> SyncResult:
    """A SyncResult with its verdict and drift filled in. `offset_ms` is dropped (None) when `confidence` is below
    CONFIDENT, so a "cannot tell" never carries a number; the correlation curve is kept for inspection. When the
    windows show a significant drift, `offset_ms` becomes the fitted offset at the video's middle (what
    `fix_sync`'s default reference expects) with the windows' mean confidence."""
    from vidlens.tasks.sync.correlate import drift_line

    confidence = float(np.clip(confidence, 0.0, 1.0))
    windows = list(windows or [])
    notes = list(notes or [])
    line = drift_line(windows) if windows else None
    drift = None if line is None else line[0]
    if line is not None:  # the whole-video peak is smeared by drift: report the fitted offset at the middle
        mid = duration_s / 2.0
        offset_ms = round(line[1] + line[0] * mid / 60.0, 1)
        drifting = f"the offset drifts by {line[0]:+.0f} ms per minute (fitted through the windows' offsets)"
        reason = f"{reason}; {drifting}" if confidence >= CONFIDENT else drifting
        confidence = max(confidence, line[2])
        notes.append(f"drift: offset_ms is the fitted offset at the video's middle ({mid:.2f} s)")
    if offset_ms is not None and (confidence < CONFIDENT or not np.isfinite(offset_ms)):
        offset_ms = None
    return SyncResult(video=video, method=method, offset_ms=None if offset_ms is None else float(offset_ms),
                      confidence=confidence, verdict=verdict_for(offset_ms, confidence), reason=reason, fps=float(fps),
                      duration_s=float(duration_s), lags_ms=np.asarray(lags_ms, np.float32),
                      correlation=np.asarray(correlation, np.float32), windows=windows, drift_ms_per_min=drift,
                      notes=notes)


def check_video(video: str | os.PathLike[str], max_offset_ms: float) -> tuple[str, Any]:
    """Open `video` and check it can be synchronised: returns (path, VideoInfo). Raises VideoDecodeError
    (unreadable, no video, no audio stream) or ConfigError (too short for `max_offset_ms`)."""
    from vidlens.io.probe import probe

    path = os.fspath(video)
    info = probe(path)  # VideoDecodeError for missing / empty / corrupt / non-video files
    if not info.has_audio:
        raise VideoDecodeError(path, "no audio stream: nothing to synchronise")
    need = max(MIN_DURATION_S, 3.0 * max_offset_ms / 1000.0)
    if info.duration_s < need:
        raise ConfigError(path, f"the video is {info.duration_s:.2f} s long: too short to search offsets up to "
                                f"±{max_offset_ms:.0f} ms (needs at least {need:.1f} s; lower max_offset_ms)")
    return path, info


def estimate_sync(video: str | os.PathLike[str], method: str = "auto", *, max_offset_ms: float = 1000.0,
                  window_s: float = 4.0, checkpoint: str | os.PathLike[str] | None = None,
                  progress: Progress | None = None) -> SyncResult:
    """Measure the audio/video offset of `video` (ms, > 0 = audio late), its confidence and its drift.

    `method`: one of SYNC_METHODS or "auto" (learned when `checkpoint` is given; else speech when a face is
    visible in enough frames; else events; the confident one wins, "cannot tell" when none is confident).
    Raises VideoDecodeError (unreadable file, no audio stream), ConfigError (bad method / options, clip too short).
    """
    load_builtin_methods()
    known = [m for m in SYNC_METHODS if m in SYNC_METHOD_FNS] + sorted(set(SYNC_METHOD_FNS) - set(SYNC_METHODS))
    if method != "auto" and method not in SYNC_METHOD_FNS:
        extra = f" ({_FAILED[m]})" if (m := f"vidlens.tasks.sync.{method}") in _FAILED else ""
        raise ConfigError(None, f"unknown sync method {method!r}{extra}; use one of: auto, {', '.join(known)}")
    if not (0 < max_offset_ms <= 10000):
        raise ConfigError(None, f"max_offset_ms must be in (0, 10000], got {max_offset_ms}")
    if window_s <= 0:
        raise ConfigError(None, f"window_s must be positive, got {window_s}")
    if method == "learned" and checkpoint is None:
        raise ConfigError(None, "method 'learned' needs a checkpoint (train one with `vidlens sync train`)")
    path, _info = check_video(video, max_offset_ms)
    options = SyncOptions(max_offset_ms=float(max_offset_ms), window_s=float(window_s),
                          checkpoint=None if checkpoint is None else os.fspath(checkpoint), progress=progress)
    options.cache["info"] = _info  # vidlens.io.probe.VideoInfo of the file
    if method != "auto":
        return SYNC_METHOD_FNS[method](path, options)
    return _auto(path, options)


def _auto(path: str, options: SyncOptions) -> SyncResult:
    if options.checkpoint is not None and "learned" in SYNC_METHOD_FNS:
        result = SYNC_METHOD_FNS["learned"](path, options)
        result.notes.append("auto: learned (a checkpoint was given)")
        return result
    tried: list[SyncResult] = []
    speech = SYNC_METHOD_FNS["speech"](path, options)  # answers "cannot tell" quickly when no face is found
    tried.append(speech)
    if speech.confidence >= CONFIDENT:
        speech.notes.append("auto: speech (a talking face was found and the match is confident)")
        return speech
    events = SYNC_METHOD_FNS["events"](path, options)
    tried.append(events)
    if events.confidence >= CONFIDENT:
        events.notes.append(f"auto: events (speech: {speech.reason})")
        return events
    best = max(tried, key=lambda r: r.confidence)
    best.notes.append("auto: no method was confident; " + "; ".join(f"{r.method}: {r.reason}" for r in tried))
    best.offset_ms = None
    best.verdict = "cannot tell"
    best.reason = "no method is confident: " + "; ".join(f"{r.method}: {r.reason.rstrip('.')}" for r in tried)
    return best
