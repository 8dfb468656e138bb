"""3D video networks: a small C3D and torchvision's R3D-18, MC3-18, R(2+1)D-18, S3D, MViTv2-S, Swin3D-T.

Every wrapper takes the vidlens batch `(B,T,C,H,W)` float and permutes it to `(B,C,T,H,W)` inside.
The torchvision network is kept intact under `.net` (its state_dict keys are torchvision's, prefixed
`net.`), so `weights="kinetics400"` loads torchvision's Kinetics-400 file from the torch cache
(`torch.hub.get_dir()/checkpoints/<file>`; nothing is downloaded). Kinetics weights exist only at
the default sizes (width 1.0, default MViT/Swin settings); the 400-way classifier is kept when
`num_classes == 400` and re-initialised otherwise.

Input sizes: MViTv2 is built for one exact clip size (`spatial_size`, `temporal_size`: pass e.g. 112
and 8 for small clips; the default 224/16 is what the Kinetics weights need). S3D needs >= 8 frames
and >= 32 px. The video ResNets and C3D take any size >= 16 px.
"""

from __future__ import annotations

import os

from torch import Tensor, nn
from torch.nn import functional as F

from vidlens.errors import ConfigError
from vidlens.models import weights as W
from vidlens.models.base import VideoModel


def _ch(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


def _to_bcthw(x: Tensor) -> Tensor:
    if x.ndim != 5:
        raise ValueError(f"expected a (B,T,C,H,W) batch, got shape {tuple(x.shape)}")
    return x.permute(0, 2, 1, 3, 4)


def _check_width(width: float) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
        raise ConfigError(None, f"width must be a positive number, got {width!r}")
    return float(width)


def _check_weights(name: str, weights: str | None, defaults_ok: bool, what: str) -> bool:
    if weights not in (None, "kinetics400"):
        raise ConfigError(None, f"weights must be None or 'kinetics400', got {weights!r}")
    if weights and not defaults_ok:
        raise ConfigError(None, f"Kinetics-400 weights of {name} exist only at {what}")
    return weights is not None


def _load_kinetics(name: str, net: nn.Module, weights_file: str | os.PathLike[str] | None) -> None:
    source = W.kinetics_source(name)
    assert source is not None
    path = W.locate(source, weights_file)
    W.load_into(net, W.load_state_dict_file(path), path, name)


class _Video3DModel(VideoModel):
    """Shared bits: `multi_label`, classifier dropout, `(B,T,C,H,W)` handling."""

    def __init__(self, num_classes: int, feature_dim: int, multi_label: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.multi_label = multi_label


# ---------------------------------------------------------------- C3D


class C3D(_Video3DModel):
    """A small C3D: 3x3x3 conv-BN-ReLU stages (1,1,2,2,2 convs; 32,64,128,256,256 x width channels),
    max pooling (first spatial only), global average pooling, dropout, linear. Feature dim 256 x width.
    """

    BASE = (32, 64, 128, 256, 256)
    CONVS = (1, 1, 2, 2, 2)

    def __init__(self, num_classes: int, width: float = 1.0, dropout: float = 0.5, multi_label: bool = False) -> None:
        chans = [_ch(c, width) for c in self.BASE]
        super().__init__(num_classes, chans[-1], multi_label)
        stages = []
        cin = 3
        for cout, n in zip(chans, self.CONVS):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]
                cin = cout
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _pool(x: Tensor, temporal: bool) -> Tensor:
        t, h, w = x.shape[2:]
        kernel = (2 if temporal and t > 1 else 1, 2 if h > 1 else 1, 2 if w > 1 else 1)
        return F.max_pool3d(x, kernel, kernel, ceil_mode=True)

    def features(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` -> `(B,feature_dim)`."""
        x = _to_bcthw(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < len(self.stages) - 1:
                x = self._pool(x, temporal=i > 0)
        return x.mean(dim=(2, 3, 4))

    def classify(self, features: Tensor) -> Tensor:
        return self.fc(self.dropout(features))


# ---------------------------------------------------------------- video ResNets


def _video_resnet_parts(arch: str):
    from torchvision.models.video import resnet as R

    convs = {
        "r3d_18": [R.Conv3DSimple] * 4,
        "mc3_18": [R.Conv3DSimple] + [R.Conv3DNoTemporal] * 3,
        "r2plus1d_18": [R.Conv2Plus1D] * 4,
    }[arch]
    return R, convs


def _stem(arch: str, width: float) -> nn.Sequential:
    """torchvision's BasicStem / R2Plus1dStem (same layer indices) with scaled channels."""
    out = _ch(64, width)
    if arch == "r2plus1d_18":
        mid = _ch(45, width)
        return nn.Sequential(
            nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out),
            nn.ReLU(inplace=True),
        )
    return nn.Sequential(
        nn.Conv3d(3, out, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(out),
        nn.ReLU(inplace=True),
    )


def build_torchvision_video_resnet(arch: str, num_classes: int = 400, width: float = 1.0) -> nn.Module:
    """torchvision's `VideoResNet` for `arch` built from its own blocks with a width multiplier.

    At width 1.0 the module (class, keys, shapes, init) is torchvision's `r3d_18`/`mc3_18`/`r2plus1d_18`.
    """
    R, convs = _video_resnet_parts(arch)
    if width == 1.0:
        stem = {"r2plus1d_18": R.R2Plus1dStem}.get(arch, R.BasicStem)
        return R.VideoResNet(R.BasicBlock, convs, [2, 2, 2, 2], stem, num_classes=num_classes)

    class _ScaledVideoResNet(R.VideoResNet):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self.inplanes = _ch(64, width)
            self.stem = _stem(arch, width)
            planes = [_ch(c, width) for c in (64, 128, 256, 512)]
            self.layer1 = self._make_layer(R.BasicBlock, convs[0], planes[0], 2, stride=1)
            self.layer2 = self._make_layer(R.BasicBlock, convs[1], planes[1], 2, stride=2)
            self.layer3 = self._make_layer(R.BasicBlock, convs[2], planes[2], 2, stride=2)
            self.layer4 = self._make_layer(R.BasicBlock, convs[3], planes[3], 2, stride=2)
            self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
            self.fc = nn.Linear(planes[3], num_classes)
            for m in self.modules():  # torchvision's initialisation
                if isinstance(m, nn.Conv3d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm3d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

    return _ScaledVideoResNet()


class VideoResNetModel(_Video3DModel):
    """R3D-18 / MC3-18 / R(2+1)D-18 with a `width` multiplier; features = global average pool (512 x width)."""

    def __init__(self, arch: str, num_classes: int, width: float = 1.0, dropout: float = 0.5,
                 weights: str | None = None, weights_file: str | None = None, multi_label: bool = False,
                 load_weights: bool = True) -> None:
        width = _check_width(width)
        kinetics = _check_weights(arch, weights, width == 1.0, "width 1.0")
        net = build_torchvision_video_resnet(arch, 400 if kinetics else num_classes, width)
        super().__init__(num_classes, net.fc.in_features, multi_label)
        if kinetics and load_weights:
            _load_kinetics(arch, net, weights_file)
        if net.fc.out_features != num_classes:
            net.fc = nn.Linear(net.fc.in_features, num_classes)
            nn.init.normal_(net.fc.weight, 0, 0.01)
            nn.init.zeros_(net.fc.bias)
        self.net = net
        self.dropout = nn.Dropout(dropout)

    def features(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` -> `(B,feature_dim)`."""
        n = self.net
        x = n.stem(_to_bcthw(x))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return n.avgpool(x).flatten(1)

    def classify(self, features: Tensor) -> Tensor:
        return self.net.fc(self.dropout(features))


# ---------------------------------------------------------------- S3D


class S3DModel(_Video3DModel):
    """torchvision S3D; features = global average of the last feature map (1024). Needs T >= 8, H,W >= 32."""

    def __init__(self, num_classes: int, dropout: float = 0.2, weights: str | None = None,
                 weights_file: str | None = None, multi_label: bool = False, load_weights: bool = True) -> None:
        from torchvision.models.video import s3d

        kinetics = _check_weights("s3d", weights, True, "")
        super().__init__(num_classes, 1024, multi_label)
        net = s3d(weights=None, num_classes=400 if kinetics else num_classes, dropout=dropout)
        if kinetics and load_weights:
            _load_kinetics("s3d", net, weights_file)
        if net.classifier[1].out_channels != num_classes:
            net.classifier[1] = nn.Conv3d(1024, num_classes, kernel_size=1, stride=1, bias=True)
        self.net = net

    def features(self, x: Tensor) -> Tensor:
        t, h, w = x.shape[1], x.shape[3], x.shape[4]
        if t < 8 or h < 32 or w < 32:
            raise ValueError(f"s3d needs at least 8 frames of 32x32 px, got T={t}, {h}x{w}")
        return self.net.features(_to_bcthw(x)).mean(dim=(2, 3, 4))

    def classify(self, features: Tensor) -> Tensor:
        return self.net.classifier(features[:, :, None, None, None]).flatten(1)


# ---------------------------------------------------------------- MViTv2-S


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ConfigError(None, f"{name} must be an int or [height, width], got {value!r}")


def build_mvit_v2_s(spatial_size: tuple[int, int] = (224, 224), temporal_size: int = 16, **kwargs) -> nn.Module:
    """torchvision's MViTv2-S (`MViT` with the `mvit_v2_s` block settings) for any clip size.

    (`torchvision.models.video.mvit_v2_s` fixes 224 px / 16 frames; the tests check this is the same
    network, key for key, at that size.)
    """
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    heads = [1, 2, 2] + [4] * 11 + [8, 8]
    cin = [96, 96, 192, 192] + [384] * 11 + [768]
    cout = [96, 192, 192] + [384] * 11 + [768, 768]
    stride_kv = [[1, 8, 8], [1, 4, 4], [1, 4, 4]] + [[1, 2, 2]] * 11 + [[1, 1, 1]] * 2
    blocks = [
        MSBlockConfig(num_heads=heads[i], input_channels=cin[i], output_channels=cout[i], kernel_q=[3, 3, 3],
                      kernel_kv=[3, 3, 3], stride_q=[1, 2, 2] if i in (1, 3, 14) else [1, 1, 1], stride_kv=stride_kv[i])
        for i in range(16)
    ]
    return MViT(spatial_size=tuple(spatial_size), temporal_size=temporal_size, block_setting=blocks, residual_pool=True,
                residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True, **kwargs)


class MViTModel(_Video3DModel):
    """torchvision MViTv2-S built for one clip size (`spatial_size` px, `temporal_size` frames).

    Sizes must be multiples of 32 px and of 2 frames; features = the class token after the final norm (768).
    """

    def __init__(self, num_classes: int, spatial_size=224, temporal_size: int = 16, dropout: float = 0.5,
                 stochastic_depth: float = 0.2, weights: str | None = None, weights_file: str | None = None,
                 multi_label: bool = False, load_weights: bool = True) -> None:
        size = _pair(spatial_size, "spatial_size")
        if size[0] % 32 or size[1] % 32 or temporal_size < 2 or temporal_size % 2:
            raise ConfigError(None, f"mvit_v2_s needs spatial_size a multiple of 32 and an even temporal_size, got {size}, {temporal_size}")
        kinetics = _check_weights("mvit_v2_s", weights, size == (224, 224) and temporal_size == 16,
                                  "spatial_size 224, temporal_size 16")
        super().__init__(num_classes, 768, multi_label)
        net = build_mvit_v2_s(size, temporal_size, dropout=dropout, stochastic_depth_prob=stochastic_depth,
                              num_classes=400 if kinetics else num_classes)
        if kinetics and load_weights:
            _load_kinetics("mvit_v2_s", net, weights_file)
        net.head[0] = nn.Dropout(dropout)  # torchvision's is in-place: it would overwrite features()' output
        if net.head[1].out_features != num_classes:
            net.head[1] = nn.Linear(768, num_classes)
            nn.init.trunc_normal_(net.head[1].weight, std=0.02)
            nn.init.zeros_(net.head[1].bias)
        self.net = net
        self.clip_size = (temporal_size, *size)

    def features(self, x: Tensor) -> Tensor:
        if (x.shape[1], x.shape[3], x.shape[4]) != self.clip_size:
            t, h, w = self.clip_size
            raise ValueError(f"mvit_v2_s was built for {t} frames of {h}x{w} px (spatial_size/temporal_size), "
                             f"got {x.shape[1]} frames of {x.shape[3]}x{x.shape[4]}")
        n = self.net
        x = n.conv_proj(_to_bcthw(x)).flatten(2).transpose(1, 2)
        x = n.pos_encoding(x)
        thw = (n.pos_encoding.temporal_size,) + n.pos_encoding.spatial_size
        for block in n.blocks:
            x, thw = block(x, thw)
        return n.norm(x)[:, 0]

    def classify(self, features: Tensor) -> Tensor:
        return self.net.head(features)


# ---------------------------------------------------------------- Swin3D-T


class Swin3DModel(_Video3DModel):
    """torchvision Video Swin (Swin3D-T by default; `embed_dim`/`depths`/`num_heads` for a tiny variant).

    Features = global average of the last stage (embed_dim x 2^(stages-1)); classifier dropout `dropout`.
    """

    DEFAULTS = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": [8, 7, 7]}

    def __init__(self, num_classes: int, embed_dim: int = 96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                 window_size=(8, 7, 7), dropout: float = 0.0, stochastic_depth: float = 0.1,
                 weights: str | None = None, weights_file: str | None = None, multi_label: bool = False,
                 load_weights: bool = True) -> None:
        from torchvision.models.video.swin_transformer import SwinTransformer3d

        depths, num_heads, window_size = list(depths), list(num_heads), list(window_size)
        if len(depths) != len(num_heads) or not depths:
            raise ConfigError(None, f"swin3d depths {depths} and num_heads {num_heads} must have the same length")
        for i, heads in enumerate(num_heads):
            if (embed_dim * 2**i) % heads:
                raise ConfigError(None, f"swin3d stage {i}: dim {embed_dim * 2**i} is not divisible by {heads} heads")
        if len(window_size) != 3:
            raise ConfigError(None, f"swin3d window_size must be [t, h, w], got {window_size}")
        args = {"embed_dim": embed_dim, "depths": depths, "num_heads": num_heads, "window_size": window_size}
        kinetics = _check_weights("swin3d_t", weights, args == self.DEFAULTS,
                                  "the default sizes (embed_dim 96, depths [2,2,6,2], num_heads [3,6,12,24], window [8,7,7])")
        net = SwinTransformer3d(patch_size=[2, 4, 4], stochastic_depth_prob=stochastic_depth,
                                num_classes=400 if kinetics else num_classes, **args)
        super().__init__(num_classes, net.head.in_features, multi_label)
        if kinetics and load_weights:
            _load_kinetics("swin3d_t", net, weights_file)
        if net.head.out_features != num_classes:
            net.head = nn.Linear(net.head.in_features, num_classes)
        self.net = net
        self.dropout = nn.Dropout(dropout)

    def features(self, x: Tensor) -> Tensor:
        n = self.net
        x = n.features(n.pos_drop(n.patch_embed(_to_bcthw(x))))  # (B,T',H',W',C)
        return n.norm(x).mean(dim=(1, 2, 3))

    def classify(self, features: Tensor) -> Tensor:
        return self.net.head(self.dropout(features))


def video_resnet(arch: str):
    """Builder for the registry: `video_resnet("r3d_18")(num_classes, **args)`."""

    def build(num_classes: int, **args) -> VideoResNetModel:
        return VideoResNetModel(arch, num_classes, **args)

    build.__name__ = f"build_{arch}"
    return build
