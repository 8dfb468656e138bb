from __future__ import annotations

import dataclasses

import pytest
import yaml

from vidlens.engine import TrainConfig
from vidlens.errors import ConfigError


def test_defaults_match_the_documented_surface():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.workers, cfg.seed) == (10, 8, 2, 0)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov) == ("adamw", 1e-3, 1e-4, 0.9, False)
    assert (cfg.scheduler, cfg.warmup_epochs, cfg.step_size, cfg.gamma, cfg.min_lr) == ("cosine", 0.0, 10, 0.1, 0.0)
    assert (cfg.amp, cfg.accumulate, cfg.clip_grad_norm, cfg.ema_decay) == ("off", 1, 0.0, 0.0)
    assert (cfg.device, cfg.log_every, cfg.eval_every, cfg.max_steps_per_epoch) == ("auto", 10, 1, 0)
    assert (cfg.early_stopping_patience, cfg.balanced_sampler, cfg.label_smoothing) == (0, False, 0.0)
    assert (cfg.max_bad_batches, cfg.plateau_patience) == (10, 2)


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(epochs=3, optimizer="sgd", nesterov=True, lr=0.05, amp="bf16", device="cpu", warmup_epochs=0.5)
    path = cfg.save_yaml(tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(path.read_text())["optimizer"] == "sgd"
    assert TrainConfig.load_yaml(path) == cfg
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert set(cfg.to_dict()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_values_from_yaml_and_cli_strings_are_coerced(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nepochs: '5'\nnesterov: 'yes'\noptimizer: sgd\n"
                    "balanced_sampler: 'off'\nwarmup_epochs: 1\n")
    cfg = TrainConfig.load_yaml(path)
    assert cfg.lr == pytest.approx(1e-3) and isinstance(cfg.lr, float)
    assert cfg.epochs == 5 and cfg.nesterov is True and cfg.balanced_sampler is False
    assert isinstance(cfg.warmup_epochs, float)


@pytest.mark.parametrize("bad", [
    {"optimizer": "lamb"}, {"scheduler": "poly"}, {"amp": "fp8"}, {"epochs": 0}, {"lr": -1.0},
    {"accumulate": 0}, {"ema_decay": 1.0}, {"gamma": 0.0}, {"epochs": 2.5}, {"device": "tpu"},
    {"nesterov": True, "optimizer": "adam"}, {"batch_size": "eight"}, {"label_smoothing": 1.0},
])
def test_bad_values_raise_config_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(bad)


def test_unknown_keys(tmp_path):
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert TrainConfig.from_dict({"learning_rate": 0.1, "lr": 0.2}, strict=False).lr == 0.2
    path = tmp_path / "bad.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        TrainConfig.load_yaml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.load_yaml(tmp_path / "missing.yaml")


def test_unknown_attributes_and_keys_are_rejected_with_the_valid_names(tmp_path):
    cfg = TrainConfig()
    with pytest.raises(ConfigError, match=r"no setting 'epoch'.*valid: epochs, steps, min_steps"):
        cfg.epoch = 3  # a typo is an error, not a silent no-op
    assert cfg.epochs == 10
    cfg.epochs = 3  # real fields stay settable
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown training option\(s\): learning_rate; valid: epochs, .*\blr\b"):
        TrainConfig.load_yaml(path)


def test_step_and_selection_options_are_checked():
    cfg = TrainConfig(steps="300", min_steps=50, select_by="loss", min_val_size=10)
    assert (cfg.steps, cfg.min_steps, cfg.select_by, cfg.min_val_size) == (300, 50, "loss", 10)
    assert TrainConfig().select_by == "auto" and TrainConfig().steps == TrainConfig().min_steps == 0
    with pytest.raises(ConfigError, match="steps must be >= 0"):
        TrainConfig(steps=-1)
    with pytest.raises(ConfigError, match="select_by must be one of auto, metric, loss"):
        TrainConfig(select_by="top1")
