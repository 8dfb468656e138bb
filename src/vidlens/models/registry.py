"""The model registry: a plain dict name -> `ModelEntry`, and `build_model`.

Checkpoints store `{"model": name, "model_args": {...}}`; inference rebuilds with
`build_model(name, num_classes, load_weights=False, **model_args)` then loads the state_dict.
`resolved_args` fills in every default, so what a checkpoint stores is complete and JSON/YAML-able
(str/int/float/bool/None/lists only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch

from vidlens.errors import ConfigError
from vidlens.models.base import VideoModel
from vidlens.models.temporal import build_frame_temporal
from vidlens.models.video3d import C3D, MViTModel, S3DModel, Swin3DModel, video_resnet

IMAGENET_NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
KINETICS_NORM = {"mean": [0.43216, 0.394666, 0.37645], "std": [0.22803, 0.22145, 0.216989]}
MVIT_NORM = {"mean": [0.45, 0.45, 0.45], "std": [0.225, 0.225, 0.225]}


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: `builder(num_classes, load_weights=..., **args) -> VideoModel`.

    `defaults` lists every argument the builder accepts (with its default); `weights` says which
    pretrained weights it can start from ("imagenet-encoder", "kinetics400" or None); `normalization`
    is the mean/std its pretrained weights expect (inputs are RGB in [0,1] normalised by it).
    """

    builder: Callable[..., VideoModel]
    family: str
    description: str
    defaults: dict[str, Any]
    weights: str | None = None
    normalization: dict[str, list[float]] = field(default_factory=lambda: dict(IMAGENET_NORM))


_FRAME_COMMON = {
    "encoder": "small_cnn",
    "width": 1.0,
    "spatial_grid": 1,
    "pretrained": None,
    "weights_file": None,
    "freeze_encoder": False,
    "dropout": 0.5,
    "feature_diff": False,
}
_RNN = {"hidden": 256, "layers": 1, "bidirectional": True}
_WEIGHTS_3D = {"weights": None, "weights_file": None}


def _frame(head: str, description: str, **head_defaults: Any) -> ModelEntry:
    return ModelEntry(
        partial(build_frame_temporal, head),
        "frame+temporal",
        description,
        {**_FRAME_COMMON, **head_defaults, "multi_label": False},
        "imagenet-encoder",
    )


def _video(builder: Callable[..., VideoModel], family: str, description: str, norm: dict, **defaults: Any) -> ModelEntry:
    return ModelEntry(builder, family, description, {**defaults, "multi_label": False},
                      "kinetics400" if "weights" in defaults else None, norm)


MODELS: dict[str, ModelEntry] = {
    "tsn": _frame("mean", "frame encoder + mean over time (TSN average consensus = frame-averaging baseline)"),
    "tsn_max": _frame("max", "frame encoder + max over time (TSN max consensus)"),
    "lstm": _frame("lstm", "frame encoder + LSTM + attention pooling (LRCN)", **_RNN),
    "gru": _frame("gru", "frame encoder + GRU + attention pooling", **_RNN),
    "transformer": _frame("transformer", "frame encoder + class-token Transformer over time",
                          dim=256, layers=2, heads=4, mlp_ratio=2.0, attn_dropout=0.1, max_len=64),
    "tconv": _frame("tconv", "frame encoder + 1D temporal convolutions + mean pooling",
                    hidden=256, layers=2, kernel=3),
    "c3d": _video(C3D, "3d-cnn", "small C3D: 3x3x3 convs, BN, width multiplier", KINETICS_NORM, width=1.0, dropout=0.5),
    "r3d_18": _video(video_resnet("r3d_18"), "3d-cnn", "torchvision R3D-18 (3D ResNet), width multiplier", KINETICS_NORM,
                     width=1.0, dropout=0.5, **_WEIGHTS_3D),
    "mc3_18": _video(video_resnet("mc3_18"), "3d-cnn", "torchvision MC3-18 (mixed 3D/2D convs), width multiplier", KINETICS_NORM,
                     width=1.0, dropout=0.5, **_WEIGHTS_3D),
    "r2plus1d_18": _video(video_resnet("r2plus1d_18"), "3d-cnn", "torchvision R(2+1)D-18 (factorised convs), width multiplier",
                          KINETICS_NORM, width=1.0, dropout=0.5, **_WEIGHTS_3D),
    "s3d": _video(S3DModel, "3d-cnn", "torchvision S3D (separable 3D Inception); T >= 8", KINETICS_NORM,
                  dropout=0.2, **_WEIGHTS_3D),
    "mvit_v2_s": _video(MViTModel, "video-transformer", "torchvision MViTv2-S, built for one clip size", MVIT_NORM,
                        spatial_size=224, temporal_size=16, dropout=0.5, stochastic_depth=0.2, **_WEIGHTS_3D),
    "swin3d_t": _video(Swin3DModel, "video-transformer", "torchvision Video Swin-T (embed_dim/depths for tiny variants)",
                       IMAGENET_NORM, embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=[8, 7, 7],
                       dropout=0.0, stochastic_depth=0.1, **_WEIGHTS_3D),
}


