"""Running exported models: ONNX Runtime behind the same interface as a PyTorch checkpoint.

The ONNX backend itself (`OnnxModule`, `ort_session`, `load_onnx_classifier`, `onnx_metadata`) lives
beside the predictor in `vidlens.tasks.backends`, which the predictor picks by file suffix; this
module re-exports it and adds `OnnxClassifier(path)`, a one-member `VideoClassifier`, so clip
sampling, preprocessing, test views, ensembles and timelines run unchanged on an exported file.
"""

from __future__ import annotations

import os

from vidlens.tasks.backends import OnnxModule, load_onnx_classifier, onnx_metadata, ort_session
from vidlens.tasks.predictor import VideoClassifier

__all__ = ["OnnxClassifier", "OnnxModule", "load_onnx_classifier", "onnx_metadata", "ort_session"]


class OnnxClassifier(VideoClassifier):
    """`VideoClassifier` over one exported ONNX file: same `predict(video, top_k)` / `timeline` outputs."""

    def __init__(self, path: str | os.PathLike[str], *, num_clips: int | None = None, test_crop: str | None = None,
                 threads: int | None = None) -> None:
        super().__init__([load_onnx_classifier(path, num_clips=num_clips, test_crop=test_crop, threads=threads)])
        self.path = os.fspath(path)
