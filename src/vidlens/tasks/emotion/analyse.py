"""`vidlens emotion VIDEO`: who shows which emotion when, per face track and for the whole video.

Faces: frames sampled at `fps` -> Haar detection (`vidlens.tasks.faces`, any `FaceDetector` fits)
-> IoU/centre tracker -> the FER2013 mini-Xception on every detected face. Voice: the audio track
at 16 kHz -> energy voice-activity gating; with a trained voice model (`voice_model`, an audio
emotion checkpoint) its per-second emotion probabilities are late-fused with the faces'
(`face_weight`), only in seconds with voice. Per second: mean probabilities, dominant emotion,
valence and a positive / neutral / negative sentiment with its confidence.

Valence of a distribution p over EMOTIONS: sum_k p_k v_k with v = angry -0.6, disgust -0.7,
fear -0.6, happy +0.9, sad -0.8, surprise +0.2, neutral 0 (signs and rough sizes of the
circumplex model's valence axis; Russell 1980). Sentiment groups: positive = happy + surprise/2,
negative = angry + disgust + fear + sad, neutral = neutral + surprise/2; the sentiment is the
largest group and its mass is the confidence.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError
from vidlens.io import VideoInfo, iter_frames, probe
from vidlens.tasks.faces.detect import FaceBox, FaceDetector, HaarFaceDetector
from vidlens.tasks.faces.expression import EMOTIONS, classify_faces, load_expression_model
from vidlens.tasks.faces.track import FaceTracker

VALENCE = {"angry": -0.6, "disgust": -0.7, "fear": -0.6, "happy": 0.9, "sad": -0.8, "surprise": 0.2, "neutral": 0.0}
SENTIMENTS = ("positive", "neutral", "negative")


@dataclass
class EmotionConfig:
    fps: float = 5.0  # frames analysed per second
    max_width: int = 640  # frames are decoded no wider than this (faces are found and cropped there)
    min_track_length: int = 3  # detections a face track needs to be reported
    max_missed: int = 5  # sampled frames a track survives without a detection
    expression_checkpoint: str | None = None  # a fine-tuned expression model; default: the FER2013 weights
    voice_model: str | None = None  # an audio emotion checkpoint (labels = EMOTIONS); None: voice activity only
    face_weight: float = 0.5  # late fusion: p = w * p_face + (1 - w) * p_voice where both exist

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_width < 32:
            raise ConfigError(None, f"fps must be positive and max_width at least 32 (got {self.fps}, {self.max_width})")
        if not 0.0 <= self.face_weight <= 1.0:
            raise ConfigError(None, f"face_weight must be in [0, 1], got {self.face_weight}")


def valence(probs: np.ndarray, labels: tuple[str, ...] | list[str] = EMOTIONS) -> np.ndarray:
    """`(..., K)` emotion probabilities -> `(...,)` valence in [-1, 1]."""
    weights = np.array([VALENCE[label] for label in labels], dtype=np.float32)
    return np.asarray(probs, dtype=np.float32) @ weights


def sentiment(probs: np.ndarray, labels: tuple[str, ...] | list[str] = EMOTIONS) -> tuple[str, float]:
    """One `(K,)` distribution -> `(positive|neutral|negative, confidence)`."""
    p = dict(zip(labels, np.asarray(probs, dtype=np.float64)))
    groups = {
        "positive": p.get("happy", 0.0) + 0.5 * p.get("surprise", 0.0),
        "neutral": p.get("neutral", 0.0) + 0.5 * p.get("surprise", 0.0),
        "negative": p.get("angry", 0.0) + p.get("disgust", 0.0) + p.get("fear", 0.0) + p.get("sad", 0.0),
    }
    name = max(SENTIMENTS, key=lambda g: groups[g])
    return name, float(groups[name])


@dataclass
class FaceTrackResult:
    id: int
    frames: list[int]
    times: list[float]
    boxes: list[FaceBox]
    probs: np.ndarray  # (n, K) per detection

    @property
    def mean_probs(self) -> np.ndarray:
        return self.probs.mean(axis=0)


@dataclass
class EmotionResult:
    path: str
    info: VideoInfo
    labels: list[str]
    tracks: list[FaceTrackResult]
    seconds: list[dict[str, Any]]  # the whole video's timeline, one row per second
    track_seconds: dict[int, list[dict[str, Any]]]  # the same per face track
    voice_active_s: list[tuple[float, float]]  # voice-activity segments
    has_faces: bool
    has_audio: bool
    voice_used: bool
    frames_analysed: int
    notes: list[str] = field(default_factory=list)
    # per analysed frame with faces: (frame index, [(track id, box, probs (K,))]); for annotated.mp4
    detections: list[tuple[int, list[tuple[int, FaceBox, np.ndarray]]]] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None  # (H, W) the boxes refer to; None = the video's own size
    analysis_fps: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)


def second_rows(times: np.ndarray, probs: np.ndarray, labels: list[str], duration_s: float) -> list[dict[str, Any]]:
    """Average `probs (n,K)` observed at `times (n,)` per whole second; seconds without data are left out."""
    if len(times) == 0:
        return []
    bins = np.floor(np.asarray(times) + 1e-9).astype(int)
    seconds, inverse, counts = np.unique(bins, return_inverse=True, return_counts=True)
    sums = np.zeros((len(seconds), np.asarray(probs).shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, probs)  # one pass over the observations, however long the video
    last = int(math.ceil(max(duration_s, 1e-9)))
    return [_row(int(second), sums[i] / counts[i], labels, int(counts[i]))
            for i, second in enumerate(seconds) if 0 <= second < last]


def _row(second: int, p: np.ndarray, labels: list[str], count: int) -> dict[str, Any]:
    mood, confidence = sentiment(p, labels)
    return {"second": second, "start_s": float(second), "end_s": float(second + 1),
            "probs": {label: round(float(v), 4) for label, v in zip(labels, p)},
            "dominant": labels[int(np.argmax(p))], "valence": round(float(valence(p, labels)), 4),
            "sentiment": mood, "confidence": round(confidence, 4), "observations": count}


def analyse_emotions(
    video: str | os.PathLike[str],
    config: EmotionConfig | None = None,
    *,
    detector: FaceDetector | None = None,
    progress: Callable[[str, float], None] | None = None,
    expression: tuple[Any, list[str], dict[str, Any]] | None = None,
    voice: tuple[Any, list[str], dict[str, Any]] | None = None,
) -> EmotionResult:
    """Run faces (and voice) over `video`; `progress(stage, seconds_done)`. Writes nothing.

    `expression` (from `load_expression_model`) and `voice` (from `load_voice_model`) are models
    already loaded, for a service analysing many videos; by default they load from `config`.
    """
    config = config or EmotionConfig()
    info = probe(video)  # unreadable input fails here, with the reason
    model, labels, _ = expression or load_expression_model(config.expression_checkpoint)
    if any(label not in VALENCE for label in labels):
        raise ConfigError(config.expression_checkpoint, f"expression labels must be among {', '.join(EMOTIONS)}; got {labels}")
    detector = detector or HaarFaceDetector()
    tracker = FaceTracker(max_missed=config.max_missed, min_length=config.min_track_length)
    observed: dict[int, list[tuple[int, float, FaceBox, np.ndarray]]] = {}
    scale = min(1.0, config.max_width / max(info.width, 1))
    size = (max(2, round(info.height * scale)), max(2, round(info.width * scale))) if scale < 1.0 else None
    analysed = 0
    detections: list[tuple[int, list[tuple[int, FaceBox, np.ndarray]]]] = []
    for frame in iter_frames(video, fps=config.fps, size=size, keep_aspect=False):
        analysed += 1
        # Tilted passes (3x the cost) only while a face track is live: a face that was there and is
        # now missed has most likely tilted its head; an empty scene needs no second look.
        boxes = (detector.detect(frame.image, tilted=bool(tracker.active_tracks))
                 if isinstance(detector, HaarFaceDetector) else detector.detect(frame.image))
        probs = classify_faces(model, frame.image, boxes) if boxes else np.zeros((0, len(labels)), np.float32)
        assigned = tracker.update(frame.index, frame.time_s, boxes)
        for (track_id, box), p in zip(assigned, probs):
            observed.setdefault(track_id, []).append((frame.index, frame.time_s, box, p))
        if assigned:
            detections.append((frame.index, [(tid, box, p) for (tid, box), p in zip(assigned, probs)]))
        if progress is not None and analysed % 10 == 0:
            progress("faces", frame.time_s)
    kept = {t.id for t in tracker.finish()}
    tracks = [FaceTrackResult(tid, [o[0] for o in obs], [o[1] for o in obs], [o[2] for o in obs], np.stack([o[3] for o in obs]))
              for tid, obs in sorted(observed.items()) if tid in kept]
    track_seconds = {t.id: second_rows(np.asarray(t.times), t.probs, labels, info.duration_s) for t in tracks}
    notes: list[str] = []
    if not tracks:
        notes.append("no faces found: there is no facial expression timeline")
    face_times = np.concatenate([np.asarray(t.times) for t in tracks]) if tracks else np.zeros(0)
    face_probs = np.concatenate([t.probs for t in tracks]) if tracks else np.zeros((0, len(labels)), np.float32)
    seconds = second_rows(face_times, face_probs, labels, info.duration_s)
    voice_segments: list[tuple[float, float]] = []
    voice_used = False
    if not info.has_audio:
        notes.append("no audio track: voice not analysed")
    else:
        if progress is not None:
            progress("voice", 0.0)
        voice_segments, seconds, voice_used = _voice(video, info, labels, seconds, config, notes, voice)
    detections = [(i, [d for d in dets if d[0] in kept]) for i, dets in detections]
    return EmotionResult(str(video), info, list(labels), tracks, seconds, track_seconds, voice_segments,
                         bool(tracks), info.has_audio, voice_used, analysed, notes, detections, size, config.fps)


def _voice(video, info: VideoInfo, labels: list[str], seconds: list[dict[str, Any]], config: EmotionConfig,
           notes: list[str], voice_model: tuple[Any, list[str], dict[str, Any]] | None = None,
           ) -> tuple[list[tuple[float, float]], list[dict[str, Any]], bool]:
    """Voice activity segments; with a voice model, late fusion into the per-second rows."""
    from vidlens.features.audio import activity_segments, voice_activity
    from vidlens.io import read_audio

    rate = 16000
    audio = read_audio(video, sample_rate=rate, mono=True)
    mask = voice_activity(audio, rate)
    segments = activity_segments(mask, rate)
    if config.voice_model is None and voice_model is None:
        if segments:
            notes.append("voice activity found; no voice emotion model given (--voice-model), faces only")
        return segments, seconds, False
    from vidlens.tasks.voice import voice_emotion_per_second

    voice = voice_emotion_per_second(config.voice_model, audio, rate, segments, labels, loaded=voice_model)  # {second: (K,) probs}
    if not voice:
        notes.append("no voice activity: faces only")
        return segments, seconds, False
    by_second = {row["second"]: row for row in seconds}
    fused = []
    for second in sorted(set(by_second) | set(voice)):
        face = by_second.get(second)
        p_face = np.array([face["probs"][label] for label in labels]) if face else None
        p_voice = voice.get(second)
        if p_face is not None and p_voice is not None:
            p = config.face_weight * p_face + (1 - config.face_weight) * p_voice
        else:
            p = p_face if p_face is not None else p_voice
        fused.append(_row(second, p, labels, face["observations"] if face else 0))
    return segments, fused, True
