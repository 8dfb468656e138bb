"""Grad-CAM on a frame+temporal model (small_cnn per frame + GRU) trained here on the synthetic moving-object classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidlens.models.registry import build_model
from vidlens.tasks.explain import explain_clip
from tests.tasks.explain.moving import CLASSES, accuracy, clips, fit, pointing, rank_corr

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE, T = 64, 8  # small_cnn's last conv is SIZE/16 = 4x4 here (3x3 at 48 px caps any map's pointing at 0.70)
MODEL = {"spatial_grid": 2, "feature_diff": True, "hidden": 32}  # the head reads where the object is, and its changes


def train_frame_model(seed: int):
    x, y, _ = clips(80, seed, SIZE, T)
    torch.manual_seed(seed)
    model = fit(build_model("gru", len(CLASSES), load_weights=False, **MODEL), x, y, epochs=20)
    xt, yt, pt = clips(16, 1000 + seed, SIZE, T)
    return model, xt, yt, pt, accuracy(model, xt, yt)


@pytest.fixture(scope="module")
def frame_model():
    from vidlens.testing import single_thread

    with single_thread():
        model, xt, yt, pt, acc = train_frame_model(0)
    assert acc >= 0.9, acc  # measured 1.0, 0.97, 0.97 for training seeds 0, 1, 2
    return model, xt, yt, pt


# Issue 18's acceptance check, NOT met. Measured (training seeds 0, 1, 2; docs/explain.md, "Sanity checks"): 0.07, 0.18,
# 0.09 (per-frame weights 0.15, 0.15, 0.14; Grad-CAM++ 0.68, 0.52, 0.58); the same untrained network: 0.06-0.13. Only the
# object tells the class, but the head reads *where* it is on the encoder's grid: a channel is evidence for the class at
# one place or time and against it at another, and Grad-CAM's averaged channel weights cancel. Grad-CAM++ on the
# encoder's stride-8 layer reaches 0.94-0.98, but an untrained network scores 0.84-0.93 there (the object is the most
# salient thing in the frame; occlusion: 0.95 trained, 0.83 untrained), so that figure says nothing about the model and
# is not used. strict: the day this passes, remove the mark.
@pytest.mark.xfail(strict=True, reason="issue 18: Grad-CAM's peak misses the moving object on frame+temporal models "
                   "(measured 0.07-0.18, untrained 0.06-0.13); see docs/explain.md, Sanity checks")
def test_gradcam_points_at_the_moving_object_frame_temporal(frame_model):
    model, xt, yt, pt = frame_model
    assert pointing(model, xt, yt, pt) >= 0.9


def test_gradcam_frame_temporal_depends_on_weights_and_target(frame_model):
    """Adebayo et al.'s model randomisation and a target change both move the frame model's Grad-CAM heat (as for C3D).

    Measured rank correlations (seeds 0, 1, 2): randomised -0.02, -0.11, -0.07; other target -0.59, -0.50, -0.32.
    Grad-CAM++ moves with the weights but hardly with the target (0.98, 0.99, 0.99): on this model it shows where the
    object is, not which class."""
    import copy

    model, xt, _, _ = frame_model
    rand = copy.deepcopy(model)
    torch.manual_seed(1)
    for m in rand.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GRU)):
            m.reset_parameters()
    corr = [rank_corr(explain_clip(model, xt[i:i + 1]).heat, explain_clip(rand, xt[i:i + 1]).heat) for i in range(6)]
    assert np.mean(corr) < 0.5, corr
    corr = [rank_corr(explain_clip(model, xt[i:i + 1], target=0).heat, explain_clip(model, xt[i:i + 1], target=1).heat)
            for i in range(6)]
    assert np.mean(corr) < 0.5, corr


def test_gradcam_notes_say_what_the_map_cannot_show():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 48, 48)
    grid = build_model("gru", 2, load_weights=False, spatial_grid=3, hidden=8).eval()
    notes = explain_clip(grid, x).notes
    assert any(n.startswith("coarse map (3x3)") for n in notes), notes
    assert any("3x3 grid of positions" in n and "'occlusion'" in n for n in notes), notes
    fine = explain_clip(build_model("tsn", 2, load_weights=False).eval(), torch.randn(1, 4, 3, 64, 64)).notes
    assert not any("coarse map" in n or "grid of positions" in n for n in fine), fine  # 4x4 map, global pooling
    finer = explain_clip(grid, x, layer="encoder.net.features.10").notes  # 6x6: fine enough; the head still reads the grid
    assert not any("coarse map" in n for n in finer) and any("grid of positions" in n for n in finer), finer
