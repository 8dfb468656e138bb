from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.engine import TinyVideoNet
from vidlens.engine import TrainConfig
from vidlens.engine.optim import LRSchedule, ModelEMA, build_optimizer, param_groups
from vidlens.errors import ConfigError


def _lrs(cfg: TrainConfig, steps_per_epoch: int, mode: str = "max",
         observe: dict[int, float] | None = None) -> list[float]:
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg)
    sched = LRSchedule(opt, cfg, steps_per_epoch, mode)
    out = []
    for step in range(steps_per_epoch * cfg.epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if observe and (step + 1) % steps_per_epoch == 0:
            sched.observe(observe[(step + 1) // steps_per_epoch])
    return out


def test_cosine_with_linear_warmup_values():
    cfg = TrainConfig(epochs=5, lr=0.1, min_lr=0.001, warmup_epochs=1, scheduler="cosine")
    lrs = _lrs(cfg, steps_per_epoch=4)  # 20 steps, 4 of warm-up
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    for step in range(4, 20):
        t = (step - 4) / 16
        assert lrs[step] == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * t)))
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # monotone decay after warm-up
    assert min(lrs) >= 0.001


def test_step_schedule_decays_every_step_size_epochs():
    cfg = TrainConfig(epochs=6, lr=1.0, scheduler="step", step_size=2, gamma=0.5, optimizer="sgd")
    lrs = _lrs(cfg, steps_per_epoch=3)
    assert lrs == pytest.approx([1.0] * 6 + [0.5] * 6 + [0.25] * 6)


def test_plateau_decays_after_patience_on_the_monitored_metric():
    cfg = TrainConfig(epochs=6, lr=1.0, scheduler="plateau", plateau_patience=1, gamma=0.1, min_lr=0.05)
    # epoch: metric (max mode): improves at 1, 2; flat at 3 (1 bad), 4 (2 bad -> decay); 5 (1 bad), 6 (2 bad -> decay)
    lrs = _lrs(cfg, steps_per_epoch=2, observe={1: 0.5, 2: 0.6, 3: 0.6, 4: 0.55, 5: 0.6, 6: 0.1})
    assert lrs == pytest.approx([1.0] * 8 + [0.1] * 4)
    min_mode = _lrs(cfg, steps_per_epoch=1, mode="min", observe={1: 1.0, 2: 0.5, 3: 0.9, 4: 0.9, 5: 0.9, 6: 0.9})
    assert min_mode == pytest.approx([1.0] * 4 + [0.1, 0.1])


def test_scheduler_state_round_trip_resumes_the_curve():
    cfg = TrainConfig(epochs=4, lr=0.1, warmup_epochs=1)
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg)
    sched = LRSchedule(opt, cfg, 5)
    for _ in range(7):
        sched.step()
    again = LRSchedule(build_optimizer(model, cfg), cfg, 5)
    again.load_state_dict(sched.state_dict())
    assert again.get_last_lr() == pytest.approx(sched.get_last_lr())


def test_param_groups_no_decay_for_bias_and_norm_and_frozen_excluded():
    model = TinyVideoNet()
    model.conv.weight.requires_grad_(False)  # a frozen part
    groups = param_groups(model, 0.05)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decay == {id(model.head.weight)}
    assert no_decay == {id(model.conv.bias), id(model.norm.weight), id(model.norm.bias), id(model.head.bias)}
    for name in ("sgd", "adam", "adamw", "rmsprop"):
        opt = build_optimizer(model, TrainConfig(optimizer=name, lr=0.01))
        assert id(model.conv.weight) not in {id(p) for g in opt.param_groups for p in g["params"]}
    sgd = build_optimizer(model, TrainConfig(optimizer="sgd", nesterov=True, momentum=0.8))
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.8
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        param_groups(model, 0.0)


def test_ema_follows_the_formula_and_copies_integer_buffers():
    model = TinyVideoNet()
    ema = ModelEMA(model, decay=0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.norm.num_batches_tracked += 3
    ema.update(model)
    d = min(0.9, 2 / 11)
    for name, value in ema.module.state_dict().items():
        if value.dtype.is_floating_point:
            expected = d * start[name] + (1 - d) * model.state_dict()[name]
            assert torch.allclose(value, expected, atol=1e-6), name
    assert int(ema.module.norm.num_batches_tracked) == 3
    assert not any(p.requires_grad for p in ema.module.parameters())
