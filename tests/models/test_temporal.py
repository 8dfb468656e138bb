"""Temporal heads and the frame-encoder + head composite."""

from __future__ import annotations

import pytest
import torch

from vidlens.models import build_model
from vidlens.models.temporal import FrameTemporalModel, TransformerHead, build_head
from tests.models import one_thread  # noqa: F401  (autouse fixture)

SMALL = {"encoder": "small_cnn", "width": 0.25}


@pytest.mark.parametrize("kind,args", [
    ("mean", {}), ("max", {}), ("lstm", {"hidden": 8}), ("gru", {"hidden": 8, "bidirectional": False}),
    ("transformer", {"dim": 16, "heads": 2, "layers": 1}), ("tconv", {"hidden": 8, "layers": 3}),
])
@pytest.mark.parametrize("frames", [1, 5])
def test_heads_shapes(kind, args, frames):
    head = build_head(kind, 12, **args).eval()
    out = head(torch.randn(3, frames, 12))
    assert out.shape == (3, head.out_dim)
    assert torch.isfinite(out).all()


def test_mean_pooling_is_frame_averaging():
    """TSN mean consensus with a linear classifier == the average of the per-frame logits."""
    model = build_model("tsn", 4, **SMALL).eval()
    x = torch.randn(2, 6, 3, 32, 32)
    with torch.no_grad():
        per_frame = model.classify(model.frame_features(x).flatten(0, 1)).view(2, 6, 4)
        assert torch.allclose(model(x), per_frame.mean(dim=1), atol=1e-5)


@pytest.mark.parametrize("name", ["tsn", "gru", "transformer", "tconv"])
def test_head_model_shares_parameters(name):
    model = build_model(name, 4, **SMALL)
    head = model.head_model()
    model_params = {id(p) for p in model.parameters()}
    head_params = list(head.parameters())
    assert all(id(p) in model_params for p in head_params)
    assert not any(p is q for p in head_params for q in model.encoder.parameters())
    model.eval()
    head.eval()
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        frames = model.frame_features(x)
        assert frames.shape == (2, 4, model.frame_dim)
        assert torch.allclose(head(frames), model(x), atol=1e-5)
    # training the head alone changes the composite's head
    before = model.fc.weight.detach().clone()
    head.train()
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    head(frames).sum().backward()
    opt.step()
    assert not torch.equal(before, model.fc.weight)
    assert set(head.state_dict()) == {k for k in model.state_dict() if not k.startswith("encoder.")}


def test_transformer_longer_than_max_len():
    head = TransformerHead(8, dim=16, heads=2, layers=1, max_len=4).eval()
    assert head(torch.randn(2, 10, 8)).shape == (2, 16)


def test_composite_surface():
    model = build_model("lstm", 7, **SMALL, hidden=8, bidirectional=True)
    assert isinstance(model, FrameTemporalModel)
    assert model.feature_dim == 16 and model.num_classes == 7
    x = torch.randn(1, 3, 3, 48, 48)
    model.eval()
    feats = model.features(x)
    assert torch.allclose(model.features_from_frame_features(model.frame_features(x)), feats)
    assert model.classify(feats).shape == (1, 7)
    with pytest.raises(ValueError, match=r"\(B,T,C,H,W\)"):
        model(torch.randn(3, 3, 48, 48))


@pytest.mark.parametrize("name", ["tsn", "gru", "tconv"])
def test_feature_diff_appends_frame_to_frame_differences(name):
    """`feature_diff=true` (`--model-arg feature_diff=true`): the head reads [f_t, f_t - f_{t-1}]."""
    from vidlens.models import resolved_args
    from vidlens.models.temporal import with_differences

    assert resolved_args(name, **SMALL)["feature_diff"] is False
    args = resolved_args(name, **SMALL, feature_diff=True)
    model = build_model(name, 3, **args).eval()
    plain = build_model(name, 3, **SMALL)
    assert model.feature_diff and model.frame_dim == plain.frame_dim
    first = next(p for p in model.head.parameters() if p.ndim >= 2) if name != "tsn" else model.fc.weight
    if name == "tsn":  # mean pool: the classifier sees 2D features
        assert model.fc.in_features == 2 * plain.fc.in_features
    else:
        assert first.shape[-1 if name == "gru" else 1] == 2 * model.frame_dim
    f = torch.randn(2, 5, model.frame_dim)
    both = with_differences(f)
    assert both.shape == (2, 5, 2 * model.frame_dim)
    torch.testing.assert_close(both[:, :, : model.frame_dim], f)
    torch.testing.assert_close(both[:, 0, model.frame_dim :], torch.zeros(2, model.frame_dim))
    torch.testing.assert_close(both[:, 3, model.frame_dim :], f[:, 3] - f[:, 2])
    # Frames in, precomputed features in, and the head-only model all agree.
    x = torch.randn(2, 5, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model(model.frame_features(x)), logits)
        torch.testing.assert_close(model.head_model().eval()(model.frame_features(x)), logits)
    # A still clip (every frame the same) has zero differences: its mean-pooled features are [f, 0].
    if name == "tsn":
        still = x[:, :1].expand(-1, 5, -1, -1, -1)
        feats = model.features(still)
        torch.testing.assert_close(feats[:, model.frame_dim :], torch.zeros(2, model.frame_dim))
    # Gradients reach every parameter.
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_feature_diff_must_be_a_bool():
    from vidlens.errors import ConfigError
    from vidlens.models import resolved_args

    with pytest.raises(ConfigError, match="feature_diff must be true/false"):
        resolved_args("tsn", feature_diff="yes")
