"""Running exported models: ONNX Runtime behind the same interface as a PyTorch checkpoint.

`OnnxModule` wraps an `onnxruntime.InferenceSession` as an `nn.Module` (`(B,T,C,H,W)` tensor in,
logits tensor out), so the predictor's clip sampling, preprocessing, test views, ensembles and
timelines run unchanged on it; `load_onnx_classifier` fills a `LoadedClassifier` from the file's
metadata, and `OnnxClassifier(path)` is a one-member `VideoClassifier`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlens.errors import CheckpointError
from vidlens.tasks.predictor import LoadedClassifier, VideoClassifier, clip_configs


def ort_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU (`threads`: intra-op threads; None = torch's count)."""
    from vidlens.deploy.export import _need

    ort = _need("onnxruntime")
    if not os.path.isfile(path):
        raise CheckpointError(path, "ONNX file does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CheckpointError(path, f"not a loadable ONNX model ({(str(exc).splitlines() or [''])[0][:200]})") from None


def onnx_metadata(path: str | os.PathLike[str], session: Any | None = None) -> dict[str, Any]:
    """The vidlens metadata (labels, preprocess, model, model_args, ...) of an exported ONNX file."""
    from vidlens.deploy.export import read_metadata

    session = session or ort_session(path)
    return read_metadata(dict(session.get_modelmeta().custom_metadata_map), path)


class OnnxModule(nn.Module):
    """An ONNX Runtime session as a module: `(B,T,C,H,W)` float tensor -> `(B,K)` logits tensor (CPU)."""

    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: array})[0])


def load_onnx_classifier(
    path: str | os.PathLike[str], *, num_clips: int | None = None, test_crop: str | None = None, threads: int | None = None
) -> LoadedClassifier:
    """A `LoadedClassifier` whose model runs in ONNX Runtime; preprocessing from the file's metadata."""
    session = ort_session(path, threads=threads)
    meta = onnx_metadata(path, session)
    pre = meta["preprocess"]
    sampler, transform = clip_configs(path, pre, num_clips=num_clips, test_crop=test_crop)
    return LoadedClassifier(
        path=os.fspath(path),
        model=OnnxModule(session),
        labels=list(meta["labels"]),
        sampler=sampler,
        transform=transform,
        decode_size=pre.get("decode_size"),
        multi_label=bool(meta.get("multi_label", False)),
        model_name=str(meta["model"]),
        metrics=dict(meta.get("metrics") or {}),
    )


class OnnxClassifier(VideoClassifier):
    """`VideoClassifier` over one exported ONNX file: same `predict(video, top_k)` / `timeline` outputs."""

    def __init__(self, path: str | os.PathLike[str], *, num_clips: int | None = None, test_crop: str | None = None,
                 threads: int | None = None) -> None:
        super().__init__([load_onnx_classifier(path, num_clips=num_clips, test_crop=test_crop, threads=threads)])
        self.path = os.fspath(path)
