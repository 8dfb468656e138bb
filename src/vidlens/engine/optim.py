"""Optimizers, learning-rate schedules and the EMA of weights used by `fit`.

- `build_optimizer`: SGD (momentum, Nesterov), Adam, AdamW, RMSprop over the trainable
  parameters only (frozen encoders, `requires_grad=False`, are left out). Weight decay
  applies to weights only: biases and normalisation parameters (every parameter with
  fewer than 2 dimensions) go to a group without decay.
- `LRSchedule`: linear warm-up then cosine / step / plateau decay, floored at `min_lr`,
  stepped once per optimizer step (`plateau` also reads the monitored metric after each
  evaluation). Its state is a dict of numbers, so it resumes exactly.
- `ModelEMA`: exponential moving average of the weights (float parameters and buffers),
  with the usual bias-free warm-up of the decay.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from vidlens.engine.config import TrainConfig
from vidlens.errors import ConfigError


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: with decay (>= 2-D weights) and without (biases, norms)."""
    decay, no_decay, seen = [], [], set()
    for _, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if not groups:
        raise ConfigError(None, "the model has no trainable parameters (all have requires_grad=False)")
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ConfigError(None, f"unknown optimizer {cfg.optimizer!r}")


class LRSchedule:
    """Learning rate per optimizer step: warm-up x decay, never below `min_lr` after warm-up.

    - warm-up: `lr * (step + 1) / warmup_steps` for the first `warmup_steps` steps;
    - cosine: `min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2`, `t` from 0 (end of warm-up)
      to 1 (last step of training);
    - step: `lr * gamma ** (epoch_of_step // step_size)`, floored at `min_lr`;
    - plateau: `lr * gamma ** decays`, one decay after `plateau_patience` evaluations without
      improvement of the monitored metric, floored at `min_lr`;
    - none: constant `lr` (after warm-up).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                 mode: str = "max") -> None:
        self.optimizer = optimizer
        self.kind = cfg.scheduler
        self.base_lrs = [cfg.lr for _ in optimizer.param_groups]
        self.min_lr = cfg.min_lr
        self.gamma = cfg.gamma
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.warmup_steps = int(round(cfg.warmup_epochs * self.steps_per_epoch))
        self.decay_every = cfg.step_size * self.steps_per_epoch
        self.patience = cfg.plateau_patience
        self.mode = mode
        self.step_count = 0
        self.decays = 0  # plateau
        self.best: float | None = None
        self.bad_evals = 0
        self._apply()

    def factor(self, step: int) -> float:
        """Multiplier of the base lr at optimizer step `step` (0-based), before the `min_lr` floor."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            t = min(1.0, (step - self.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.kind == "step":
            return self.gamma ** (step // self.decay_every)
        if self.kind == "plateau":
            return self.gamma**self.decays
        return 1.0

    def lr_at(self, step: int, base: float) -> float:
        f = self.factor(step)
        if step < self.warmup_steps:
            return base * f
        if self.kind == "cosine":
            low = min(self.min_lr, base)
            return low + (base - low) * f
        return max(base * f, min(self.min_lr, base)) if self.kind in ("step", "plateau") else base * f

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = self.lr_at(self.step_count, base)

    def step(self) -> None:
        """After each optimizer step."""
        self.step_count += 1
        self._apply()

    def observe(self, value: float) -> None:
        """After each evaluation: the monitored metric (only `plateau` uses it)."""
        if self.kind != "plateau" or value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.bad_evals = float(value), 0
            return
        self.bad_evals += 1
        if self.bad_evals > self.patience:
            self.decays += 1
            self.bad_evals = 0
            self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step_count": self.step_count, "decays": self.decays,
                "best": self.best, "bad_evals": self.bad_evals, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])
        self.decays = int(state["decays"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_evals = int(state["bad_evals"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()


class ModelEMA:
    """`ema = decay * ema + (1 - decay) * weights` after every optimizer step.

    The effective decay warms up as `min(decay, (1 + n) / (10 + n))` (n = updates so far)
    so early averages are not dominated by the random initial weights. Integer buffers
    (e.g. BatchNorm's `num_batches_tracked`) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)
        self.updates = 0
        self._cache: tuple[nn.Module, tuple] | None = None

    def _float_pairs(self, model: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor], list[tuple]]:
        ema_state = self.module.state_dict(keep_vars=True)
        floats_ema, floats_src, others = [], [], []
        for name, src in model.state_dict(keep_vars=True).items():
            dst = ema_state[name]
            if dst.dtype.is_floating_point:
                floats_ema.append(dst.data)
                floats_src.append(src.detach())
            else:
                others.append((dst.data, src.detach()))
        return floats_ema, floats_src, others

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        if self._cache is None or self._cache[0] is not model:
            self._cache = (model, self._float_pairs(model))
        floats_ema, floats_src, others = self._cache[1]
        if floats_ema:
            torch._foreach_lerp_(floats_ema, floats_src, 1.0 - decay)
        for dst, src in others:
            dst.copy_(src)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
