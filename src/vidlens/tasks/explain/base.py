"""The explanation result, the registry of explainers and `explain_clip`.

An explainer is `fn(model, clip, target: int, **options) -> ClipExplanation`, registered by name with
`register_explainer(name)`. `explain_clip` resolves the target class and its score, puts the model in
eval mode, calls the explainer and restores the model's mode, `requires_grad` flags and `.grad` tensors;
no explainer changes weights. Built-in explainer modules are imported lazily on first use (only those
present: `gradcam`, `attention`, `attribution`, `fusion`).

Layouts: `clip` is a VideoModel input `(1,T,C,H,W)` float, normalised as the model takes it (a
`(T,C,H,W)` clip gets the batch dimension added), or the batch dict of a fusion model.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from vidlens.errors import ConfigError
from vidlens.tasks.plugins import import_builtins


@dataclass
class ClipExplanation:
    """One clip's explanation."""

    method: str  # one of EXPLAIN_METHODS
    target: int  # class index explained
    score: float  # model probability of `target` on this clip (softmax; sigmoid if multi-label)
    heat: np.ndarray | None  # (T,H,W) float32 in [0,1] at the clip's input size; None: no spatial map
    temporal: np.ndarray  # (T,) float32 >= 0, sums to 1: how much each input frame drove the decision
    modalities: dict[str, float] = field(default_factory=dict)  # fusion models: {"video": s, "audio": 1-s}
    notes: list[str] = field(default_factory=list)  # how it was made


EXPLAIN_METHODS = ("gradcam", "gradcam++", "occlusion", "integrated-gradients", "attention", "hirescam")
EXPLAINERS: dict[str, Callable[..., ClipExplanation]] = {}
BUILTIN_MODULES = (
    "vidlens.tasks.explain.gradcam",
    "vidlens.tasks.explain.attention",
    "vidlens.tasks.explain.attribution",
    "vidlens.tasks.explain.fusion",
)
_APPLIES: dict[str, Callable[[nn.Module], bool]] = {}
_FAILED: dict[str, str] = {}  # built-in module -> why it could not be imported (a missing optional library)
_loaded = False


def register_explainer(name: str, applies: Callable[[nn.Module], bool] | None = None):
    """Decorator: make `fn(model, clip, target, **options) -> ClipExplanation` available as `method=name`.

    `applies(model) -> bool` (optional) says whether it can explain that model; `applicable_methods` uses it."""

    def wrap(fn: Callable[..., ClipExplanation]) -> Callable[..., ClipExplanation]:
        EXPLAINERS[name] = fn
        if applies is not None:
            _APPLIES[name] = applies
        else:
            _APPLIES.pop(name, None)
        return fn

    return wrap


def load_builtin_explainers() -> None:
    """Import the built-in explainer modules that exist (each registers itself)."""
    global _loaded
    if _loaded:
        return
    import_builtins(BUILTIN_MODULES, _FAILED)
    _loaded = True


def model_family(model: nn.Module) -> str:
    """"3d-cnn", "frame+temporal", "video-transformer", "fusion" or "unknown" (registry family if the model has a name)."""
    from vidlens.models.fusion import FusionModel
    from vidlens.models.temporal import FrameTemporalModel
    from vidlens.models.video3d import C3D, MViTModel, S3DModel, Swin3DModel, VideoResNetModel

    if isinstance(model, FusionModel):
        return "fusion"
    if isinstance(model, FrameTemporalModel):
        return "frame+temporal"
    if isinstance(model, (C3D, VideoResNetModel, S3DModel)):
        return "3d-cnn"
    if isinstance(model, (MViTModel, Swin3DModel)):
        return "video-transformer"
    name = getattr(model, "model_name", None)
    if isinstance(name, str):
        from vidlens.models.registry import MODELS

        if name in MODELS:
            return MODELS[name].family
    return "unknown"


def applicable_methods(model: nn.Module) -> list[str]:
    """The registered methods that can explain `model` (in EXPLAIN_METHODS order, then any others)."""
    load_builtin_explainers()
    names = [m for m in EXPLAIN_METHODS if m in EXPLAINERS] + sorted(set(EXPLAINERS) - set(EXPLAIN_METHODS))
    return [m for m in names if _APPLIES.get(m, lambda _m: True)(model)]


def not_applicable(method: str, model: nn.Module, why: str = "") -> ConfigError:
    """The ConfigError an explainer raises for a model it cannot explain (names the methods that apply)."""
    ok = [m for m in applicable_methods(model) if m != method]
    family = model_family(model)
    reason = f"method {method!r} does not apply to {type(model).__name__} ({family})"
    if why:
        reason += f": {why}"
    return ConfigError(None, f"{reason}; use one of: {', '.join(ok) if ok else 'none registered'}")


def fusion_inputs(model: nn.Module, clip: Any) -> dict[str, torch.Tensor]:
    """`{modality: tensor}` of one example from a fusion batch dict (`model.keys` maps modality -> key).

    Every input must have batch size 1 and finite float values; exactly one must be a video `(1,T,C,H,W)`."""
    if model_family(model) != "fusion" or not hasattr(model, "modalities"):
        raise ConfigError(None, f"{type(model).__name__} is not a fusion model; give a VideoModel a (1,T,C,H,W) clip")
    if not isinstance(clip, Mapping):
        raise ConfigError(None, f"a fusion model explains a batch dict ({', '.join(model.modalities)}), "
                          f"got {type(clip).__name__}")
    keys = getattr(model, "keys", {m: m for m in model.modalities})
    out = {}
    for m in model.modalities:
        x = clip.get(keys[m])
        if not isinstance(x, torch.Tensor):
            raise ConfigError(None, f"the batch dict has no {keys[m]!r} tensor (modality {m}); "
                              f"it needs {', '.join(repr(keys[k]) for k in model.modalities)}")
        if x.ndim < 2 or x.shape[0] != 1 or x.numel() == 0:
            raise ConfigError(None, f"{m}: one example with a batch dimension of 1 is needed, got shape {tuple(x.shape)}")
        if not x.is_floating_point() or not torch.isfinite(x).all():
            raise ConfigError(None, f"{m}: float input with finite values is needed")
        out[m] = x.detach()
    videos = [m for m, x in out.items() if x.ndim == 5]
    if len(videos) != 1:
        raise ConfigError(None, f"fusion explanations need exactly one video input (1,T,C,H,W); got {len(videos)}")
    return out


