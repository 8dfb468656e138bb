"""The "attention" explainer: what a temporal head's own attention weights say about time.

Applies to frame+temporal models whose head attends over frames: `lstm`/`gru` (`RNNHead`: the
`AttentionPool` softmax over the RNN outputs) and `transformer` (`TransformerHead`: the class token's
attention to the frame tokens in the last encoder layer, averaged over heads). Other families raise
`ConfigError` naming the methods that apply.

`temporal` = those weights (one per input frame, summing to 1). `heat` is None: a temporal head
attends over whole-frame embeddings and says nothing about where inside a frame the model looked;
painting a spatial map here would show another method's evidence under this one's name (use
"gradcam", whose temporal curve is the same attention where the head has it). No gradients are
computed; the attention is read in one forward pass.

Caveats (say them where the curve is shown): an RNN output at step t has seen the frames before (and,
bidirectional, after) t, so its weight is "when the evidence had been gathered", not strictly "which
frame"; attention weights are not attributions (Jain & Wallace 2019).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vidlens.tasks.explain.base import ClipExplanation, normalise_temporal, not_applicable, register_explainer


def attention_head(model: nn.Module) -> str | None:
    """"rnn" or "transformer" when `model` is a frame+temporal model whose head has attention over frames, else None."""
    from vidlens.models.temporal import FrameTemporalModel, RNNHead, TransformerHead

    if not isinstance(model, FrameTemporalModel):
        return None
    if isinstance(model.head, RNNHead):
        return "rnn"
    if isinstance(model.head, TransformerHead):
        return "transformer"
    return None


def head_attention(model: nn.Module, f: Tensor) -> Tensor | None:
    """Per-frame attention weights `(B,T)` (rows sum to 1) of a frame+temporal model's head on frame
    features `f` `(B,T,D)` (the encoder's output, before `feature_diff`); None for heads without attention.

    Recomputed from the head's own modules (no hooks), so it works whatever path the forward pass took
    (the `nn.TransformerEncoder` fast path returns no weights)."""
    kind = attention_head(model)
    if kind is None:
        return None
    from vidlens.models.temporal import with_differences

    head = model.head
    x = with_differences(f) if model.feature_diff else f
    with torch.no_grad():
        if kind == "rnn":
            out, _ = head.rnn(x)
            return torch.softmax(head.pool.score(torch.tanh(head.pool.proj(out))).squeeze(-1), dim=1)
        x = head.proj(x)
        x = torch.cat([head.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + head._positions(x.shape[1])
        layers = head.encoder.layers
        for layer in layers[:-1]:
            x = layer(x)
        last = layers[-1]
        q = last.norm1(x) if last.norm_first else x
        _, weights = last.self_attn(q, q, q, need_weights=True, average_attn_weights=True)  # (B,L,L)
        cls = weights[:, 0, 1:]
        return cls / cls.sum(dim=1, keepdim=True).clamp_min(1e-12)


def _applies(model: nn.Module) -> bool:
    return attention_head(model) is not None


@register_explainer("attention", applies=_applies)
def explain_attention(model: nn.Module, clip: Any, target: int) -> ClipExplanation:
    """`clip` `(1,T,C,H,W)` -> temporal = the head's attention over the T frames; heat None (see module doc).
    The weights do not depend on `target` (attention is computed before the classifier)."""
    kind = attention_head(model)
    if kind is None:
        raise not_applicable("attention", model, "only lstm/gru (attention pooling) and transformer heads have attention")
    with torch.no_grad():
        f = model.frame_features(clip)
    weights = head_attention(model, f)
    assert weights is not None
    what = "GRU/LSTM attention pooling weights" if kind == "rnn" else "last-layer class-token attention (mean of heads)"
    return ClipExplanation("attention", target, 0.0, None, normalise_temporal(weights[0]),
                           notes=[f"temporal: {what}; no spatial map (attention is over whole frames); "
                                  "the same for every target"])
