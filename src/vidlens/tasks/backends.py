"""Inference backends: a classifier file -> `LoadedClassifier` (a module in eval mode + how it wants its clips).

Two backends, chosen by file suffix through `BACKENDS` (a plain dict: suffix -> loader):

- a vidlens checkpoint (`.pt` and anything else): the model rebuilt with PyTorch;
- an exported ONNX file (`.onnx`, `vidlens export`): an ONNX Runtime session wrapped as a module
  (`OnnxModule`), labels and preprocessing from the file's metadata.

This module imports neither the predictor nor `vidlens.deploy`: the predictor picks a loader
from `BACKENDS`, and `vidlens.deploy` (export, compression, streaming) builds on what is here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlens.data.samplers import SamplerConfig
from vidlens.data.transforms import TransformConfig
from vidlens.engine.checkpoint import load_checkpoint
from vidlens.errors import CheckpointError, ConfigError
from vidlens.models import build_model

METADATA_KEYS = ("vidlens_format", "model", "model_args", "labels", "preprocess", "multi_label", "metrics",
                 "vidlens_version", "quantization")


@dataclass
class LoadedClassifier:
    """One checkpoint, rebuilt: the model in eval mode and how it wants its clips.

    `num_clips`: the whole-video views asked for explicitly (None: the predictor chooses, see
    `vidlens.tasks.predictor.whole_video_clips`); `sampler.num_clips` is the checkpoint's own.
    """

    path: str
    model: nn.Module
    labels: list[str]
    sampler: SamplerConfig
    transform: TransformConfig
    decode_size: int | None
    multi_label: bool
    model_name: str
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the training recipe ("recipe"), when the checkpoint has one
    num_clips: int | None = None

    @property
    def clip_fps(self) -> float | None:
        return self.sampler.fps


def need(module: str) -> Any:
    """Import an optional dependency of the `export` extra, or raise `ConfigError` saying what to install."""
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(None, f"{module} is not installed: pip install 'vidlens[export]'") from None


def clip_configs(
    path: str | os.PathLike[str], preprocess: dict[str, Any], *, num_clips: int | None = None, test_crop: str | None = None
) -> tuple[SamplerConfig, TransformConfig]:
    """The sampler and transform configs of a checkpoint's `preprocess` entry, with the test-view overrides."""
    try:
        sampler = SamplerConfig.from_dict(preprocess["sampler"])
        transform = TransformConfig.from_dict(preprocess["transform"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(path, f"preprocess section is incomplete ({exc})") from None
    if num_clips is not None:
        sampler = SamplerConfig.from_dict({**sampler.to_dict(), "num_clips": int(num_clips)})
    if test_crop is not None:
        transform = TransformConfig.from_dict({**transform.to_dict(), "test_crop": test_crop})
    return sampler, transform


# ----------------------------------------------------------------------------- PyTorch checkpoints


def load_torch_classifier(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", num_clips: int | None = None,
    test_crop: str | None = None, threads: int | None = None,
) -> LoadedClassifier:
    """A vidlens checkpoint (read with `weights_only=True`) rebuilt in eval mode on `device`."""
    ckpt = load_checkpoint(path, map_location="cpu")
    labels = list(ckpt["labels"])
    pre = ckpt["preprocess"]
    sampler, transform = clip_configs(path, pre, num_clips=num_clips, test_crop=test_crop)
    args = dict(ckpt["model_args"])
    try:
        model = build_model(ckpt["model"], len(labels), load_weights=False, **args)
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, ConfigError) as exc:
        raise CheckpointError(path, f"weights do not fit model {ckpt['model']} ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return LoadedClassifier(
        path=os.fspath(path), model=model, labels=labels, sampler=sampler, transform=transform,
        decode_size=pre.get("decode_size"), multi_label=bool(args.get("multi_label", False)), model_name=ckpt["model"],
        metrics=dict(ckpt.get("metrics") or {}), config=dict(ckpt.get("recipe") or {}), num_clips=num_clips,
    )


# ----------------------------------------------------------------------------- ONNX Runtime


def ort_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU (`threads`: intra-op threads; None = torch's count)."""
    ort = need("onnxruntime")
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


def read_metadata(props: dict[str, str], path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Decode the `metadata_props` written by `vidlens.deploy.export_onnx` (`CheckpointError` when missing)."""
    missing = [k for k in ("labels", "preprocess", "model") if k not in props]
    if missing:
        raise CheckpointError(path, f"not a vidlens export: metadata lacks {missing}")
    try:
        return {key: json.loads(value) for key, value in props.items() if key in METADATA_KEYS}
    except json.JSONDecodeError as exc:
        raise CheckpointError(path, f"unreadable vidlens metadata ({exc})") from None


def onnx_metadata(path: str | os.PathLike[str], session: Any | None = None) -> dict[str, Any]:
    """The vidlens metadata (labels, preprocess, model, model_args, ...) of an exported ONNX file."""
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
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", num_clips: int | None = None,
    test_crop: str | None = None, threads: int | None = None,
) -> LoadedClassifier:
    """A `LoadedClassifier` whose model runs in ONNX Runtime (CPU); preprocessing from the file's metadata."""
    session = ort_session(path, threads=threads)
    meta = onnx_metadata(path, session)
    pre = meta["preprocess"]
    sampler, transform = clip_configs(path, pre, num_clips=num_clips, test_crop=test_crop)
    return LoadedClassifier(
        path=os.fspath(path), model=OnnxModule(session), labels=list(meta["labels"]), sampler=sampler,
        transform=transform, decode_size=pre.get("decode_size"), multi_label=bool(meta.get("multi_label", False)),
        model_name=str(meta["model"]), metrics=dict(meta.get("metrics") or {}), num_clips=num_clips,
    )


Loader = Callable[..., LoadedClassifier]
BACKENDS: dict[str, Loader] = {".onnx": load_onnx_classifier}
DEFAULT_BACKEND: Loader = load_torch_classifier


def loader_for(path: str | os.PathLike[str]) -> Loader:
    """The loader registered for `path`'s suffix (case-insensitive), else the PyTorch checkpoint loader."""
    return BACKENDS.get(Path(path).suffix.lower(), DEFAULT_BACKEND)
