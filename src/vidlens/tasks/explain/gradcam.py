"""Grad-CAM, Grad-CAM++ and HiResCAM for every video model family, with forward hooks and `torch.autograd.grad`.

- 3D CNNs (`c3d`, `r3d_18`, `mc3_18`, `r2plus1d_18`, `s3d`): the activation after the last `Conv3d` whose
  output still has time (T' > 1; its BatchNorm/ReLU/residual/concatenation, up to the next change of
  (T',h,w)), a `(T',h,w)` map upsampled trilinearly to `(T,H,W)`. Temporal curve: the map's mass per frame.
- frame+temporal (`tsn`, `tsn_max`, `lstm`, `gru`, `transformer`, `tconv`): 2D Grad-CAM on the frame
  encoder's last conv (same rule) on every frame, one set of channel weights for the
  whole clip (`per_frame=True`: weights per frame), bilinear to `(H,W)`. Temporal curve: the
  head's attention where it has one (`AttentionPool` of lstm/gru, class-token attention of transformer),
  else each frame's gradient x feature contribution to the target logit (exact for tsn: mean pool + linear).
- video transformers: Swin3D on its last stage's tokens (the final norm's `(T',h,w,C)` map); MViTv2 on the
  patch tokens entering its last block (the class token, which alone feeds the classifier, reads them there).

The explained score (`score=`) is by default the target's log-odds against the other classes, `logit_t -
logsumexp(logit_j, j != t)` (the target's own logit for multi-label models): with few classes a confident model
often says "class B" only through the absence of class A's evidence, and the plain logit's Grad-CAM is then zero
everywhere (measured on the two-direction synthetic set: zero maps for one class). `score="logit"` gives Selvaraju
et al.'s original choice. Heat is min-max normalised over the whole clip, so
frames with little evidence stay dark. `layer="<module name>"` overrides the automatic choice (full dotted
name in the model, e.g. "stages.3.4" or "encoder.net.features.12"). Gradients come from
`torch.autograd.grad` on a copy of the input that requires grad: parameters' `.grad` are never touched.

Known limits, said in the notes of each explanation where they apply (figures: docs/explain.md, "Sanity checks"):
a map with fewer than 4 cells on a side cannot place its peak finer than a cell (an ideal 3x3 map puts it on the
synthetic moving object in only 70 % of frames); and a frame encoder that keeps a grid of positions for the temporal
head (small_cnn `spatial_grid` > 1) makes a channel evidence *for* the target at one place or time and *against* it
at another, so Grad-CAM's averaged channel weights cancel: on the synthetic direction classes its peak then lands
on the moving object no more often than an untrained model's.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidlens.errors import ConfigError
from vidlens.tasks.explain.base import (
    ClipExplanation,
    model_family,
    normalise_heat,
    normalise_temporal,
    not_applicable,
    register_explainer,
)

_CONV = {4: nn.Conv2d, 5: nn.Conv3d}


@dataclass
class _Call:
    name: str
    module: nn.Module
    output: Tensor
    conv: bool  # a convolution layer (or a factorised (2+1)D / separable conv unit)


def _factorised_types() -> tuple[type, ...]:
    from torchvision.models.video.resnet import Conv2Plus1D
    from torchvision.models.video.s3d import TemporalSeparableConv

    return (Conv2Plus1D, TemporalSeparableConv)


def _is_conv(module: nn.Module, ndim: int) -> bool:
    return isinstance(module, _CONV[ndim]) or (ndim == 5 and isinstance(module, _factorised_types()))


def _inside_factorised(root: nn.Module) -> set[str]:
    """Names of the modules inside a factorised conv unit (R(2+1)D's Conv2Plus1D, S3D's TemporalSeparableConv)."""
    inner: set[str] = set()
    for name, module in root.named_modules():
        if isinstance(module, _factorised_types()):
            inner.update(f"{name}.{sub}" for sub, _ in module.named_modules() if sub)
    return inner


@contextmanager
def _record(root: nn.Module, prefix: str, ndim: int) -> Iterator[list[_Call]]:
    """Record every submodule call of `root` whose output is an `ndim`-D float tensor, in call order."""
    calls: list[_Call] = []
    handles = []
    calls_skip: set[str] = set()

    def hook_for(name: str):
        def hook(module: nn.Module, _args: Any, output: Any) -> None:
            if isinstance(output, Tensor) and output.ndim == ndim and output.is_floating_point():
                calls.append(_Call(name, module, output, name not in calls_skip and _is_conv(module, ndim)))
        return hook

    inner = _inside_factorised(root)
    for name, module in root.named_modules():
        if module is not root:
            handles.append(module.register_forward_hook(hook_for(f"{prefix}{name}")))
            if name in inner:  # a factorised conv's halves are not conv layers of their own: the unit is
                calls_skip.add(f"{prefix}{name}")
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _pick(calls: list[_Call], layer: str | None, ndim: int, what: str) -> _Call:
    """The activation to explain: `layer`'s output, or after the last conv that keeps time (3D) / the last conv (2D),
    followed through the modules that keep its (T',h,w) / (h,w) (norm, activation, residual, concatenation)."""
    if layer is not None:
        named = [c for c in calls if c.name == layer]
        if not named:
            names = sorted({c.name for c in calls if c.conv})
            raise ConfigError(None, f"layer {layer!r} gives no {ndim}-D activation in {what}; conv layers: {', '.join(names)}")
        return named[-1]
    convs = [i for i, c in enumerate(calls) if c.conv]
    if not convs:
        raise ConfigError(None, f"no {_CONV[ndim].__name__} in {what}: Grad-CAM needs a convolutional layer")

    def grid(i: int) -> tuple[int, ...]:
        return tuple(calls[i].output.shape[2:])

    def good(i: int) -> bool:
        g = grid(i)
        return g[-1] * g[-2] > 1 and (ndim == 4 or g[0] > 1)

    keep = [i for i in convs if good(i)] or [i for i in convs if grid(i)[-1] * grid(i)[-2] > 1] or convs
    end = keep[-1]
    for j in range(end + 1, len(calls)):
        if calls[j].conv or grid(j) != grid(end):
            break
        end = j
    return calls[end]


CAM_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM"}


def _weights(a: Tensor, g: Tensor, mode: str, dims: tuple[int, ...]) -> Tensor:
    """Channel weights `(N,K,1..)` from activations/gradients `(N,K,...)` over `dims` (gradcam, gradcam++)."""
    if mode == "gradcam":
        return g.mean(dim=dims, keepdim=True)
    g2, g3 = g.pow(2), g.pow(3)
    denom = 2 * g2 + a.sum(dim=dims, keepdim=True) * g3
    alpha = torch.where(g != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(g))
    return (alpha * g.clamp_min(0)).sum(dim=dims, keepdim=True)


def _cam(a: Tensor, g: Tensor, mode: str, dims: tuple[int, ...]) -> Tensor:
    """`(N,K,...)` activations and gradients -> `(N,...)` ReLU(sum_k w_k A_k); HiResCAM (Draelos & Carin 2020):
    ReLU(sum_k g_k * A_k) element-wise, no averaging of the gradient over places or time."""
    if mode == "hirescam":
        return F.relu((g * a).sum(dim=1))
    return F.relu((_weights(a, g, mode, dims) * a).sum(dim=1))


SCORES = ("log-odds", "logit")


def _score(logits: Tensor, target: int, score: str) -> Tensor:
    """The explained scalar: the target's logit, or its log-odds against the other classes
    (`logit_t - logsumexp(logits_j, j != t)`; the logit itself for a one-output model)."""
    row = logits[0]
    if score == "logit" or row.numel() == 1:
        return row[target]
    others = torch.cat([row[:target], row[target + 1:]])
    return row[target] - torch.logsumexp(others, dim=0)


def _input(clip: Tensor) -> Tensor:
    return clip.detach().clone().requires_grad_(True)


def _grads(score: Tensor, tensors: list[Tensor], what: str) -> tuple[Tensor, ...]:
    if not all(t.requires_grad for t in tensors):
        raise ConfigError(None, f"{what}: the explained activation is not connected to the input")
    return torch.autograd.grad(score, tensors, allow_unused=True)


def _zeros_like_none(grads: tuple[Tensor | None, ...], tensors: list[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]


# ---------------------------------------------------------------- 3D CNNs and video transformers


def _video3d(model: nn.Module, clip: Tensor, target: int, mode: str, layer: str | None, score: str) -> tuple[Tensor, list[str]]:
    """-> `(T',h,w)` cam and notes, for 3D CNNs and video transformers."""
    from vidlens.models.video3d import MViTModel, Swin3DModel

    x = _input(clip)
    if isinstance(model, (Swin3DModel, MViTModel)) and layer is None:
        return _transformer_cam(model, x, target, mode, score)
    with _record(model, "", 5) as calls:
        logits = model(x)
    call = _pick(calls, layer, 5, type(model).__name__)
    (g,) = _zeros_like_none(_grads(_score(logits, target, score), [call.output], call.name), [call.output])
    cam = _cam(call.output.detach(), g, mode, (2, 3, 4))[0]
    t1, h1, w1 = cam.shape
    return cam, [f"{CAM_NAMES[mode]} on {call.name or 'input'} ({t1}x{h1}x{w1} map, T'xh'xw')"]


def _transformer_cam(model: nn.Module, x: Tensor, target: int, mode: str, score: str) -> tuple[Tensor, list[str]]:
    from vidlens.models.video3d import MViTModel

    store: dict[str, Any] = {}
    if isinstance(model, MViTModel):
        last = model.net.blocks[-1]

        def pre(_m: nn.Module, args: tuple) -> None:
            store["x"], store["thw"] = args[0], args[1]

        handle = last.register_forward_pre_hook(pre)
        name = f"net.blocks.{len(model.net.blocks) - 1} input (patch tokens)"
    else:
        def post(_m: nn.Module, _args: Any, output: Tensor) -> None:
            store["x"] = output

        handle = model.net.norm.register_forward_hook(post)
        name = "net.norm (last stage tokens)"
    try:
        logits = model(x)
    finally:
        handle.remove()
    tokens = store["x"]
    (g,) = _zeros_like_none(_grads(_score(logits, target, score), [tokens], name), [tokens])
    if isinstance(model, MViTModel):
        t1, h1, w1 = store["thw"]
        a = tokens.detach()[:, 1:].reshape(1, t1, h1, w1, -1)
        g = g[:, 1:].reshape(1, t1, h1, w1, -1)
    else:
        a = tokens.detach()
    a, g = a.permute(0, 4, 1, 2, 3), g.permute(0, 4, 1, 2, 3)  # (1,C,T',h,w)
    cam = _cam(a, g, mode, (2, 3, 4))[0]
    return cam, [f"{CAM_NAMES[mode]} on {name} ({'x'.join(map(str, cam.shape))} map, T'xh'xw')"]


# ---------------------------------------------------------------- frame + temporal models


def _frame_temporal(model: nn.Module, clip: Tensor, target: int, mode: str, layer: str | None, score: str,
                    per_frame: bool) -> tuple[Tensor, np.ndarray, list[str]]:
    """-> `(T,h,w)` per-frame cams, `(T,)` temporal weights, notes."""
    from vidlens.tasks.explain.attention import attention_head, head_attention

    x = _input(clip)
    b, t = x.shape[:2]
    with _record(model.encoder, "encoder.", 4) as calls:
        f = model.encoder(x.flatten(0, 1)).view(b, t, -1)  # bypasses freeze_encoder's no_grad on purpose
    logits = model.classify(model.features_from_frame_features(f))
    call = _pick(calls, layer, 4, f"{type(model).__name__}.encoder")
    g_act, g_f = _zeros_like_none(_grads(_score(logits, target, score), [call.output, f], call.name), [call.output, f])
    a = call.output.detach()
    if per_frame:  # each frame its own channel weights (2D Grad-CAM frame by frame)
        cams = _cam(a, g_act, mode, (2, 3))
    else:  # one set of channel weights for the clip, as for 3D CNNs: frames stay comparable
        cams = _cam(a.transpose(0, 1)[None], g_act.transpose(0, 1)[None], mode, (2, 3, 4))[0]
    kind = attention_head(model)
    notes = [f"{CAM_NAMES[mode]} on {call.name} per frame ({cams.shape[1]}x{cams.shape[2]} map)"]
    if kind is not None:
        temporal = normalise_temporal(head_attention(model, f.detach())[0])
        notes.append("temporal: " + ("RNN attention pooling weights" if kind == "rnn" else
                                     "transformer class-token attention (last layer, mean of heads)"))
    else:
        contrib = (f.detach() * g_f)[0].sum(dim=1)  # each frame's gradient x feature share of the target logit
        what = "per-frame gradient x frame-feature contribution to the target logit (clipped at 0)"
        if not bool((contrib > 0).any()):
            contrib, what = contrib.abs(), "per-frame |gradient x frame-feature| (no frame adds positive evidence)"
        temporal = normalise_temporal(contrib)
        notes.append(f"temporal: {what}")
    return cams, temporal, notes


def _position_grid(encoder: nn.Module) -> int:
    """The grid the frame encoder pools to for the head (small_cnn's `spatial_grid`); 1 = global pooling."""
    cells = [1]
    for m in encoder.modules():
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
            cells += [v for v in size if v is not None]
    return max(cells)


def _limit_notes(model: nn.Module, family: str, grid: tuple[int, ...], size: tuple[int, int],
                 averaged: bool = True) -> list[str]:
    """Notes on what this map cannot show: too coarse a grid, cancelling channel weights of position-reading heads
    (`averaged`: the variant averages gradients into channel weights; HiResCAM does not)."""
    notes = []
    h1, w1 = grid[-2:]
    if min(h1, w1) < 4:
        notes.append(f"coarse map ({h1}x{w1}): the peak is placed to a cell of ~{size[0] / h1:.0f}x{size[1] / w1:.0f} px "
                     "at best; a larger input or `layer=` gives a finer map")
    if family == "frame+temporal" and averaged:
        g = _position_grid(model.encoder)
        if g > 1:
            notes.append(f"the encoder keeps a {g}x{g} grid of positions for the temporal head: a channel can be evidence "
                         "for the target at one place or time and against it at another, and the averaged channel weights "
                         "cancel; the peak may miss what the decision rests on (compare method 'occlusion')")
    return notes


# ---------------------------------------------------------------- the explainers


GRADCAM_FAMILIES = ("3d-cnn", "frame+temporal", "video-transformer")


def _applies(model: nn.Module) -> bool:
    return model_family(model) in GRADCAM_FAMILIES


def grad_cam(model: nn.Module, clip: Tensor, target: int, *, plus: bool = False, layer: str | None = None,
             score: str | None = None, per_frame: bool = False, method: str | None = None) -> ClipExplanation:
    """Grad-CAM (`plus=False`) or Grad-CAM++ of one clip `(1,T,C,H,W)` for class `target`; `method` names the
    variant instead ("gradcam", "gradcam++" or "hirescam").

    Returns heat `(T,H,W)` in [0,1] and a temporal curve `(T,)` (see the module doc per family)."""
    method = method or ("gradcam++" if plus else "gradcam")
    if method not in CAM_NAMES:
        raise ConfigError(None, f"unknown CAM variant {method!r}; use one of: {', '.join(CAM_NAMES)}")
    if score is None:
        score = "logit" if getattr(model, "multi_label", False) else "log-odds"
    if score not in SCORES:
        raise ConfigError(None, f"{method} score must be one of {', '.join(SCORES)}, got {score!r}")
    family = model_family(model)
    if family not in GRADCAM_FAMILIES or not isinstance(clip, Tensor):
        raise not_applicable(method, model, "Grad-CAM needs a video model with convolutional or token feature maps")
    t, _, h, w = clip.shape[1:]
    if family == "frame+temporal":
        cams, temporal, notes = _frame_temporal(model, clip, target, method, layer, score, per_frame)
        heat = F.interpolate(cams[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        grid = tuple(cams.shape[1:])
    else:
        cam, notes = _video3d(model, clip, target, method, layer, score)
        heat = F.interpolate(cam[None, None], size=(t, h, w), mode="trilinear", align_corners=False)[0, 0]
        temporal = normalise_temporal(heat.clamp_min(0).sum(dim=(1, 2)))
        notes.append("temporal: heat mass per frame")
        grid = tuple(cam.shape)
    notes += _limit_notes(model, family, grid, (h, w), averaged=method != "hirescam")
    notes.append(f"explained score: the target's {'logit' if score == 'logit' else 'log-odds against the other classes'}")
    heat = normalise_heat(heat.clamp_min(0))
    if not heat.any():
        notes.append("the map is zero everywhere: no positive evidence for this target at this layer")
    return ClipExplanation(method, target, 0.0, heat, temporal, notes=notes)


@register_explainer("gradcam", applies=_applies)
def explain_gradcam(model: nn.Module, clip: Any, target: int, *, layer: str | None = None,
                    score: str | None = None, per_frame: bool = False) -> ClipExplanation:
    """Grad-CAM (Selvaraju et al. 2017) on 5-D video inputs; `layer` overrides the automatic layer choice."""
    return grad_cam(model, clip, target, plus=False, layer=layer, score=score, per_frame=per_frame)


@register_explainer("gradcam++", applies=_applies)
def explain_gradcam_plus(model: nn.Module, clip: Any, target: int, *, layer: str | None = None,
                         score: str | None = None, per_frame: bool = False) -> ClipExplanation:
    """Grad-CAM++ (Chattopadhay et al. 2018): positive-gradient, second-order channel weights."""
    return grad_cam(model, clip, target, plus=True, layer=layer, score=score, per_frame=per_frame)


@register_explainer("hirescam", applies=_applies)
def explain_hirescam(model: nn.Module, clip: Any, target: int, *, layer: str | None = None,
                     score: str | None = None, per_frame: bool = False) -> ClipExplanation:
    """HiResCAM (Draelos & Carin 2020): gradient x activation summed over channels at every place and time, so
    evidence at one place is not cancelled by evidence against at another (`per_frame` changes nothing here)."""
    return grad_cam(model, clip, target, method="hirescam", layer=layer, score=score, per_frame=per_frame)
