"""`RecognitionConfig`: one action-recognition run, from data to model to training, as a dataclass.

Every field is a `vidlens train` flag of the same name (dashes for underscores) and a key of
`RUN_DIR/config.yaml`; the training loop's own settings live in the nested `train`
(`vidlens.engine.TrainConfig`).
"""

from __future__ import annotations

import os

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from vidlens.data.samplers import SamplerConfig
from vidlens.data.transforms import TransformConfig
from vidlens.engine.config import StrictFields, TrainConfig, unknown_keys_error
from vidlens.errors import ConfigError


@dataclass
class DataConfig(StrictFields):
    """Where the videos are and how they are split."""

    root: str | None = None
    layout: str = "auto"  # auto | folder | ucf101 | hmdb51 | kinetics | manifest, or "ucf101:1"
    split: int = 1  # official split number (UCF101/HMDB51)
    manifest: str | None = None  # manifest CSV/JSONL, or the Kinetics CSV
    val_frac: float = 0.1  # folder/manifest without splits: seeded stratified split
    test_frac: float = 0.1
    exclude: str | None = None  # bad_files.csv from `vidlens data scan`
    cache: str | None = None  # folder of `vidlens data cache`


@dataclass
class ClipConfig(StrictFields):
    """How clips are sampled and how they look (stored in the checkpoint for inference)."""

    # auto: tsn for frame+temporal models (segments over the whole trimmed clip), clip for 3D CNNs
    # (dense consecutive frames); resolved when training starts, the checkpoint stores the mode used.
    sampler: str = "auto"  # auto | clip | uniform | tsn
    clip_len: int = 16
    stride: int = 2
    fps: float | None = None  # resample videos to this rate first (None: native)
    test_clips: int = 3  # views averaged per video at test time (clips; tsn/uniform: segment offsets)
    test_crop: str = "center"  # center | three
    short_video: str = "loop"
    size: int = 112
    decode_size: int | None = None  # shorter side frames are decoded at (default: size * 8/7)
    crop: str = "random_resized"
    crop_scale: tuple[float, float] = (0.35, 1.0)
    hflip: bool | None = None  # None: on, unless the dataset says flipping changes its labels
    rotation: float = 0.0
    color_jitter: float = 0.0
    noise_std: float = 0.0
    grayscale_p: float = 0.0

    def resolved_sampler(self, model_name: str) -> str:
        """The sampling mode for `model_name`: `sampler`, with "auto" made concrete."""
        if self.sampler != "auto":
            return self.sampler
        from vidlens.models.registry import MODELS

        entry = MODELS.get(model_name)
        return "tsn" if entry is not None and entry.family == "frame+temporal" else "clip"

    def sampler_config(self, model_name: str | None = None) -> SamplerConfig:
        mode = self.resolved_sampler(model_name or "") if self.sampler == "auto" else self.sampler
        return SamplerConfig(mode=mode, clip_len=self.clip_len, stride=self.stride, fps=self.fps,
                             num_clips=self.test_clips, short_video=self.short_video)

    def transform_config(self, mean: list[float], std: list[float], hflip: bool) -> TransformConfig:
        return TransformConfig(size=self.size, crop=self.crop, crop_scale=tuple(self.crop_scale), hflip=hflip,
                               rotation=self.rotation, color_jitter=self.color_jitter, noise_std=self.noise_std,
                               grayscale_p=self.grayscale_p, mean=tuple(mean), std=tuple(std), test_crop=self.test_crop)

    def resolved_decode_size(self) -> int:
        return self.decode_size or max(self.size, round(self.size * 8 / 7))


@dataclass
class ModelConfig(StrictFields):
    name: str = "gru"
    encoder: str | None = None  # frame+temporal models: small_cnn, mobilenet_v2, ...
    pretrained: str | None = None  # "imagenet" for the encoder
    freeze_encoder: bool = False
    weights: str | None = None  # "kinetics400" for torchvision 3D CNNs
    args: dict[str, Any] = field(default_factory=dict)  # any other builder argument (width, hidden, ...)
    precompute_features: bool = False  # frozen encoder: embed frames once, train only the head

    def model_args(self) -> dict[str, Any]:
        args = dict(self.args)
        for key in ("encoder", "pretrained", "weights"):
            if getattr(self, key) is not None:
                args[key] = getattr(self, key)
        if self.freeze_encoder:
            args["freeze_encoder"] = True
        return args


@dataclass
class RecognitionConfig(StrictFields):
    out: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    class_weights: bool = False  # inverse-frequency weights in the loss
    multi_label: bool | None = None  # None: detect from the labels
    test_split: str = "test"  # evaluated after training with the best checkpoint ("none" to skip)
    # Precomputed features (only a head trains): options left at TrainConfig's defaults take the
    # head-on-features values (workflows.recognition.HEAD_DEFAULTS); false keeps the plain defaults.
    head_defaults: bool = True
    # Training options the user set (flags, or keys of a YAML train section): head defaults never
    # replace them. How the config was given, not a setting: not saved, not compared.
    user_train_keys: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("user_train_keys")
        out["train"] = self.train.to_dict()
        out["clip"]["crop_scale"] = list(self.clip.crop_scale)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecognitionConfig:
        d = dict(d)
        parts = {"data": DataConfig, "clip": ClipConfig, "model": ModelConfig}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value = d.pop(f.name)
            if f.name in parts:
                if not isinstance(value, dict):
                    raise ConfigError(None, f"{f.name} must be a mapping of option: value (got {value!r})")
                known = [x.name for x in fields(parts[f.name])]
                unknown = sorted(set(value) - set(known), key=str)
                if unknown:
                    raise unknown_keys_error(f.name, unknown, known)
                value = parts[f.name](**value)
            elif f.name == "train":
                if isinstance(value, dict):
                    kwargs["user_train_keys"] = sorted(set(d.get("user_train_keys") or []) | set(value))
                value = TrainConfig.from_dict(value)
            kwargs[f.name] = value if f.name != "user_train_keys" else sorted(set(kwargs.get(f.name, [])) | set(value or []))
        if d:
            raise unknown_keys_error("top-level", sorted(d, key=str), [f.name for f in fields(cls)])
        return cls(**kwargs)

    def save_yaml(self, path: str | Path) -> Path:
        """Write the recipe atomically (temp file + rename): a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def load_yaml(cls, path: str | Path) -> RecognitionConfig:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(path, f"cannot read config ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(path, "a run config must be a mapping of section: options")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(path, exc.reason) from None
