"""Emotion and sentiment of the people in a video, from faces and voice (docs/emotion.md)."""

from vidlens.tasks.emotion.analyse import (
    SENTIMENTS,
    VALENCE,
    EmotionConfig,
    EmotionResult,
    FaceTrackResult,
    analyse_emotions,
    sentiment,
    valence,
)
from vidlens.tasks.emotion.outputs import write_emotion_outputs

__all__ = [
    "SENTIMENTS",
    "VALENCE",
    "EmotionConfig",
    "EmotionResult",
    "FaceTrackResult",
    "analyse_emotions",
    "sentiment",
    "valence",
    "write_emotion_outputs",
]