def check_input(model: nn.Module, clip: Any) -> Any:
    """The input of one explanation, checked before the model runs: a fusion model's batch dict (returned
    as given), or a `(1,T,C,H,W)` float tensor with finite values (a `(T,C,H,W)` clip gets the batch dim).
    A dict for a video model, a tensor for a fusion model, a missing modality, a bad shape -> ConfigError."""
    if model_family(model) == "fusion":
        fusion_inputs(model, clip)
        return clip
    if isinstance(clip, Mapping):
        raise ConfigError(None, f"{type(model).__name__} ({model_family(model)}) is not a fusion model: it explains a "
                          f"(1,T,C,H,W) tensor, not a batch dict (keys: {', '.join(map(str, clip))})")
    if not isinstance(clip, torch.Tensor):
        raise ConfigError(None, f"explain_clip takes a (1,T,C,H,W) tensor or a fusion batch dict, got {type(clip).__name__}")
    if clip.ndim == 4:
        clip = clip.unsqueeze(0)
    if clip.ndim != 5 or clip.shape[0] != 1 or clip.numel() == 0:
        raise ConfigError(None, f"explain_clip takes one clip (1,T,C,H,W), got shape {tuple(clip.shape)}")
    clip = clip.float()
    if not torch.isfinite(clip).all():
        raise ConfigError(None, "the clip has NaN or infinite values")
    return clip


def target_scores(model: nn.Module, clip: Any) -> np.ndarray:
    """`(num_classes,)` probabilities of one clip (softmax; sigmoid for multi-label models), no gradients."""
    with torch.no_grad():
        logits = model(clip)
    logits = logits.reshape(-1).float()
    probs = torch.sigmoid(logits) if getattr(model, "multi_label", False) else torch.softmax(logits, dim=0)
    return probs.cpu().numpy()


def explain_clip(model: nn.Module, clip: Any, *, target: int | None = None, method: str = "gradcam",
                 **options: Any) -> ClipExplanation:
    """Explain one clip. `model`: a VideoModel (input `(1,T,C,H,W)` normalised float, as the model takes it)
    or a fusion model (input: its batch dict). `target` None = the model's top class. Puts the model in eval
    mode, restores its mode, `requires_grad` flags and `.grad` afterwards, never changes weights. Unknown
    method / method not applicable to this family -> ConfigError naming the methods that do apply; the input is
    checked before the model runs (`check_input`): a wrong kind, shape or missing modality -> ConfigError."""
    load_builtin_explainers()
    if method not in EXPLAINERS:
        known = applicable_methods(model)
        raise ConfigError(None, f"unknown explain method {method!r}; methods for this model: {', '.join(known) or 'none'}"
                          f" (all: {', '.join(EXPLAIN_METHODS)})"
                          + (f"; not loaded: {'; '.join(_FAILED.values())}" if _FAILED else ""))
    applies = _APPLIES.get(method)
    if applies is not None and not applies(model):
        raise not_applicable(method, model)
    clip = check_input(model, clip)
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    was_training = model.training
    model.eval()
    try:
        try:
            probs = target_scores(model, clip)
        except (RuntimeError, ValueError, KeyError, IndexError) as exc:  # e.g. 1 channel for an RGB model, T < kernel
            shape = tuple(clip.shape) if isinstance(clip, torch.Tensor) else {k: tuple(v.shape) for k, v in clip.items()
                                                                                if isinstance(v, torch.Tensor)}
            raise ConfigError(None, f"{type(model).__name__} cannot run this input {shape}: {exc}") from exc
        if target is None:
            target = int(np.argmax(probs))
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < len(probs):
            raise ConfigError(None, f"target must be a class index in [0, {len(probs)}), got {target!r}")
        target = int(target)
        fn = EXPLAINERS[method]
        try:
            inspect.signature(fn).bind(model, clip, target, **options)
        except TypeError as exc:
            raise ConfigError(None, f"bad options for explain method {method!r}: {exc}") from None
        result = fn(model, clip, target, **options)
        result.method, result.target, result.score = method, target, float(probs[target])
        return result
    finally:
        for p, flag, grad in zip(params, flags, grads):
            p.requires_grad_(flag)
            p.grad = grad
        model.train(was_training)


def normalise_heat(heat: np.ndarray | torch.Tensor) -> np.ndarray:
    """Any-shape map -> float32 in [0,1] (min-max over the whole clip; a constant map becomes zeros)."""
    h = heat.detach().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
    h = np.nan_to_num(h.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(h.min()), float(h.max())
    return ((h - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(h)


def normalise_temporal(weights: np.ndarray | torch.Tensor) -> np.ndarray:
    """`(T,)` non-negative weights summing to 1 (negatives clipped; all zero -> uniform)."""
    w = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights)
    w = np.clip(np.nan_to_num(w.astype(np.float64).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    total = w.sum()
    return (w / total if total > 0 else np.full(len(w), 1.0 / max(len(w), 1))).astype(np.float32)
