"""The built-in sync methods: `baseline`, `events`, `speech` (each `fn(video, options) -> SyncResult`).

- baseline: audio RMS envelope vs whole-frame difference energy, plain normalised cross-correlation (the comparison
  point: no onset detection, no face).
- events: visual motion onsets (rise of log frame-difference energy) vs audio onsets (spectral flux of a log-mel
  spectrogram, minus a running median so steady music gives nothing): claps, hits, steps, cuts on a beat.
- speech: mouth motion of the tracked face (mouth.py, head motion regressed out) vs the speech-band (300-3000 Hz)
  envelope's rate of change; only frames with a face count.

All three search lags -max_offset_ms..+max_offset_ms at 10 ms, take the correlation peak (parabola-refined) and its
prominence against the sidelobes (correlate.find_peak) times its support (how many separate half-second moments make
the match beyond what any lag gives there: one cut meeting one drum hit is a coincidence, not an offset) as
confidence, and repeat per window (window_s, hop window_s / 2) for offsets over time and drift. The stream edges
(where each stream starts and stops) are not events: a shift made by moving a stream's start time is not visible
to the methods through the edges, only through the content.

Measured (Dec 2026, ffmpeg -itsoffset shifts -400..+400 ms): on a control clip (real vtest.avi footage with a box
flashed and a beep at the same frame times over real music) events is within 2-6 ms and baseline within 30-32 ms
(its envelope-vs-difference-energy peak sits half a flash late), drift from a 1 % audio speed error within 1-10 %.
On the real footage here (guangfan, Hamilton, Big Buck Bunny, Megamind, video.avi, Chaplin) every method answers
"cannot tell" (speech: lips move little and the voice is under noise in guangfan; a microphone hides Hamilton's
mouth; events: the cuts and sounds of edited footage do not line up often enough); none gives a confident wrong
offset there.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vidlens.tasks.sync import signals as sg
from vidlens.tasks.sync.base import CONFIDENT, SyncOptions, SyncResult, WindowOffset, make_result, register_sync_method
from vidlens.tasks.sync.correlate import RATE, find_peak, lag_grid, support, window_spans, xcorr

MIN_ACTIVITY = 1e-3  # signals quieter than this (std) carry nothing


def _notify(options: SyncOptions, stage: str, value: float) -> None:
    if options.progress is not None:
        options.progress(stage, value)


def _audio(video: str, options: SyncOptions) -> sg.AudioTrack:
    if "audio" not in options.cache:
        options.cache["audio"] = sg.decode_audio(video)
    return options.cache["audio"]


def _motion(video: str, options: SyncOptions) -> sg.VideoMotion:
    if "motion" not in options.cache:
        options.cache["motion"] = sg.video_motion(video)
    return options.cache["motion"]


def _grid_size(track: sg.AudioTrack, times: np.ndarray) -> int:
    return int(np.ceil(max(track.end_s, float(times[-1])) * RATE)) + 1


def correlate_signals(video: str, method: str, v: np.ndarray, a: np.ndarray, options: SyncOptions, *, fps: float,
                      duration_s: float, weights: np.ndarray | None = None, empty_reason: str = "",
                      notes: list[str] | None = None, good_reason: str = "") -> SyncResult:
    """Whole-video and windowed correlation of grid signals `v` (video) and `a` (audio) -> SyncResult."""
    lags = lag_grid(options.max_offset_ms)
    lags_ms = lags * (1000.0 / RATE)
    if empty_reason:
        return make_result(video, method, offset_ms=None, confidence=0.0, reason=empty_reason, fps=fps,
                           duration_s=duration_s, lags_ms=lags_ms, correlation=np.zeros(lags.size), notes=notes)
    curve = xcorr(v, a, lags, weights=weights)
    peak = find_peak(lags_ms, curve)
    windows: list[WindowOffset] = []
    spans = window_spans(duration_s, options.window_s)
    if len(spans) > 1:
        for i, (s, e) in enumerate(spans):
            wc = xcorr(v, a, lags, weights=weights, start=int(s * RATE), stop=int(e * RATE))
            wp = find_peak(lags_ms, wc)
            wconf = 0.0
            if wp is not None:
                lag = int(round(wp.offset_ms * RATE / 1000.0))
                wconf = wp.confidence * support_factor(support(v, a, lag, weights=weights, start=int(s * RATE),
                                                               stop=int(e * RATE)))
            ok = wp is not None and wconf >= CONFIDENT
            windows.append(WindowOffset(round(s, 3), round(e, 3), round(wp.offset_ms, 1) if ok and wp else None,
                                        round(wconf, 3)))
            _notify(options, f"{method}: windows", (i + 1) / len(spans))
    if peak is None:
        return make_result(video, method, offset_ms=None, confidence=0.0, reason="the correlation is flat",
                           fps=fps, duration_s=duration_s, lags_ms=lags_ms, correlation=np.nan_to_num(curve),
                           windows=windows, notes=notes)
    sup = support(v, a, int(round(peak.offset_ms * RATE / 1000.0)), weights=weights)
    confidence = peak.confidence * support_factor(sup)
    notes = list(notes or []) + [f"peak r={peak.value:.3f}, z={peak.z:.1f}, ratio={peak.ratio:.2f}, support={sup:.1f}"]
    if confidence >= CONFIDENT:
        reason = good_reason or "a clear correlation peak"
    elif peak.confidence >= CONFIDENT:
        reason = f"the best match rests on too few moments ({sup:.1f}): one coincidence, not a pattern"
    else:
        reason = f"no clear correlation peak (z={peak.z:.1f}, next peak {1 / max(peak.ratio, 1e-3):.0%} as high)"
    return make_result(video, method, offset_ms=round(peak.offset_ms, 1), confidence=confidence, reason=reason,
                       fps=fps, duration_s=duration_s, lags_ms=lags_ms, correlation=np.nan_to_num(curve),
                       windows=windows, notes=notes)


def support_factor(sup: float, low: float = 2.5, high: float = 5.0) -> float:
    """0 when the match rests on <= `low` separate moments (correlate.support), 1 from `high` up: a single cut
    that happens to meet a drum hit must not make a confident offset."""
    return float(np.clip((sup - low) / (high - low), 0.0, 1.0))


def _active(x: np.ndarray) -> bool:
    ok = np.isfinite(x)
    return ok.sum() > 50 and float(np.std(x[ok])) > MIN_ACTIVITY


@register_sync_method("baseline")
def baseline(video: str, options: SyncOptions) -> SyncResult:
    """Audio RMS envelope vs whole-frame difference energy (plain cross-correlation)."""
    track = _audio(video, options)
    _notify(options, "baseline: audio", 1.0)
    motion = _motion(video, options)
    _notify(options, "baseline: video", 1.0)
    n = _grid_size(track, motion.times)
    a = sg.audio_envelope(track, n)
    v = sg.frames_to_grid(motion.times, motion.energy, n)
    empty = "" if _active(a) and _active(v) else "the audio or the picture does not change"
    return correlate_signals(video, "baseline", v, a, options, fps=motion.fps, duration_s=_duration(track, motion),
                             empty_reason=empty, good_reason="the audio envelope follows the picture's changes")


@register_sync_method("events")
def events(video: str, options: SyncOptions) -> SyncResult:
    """Visual motion onsets vs audio onsets (spectral flux)."""
    track = _audio(video, options)
    motion = _motion(video, options)
    _notify(options, "events: signals", 1.0)
    n = _grid_size(track, motion.times)
    a = sg.audio_onsets(track, n)
    v = sg.motion_onsets(motion.times, motion.energy, n)
    reasons = []
    if not _active(a):
        reasons.append("no audio events")
    if not _active(v):
        reasons.append("no visual events")
    return correlate_signals(video, "events", v, a, options, fps=motion.fps, duration_s=_duration(track, motion),
                             empty_reason=" and ".join(reasons),
                             good_reason="visual events line up with audio onsets")


def _duration(track: sg.AudioTrack, motion: sg.VideoMotion) -> float:
    return float(max(track.end_s, motion.times[-1]) - min(track.start_s, motion.times[0]))


SPEECH_BAND = (300.0, 3000.0)
MIN_FACE_SHARE = 0.3  # speech needs a face in at least this share of the frames


@register_sync_method("speech")
def speech(video: str, options: SyncOptions) -> SyncResult:
    """Mouth motion of the main tracked face vs the speech-band envelope's rate of change."""
    from vidlens.tasks.sync.mouth import face_share, mouth_track

    track = _audio(video, options)
    mouth = options.cache.get("mouth")
    if mouth is None and "face_share" not in options.cache:
        options.cache["face_share"] = face_share(video)
    if mouth is None and options.cache["face_share"] < MIN_FACE_SHARE / 2:
        lags = lag_grid(options.max_offset_ms)
        quick = options.cache["face_share"]
        return make_result(video, "speech", offset_ms=None, confidence=0.0,
                           reason=f"no face in enough frames (face in {quick:.0%} of 10 sampled frames)",
                           fps=getattr(options.cache.get("info"), "fps", 0.0), duration_s=track.end_s - track.start_s,
                           lags_ms=lags * 1000.0 / RATE,
                           correlation=np.zeros(lags.size), notes=[f"face in {quick:.0%} of 10 sampled frames"])
    if mouth is None:
        progress: Callable[[float], None] = lambda f: _notify(options, "speech: faces", f)  # noqa: E731
        mouth = options.cache["mouth"] = mouth_track(video, progress=progress)
    times = mouth.times
    n = _grid_size(track, times)
    duration = float(max(track.end_s, times[-1]) - min(track.start_s, times[0]))
    share = float(mouth.found.mean()) if mouth.found.size else 0.0
    notes = [f"face in {share:.0%} of frames"]
    if share < MIN_FACE_SHARE:
        lags = lag_grid(options.max_offset_ms)
        return make_result(video, "speech", offset_ms=None, confidence=0.0,
                           reason=f"no face in enough frames (face in {share:.0%}, needs {MIN_FACE_SHARE:.0%})",
                           fps=mouth.fps, duration_s=duration, lags_ms=lags * 1000.0 / RATE,
                           correlation=np.zeros(lags.size), notes=notes)
    v = sg.frames_to_grid(times, mouth.motion, n, valid=mouth.found)
    env = sg.audio_envelope(track, n, band=SPEECH_BAND, log=True)
    a = speech_signal(env)
    empty = "" if _active(a) else "no voice in the audio"
    weights = np.isfinite(v).astype(np.float64)
    return correlate_signals(video, "speech", v, a, options, fps=mouth.fps, duration_s=duration, weights=weights,
                             empty_reason=empty, notes=notes, good_reason="the mouth moves with the voice")


def speech_signal(env_db: np.ndarray) -> np.ndarray:
    """Speech-band log envelope (dB) -> |rate of change| over 40 ms, gated to where there is voice."""
    e = np.asarray(env_db, np.float64)
    ok = np.isfinite(e)
    if ok.sum() < 10:
        return np.full(e.shape, np.nan, np.float32)
    floor = np.percentile(e[ok], 90) - 45.0
    e = np.where(ok, np.maximum(e, floor), np.nan)
    d = np.abs(np.convolve(np.nan_to_num(e, nan=floor), [0.5, 0.5, 0, -0.5, -0.5], mode="same"))
    d[~ok] = np.nan
    return d.astype(np.float32)
