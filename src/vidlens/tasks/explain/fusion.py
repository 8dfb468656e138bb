"""Which modality carried an audio-visual fusion model's decision (early, late or attention fusion).

`explain_clip(fusion_model, {"video": (1,T,C,H,W), "audio": (1,1,n_mels,frames)}, method=...)` with method
"occlusion" or "integrated-gradients" lands here (the registered explainers of `attribution` hand fusion
models over). `ClipExplanation.modalities` = each modality's share of the decision (sums to 1); heat and
temporal come from the video input (the other inputs held at their values).

- "occlusion": exact Shapley values of the modalities: every subset of modalities is kept, the others
  replaced by their neutral baseline (2^M forwards in one batch, M = number of modalities), and
  phi_m = the Shapley-weighted mean gain of the target probability from adding m. For two modalities:
  phi_video = (p(v,a) - p(0,a) + p(v,0) - p(0,0)) / 2. Unlike dropping one modality at a time, this splits
  an interaction ("only the pair settles it") evenly and phi_video + phi_audio = p(v,a) - p(0,0).
  Temporal curve and heat: `attribution`'s occlusion on the video input.
- "integrated-gradients": captum IntegratedGradients on all inputs together, from all-baselines to the
  clip; a modality's contribution = the sum of its attributions (completeness: the contributions add up
  to f(clip) - f(baselines); the notes say the gap). Heat/temporal: |attribution| of the video input.

Shares: max(phi_m, 0) / sum of the positive ones (a modality that argued against the target gets 0);
when none is positive, |phi_m| / sum |phi|; all zero -> equal shares.

Baselines (`baselines={"video": ..., "audio": ...}`): video "mean" (a flat clip of its mean colour: no
appearance, no motion; also "mean-frame", "zero", "blur"), spectrograms "mean-frame" (each mel band's
mean over time: the same energy per band, nothing changes in time; also "mean", "zero", "blur").
`AudioCNN` standardises each input, so a constant spectrogram ("mean", "zero") is exact silence for
occlusion but a useless path start for integrated gradients (every scaled copy of the input looks the
same to it): IG refuses it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vidlens.errors import ConfigError
from vidlens.tasks.explain.attribution import (
    IG_OPTIONS,
    OCCLUSION_OPTIONS,
    _check_baseline,
    _float_option,
    _gaussian_blur,
    _known,
    _occlusion_explanation,
    check_clip,
    ig_maps,
    ig_note,
    input_gradients,
    integrated_gradients,
    target_output,
    video_baseline,
)
from vidlens.tasks.explain.base import ClipExplanation, fusion_inputs, normalise_temporal

SIGNAL_BASELINES = ("mean-frame", "mean", "zero", "blur")
DEFAULT_BASELINES = {"video": "mean", "other": "mean-frame"}
MAX_SHAPLEY_MODALITIES = 6


def signal_baseline(x: Tensor, kind: str = "mean-frame", blur_sigma: float = 0.1) -> Tensor:
    """Neutral version of a non-video input `(1,...,F,N)` (e.g. a log-mel `(1,1,n_mels,frames)`; time = last axis)."""
    _check_baseline(kind, SIGNAL_BASELINES)
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean().expand_as(x).contiguous()
    if kind == "mean-frame":
        return x.mean(dim=-1, keepdim=True).expand_as(x).contiguous()
    if x.ndim < 3:
        raise ConfigError(None, "baseline 'blur' needs a 2-D signal (..., F, N)")
    f, n = x.shape[-2:]
    flat = x.reshape(-1, 1, f, n)
    return _gaussian_blur(flat, max(0.5, blur_sigma * min(f, n))).reshape_as(x)


def modality_baselines(inputs: Mapping[str, Tensor], kinds: Mapping[str, str] | None = None,
                       blur_sigma: float = 0.1) -> dict[str, Tensor]:
    """`{modality: neutral tensor}`: video inputs by `video_baseline`, the others by `signal_baseline`."""
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(inputs))
    if unknown:
        raise ConfigError(None, f"baselines for unknown modalities {unknown}; modalities: {', '.join(inputs)}")
    out = {}
    for m, x in inputs.items():
        video = x.ndim == 5
        kind = kinds.get(m, DEFAULT_BASELINES["video" if video else "other"])
        out[m] = video_baseline(x, kind, blur_sigma) if video else signal_baseline(x, kind, blur_sigma)
    return out


def _batched(model: nn.Module, names: list[str]):
    """`forward(*tensors)` -> logits, with the tensors in `names` order as the model's batch dict."""
    keys = getattr(model, "keys", {m: m for m in names})
    return lambda *xs: model({keys[m]: x for m, x in zip(names, xs, strict=True)})


def shapley_values(model: nn.Module, inputs: Mapping[str, Tensor], baselines: Mapping[str, Tensor], target: int,
                   output: str = "prob") -> tuple[dict[str, float], dict[frozenset, float]]:
    """Exact Shapley values of the modalities for the target's probability (or logit): every subset kept,
    the rest at its baseline. Returns `({modality: phi}, {kept subset: value})`."""
    names = list(inputs)
    if len(names) > MAX_SHAPLEY_MODALITIES:
        raise ConfigError(None, f"occlusion of modalities takes 2^M forwards; at most {MAX_SHAPLEY_MODALITIES} modalities")
    subsets = [frozenset(c) for r in range(len(names) + 1) for c in itertools.combinations(names, r)]
    batch = [torch.cat([inputs[m] if m in s else baselines[m] for s in subsets]) for m in names]
    score = target_output(_batched(model, names), target, output, bool(getattr(model, "multi_label", False)))
    with torch.no_grad():
        values = dict(zip(subsets, score(*batch).double().cpu().tolist(), strict=True))
    n = len(names)
    phi = {}
    for m in names:
        total = 0.0
        for s in subsets:
            if m in s:
                continue
            weight = math.factorial(len(s)) * math.factorial(n - len(s) - 1) / math.factorial(n)
            total += weight * (values[s | {m}] - values[s])
        phi[m] = total
    return phi, values