def model_names() -> list[str]:
    return list(MODELS)


def _entry(name: str) -> ModelEntry:
    entry = MODELS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ConfigError(None, f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
    return entry


def _json_value(key: str, value: Any, default: Any) -> Any:
    """Check one argument's type against its default; tuples become lists, ints become floats where floats are expected."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(None, f"model arg {key} must be true/false, got {value!r}")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(None, f"model arg {key} must be a number, got {value!r}")
        if isinstance(default, float):
            value = float(value)
        elif isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(None, f"model arg {key} must be an integer, got {value!r}")
            value = int(value)
    elif isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(None, f"model arg {key} must be a list of numbers, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(None, f"model arg {key} must be a string, got {value!r}")
    elif value is not None and not isinstance(value, (str, int, float, list)):
        raise ConfigError(None, f"model arg {key} must be a string/number/list or null, got {type(value).__name__}")
    return value


def resolved_args(name: str, **model_args: Any) -> dict[str, Any]:
    """The full argument dict of model `name` (defaults filled in), JSON/YAML-able.

    Unknown arguments or wrongly typed values raise `ConfigError`. (`spatial_size` of `mvit_v2_s`
    may be an int or `[h, w]`.)
    """
    entry = _entry(name)
    unknown = sorted(set(model_args) - set(entry.defaults))
    if unknown:
        raise ConfigError(None, f"model {name} has no argument(s) {', '.join(unknown)}; valid: {', '.join(entry.defaults)}")
    args = {}
    for key, default in entry.defaults.items():
        value = model_args.get(key, default)
        if key == "spatial_size" and isinstance(value, (list, tuple)):
            args[key] = _json_value(key, list(value), [224, 224])
        else:
            args[key] = _json_value(key, value, default)
    return args


def build_model(name: str, num_classes: int, *, load_weights: bool = True, **model_args: Any) -> VideoModel:
    """Build registered model `name` with `num_classes` outputs.

    `load_weights=False` skips reading pretrained files (`pretrained=`/`weights=` stay in the args):
    use it when a checkpoint's state_dict is loaded next. The model gets `model_name` and
    `model_args` (the resolved dict) attributes, and `multi_label`.
    """
    entry = _entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(None, f"num_classes must be a positive integer, got {num_classes!r}")
    args = resolved_args(name, **model_args)
    call_args = dict(args)
    if entry.weights:
        call_args["load_weights"] = load_weights
    try:
        model = entry.builder(num_classes, **call_args)
    except ConfigError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, AssertionError) as exc:
        raise ConfigError(None, f"model {name}: invalid model_args {args}: {exc}") from exc
    model.model_name = name
    model.model_args = dict(args)
    return model


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def default_parameter_count(name: str, num_classes: int = 400) -> int:
    """Parameters of `name` at its default settings (built on the meta device: no memory, no weights read)."""
    with torch.device("meta"):
        return count_parameters(build_model(name, num_classes, load_weights=False))


def input_normalization(name: str) -> dict[str, list[float]]:
    """`{"mean", "std"}` (RGB in [0,1]) that `name`'s pretrained weights expect; ImageNet's for frame models."""
    return {k: list(v) for k, v in _entry(name).normalization.items()}


def pretrained_status(name: str) -> tuple[bool | None, str]:
    """`(available, short where)` for `name`'s pretrained weights (`available` None: it has none).

    The full "where to put the file" text is `weights.missing_message(source)`.
    """
    from vidlens.models import weights as W

    entry = _entry(name)
    if entry.weights is None:
        return None, "none (train from scratch)"
    if entry.weights == "kinetics400":
        source = W.kinetics_source(name)
        assert source is not None
        path, where = W.find_weights(source)
        if path is None:
            return False, f"kinetics400: put {source.filename} in the torch cache"
        return True, f"kinetics400 ({where.split(' /')[0]})"
    have = [r["model"] for r in W.weight_status() if r["dataset"] == "imagenet" and r["available"]]
    return bool(have), "imagenet encoder: " + (", ".join(have) if have else "none found (see encoders)")
