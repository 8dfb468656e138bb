"""Clip transforms: how the frames of a clip look before they reach a model.

Layout: a clip is a `(T,C,H,W)` tensor, RGB, `uint8` in [0, 255] or float in [0, 1]
(before normalisation). `vidlens.io` decodes `(T,H,W,C)`: permute with
``torch.from_numpy(frames).permute(0, 3, 1, 2)`` first. Functions that only touch
the last three axes also accept any leading axes `(..., C, H, W)`; each says so.

Randomness: `build_train_transform` draws every random parameter (crop box, flip,
rotation angle, colour factors, grayscale) ONCE per clip, so all frames of a clip
get the same change; only the Gaussian noise differs from pixel to pixel. The
random ops are `torchvision.transforms.v2` transforms applied to the clip wrapped
as a `torchvision.tv_tensors.Video` (v2 calls `make_params` once per call), except
grayscale (`RandomGrayscaleClip`: v2's `RandomGrayscale` leaves videos untouched in
torchvision 0.29). All draw from torch's global generator: the same
`torch.manual_seed` gives the same output. The eval transform has no randomness at all.

Training pipeline (uint8 work first, where it is cheapest), then float:
crop ("random_resized" | "scale_jitter" | "center") -> horizontal flip (p=0.5) ->
rotation -> colour jitter -> random grayscale -> [0,1] float -> Gaussian noise ->
normalise. Eval pipeline: resize the shorter side -> centre crop or three crops ->
[0,1] float -> normalise. Clips smaller than the crop are resized up first.

Errors: a bad `TransformConfig` raises `vidlens.errors.ConfigError`; a tensor of the
wrong shape or dtype raises `ValueError`/`TypeError` (a programming error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vidlens.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TRAIN_CROPS = ("random_resized", "scale_jitter", "center")
TEST_CROPS = ("center", "three")
# Eval resize for centre crops when `resize` is not given: the usual 1.14 (~ 1/0.875) ratio.
EVAL_RESIZE_RATIO = 1.14


# ---------------------------------------------------------------- configuration


def _pair(name: str, value: Any, kind: type) -> tuple:
    try:
        items = tuple(value)
    except TypeError:
        raise ConfigError(None, f"{name} must be a pair, got {value!r}") from None
    if len(items) != 2:
        raise ConfigError(None, f"{name} must be a pair, got {value!r}")
    try:
        return tuple(kind(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(None, f"{name} must hold numbers, got {value!r}") from None


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        items = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(None, f"{name} must be three numbers (R, G, B), got {value!r}") from None
    if len(items) != 3:
        raise ConfigError(None, f"{name} must be three numbers (R, G, B), got {value!r}")
    return items  # type: ignore[return-value]


@dataclass
class TransformConfig:
    """How clips are cropped, augmented and normalised. Validated on construction (`ConfigError`).

    `size`: output crop side (square). `resize`: eval shorter side before cropping;
    None = ``round(size * 1.14)`` for a centre crop and `size` for three crops (the
    crops then span the whole long side, as in SlowFast/MMAction2 three-crop testing);
    also used by the "center" training crop. `crop`: training crop. `crop_scale`: area
    range of "random_resized". `jitter_range`: "scale_jitter" draws the shorter side
    from this inclusive range, then crops at random; None = ``(round(size*8/7),
    round(size*10/7))`` (256-320 for 224, the SlowFast default). `hflip`: random
    horizontal flips (switch off where left/right matters). `rotation`: max degrees.
    `color_jitter`: brightness/contrast/saturation strength, hue = strength/4.
    `noise_std`: Gaussian noise on [0,1] floats. `grayscale_p`: probability of
    grayscale (3 channels kept). `mean`/`std`: per-channel normalisation.
    `test_crop`: "center" (1 view) or "three" (3 views).
    """

    size: int = 112
    resize: int | None = None
    crop: Literal["random_resized", "scale_jitter", "center"] = "random_resized"
    crop_scale: tuple[float, float] = (0.35, 1.0)
    jitter_range: tuple[int, int] | None = None
    hflip: bool = True
    rotation: float = 0.0
    color_jitter: float = 0.0
    noise_std: float = 0.0
    grayscale_p: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    test_crop: Literal["center", "three"] = "center"

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ConfigError(None, f"size must be a positive integer, got {self.size!r}")
        if self.resize is not None:
            if isinstance(self.resize, bool) or not isinstance(self.resize, int) or self.resize < self.size:
                raise ConfigError(None, f"resize must be an integer >= size ({self.size}), got {self.resize!r}")
        if self.crop not in TRAIN_CROPS:
            raise ConfigError(None, f"crop must be one of {TRAIN_CROPS}, got {self.crop!r}")
        if self.test_crop not in TEST_CROPS:
            raise ConfigError(None, f"test_crop must be one of {TEST_CROPS}, got {self.test_crop!r}")
        lo, hi = self.crop_scale = _pair("crop_scale", self.crop_scale, float)
        if not 0 < lo <= hi <= 1:
            raise ConfigError(None, f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.jitter_range is not None:
            jlo, jhi = self.jitter_range = _pair("jitter_range", self.jitter_range, int)
            if not self.size <= jlo <= jhi:
                raise ConfigError(
                    None, f"jitter_range must satisfy size ({self.size}) <= low <= high, got {self.jitter_range}"
                )
        self.hflip = bool(self.hflip)
        for name, low, high in (
            ("rotation", 0.0, 180.0),
            ("color_jitter", 0.0, 2.0),
            ("noise_std", 0.0, math.inf),
            ("grayscale_p", 0.0, 1.0),
        ):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ConfigError(None, f"{name} must be a number, got {value!r}") from None
            if not low <= value <= high:
                raise ConfigError(None, f"{name} must lie in [{low}, {high}], got {value}")
            setattr(self, name, value)
        self.mean = _triple("mean", self.mean)
        self.std = _triple("std", self.std)
        if min(self.std) <= 0:
            raise ConfigError(None, f"std must be positive, got {self.std}")

    @property
    def eval_resize(self) -> int:
        """The shorter side the eval transform resizes to before cropping."""
        if self.resize is not None:
            return self.resize
        if self.test_crop == "three":
            return self.size
        return max(self.size, round(self.size * EVAL_RESIZE_RATIO))

    @property
    def scale_jitter_range(self) -> tuple[int, int]:
        """The shorter-side range "scale_jitter" draws from (resolved default)."""
        if self.jitter_range is not None:
            return self.jitter_range
        return round(self.size * 8 / 7), round(self.size * 10 / 7)

    def to_dict(self) -> dict[str, Any]:
        """Plain built-in types (tuples as lists), for checkpoints and YAML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransformConfig:
        """Inverse of `to_dict`; unknown keys raise `ConfigError`, missing keys take defaults."""
        if not isinstance(d, dict):
            raise ConfigError(None, f"transform config must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(None, f"unknown transform option(s): {', '.join(map(str, unknown))}")
        return cls(**d)


# ---------------------------------------------------------------- checks


def _check_tensor(clip: Any, fn: str, min_dim: int = 3) -> None:
    if not isinstance(clip, Tensor):
        raise TypeError(f"{fn}: expected a torch.Tensor, got {type(clip).__name__}")
    if clip.ndim < min_dim:
        raise ValueError(f"{fn}: expected at least {min_dim} dims (..., C, H, W), got shape {tuple(clip.shape)}")


def _check_clip(clip: Any, fn: str, channels: int | None = None) -> None:
    """A `(T,C,H,W)` clip; with a hint when it looks channels-last, as `io` decodes."""
    _check_tensor(clip, fn, 4)
    if clip.ndim != 4:
        raise ValueError(f"{fn}: expected a clip (T,C,H,W), got shape {tuple(clip.shape)}")
    if channels is not None and clip.shape[1] != channels:
        hint = " (looks like (T,H,W,C): use clip.permute(0, 3, 1, 2))" if clip.shape[-1] == channels else ""
        raise ValueError(f"{fn}: expected {channels} channels in a (T,C,H,W) clip, got shape {tuple(clip.shape)}{hint}")


def _check_float(clip: Tensor, fn: str) -> None:
    if not clip.is_floating_point():
        raise TypeError(f"{fn}: expected a float tensor, got {clip.dtype} (use to_float first)")


def _plain(x: Tensor) -> Tensor:
    """Drop a tv_tensors subclass, so callers get an ordinary tensor back."""
    return x.as_subclass(Tensor) if type(x) is not Tensor else x


# ---------------------------------------------------------------- plain functions


def to_float(clip: Tensor) -> Tensor:
    """`(..., C, H, W)` -> float32 in [0, 1]: integer clips are scaled by their dtype's max
    (uint8 / 255); float clips are assumed in [0, 1] already and only cast to float32."""
    _check_tensor(clip, "to_float", 1)
    return _plain(F.to_dtype(_plain(clip), torch.float32, scale=True))


def _stats(clip: Tensor, values: Sequence[float], name: str) -> Tensor:
    if len(values) != clip.shape[-3]:
        raise ValueError(f"{name} has {len(values)} values but the clip has {clip.shape[-3]} channels")
    return torch.as_tensor(values, dtype=clip.dtype, device=clip.device).view(-1, 1, 1)


def normalize(clip: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """`(..., C, H, W)` float -> ``(clip - mean) / std`` per channel (a new tensor)."""
    _check_tensor(clip, "normalize")
    _check_float(clip, "normalize")
    return (clip - _stats(clip, mean, "mean")) / _stats(clip, std, "std")


def denormalize(clip: Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Tensor:
    """Inverse of `normalize`: `(..., C, H, W)` float -> ``clip * std + mean`` (not clamped)."""
    _check_tensor(clip, "denormalize")
    _check_float(clip, "denormalize")
    return clip * _stats(clip, std, "std") + _stats(clip, mean, "mean")


def grayscale(clip: Tensor) -> Tensor:
    """`(..., 3, H, W)` RGB -> the same shape and dtype, all three channels the ITU-R 601 luma."""
    _check_tensor(clip, "grayscale")
    if clip.shape[-3] != 3:
        raise ValueError(f"grayscale: expected 3 channels at dim -3, got shape {tuple(clip.shape)}")
    return _plain(F.rgb_to_grayscale(_plain(clip), num_output_channels=3))


def frame_differences(clip: Tensor) -> Tensor:
    """`(T,C,H,W)` -> float32 `(T,C,H,W)` signed differences ``out[t] = x[t] - x[t-1]``, ``out[0] = 0``.

    ``x = to_float(clip)``, so a uint8 clip gives differences in [-1, 1]. The first
    frame has no predecessor: its difference is all zeros, which keeps T unchanged.
    """
    _check_clip(clip, "frame_differences")
    x = to_float(clip)
    out = torch.zeros_like(x)
    out[1:] = x[1:] - x[:-1]
    return out


def hflip(clip: Tensor) -> Tensor:
    """`(..., C, H, W)` -> mirrored left-right (along W), every frame."""
    _check_tensor(clip, "hflip")
    return clip.flip(-1)


def add_gaussian_noise(
    clip: Tensor, std: float, generator: torch.Generator | None = None, *, clamp: bool = True
) -> Tensor:
    """`(..., C, H, W)` + independent N(0, std^2) noise per pixel, as float32 on the [0, 1] scale.

    Integer clips are converted with `to_float` first. `clamp`: keep the result in
    [0, 1]. `generator`: a `torch.Generator` (None = torch's global one).
    """
    _check_tensor(clip, "add_gaussian_noise", 1)
    if not std >= 0:
        raise ValueError(f"add_gaussian_noise: std must be >= 0, got {std}")
    x = to_float(clip)
    if std == 0:
        return x.clone()
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    out = x + std * noise
    return out.clamp_(0.0, 1.0) if clamp else out


def _upsize_to(clip: Tensor, size: int) -> Tensor:
    """Resize so that both sides are at least `size` (shorter side -> size); unchanged if already."""
    if min(clip.shape[-2:]) >= size:
        return clip
    return _plain(F.resize(_plain(clip), [size], antialias=True))


def center_crop(clip: Tensor, size: int) -> Tensor:
    """`(..., C, H, W)` -> `(..., C, size, size)`, the middle square (resized up first if smaller)."""
    _check_tensor(clip, "center_crop")
    clip = _upsize_to(clip, size)
    h, w = clip.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return clip[..., top : top + size, left : left + size]


def three_crop(clip: Tensor, size: int) -> Tensor:
    """`(T,C,H,W)` -> `(3,T,C,size,size)`: three squares along the long side, as in SlowFast testing.

    Landscape (W >= H): left, centre, right, vertically centred; portrait: top, centre,
    bottom, horizontally centred. The first and last crops touch the frame's edges,
    so with the shorter side equal to `size` the three crops cover the whole frame.
    A clip smaller than `size` is resized up (shorter side = size) first.
    """
    _check_clip(clip, "three_crop")
    if size <= 0:
        raise ValueError(f"three_crop: size must be positive, got {size}")
    clip = _upsize_to(clip, size)
    h, w = clip.shape[-2:]
    if w >= h:
        top = (h - size) // 2
        boxes = [(top, left) for left in (0, (w - size) // 2, w - size)]
    else:
        left = (w - size) // 2
        boxes = [(top, left) for top in (0, (h - size) // 2, h - size)]
    return torch.stack([clip[..., t : t + size, l : l + size] for t, l in boxes])


# ---------------------------------------------------------------- pipelines


class RandomGrayscaleClip:
    """With probability `p` (one draw per clip, torch's global generator), `grayscale` the whole clip.

    Stands in for `v2.RandomGrayscale`, which in torchvision 0.29 returns a
    `tv_tensors.Video` unchanged: `rgb_to_grayscale` has no Video kernel, so v2
    passes videos through silently (tests/data/test_transforms.py checks this).
    """

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def __call__(self, clip: Tensor) -> Tensor:
        if torch.rand(1).item() >= self.p:
            return clip
        gray = grayscale(clip)
        return tv_tensors.wrap(gray, like=clip) if isinstance(clip, tv_tensors.TVTensor) else gray

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class _ClipTransform:
    def __init__(self, cfg: TransformConfig) -> None:
        if not isinstance(cfg, TransformConfig):
            raise ConfigError(None, f"expected a TransformConfig, got {type(cfg).__name__}")
        self.cfg = cfg

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg})"


class TrainTransform(_ClipTransform):
    """uint8 (or [0,1] float) `(T,C,H,W)` RGB -> float32 normalised `(T,C,size,size)`.

    Random parameters are drawn once per call, from torch's global generator.
    Picklable (DataLoader workers).
    """

    def __init__(self, cfg: TransformConfig) -> None:
        super().__init__(cfg)
        ops: list = []  # v2 transforms, plus RandomGrayscaleClip
        if cfg.crop == "random_resized":
            ops.append(v2.RandomResizedCrop((cfg.size, cfg.size), scale=cfg.crop_scale, antialias=True))
        elif cfg.crop == "scale_jitter":
            lo, hi = cfg.scale_jitter_range
            ops += [v2.RandomShortestSize(list(range(lo, hi + 1)), antialias=True), v2.RandomCrop(cfg.size)]
        else:
            ops += [v2.Resize(cfg.eval_resize, antialias=True), v2.CenterCrop(cfg.size)]
        if cfg.hflip:
            ops.append(v2.RandomHorizontalFlip(p=0.5))
        if cfg.rotation > 0:
            ops.append(v2.RandomRotation(cfg.rotation, interpolation=v2.InterpolationMode.BILINEAR))
        if cfg.color_jitter > 0:
            s = cfg.color_jitter
            ops.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(s / 4, 0.5)))
        if cfg.grayscale_p > 0:
            ops.append(RandomGrayscaleClip(cfg.grayscale_p))
        self.spatial = v2.Compose(ops)

    def __call__(self, clip: Tensor) -> Tensor:
        _check_clip(clip, "train transform", channels=3)
        x = _plain(self.spatial(tv_tensors.Video(clip)))
        x = to_float(x)
        if self.cfg.noise_std > 0:
            x = add_gaussian_noise(x, self.cfg.noise_std)
        return normalize(x, self.cfg.mean, self.cfg.std)


class EvalTransform(_ClipTransform):
    """uint8 (or [0,1] float) `(T,C,H,W)` RGB -> float32 normalised `(V,T,C,size,size)`.

    Deterministic: resize the shorter side to `cfg.eval_resize`, then V = 1 centre
    crop or V = 3 crops along the long side (`three_crop`).
    """

    def __call__(self, clip: Tensor) -> Tensor:
        _check_clip(clip, "eval transform", channels=3)
        x = _plain(F.resize(tv_tensors.Video(clip), [self.cfg.eval_resize], antialias=True))
        views = three_crop(x, self.cfg.size) if self.cfg.test_crop == "three" else center_crop(x, self.cfg.size)[None]
        return normalize(to_float(views), self.cfg.mean, self.cfg.std)


def build_train_transform(cfg: TransformConfig) -> TrainTransform:
    """The training transform for `cfg`: uint8 `(T,C,H,W)` -> float32 normalised `(T,C,size,size)`."""
    return TrainTransform(cfg)


def build_eval_transform(cfg: TransformConfig) -> EvalTransform:
    """The eval transform for `cfg`: uint8 `(T,C,H,W)` -> float32 `(V,T,C,size,size)`, V = 1 or 3."""
    return EvalTransform(cfg)
