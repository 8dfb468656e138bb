"""Perturbation and path attributions for every VideoModel family: "occlusion" and "integrated-gradients".

Both work on the model's own input `(1,T,C,H,W)` (normalised float) through its `forward`, so they apply
to 3D CNNs, frame+temporal models and video transformers alike (and, through `fusion`, to the video and
audio inputs of a fusion model, whose batch dict they take).

- "occlusion": *temporal* importance = the drop in the target's probability when a frame (or a segment
  of `window` frames, every `stride` frames) is replaced by a neutral value (`baseline`); each frame gets
  the mean drop over the segments that cover it. *Spatial* heat = `captum.attr.Occlusion` with a
  `(patch_frames, C, patch, patch)` window sliding over `(T,C,H,W)` (strides `patch_stride`), positive
  drops only. Cost: `ceil(T/stride)` + `(T/patch_frames) x ((H-patch)/patch_stride+1) x (...)` forwards,
  batched by `batch` (defaults: T + 64); `spatial=False` keeps only the temporal curve. Measured (one
  thread, 16x112x112, untrained weights): C3D forward 0.37 s, occlusion in time 5.8 s, with the heat 24 s
  (62 s with overlapping patch_stride = patch/2); MobileNetV2+GRU forward 0.07 s, in time 3.0 s, heat 13 s.
- "integrated-gradients": `captum.attr.IntegratedGradients` from `baseline` to the clip (`n_steps`
  Gauss-Legendre points, `internal_batch_size` clips per forward/backward), on the target's logit
  (`output="logit"`) or probability. heat = |attribution| summed over channels, normalised to [0,1];
  temporal = per-frame |attribution| mass. The notes carry the completeness gap (sum of attributions
  vs f(clip) - f(baseline)): a large gap means too few steps. 32 steps: C3D 22 s, MobileNetV2+GRU 18 s
  (16x112x112, one thread).

On clips whose object moves in a known stretch of frames (tests/tasks/explain/test_attribution.py, trained
C3D and GRU), occlusion in time puts the top frame in the stretch for 0.8-1.0 of the clips; precision of
the top frames: C3D 0.65-0.94 ("mean-frame") / 0.6-0.87 ("hold", one frame), GRU 0.43-0.48 ("mean-frame") /
0.53-0.58 ("hold"), chance 0.375. Integrated gradients from a "mean-frame" baseline: 0.83-0.88.

Baselines (`baseline=`): "mean-frame" (the clip's mean over time at each pixel: removes motion, keeps what
never moves; the default for occlusion, suited to motion classes), "mean" (the clip's per-channel mean
everywhere: a flat clip; the default for integrated gradients), "zero" (0 in the model's input space: the
normalisation mean colour), "blur" (each frame Gaussian-blurred, sigma `blur_sigma` x the shorter side),
"hold" (occlusion in time only: the segment repeats the frame before it, or after it at the start).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from vidlens.errors import ConfigError
from vidlens.tasks.explain.base import (
    ClipExplanation,
    model_family,
    normalise_heat,
    normalise_temporal,
    register_explainer,
)

BASELINES = ("mean-frame", "mean", "zero", "blur", "hold")
OUTPUTS = ("logit", "prob")
IG_OPTIONS = {"baseline", "n_steps", "internal_batch_size", "output", "blur_sigma"}
OCCLUSION_OPTIONS = {"window", "stride", "baseline", "spatial", "patch", "patch_stride", "patch_frames", "batch", "blur_sigma",
                     "output"}
Forward = Callable[[Tensor], Tensor]  # (N,...) input -> (N,K) logits


# ---------------------------------------------------------------- options and baselines


def _int_option(name: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < lo:
        raise ConfigError(None, f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _float_option(name: str, value: Any, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= lo:
        raise ConfigError(None, f"{name} must be a number > {lo}, got {value!r}")
    return float(value)


def check_clip(x: Any, what: str = "clip") -> Tensor:
    """A `(1,T,C,H,W)` float tensor (a `(T,C,H,W)` one gets the batch dim) with finite values, else ConfigError."""
    if not isinstance(x, Tensor):
        raise ConfigError(None, f"{what} must be a (1,T,C,H,W) tensor, got {type(x).__name__}")
    if x.ndim == 4:
        x = x.unsqueeze(0)
    if x.ndim != 5 or x.shape[0] != 1 or min(x.shape) < 1:
        raise ConfigError(None, f"{what} must be one clip (1,T,C,H,W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ConfigError(None, f"{what} must be float (normalised as the model takes it), got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ConfigError(None, f"{what} has NaN or infinite values")
    return x.detach()


def _check_baseline(kind: Any, allowed: tuple[str, ...] = BASELINES) -> str:
    if kind not in allowed:
        raise ConfigError(None, f"baseline must be one of {', '.join(allowed)}, got {kind!r}")
    return kind


def _gaussian_blur(frames: Tensor, sigma: float) -> Tensor:
    """`(N,C,H,W)` -> the same, Gaussian-blurred (reflect padding; kernel 2*ceil(3 sigma)+1, capped by the size)."""
    from torchvision.transforms.v2 import functional as TF

    h, w = frames.shape[-2:]
    k = 2 * math.ceil(3 * sigma) + 1
    kh, kw = min(k, h - 1 if h % 2 == 0 else h), min(k, w - 1 if w % 2 == 0 else w)
    kh, kw = max(kh, 1), max(kw, 1)
    return TF.gaussian_blur(frames, [kw, kh], [sigma, sigma])


def video_baseline(x: Tensor, kind: str = "mean", blur_sigma: float = 0.1) -> Tensor:
    """The neutral clip `(1,T,C,H,W)` for `x` (see the module docstring; "hold" has no fixed clip)."""
    _check_baseline(kind, tuple(b for b in BASELINES if b != "hold"))
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(1, 3, 4), keepdim=True).expand_as(x).contiguous()
    if kind == "mean-frame":
        return x.mean(dim=1, keepdim=True).expand_as(x).contiguous()
    b, t, c, h, w = x.shape
    sigma = max(0.5, float(blur_sigma) * min(h, w))
    return _gaussian_blur(x.reshape(b * t, c, h, w), sigma).reshape_as(x)


def target_output(forward: Forward, target: int, output: str = "prob", multi_label: bool = False) -> Forward:
    """`forward` -> a function giving `(N,)` the target's probability (softmax; sigmoid if multi-label) or logit."""
    if output not in OUTPUTS:
        raise ConfigError(None, f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")

    def fn(*inputs: Tensor) -> Tensor:
        logits = forward(*inputs).float()
        if output == "logit":
            return logits[:, target]
        return torch.sigmoid(logits[:, target]) if multi_label else torch.softmax(logits, dim=1)[:, target]

    return fn


@contextmanager
def input_gradients(model: nn.Module) -> Iterator[None]:
    """Let gradients reach the input: frame+temporal models built with `freeze_encoder=True` run their encoder
    under `no_grad`; switch that off (encoder stays in eval mode, its weights untouched) and restore it."""
    from vidlens.models.temporal import FrameTemporalModel

    frozen = [m for m in model.modules() if isinstance(m, FrameTemporalModel) and m.freeze_encoder]
    for m in frozen:
        m.freeze_encoder = False
    try:
        yield
    finally:
        for m in frozen:
            m.freeze_encoder = True


# ---------------------------------------------------------------- occlusion


@dataclass
class TemporalOcclusion:
    """Per-frame mean drop of the target score `(T,)`, the segments `[(start, stop)]` and each one's drop."""

    frame_drop: np.ndarray
    segments: list[tuple[int, int]]
    segment_drop: np.ndarray
    score: float


def temporal_occlusion(forward: Forward, x: Tensor, target: int, *, window: int = 1, stride: int | None = None,
                       baseline: str = "mean-frame", batch: int = 8, output: str = "prob", multi_label: bool = False,
                       blur_sigma: float = 0.1) -> TemporalOcclusion:
    """Occlusion in time of clip `x` `(1,T,C,H,W)`: each segment of `window` frames (every `stride`, default
    `window`) replaced by `baseline`; returns the drops of the target score (`forward`: `(N,T,C,H,W)` -> logits)."""
    x = check_clip(x)
    t = x.shape[1]
    window = min(_int_option("window", window), t)
    stride = window if stride is None else _int_option("stride", stride)
    batch = _int_option("batch", batch)
    _check_baseline(baseline)
    score_fn = target_output(forward, target, output, multi_label)
    starts = list(range(0, t - window + 1, stride))
    if starts[-1] + window < t:  # cover the last frames too
        starts.append(t - window)
    segments = [(s, s + window) for s in starts]
    neutral = None if baseline == "hold" else video_baseline(x, baseline, blur_sigma)
    with torch.no_grad():
        base_score = float(score_fn(x)[0])
        drops = []
        for i in range(0, len(segments), batch):
            chunk = []
            for s, e in segments[i:i + batch]:
                y = x.clone()
                if neutral is not None:
                    y[:, s:e] = neutral[:, s:e]
                else:
                    y[:, s:e] = x[:, s - 1:s] if s > 0 else x[:, e:e + 1] if e < t else x.mean(dim=1, keepdim=True)
                chunk.append(y)
            drops.append(base_score - score_fn(torch.cat(chunk)).float().cpu())
    segment_drop = torch.cat(drops).numpy().astype(np.float64)
    total, count = np.zeros(t), np.zeros(t)
    for (s, e), d in zip(segments, segment_drop, strict=True):
        total[s:e] += d
        count[s:e] += 1
    return TemporalOcclusion(total / np.maximum(count, 1), segments, segment_drop, base_score)


def spatial_occlusion(forward: Forward, x: Tensor, target: int, *, patch: int | None = None,
                      patch_stride: int | None = None, patch_frames: int | None = None, baseline: str = "mean-frame",
                      batch: int = 8, output: str = "prob", multi_label: bool = False, blur_sigma: float = 0.1) -> Tensor:
    """`captum.attr.Occlusion` of `x` `(1,T,C,H,W)` with a `(patch_frames, C, patch, patch)` window; returns the
    attribution `(1,T,C,H,W)` (mean score drop over the windows covering each element). Defaults: patch =
    shorter side / 4, patch_stride = patch (tiles: 4 x 4 x 4 = 64 forwards), patch_frames = ceil(T / 4)."""
    from captum.attr import Occlusion

    x = check_clip(x)
    _, t, c, h, w = x.shape
    patch = max(1, round(min(h, w) / 4)) if patch is None else _int_option("patch", patch)
    patch = min(patch, h, w)
    patch_stride = patch if patch_stride is None else _int_option("patch_stride", patch_stride)
    patch_frames = max(1, math.ceil(t / 4)) if patch_frames is None else min(_int_option("patch_frames", patch_frames), t)
    if _check_baseline(baseline) == "hold":
        raise ConfigError(None, "baseline 'hold' is for occlusion in time only; use mean-frame, mean, zero or blur")
    score_fn = target_output(forward, target, output, multi_label)
    occ = Occlusion(score_fn)
    with torch.no_grad():
        attr = occ.attribute(x, sliding_window_shapes=(patch_frames, c, patch, patch),
                             strides=(patch_frames, c, patch_stride, patch_stride),
                             baselines=video_baseline(x, baseline, blur_sigma),
                             perturbations_per_eval=_int_option("batch", batch))
    return attr.detach()


def _occlusion_explanation(forward: Forward, x: Tensor, target: int, multi_label: bool, *, window: int = 1,
                           stride: int | None = None, baseline: str = "mean-frame", spatial: bool = True,
                           patch: int | None = None, patch_stride: int | None = None, patch_frames: int | None = None,
                           batch: int = 8, blur_sigma: float = 0.1, output: str = "prob") -> ClipExplanation:
    blur_sigma = _float_option("blur_sigma", blur_sigma)
    occ = temporal_occlusion(forward, x, target, window=window, stride=stride, baseline=baseline, batch=batch,
                             output=output, multi_label=multi_label, blur_sigma=blur_sigma)
    notes = [f"occlusion in time: {occ.segments[0][1] - occ.segments[0][0]}-frame segments replaced by {baseline!r}, "
             f"drop of the target {'probability' if output == 'prob' else 'logit'} (max {occ.segment_drop.max():.3f})"]
    heat = None
    if spatial:
        sp_base = "mean-frame" if baseline == "hold" else baseline
        attr = spatial_occlusion(forward, x, target, patch=patch, patch_stride=patch_stride, patch_frames=patch_frames,
                                 baseline=sp_base, batch=batch, output=output, multi_label=multi_label, blur_sigma=blur_sigma)
        heat = normalise_heat(attr[0].clamp_min(0).sum(dim=1))
        notes.append(f"spatial heat: captum Occlusion, baseline {sp_base!r}, positive probability drops")
    return ClipExplanation("occlusion", target, occ.score, heat, normalise_temporal(occ.frame_drop), notes=notes)


# ---------------------------------------------------------------- integrated gradients


@dataclass
class IGResult:
    """Integrated-gradients attributions (one tensor per input, as the inputs), the completeness gap
    `delta` = sum(attributions) - (f(x) - f(baseline)), and f at the input and at the baseline."""

    attributions: tuple[Tensor, ...]
    delta: float
    f_input: float
    f_baseline: float


def integrated_gradients(forward: Forward, inputs: Tensor | tuple[Tensor, ...], baselines: Tensor | tuple[Tensor, ...],
                         target: int, *, n_steps: int = 32, internal_batch_size: int | None = 8, output: str = "logit",
                         multi_label: bool = False) -> IGResult:
    """`captum.attr.IntegratedGradients` of the target's logit (or probability) w.r.t. each input tensor
    (`forward(*inputs) -> (N,K)` logits; every input has batch size 1)."""
    from captum.attr import IntegratedGradients

    single = isinstance(inputs, Tensor)
    inputs = (inputs,) if single else tuple(inputs)
    baselines = (baselines,) if isinstance(baselines, Tensor) else tuple(baselines)
    if len(baselines) != len(inputs) or any(b.shape != i.shape for b, i in zip(baselines, inputs, strict=True)):
        raise ConfigError(None, "integrated gradients: one baseline of each input's shape is needed")
    n_steps = _int_option("n_steps", n_steps, 2)
    if internal_batch_size is not None:
        internal_batch_size = _int_option("internal_batch_size", internal_batch_size)
    score_fn = target_output(forward, target, output, multi_label)
    ig = IntegratedGradients(score_fn)
    inputs = tuple(i.detach() for i in inputs)
    attrs, delta = ig.attribute(inputs, baselines=baselines, n_steps=n_steps, internal_batch_size=internal_batch_size,
                                return_convergence_delta=True)
    with torch.no_grad():
        f_x, f_b = float(score_fn(*inputs)[0]), float(score_fn(*baselines)[0])
    return IGResult(tuple(a.detach() for a in attrs), float(delta.reshape(-1)[0]), f_x, f_b)


def ig_maps(attr: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Video attribution `(1,T,C,H,W)` -> heat `(T,H,W)` in [0,1] (|attr| summed over channels) and the
    unnormalised per-frame mass `(T,)`."""
    mag = attr[0].abs().sum(dim=1)
    return normalise_heat(mag), mag.sum(dim=(1, 2)).double().cpu().numpy()


def ig_note(res: IGResult, baseline: str, n_steps: int) -> str:
    gap = res.f_input - res.f_baseline
    return (f"integrated gradients (captum), baseline {baseline!r}, {n_steps} steps: f(x)={res.f_input:.3f}, "
            f"f(baseline)={res.f_baseline:.3f}, completeness gap {res.delta:+.4f} ({abs(res.delta) / max(abs(gap), 1e-6):.1%})")


# ---------------------------------------------------------------- registered explainers


def _forward_of(model: nn.Module) -> Forward:
    return lambda v: model(v)


def _is_fusion(model: nn.Module, clip: Any) -> bool:
    return model_family(model) == "fusion" or isinstance(clip, Mapping)


@register_explainer("occlusion")
def explain_occlusion(model: nn.Module, clip: Any, target: int, **options: Any) -> ClipExplanation:
    """Occlusion in time (temporal curve) + captum Occlusion over (T,C,H,W) (heat). Options: window, stride,
    baseline, spatial, patch, patch_stride, patch_frames, batch, blur_sigma (fusion models: see `fusion`)."""
    if _is_fusion(model, clip):
        from vidlens.tasks.explain.fusion import explain_fusion

        return explain_fusion(model, clip, target, method="occlusion", **options)
    x = check_clip(clip)
    _known(options, OCCLUSION_OPTIONS, "occlusion")
    return _occlusion_explanation(_forward_of(model), x, target, bool(getattr(model, "multi_label", False)), **options)


@register_explainer("integrated-gradients")
def explain_integrated_gradients(model: nn.Module, clip: Any, target: int, **options: Any) -> ClipExplanation:
    """captum IntegratedGradients on the 5-D input. Options: baseline (default "mean"), n_steps (32),
    internal_batch_size (8), output ("logit"/"prob"), blur_sigma (fusion models: see `fusion`)."""
    if _is_fusion(model, clip):
        from vidlens.tasks.explain.fusion import explain_fusion

        return explain_fusion(model, clip, target, method="integrated-gradients", **options)
    _known(options, IG_OPTIONS, "integrated-gradients")
    return _ig_explanation(model, check_clip(clip), target, **options)


def _ig_explanation(model: nn.Module, x: Tensor, target: int, *, baseline: str = "mean", n_steps: int = 32,
                    internal_batch_size: int | None = 8, output: str = "logit", blur_sigma: float = 0.1) -> ClipExplanation:
    if _check_baseline(baseline) == "hold":
        raise ConfigError(None, "baseline 'hold' is for occlusion in time only; use mean-frame, mean, zero or blur")
    base = video_baseline(x, baseline, _float_option("blur_sigma", blur_sigma))
    with input_gradients(model):
        res = integrated_gradients(_forward_of(model), x, base, target, n_steps=n_steps,
                                   internal_batch_size=internal_batch_size, output=output,
                                   multi_label=bool(getattr(model, "multi_label", False)))
    heat, mass = ig_maps(res.attributions[0])
    with torch.no_grad():
        score = float(target_output(_forward_of(model), target, "prob", bool(getattr(model, "multi_label", False)))(x)[0])
    return ClipExplanation("integrated-gradients", target, score, heat, normalise_temporal(mass),
                           notes=[ig_note(res, baseline, n_steps)])


def _known(options: Mapping[str, Any], allowed: set[str], method: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        valid = ", ".join(sorted(allowed)) or "none"
        raise ConfigError(None, f"{method}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
