"""Grad-CAM sanity checks on a C3D trained here on the synthetic moving-object classes (ground truth from the generator)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vidlens.errors import ConfigError
from vidlens.models.registry import build_model
from vidlens.tasks.explain import explain_clip
from tests.tasks.explain.moving import CLASSES, accuracy, clips, fit, pointing, rank_corr

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE, T = 48, 8


@pytest.fixture(scope="module")
def c3d():
    from vidlens.testing import single_thread

    with single_thread():
        x, y, _ = clips(60, 0, SIZE, T)
        torch.manual_seed(0)
        model = fit(build_model("c3d", len(CLASSES), load_weights=False, width=0.25), x, y, epochs=6)
        xt, yt, pt = clips(16, 1, SIZE, T)
        acc = accuracy(model, xt, yt)
    assert acc >= 0.9, acc
    return model, xt, yt, pt


# Measured on these 16 test clips x 8 frames (docs/explain.md, "Sanity checks"): 0.945 with this training seed (0), but
# 0.707, 0.730 and 0.375 with training seeds 1, 2, 3 (all at test accuracy >= 0.94; an untrained C3D: 0.02-0.25):
# C3D + Grad-CAM meets the 90 % bar for seed 0, not for C3D training in general.
def test_gradcam_points_at_the_moving_object(c3d):
    model, xt, yt, pt = c3d
    assert pointing(model, xt, yt, pt) >= 0.9


def test_gradcam_plus_plus_on_5d(c3d):
    model, xt, yt, pt = c3d
    e = explain_clip(model, xt[:1], method="gradcam++")
    assert e.heat.shape == (T, SIZE, SIZE) and e.heat.dtype == np.float32
    assert 0.0 <= e.heat.min() and e.heat.max() == pytest.approx(1.0)
    assert e.temporal.shape == (T,) and e.temporal.sum() == pytest.approx(1.0, abs=1e-5)
    assert pointing(model, xt[:8], yt[:8], pt[:8], "gradcam++") >= 0.75


def test_model_randomisation_changes_heat(c3d):
    model, xt, _, _ = c3d
    rand = copy.deepcopy(model)
    torch.manual_seed(1)
    for m in rand.modules():
        if isinstance(m, (torch.nn.Conv3d, torch.nn.Linear)):
            m.reset_parameters()
    corr = [rank_corr(explain_clip(model, xt[i:i + 1]).heat, explain_clip(rand, xt[i:i + 1]).heat) for i in range(6)]
    assert np.mean(corr) < 0.5, corr


def test_target_change_changes_heat(c3d):
    model, xt, _, _ = c3d
    corr = [rank_corr(explain_clip(model, xt[i:i + 1], target=0).heat, explain_clip(model, xt[i:i + 1], target=1).heat)
            for i in range(6)]
    assert np.mean(corr) < 0.5, corr


def test_explain_leaves_model_unchanged(c3d):
    model, xt, _, _ = c3d
    model.zero_grad(set_to_none=True)  # training left gradients behind
    model.train()
    model.fc.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    try:
        e = explain_clip(model, xt[:1])
        assert e.method == "gradcam" and 0 < e.score <= 1
        assert model.training
        assert [p.requires_grad for p in model.parameters()] == flags
        assert all(p.grad is None for p in model.parameters())
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    finally:
        model.fc.weight.requires_grad_(True)
        model.eval()


def test_bad_method_family_and_target(c3d):
    model, xt, _, _ = c3d
    with pytest.raises(ConfigError, match="gradcam"):
        explain_clip(model, xt[:1], method="nope")
    with pytest.raises(ConfigError, match="gradcam"):
        explain_clip(model, xt[:1], method="attention")
    with pytest.raises(ConfigError):
        explain_clip(model, xt[:1], target=5)
    with pytest.raises(ConfigError):
        explain_clip(model, xt[:1], layer="no.such.layer")


def test_frame_temporal_and_transformer_families():
    """Every family explains: shapes, finite heat, attention curve for gru; attention ConfigError for tsn."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 64, 64)
    gru = build_model("gru", 3, load_weights=False, hidden=16).eval()
    e = explain_clip(gru, x)
    assert e.heat.shape == (4, 64, 64) and np.isfinite(e.heat).all()
    a = explain_clip(gru, x, method="attention")
    assert a.heat is None and np.allclose(a.temporal, e.temporal)
    with pytest.raises(ConfigError, match="gradcam"):
        explain_clip(build_model("tsn", 3, load_weights=False), x, method="attention")
    swin = build_model("swin3d_t", 3, load_weights=False, embed_dim=12, depths=[1, 1], num_heads=[1, 2], window_size=[2, 4, 4])
    s = explain_clip(swin, torch.randn(1, 4, 3, 32, 32), method="gradcam++")
    assert s.heat.shape == (4, 32, 32) and np.isfinite(s.heat).all()
    for model, clip in ((gru, x), (swin, torch.randn(1, 4, 3, 32, 32))):  # HiResCAM on both families too
        h = explain_clip(model, clip, method="hirescam")
        assert h.method == "hirescam" and h.heat.shape == clip.shape[1:2] + clip.shape[3:] and np.isfinite(h.heat).all()


def test_hirescam_at_a_finer_layer_points_at_the_object_well_above_an_untrained_net(c3d):
    """HiResCAM (gradient x activation per place, nothing averaged) at `stages.2`: measured 0.86 / 0.92 / 0.97 / 0.90
    over training seeds 0-3 against 0.40-0.59 for untrained nets (docs/explain.md, Sanity checks)."""
    model, xt, yt, pt = c3d
    e = explain_clip(model, xt[:1], target=int(yt[0]), method="hirescam", layer="stages.2")
    assert e.method == "hirescam" and e.notes[0].startswith("HiResCAM on stages.2")
    trained = pointing(model, xt, yt, pt, "hirescam", layer="stages.2")
    torch.manual_seed(50)
    untrained = pointing(build_model("c3d", len(CLASSES), load_weights=False, width=0.25).eval(), xt, yt, pt, "hirescam",
                         layer="stages.2")
    assert trained >= 0.8 and trained - untrained >= 0.15, (trained, untrained)
