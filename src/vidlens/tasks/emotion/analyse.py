"""`vidlens emotion VIDEO`: who shows which emotion when, per face track and for the whole video.

Faces: frames sampled at `fps` -> face detection (`detector`: "auto" = MTCNN with 5 landmarks when
its weights are installed, else Haar; any `FaceDetector` fits) -> IoU/centre tracker -> the
expression predictor (`vidlens.tasks.faces.expression`): faces aligned eyes-level per model,
each crop and its mirror averaged (`tta`), the two FER2013 networks' calibrated probabilities
averaged (`expression_model="ensemble"`), batched across faces and frames, all torch models on one
thread. Per track, the frames are combined into `clip_probs` (`aggregation`, default "peak": the
frames furthest from the track's start count most; `vidlens.tasks.emotion.aggregate`); the
track's dominant emotion is read from it. The video's `video_probs` / `dominant` combine tracks
by their detections. Voice: the audio track at 16 kHz -> energy voice-activity gating; with a
trained voice model (`voice_model`, an audio emotion checkpoint) its per-second emotion
probabilities are late-fused with the faces' (`face_weight`), only in seconds with voice. Per
second: mean probabilities, dominant emotion, valence and a positive / neutral / negative
sentiment with its confidence.

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
from vidlens.tasks.emotion.aggregate import AGGREGATIONS, aggregate_track, video_probs
from vidlens.tasks.faces.detect import DETECTORS, FaceBox, FaceDetector, HaarFaceDetector, make_face_detector
from vidlens.tasks.faces.expression import (EMOTIONS, EXPRESSION_MODELS, ExpressionPredictor, as_predictor,
                                            load_expression_predictor)
from vidlens.tasks.faces.track import FaceTracker
from vidlens.threads import one_torch_thread

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
    detector: str = "auto"  # "auto" (MTCNN if installed, else Haar) | "mtcnn" | "haar"
    tta: bool = True  # average each face crop with its mirror
    aggregation: str = "peak"  # per track: "peak" | "top" | "mean" (the pipeline before issue 14)
    expression_model: str = "ensemble"  # "ensemble" | "mini_xception" | "networkv2" (ignored with a checkpoint)

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_width < 32:
            raise ConfigError(None, f"fps must be positive and max_width at least 32 (got {self.fps}, {self.max_width})")
        if not 0.0 <= self.face_weight <= 1.0:
            raise ConfigError(None, f"face_weight must be in [0, 1], got {self.face_weight}")
        if self.detector not in DETECTORS:
            raise ConfigError(None, f"detector must be one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.aggregation not in AGGREGATIONS:
            raise ConfigError(None, f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}")
        if self.expression_model not in EXPRESSION_MODELS:
            raise ConfigError(None, f"expression_model must be one of {', '.join(EXPRESSION_MODELS)}, "
                                    f"got {self.expression_model!r}")
        if not isinstance(self.tta, bool):
            raise ConfigError(None, f"tta must be true or false, got {self.tta!r}")


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
    clip_probs: np.ndarray | None = None  # (K,) the frames aggregated (EmotionConfig.aggregation); None: the mean

    def __post_init__(self) -> None:
        if self.clip_probs is None:
            self.clip_probs = self.probs.mean(axis=0)

    @property
    def mean_probs(self) -> np.ndarray:
        """`(K,)` plain mean over the detections (the track summary before issue 14)."""
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
    video_probs: np.ndarray | None = None  # (K,) tracks' clip_probs weighted by detections; zeros without faces
    dominant: str | None = None  # the video's dominant facial emotion; None without faces


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


def make_detector(name: str) -> FaceDetector:
    """`EmotionConfig.detector` -> a detector (`vidlens.tasks.faces.detect.make_face_detector`)."""
    return make_face_detector(name)


def load_expression(config: EmotionConfig) -> ExpressionPredictor:
    """The expression predictor `config` asks for (loaded once; pass it to `analyse_emotions` to reuse)."""
    return load_expression_predictor(config.expression_model, config.expression_checkpoint, tta=config.tta)


def analyse_emotions(
    video: str | os.PathLike[str],
    config: EmotionConfig | None = None,
    *,
    detector: FaceDetector | None = None,
    progress: Callable[[str, float], None] | None = None,
    expression: ExpressionPredictor | tuple[Any, list[str], dict[str, Any]] | None = None,
    voice: tuple[Any, list[str], dict[str, Any]] | None = None,
    batch_faces: int = 128,
) -> EmotionResult:
    """Run faces (and voice) over `video`; `progress(stage, seconds_done)`. Writes nothing.

    `expression` (an `ExpressionPredictor` from `load_expression`/`load_expression_predictor`, or a
    legacy `load_expression_model` tuple) and `voice` (from `load_voice_model`) are models already
    loaded, for a service or a folder analysing many videos; by default they load from `config`.
    Face crops are classified `batch_faces` at a time (across frames); torch runs on one thread.
    """
    config = config or EmotionConfig()
    info = probe(video)  # unreadable input fails here, with the reason
    with one_torch_thread():
        predictor = as_predictor(expression) if expression is not None else load_expression(config)
        labels = list(predictor.labels)
        if any(label not in VALENCE for label in labels):
            raise ConfigError(config.expression_checkpoint, f"expression labels must be among {', '.join(EMOTIONS)}; got {labels}")
        detector = detector or make_detector(config.detector)
        tracks, detections, analysed, size = _faces(video, info, config, detector, predictor, progress, batch_faces)
    track_seconds = {t.id: second_rows(np.asarray(t.times), t.probs, labels, info.duration_s) for t in tracks}
    notes: list[str] = []
    if not tracks:
        notes.append("no faces found: there is no facial expression timeline")
    face_times = np.concatenate([np.asarray(t.times) for t in tracks]) if tracks else np.zeros(0)
    face_probs = np.concatenate([t.probs for t in tracks]) if tracks else np.zeros((0, len(labels)), np.float32)
    seconds = second_rows(face_times, face_probs, labels, info.duration_s)
    whole = video_probs([t.clip_probs for t in tracks], [len(t.frames) for t in tracks], len(labels))
    dominant = labels[int(np.argmax(whole))] if tracks else None
    voice_segments: list[tuple[float, float]] = []
    voice_used = False
    if not info.has_audio:
        notes.append("no audio track: voice not analysed")
    else:
        if progress is not None:
            progress("voice", 0.0)
        voice_segments, seconds, voice_used = _voice(video, info, labels, seconds, config, notes, voice)
    return EmotionResult(str(video), info, labels, tracks, seconds, track_seconds, voice_segments,
                         bool(tracks), info.has_audio, voice_used, analysed, notes, detections, size, config.fps,
                         video_probs=whole, dominant=dominant)


def _faces(video, info: VideoInfo, config: EmotionConfig, detector: FaceDetector, predictor: ExpressionPredictor,
           progress: Callable[[str, float], None] | None, batch_faces: int):
    """Detect, track and classify the faces of the sampled frames -> (tracks, detections, frames analysed, size)."""
    tracker = FaceTracker(max_missed=config.max_missed, min_length=config.min_track_length)
    scale = min(1.0, config.max_width / max(info.width, 1))
    size = (max(2, round(info.height * scale)), max(2, round(info.width * scale))) if scale < 1.0 else None
    # Every detection: (frame index, time, track id, box); its probabilities land in `probs[i]`.
    seen: list[tuple[int, float, int, FaceBox]] = []
    probs: list[np.ndarray] = []
    pending: list[list[np.ndarray]] = []  # per frame with faces: one crop array per member

    def flush() -> None:
        if pending:
            crops = [np.concatenate([frame[m] for frame in pending]) for m in range(len(predictor.members))]
            probs.extend(predictor.classify_crops(crops))
            pending.clear()

    analysed = 0
    waiting = 0
    for frame in iter_frames(video, fps=config.fps, size=size, keep_aspect=False):
        analysed += 1
        # Tilted passes (3x the cost) only while a face track is live: a face that was there and is
        # now missed has most likely tilted its head; an empty scene needs no second look.
        boxes = (detector.detect(frame.image, tilted=bool(tracker.active_tracks))
                 if isinstance(detector, HaarFaceDetector) else detector.detect(frame.image))
        assigned = tracker.update(frame.index, frame.time_s, boxes)
        if assigned:
            pending.append(predictor.crops(frame.image, [box for _, box in assigned]))
            seen.extend((frame.index, frame.time_s, tid, box) for tid, box in assigned)
            waiting += len(assigned)
            if waiting >= batch_faces:
                flush()
                waiting = 0
        if progress is not None and analysed % 10 == 0:
            progress("faces", frame.time_s)
    flush()
    kept = {t.id for t in tracker.finish()}
    observed: dict[int, list[int]] = {}
    for i, (_, _, tid, _) in enumerate(seen):
        if tid in kept:
            observed.setdefault(tid, []).append(i)
    tracks = []
    for tid, rows in sorted(observed.items()):
        p = np.stack([probs[i] for i in rows])
        times = [seen[i][1] for i in rows]
        tracks.append(FaceTrackResult(tid, [seen[i][0] for i in rows], times, [seen[i][3] for i in rows], p,
                                      aggregate_track(p, times, config.aggregation, predictor.labels)))
    detections: list[tuple[int, list[tuple[int, FaceBox, np.ndarray]]]] = []
    for i, (index, _, tid, box) in enumerate(seen):
        if tid not in kept:
            continue
        if not detections or detections[-1][0] != index:
            detections.append((index, []))
        detections[-1][1].append((tid, box, probs[i]))
    return tracks, detections, analysed, size


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
