"""Every registered model on a tiny input: shapes, no NaN, gradients reach every trainable parameter."""

from __future__ import annotations

import json

import pytest
import torch

from vidlens.errors import ConfigError
from vidlens.models import MODELS, VideoModel, build_model, model_names, resolved_args
from tests.models import one_thread  # noqa: F401  (autouse fixture)

_FRAME = {"encoder": "small_cnn", "width": 0.25}
# Tiny settings per model, and the input size (T, H, W) to run it on.
TINY: dict[str, tuple[dict, tuple[int, int, int]]] = {
    "tsn": (_FRAME, (8, 64, 64)),
    "tsn_max": (_FRAME, (8, 64, 64)),
    "lstm": ({**_FRAME, "hidden": 16, "layers": 2}, (8, 64, 64)),
    "gru": ({**_FRAME, "hidden": 16, "bidirectional": False}, (8, 64, 64)),
    "transformer": ({**_FRAME, "dim": 32, "heads": 4, "layers": 1, "max_len": 4}, (8, 64, 64)),
    "tconv": ({**_FRAME, "hidden": 16}, (8, 64, 64)),
    "c3d": ({"width": 0.25}, (8, 64, 64)),
    "r3d_18": ({"width": 0.25}, (8, 64, 64)),
    "mc3_18": ({"width": 0.25}, (8, 64, 64)),
    "r2plus1d_18": ({"width": 0.25}, (8, 64, 64)),
    "s3d": ({}, (8, 32, 32)),
    "mvit_v2_s": ({"spatial_size": 32, "temporal_size": 4, "stochastic_depth": 0.0}, (4, 32, 32)),
    "swin3d_t": ({"embed_dim": 24, "depths": [1, 1, 1, 1], "stochastic_depth": 0.0}, (8, 64, 64)),
}

# Parameters that never get a gradient, by the architecture's design (torchvision's MViT too): MViT
# classifies from the class token, and the last block's query pooling and relative-position tables act
# only on patch-token queries, whose outputs are then discarded.
NO_GRAD_BY_DESIGN = {"mvit_v2_s": ("net.blocks.15.attn.rel_pos_", "net.blocks.15.attn.pool_q.pool.")}


def test_every_model_has_tiny_settings():
    assert set(TINY) == set(model_names())


@pytest.mark.parametrize("name", model_names())
def test_smoke(name):
    torch.manual_seed(0)
    args, (t, h, w) = TINY[name]
    model = build_model(name, 5, **args)
    assert isinstance(model, VideoModel)
    assert model.num_classes == 5 and model.multi_label is False
    x = torch.randn(2, t, 3, h, w)
    model.train()
    logits = model(x)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.float().pow(2).mean().backward()
    for pname, p in model.named_parameters():
        if not p.requires_grad or pname.startswith(NO_GRAD_BY_DESIGN.get(name, ("-",))):
            continue
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: all-zero gradient for {pname}"
    model.eval()
    with torch.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, model.feature_dim)
        assert torch.isfinite(feats).all()
        assert torch.allclose(model.classify(feats), model(x), atol=1e-5)


@pytest.mark.parametrize("name", model_names())
def test_resolved_args_round_trip(name):
    args = resolved_args(name, **TINY[name][0])
    assert set(args) == set(MODELS[name].defaults)
    assert json.loads(json.dumps(args)) == args  # JSON/YAML-able as stored in checkpoints
    with torch.device("meta"):
        a = build_model(name, 3, **TINY[name][0])
        b = build_model(name, 3, **args)
    assert a.model_args == args and b.model_args == args and a.model_name == name
    assert {k: tuple(v.shape) for k, v in a.state_dict().items()} == {k: tuple(v.shape) for k, v in b.state_dict().items()}


@pytest.mark.parametrize("name", model_names())
def test_multi_label_flag(name):
    with torch.device("meta"):
        model = build_model(name, 3, multi_label=True, **TINY[name][0])
    assert model.multi_label is True and model.model_args["multi_label"] is True


def test_config_errors():
    with pytest.raises(ConfigError, match="valid models: tsn"):
        build_model("nope", 3)
    with pytest.raises(ConfigError, match="no argument.*colour"):
        build_model("tsn", 3, colour="red")
    with pytest.raises(ConfigError, match="width"):
        build_model("c3d", 3, width="wide")
    with pytest.raises(ConfigError, match="unknown encoder 'vgg'.*small_cnn"):
        build_model("gru", 3, encoder="vgg")
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("tsn", 0)
    with pytest.raises(ConfigError, match="divisible"):
        build_model("transformer", 3, dim=30, heads=4)
    with pytest.raises(ConfigError, match="kinetics400"):
        build_model("r3d_18", 3, weights="imagenet")
    with pytest.raises(ConfigError, match="width 1.0"):
        build_model("r3d_18", 3, width=0.5, weights="kinetics400")
    with pytest.raises(ConfigError, match="no width multiplier"):
        build_model("tsn", 3, encoder="resnet18", width=0.5)
    with pytest.raises(ConfigError, match="pretrained"):
        build_model("tsn", 3, pretrained="imagenet")  # small_cnn has no ImageNet weights
