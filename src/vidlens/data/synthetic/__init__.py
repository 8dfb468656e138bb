"""Procedurally generated datasets written as real encoded video files, with ground truth.

- `make_action_dataset`: eight motion classes that no single frame can tell apart (see `actions`).
- `make_shot_video` / `make_shot_dataset`: videos of shots joined by cuts, fades and dissolves,
  with flashes, fast objects and fast pans that are not boundaries (see `shots`).
- `make_audiovisual_dataset`: cartoon faces (smile / straight / frown mouth) with a rising / flat /
  falling tone, either or both modalities carrying the sentiment class (see `audiovisual`).

Everything is deterministic given `seed`; nothing here prints (pass `progress=callback(done, total)`).
See docs/synthetic.md for the file layouts and the ground-truth schemas.
"""

from vidlens.data.synthetic.actions import (
    ACTION_CLASSES,
    ALL_ACTION_CLASSES,
    EXTRA_ACTION_CLASSES,
    CLASS_MOTION,
    RISING_CHIRP_CLASSES,
    TIME_REVERSED_PAIRS,
    ActionDatasetInfo,
    make_action_dataset,
    render_action_audio,
    render_action_clip,
    sample_action_params,
)
from vidlens.data.synthetic.audiovisual import (
    AV_CLASSES,
    AV_EMOTIONS,
    AudioVisualDatasetInfo,
    make_audiovisual_dataset,
    render_face_clip,
    render_tone_audio,
)
from vidlens.data.synthetic.shots import (
    TRANSITION_TYPES,
    Scene,
    ShotDatasetInfo,
    ShotGroundTruth,
    Transition,
    make_shot_dataset,
    make_shot_video,
)

__all__ = [
    "AV_CLASSES",
    "AV_EMOTIONS",
    "AudioVisualDatasetInfo",
    "make_audiovisual_dataset",
    "render_face_clip",
    "render_tone_audio",
    "ACTION_CLASSES",
    "ALL_ACTION_CLASSES",
    "EXTRA_ACTION_CLASSES",
    "CLASS_MOTION",
    "RISING_CHIRP_CLASSES",
    "TIME_REVERSED_PAIRS",
    "TRANSITION_TYPES",
    "ActionDatasetInfo",
    "Scene",
    "ShotDatasetInfo",
    "ShotGroundTruth",
    "Transition",
    "make_action_dataset",
    "make_shot_dataset",
    "make_shot_video",
    "render_action_audio",
    "render_action_clip",
    "sample_action_params",
]
