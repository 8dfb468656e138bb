"""`TrainConfig`: every knob of `fit`/`evaluate`, saved as YAML beside each run.

Every field is also a CLI flag and a YAML key of the same name (DESIGN.md §3). Values
read from YAML or the command line are coerced to the field's type and checked
(choices, ranges) when the config is built; a bad value raises `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from vidlens.errors import ConfigError


class StrictFields:
    """Dataclass mixin: setting an attribute that is not a field raises `ConfigError` naming the
    valid ones (`cfg.epochs = 1` on a config whose field is `cfg.train.epochs` is a typo, not a no-op)."""

    def __setattr__(self, name: str, value: Any) -> None:
        valid = [f.name for f in fields(self)]  # type: ignore[arg-type]
        if name not in valid:
            raise ConfigError(None, f"{type(self).__name__} has no setting {name!r}; valid: {', '.join(valid)}")
        object.__setattr__(self, name, value)


def unknown_keys_error(section: str, unknown: list[str], valid: list[str]) -> ConfigError:
    """The error for unknown config keys: names them and lists the valid ones."""
    return ConfigError(None, f"unknown {section} option(s): {', '.join(map(str, unknown))}; valid: {', '.join(valid)}")


@dataclass
class TrainConfig(StrictFields):
    """How a task is trained and evaluated. Defaults suit fine-tuning a small video model."""

    epochs: int = 10
    # Optimizer steps (DESIGN: schedule by steps, not only epochs). `steps`: the run's total
    # (0 = one pass over the training set per epoch); `min_steps`: at least this many. Either
    # way the `epochs` stay the evaluation rounds, each one `total / epochs` steps long,
    # repeating the training set as often as needed (12 videos still get their updates).
    steps: int = 0
    min_steps: int = 0
    batch_size: int = 8
    workers: int = 2
    seed: int = 0
    # Optimisation.
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False
    # Learning-rate schedule (stepped per optimizer step; `plateau` per evaluation).
    scheduler: Literal["cosine", "step", "plateau", "none"] = "cosine"
    warmup_epochs: float = 0.0
    step_size: int = 10  # `step`: epochs between decays
    gamma: float = 0.1  # `step`/`plateau`: decay factor
    min_lr: float = 0.0
    plateau_patience: int = 2  # `plateau`: evaluations without improvement before a decay
    # Loss / sampling (label smoothing is applied by the task; kept here for the record).
    label_smoothing: float = 0.0
    balanced_sampler: bool = False
    # Best checkpoint: the task's metric (e.g. top1), the validation loss, or "auto": the loss when
    # the validation split has fewer than `min_val_size` items (a tiny split's accuracy jumps by
    # chance). Ties go to the later epoch either way.
    select_by: Literal["auto", "metric", "loss"] = "auto"
    min_val_size: int = 20
    # Stopping and robustness.
    early_stopping_patience: int = 0  # 0 = off; evaluations without improvement of task.monitor
    max_bad_batches: int = 10  # abort after this many failing batches in a row
    # Numerics.
    amp: Literal["off", "bf16", "fp16"] = "off"
    accumulate: int = 1
    clip_grad_norm: float = 0.0  # 0 = off
    ema_decay: float = 0.0  # 0 = off; evaluate and checkpoint the EMA weights when on
    # Running.
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 10
    eval_every: int = 1
    max_steps_per_epoch: int = 0  # 0 = all; counts optimizer steps

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        positive = ("epochs", "batch_size", "accumulate", "log_every", "eval_every", "step_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(None, f"{name} must be >= 1 (got {getattr(self, name)})")
        non_negative = ("workers", "lr", "weight_decay", "momentum", "warmup_epochs", "min_lr", "plateau_patience",
                        "early_stopping_patience", "max_bad_batches", "clip_grad_norm", "max_steps_per_epoch",
                        "steps", "min_steps", "min_val_size")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(None, f"{name} must be >= 0 (got {getattr(self, name)})")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(None, f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(None, f"ema_decay must be in [0, 1) (got {self.ema_decay})")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(None, f"gamma must be in (0, 1] (got {self.gamma})")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError(None, "nesterov needs optimizer=sgd and momentum > 0")
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise ConfigError(None, f"device must be auto, cpu, cuda or cuda:N (got {dev!r})")

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """Plain `{name: value}` (str/int/float/bool only): YAML- and `weights_only`-safe."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, *, strict: bool = True) -> TrainConfig:
        """Build from a mapping; unknown keys raise `ConfigError` unless `strict=False` (then ignored)."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names, key=str)
        if unknown and strict:
            raise unknown_keys_error("training", unknown, [f.name for f in fields(cls)])
        return cls(**{k: v for k, v in data.items() if k in names})

    def save_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write the resolved config as YAML (temp file + rename, so a crash never leaves half a file)."""
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def load_yaml(cls, path: str | os.PathLike[str], *, strict: bool = True) -> TrainConfig:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(path, "config file does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from None
        if data is not None and not isinstance(data, dict):
            raise ConfigError(path, "a training config must be a mapping of option: value")
        try:
            return cls.from_dict(data, strict=strict)
        except ConfigError as exc:
            raise ConfigError(path, exc.reason) from None


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """`value` as the field's type: YAML reads `1e-3` as a string and the CLI gives strings."""
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if str(value) not in choices:
            raise ConfigError(None, f"{name} must be one of {', '.join(choices)} (got {value!r})")
        return str(value)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool):
                raise ValueError(value)
            as_float = float(value)
            if not as_float.is_integer():
                raise ValueError(value)
            return int(as_float)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(None, f"{name} must be {kind.__name__} (got {value!r})") from None
    return value
