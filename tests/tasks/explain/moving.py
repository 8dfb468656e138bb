"""The synthetic moving-object clips of the Grad-CAM sanity tests, their training loop and the pointing game
(ground truth from the generator), shared by the C3D and the frame+temporal tests."""

from __future__ import annotations

import numpy as np
import torch

from vidlens.data.synthetic.actions import render_action_clip
from vidlens.tasks.explain import explain_clip

CLASSES = ("move_left", "move_right")


def clips(n: int, seed: int, size: int, frames: int, classes: tuple[str, ...] = CLASSES):
    """n clips per class -> (x `(N,T,C,H,W)` normalised float, labels `(N,)`, generator params per clip)."""
    out, labels, params = [], [], []
    for k in range(n):
        for ci, name in enumerate(classes):
            f, p = render_action_clip(name, np.random.default_rng([seed, ci, k]), frames, size)
            out.append(f)
            labels.append(ci)
            params.append(p)
    x = torch.from_numpy(np.stack(out)).permute(0, 1, 4, 2, 3).float() / 255.0
    return (x - 0.45) / 0.225, torch.tensor(labels), params


def fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int = 16) -> torch.nn.Module:
    """AdamW + one-cycle cross-entropy training (the caller seeds torch); returns the model in eval mode."""
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * ((len(x) + batch - 1) // batch))
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x)).split(batch):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def pointing(model, xt, yt, pt, method: str = "gradcam", **options) -> float:
    """Share of frames whose heat peak lies within the object's radius + 15/224 of the frame side of its centre."""
    size, frames = xt.shape[-1], xt.shape[1]
    tol = 15 / 224 * size  # the pointing game's 15 px at 224 px, scaled
    hits = []
    for i in range(len(xt)):
        heat = explain_clip(model, xt[i:i + 1], target=int(yt[i]), method=method, **options).heat
        tr = pt[i]["trajectory"]
        for t in range(frames):
            yy, xx = np.unravel_index(np.argmax(heat[t]), heat[t].shape)
            hits.append(np.hypot(xx + 0.5 - tr["x"][t], yy + 0.5 - tr["y"][t]) - tr["radius"][t] <= tol)
    return float(np.mean(hits))


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a.ravel())), np.argsort(np.argsort(b.ravel()))
    return float(np.corrcoef(ra, rb)[0, 1])
