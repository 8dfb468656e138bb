"""Emotion and sentiment of the people in a video, from faces and voice (docs/emotion.md)."""

from vidlens.tasks.emotion.aggregate import AGGREGATIONS, aggregate_track, video_probs
from vidlens.tasks.emotion.analyse import (
    DETECTORS,
    SENTIMENTS,
    VALENCE,
    EmotionConfig,
    EmotionResult,
    FaceTrackResult,
    analyse_emotions,
    load_expression,
    sentiment,
    valence,
)
from vidlens.tasks.emotion.outputs import write_emotion_outputs

__all__ = [
    "AGGREGATIONS",
    "DETECTORS",
    "SENTIMENTS",
    "VALENCE",
    "EmotionConfig",
    "EmotionResult",
    "FaceTrackResult",
    "aggregate_track",
    "analyse_emotions",
    "load_expression",
    "sentiment",
    "valence",
    "video_probs",
    "write_emotion_outputs",
]