def modality_shares(contributions: Mapping[str, float]) -> dict[str, float]:
    """Contributions (any sign) -> shares summing to 1 (see the module docstring)."""
    c = np.array([float(v) for v in contributions.values()], dtype=np.float64)
    c = np.nan_to_num(c)
    pos = np.clip(c, 0, None)
    if pos.sum() > 0:
        w = pos / pos.sum()
    elif np.abs(c).sum() > 0:
        w = np.abs(c) / np.abs(c).sum()
    else:
        w = np.full(len(c), 1.0 / max(len(c), 1))
    return {m: float(v) for m, v in zip(contributions, w, strict=True)}


def explain_fusion(model: nn.Module, clip: Any, target: int, *, method: str = "occlusion",
                   baselines: Mapping[str, str] | None = None, blur_sigma: float = 0.1, **options: Any) -> ClipExplanation:
    """Explain a fusion model's decision on one example: modality shares + the video input's heat/temporal.

    `method`: "occlusion" (Shapley values of the modalities; `options`: `attribution`'s occlusion options for
    the video side, `baseline` being the video side's occlusion baseline) or "integrated-gradients"
    (`options`: n_steps, internal_batch_size, output). `baselines`: `{modality: kind}` for the modality
    baselines (defaults: video "mean", others "mean-frame")."""
    inputs = fusion_inputs(model, clip)
    blur_sigma = _float_option("blur_sigma", blur_sigma)
    if baselines is not None and not isinstance(baselines, Mapping):
        raise ConfigError(None, f"baselines must be a {{modality: kind}} mapping, got {baselines!r}")
    neutral = modality_baselines(inputs, baselines, blur_sigma)
    video = next(m for m, x in inputs.items() if x.ndim == 5)
    names = list(inputs)
    multi_label = bool(getattr(model, "multi_label", False))
    if method == "occlusion":
        _known(options, OCCLUSION_OPTIONS - {"blur_sigma"}, "occlusion (fusion)")
        phi, values = shapley_values(model, inputs, neutral, target, options.get("output", "prob"))
        x = check_clip(inputs[video])
        others = {m: t for m, t in inputs.items() if m != video}
        keys = getattr(model, "keys", {m: m for m in names})

        def forward_video(v: Tensor) -> Tensor:
            n = v.shape[0]
            batch = {keys[m]: t.expand(n, *t.shape[1:]) for m, t in others.items()}
            batch[keys[video]] = v
            return model(batch)

        result = _occlusion_explanation(forward_video, x, target, multi_label, blur_sigma=blur_sigma, **options)
        full, empty = values[frozenset(names)], values[frozenset()]
        result.notes.insert(0, "modalities: exact Shapley values of the target score over kept/baselined modalities ("
                            + ", ".join(f"{m} {phi[m]:+.3f}" for m in names)
                            + f"; all kept {full:.3f}, none kept {empty:.3f}); baselines "
                            + ", ".join(f"{m} {(baselines or {}).get(m, DEFAULT_BASELINES['video' if m == video else 'other'])!r}"
                                        for m in names))
        result.modalities = modality_shares(phi)
        return result
    if method == "integrated-gradients":
        _known(options, IG_OPTIONS - {"blur_sigma"}, "integrated-gradients (fusion)")
        kinds = {m: (baselines or {}).get(m, DEFAULT_BASELINES["video" if m == video else "other"]) for m in names}
        if "baseline" in options and video not in (baselines or {}):  # `baseline` = the video input's
            kinds[video] = _check_baseline(options["baseline"], SIGNAL_BASELINES)
            neutral[video] = video_baseline(inputs[video], kinds[video], blur_sigma)
        flat = [m for m in names if m != video and kinds[m] in ("mean", "zero")]
        if flat:
            raise ConfigError(None, f"integrated gradients from a constant {', '.join(flat)} baseline: a standardising "
                              "encoder sees the same input along the whole path; use 'mean-frame' or 'blur'")
        n_steps = options.get("n_steps", 32)
        with input_gradients(model):
            res = integrated_gradients(_batched(model, names), tuple(inputs[m] for m in names),
                                       tuple(neutral[m] for m in names), target, n_steps=n_steps,
                                       internal_batch_size=options.get("internal_batch_size", 8),
                                       output=options.get("output", "logit"), multi_label=multi_label)
        contrib = {m: float(a.sum()) for m, a in zip(names, res.attributions, strict=True)}
        heat, mass = ig_maps(res.attributions[names.index(video)])
        notes = ["modalities: sum of each input's integrated-gradients attributions ("
                 + ", ".join(f"{m} {contrib[m]:+.3f}" for m in names) + ")",
                 ig_note(res, ", ".join(f"{m} {kinds[m]}" for m in names), n_steps)]
        return ClipExplanation("integrated-gradients", target, float("nan"), heat, normalise_temporal(mass),
                               modalities=modality_shares(contrib), notes=notes)
    raise ConfigError(None, f"fusion models explain with method 'occlusion' or 'integrated-gradients', got {method!r}")
