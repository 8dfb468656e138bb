"""Fusion of modalities (video, audio, ...): early, late and cross-modal attention. Written once.

Every fusion model takes a dict of modality encoders and a batch dict, and has the shared surface:
`forward(batch) -> (B,num_classes)` logits, `features(batch) -> (B,feature_dim)`, `num_classes`,
`feature_dim`. A batch is e.g. `{"video": (B,T,C,H,W), "audio": (B,1,n_mels,frames)}`; modality `m`
reads `batch[keys.get(m, m)]` (other keys, such as `label` and `meta`, are ignored).

An encoder is any `nn.Module` with `features(x) -> (B,D)` (every vidlens video model, `AudioCNN`) or
whose `forward(x)` returns `(B,D)`; `D` is read from its `feature_dim` (or `out_dim`) attribute.
`AttentionFusion` also uses per-time tokens when an encoder offers them: `tokens(x) -> (B,N,D)`
(`AudioCNN`) or `frame_features(x) -> (B,T,frame_dim)` (frame-encoder video models).

- `EarlyFusion`: LayerNorm each modality's features, concatenate, MLP head. Cheapest; learns
  interactions between modalities; needs every modality at training and test time.
- `LateFusion`: one linear head per modality; the fused output is a weighted average of the
  modalities' log-probabilities (`combine="logprob"`, a product of experts) or probabilities
  (`combine="prob"`); weights learnable (softmax of a parameter) or fixed. Interpretable
  (per-modality predictions and weights), robust when one modality is missing or noisy, but it
  sees no interactions beyond "add the evidence".
- `AttentionFusion`: project each modality's tokens to `dim`, add a learned modality embedding
  (and a sinusoidal time encoding), then each modality's tokens attend to the other modalities'
  tokens with `nn.MultiheadAttention` (pre-norm cross-attention + MLP, `layers` times); mean-pool
  per modality, concatenate, linear head. Lets one modality pick the moments of the other that
  matter (which face frames go with the voice); the most parameters and data-hungry.

`build_fusion(kind, encoders, num_classes, ...)` builds any of them. Since fusion uses the encoders'
features only, it replaces an encoder's own classifier (an `fc` linear layer) by `nn.Identity` by
default, so no parameter of the fusion model is left without a gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidlens.errors import ConfigError

FUSION_KINDS = ("early", "late", "attention")


def encoder_dim(encoder: nn.Module, name: str = "") -> int:
    """The embedding size `D` of an encoder (`feature_dim`, else `out_dim`)."""
    for attr in ("feature_dim", "out_dim"):
        value = getattr(encoder, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ConfigError(None, f"encoder {name or type(encoder).__name__} has no feature_dim/out_dim attribute")


def encode(encoder: nn.Module, x: Tensor) -> Tensor:
    """`encoder.features(x)` when it has one, else `encoder(x)`; must be `(B,D)`."""
    f = encoder.features(x) if callable(getattr(encoder, "features", None)) else encoder(x)
    if f.ndim != 2:
        raise ValueError(f"an encoder must return (B,D) features, got shape {tuple(f.shape)}")
    return f


def token_dim(encoder: nn.Module, per_time: bool = True) -> int:
    """The size of the tokens `encode_tokens` returns for this encoder."""
    if per_time and not callable(getattr(encoder, "tokens", None)) and callable(getattr(encoder, "frame_features", None)):
        frame_dim = getattr(encoder, "frame_dim", None)
        if isinstance(frame_dim, int):
            return frame_dim
    return encoder_dim(encoder)


def encode_tokens(encoder: nn.Module, x: Tensor, per_time: bool = True) -> Tensor:
    """`(B,N,D)` tokens: `tokens(x)`, else `frame_features(x)`, else the features as one token."""
    if per_time and callable(getattr(encoder, "tokens", None)):
        return encoder.tokens(x)
    if per_time and callable(getattr(encoder, "frame_features", None)) and isinstance(getattr(encoder, "frame_dim", None), int):
        return encoder.frame_features(x)
    return encode(encoder, x).unsqueeze(1)


def strip_classifier(encoder: nn.Module) -> nn.Module:
    """Replace an encoder's own classifier (`fc`, an `nn.Linear`) by `nn.Identity`, in place; returns it."""
    if isinstance(getattr(encoder, "fc", None), nn.Linear):
        encoder.fc = nn.Identity()
    return encoder


def _time_encoding(n: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sinusoidal encoding `(1,n,dim)` of the relative position `i/n` (any sequence length)."""
    pos = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n
    freqs = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(100.0) / max(dim, 1)))
    angles = 2 * math.pi * pos[:, None] * freqs[None] * 4
    enc = torch.zeros(n, dim, device=device)
    enc[:, 0::2] = torch.sin(angles)
    enc[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return enc[None].to(dtype)


class FusionModel(nn.Module):
    """Base: holds the encoders (`nn.ModuleDict`) and reads each modality's input from a batch dict."""

    num_classes: int
    feature_dim: int
    multi_label = False

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, keys: Mapping[str, str] | None = None,
                 modality_dropout: float = 0.0) -> None:
        super().__init__()
        if len(encoders) < 1:
            raise ConfigError(None, "fusion needs at least one modality encoder")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(None, f"num_classes must be a positive integer, got {num_classes!r}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ConfigError(None, f"modality_dropout must be in [0, 1), got {modality_dropout}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.modalities = list(encoders)
        self.keys = {m: (keys or {}).get(m, m) for m in self.modalities}
        self.num_classes = num_classes
        self.modality_dropout = modality_dropout

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """`{modality: batch[key]}`; a missing key raises `KeyError` naming it."""
        missing = [self.keys[m] for m in self.modalities if self.keys[m] not in batch]
        if missing:
            raise KeyError(f"batch has no {', '.join(missing)} (has {', '.join(map(str, batch))})")
        return {m: batch[self.keys[m]] for m in self.modalities}

    def modality_features(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """`{modality: (B,D_m)}` features of every encoder."""
        return {m: encode(self.encoders[m], x) for m, x in self.inputs(batch).items()}

    def _drop_modalities(self, feats: list[Tensor]) -> list[Tensor]:
        """In training, zero each example's modality with probability `modality_dropout` (never all of them)."""
        if not self.training or self.modality_dropout <= 0 or len(feats) < 2:
            return feats
        b, m = feats[0].shape[0], len(feats)
        keep = torch.rand(b, m, device=feats[0].device) >= self.modality_dropout
        none = ~keep.any(dim=1)
        if none.any():  # keep one modality, chosen at random, where all were dropped
            pick = torch.randint(0, m, (b,), device=keep.device)
            keep[none, pick[none]] = True
        shape = (b,) + (1,) * (feats[0].ndim - 1)
        return [f * keep[:, i].view(shape).to(f.dtype) for i, f in enumerate(feats)]


class EarlyFusion(FusionModel):
    """Concatenate LayerNorm-ed modality features -> Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, *, hidden: int = 256,
                 dropout: float = 0.3, keys: Mapping[str, str] | None = None, modality_dropout: float = 0.0) -> None:
        super().__init__(encoders, num_classes, keys, modality_dropout)
        dims = [encoder_dim(self.encoders[m], m) for m in self.modalities]
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) for m, d in zip(self.modalities, dims, strict=True)})
        self.hidden = nn.Sequential(nn.Linear(sum(dims), hidden), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B,hidden)` fused embedding."""
        feats = self.modality_features(batch)
        normed = self._drop_modalities([self.norms[m](feats[m]) for m in self.modalities])
        return self.hidden(torch.cat(normed, dim=1))

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B,num_classes)` logits."""
        return self.fc(self.dropout(self.features(batch)))


class LateFusion(FusionModel):
    """One head per modality; fused log-probabilities `log sum_m w_m p_m` or `sum_m w_m log p_m`.

    `weights`: None (equal), a sequence or a `{modality: weight}` mapping (normalised to sum 1).
    `learn_weights=True` makes them a learnable softmax (initialised at `weights`). `forward`
    returns the fused log-probabilities, which are valid logits (softmax gives the fused probabilities
    for `combine="prob"`, the renormalised product of experts for `"logprob"`).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, *, weights: Sequence[float] | Mapping[str, float] | None = None,
                 learn_weights: bool = True, combine: str = "logprob", dropout: float = 0.3,
                 keys: Mapping[str, str] | None = None) -> None:
        super().__init__(encoders, num_classes, keys)
        if combine not in ("logprob", "prob"):
            raise ConfigError(None, f"combine must be 'logprob' or 'prob', got {combine!r}")
        dims = [encoder_dim(self.encoders[m], m) for m in self.modalities]
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))
                                    for m, d in zip(self.modalities, dims, strict=True)})
        if weights is None:
            w = torch.ones(len(self.modalities))
        elif isinstance(weights, Mapping):
            w = torch.tensor([float(weights.get(m, 0.0)) for m in self.modalities])
        else:
            w = torch.tensor([float(v) for v in weights])
        if w.numel() != len(self.modalities) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(None, f"late fusion weights must be {len(self.modalities)} non-negative numbers, got {weights!r}")
        w = w / w.sum()
        if learn_weights:
            self.weight_logits = nn.Parameter(torch.log(w.clamp_min(1e-6)))
        else:
            self.register_buffer("fixed_weights", w)
        self.learn_weights = learn_weights
        self.combine = combine
        self.feature_dim = sum(dims)
        self.last_modality_logits: dict[str, Tensor] = {}

    def modality_weights(self) -> Tensor:
        """`(M,)` weights summing to 1, in `modalities` order."""
        return torch.softmax(self.weight_logits, dim=0) if self.learn_weights else self.fixed_weights

    def modality_logits(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """`{modality: (B,num_classes)}` each modality's own logits."""
        feats = self.modality_features(batch)
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B,sum D_m)` concatenated modality features."""
        feats = self.modality_features(batch)
        return torch.cat([feats[m] for m in self.modalities], dim=1)

    def fuse(self, logits: Mapping[str, Tensor]) -> Tensor:
        """Per-modality logits -> fused `(B,num_classes)` log-probabilities."""
        w = self.modality_weights()
        logp = torch.stack([F.log_softmax(logits[m].float(), dim=-1) for m in self.modalities])  # (M,B,K)
        if self.combine == "logprob":
            return torch.einsum("m,mbk->bk", w.float(), logp)
        return torch.logsumexp(logp + torch.log(w.float().clamp_min(1e-12))[:, None, None], dim=0)

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B,num_classes)` fused log-probabilities (used as logits).

        In training mode it leaves each modality's logits in `last_modality_logits` (for an
        auxiliary loss; `MultimodalTask` reads and clears it)."""
        per = self.modality_logits(batch)
        self.last_modality_logits = per if self.training else {}
        return self.fuse(per)


class _CrossBlock(nn.Module):
    """Pre-norm cross-attention (queries: one modality; keys/values: the others) + MLP, both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        kv = self.norm_kv(context)
        x = x + self.attn(self.norm_q(x), kv, kv, need_weights=False)[0]
        return x + self.mlp(self.norm_mlp(x))


class AttentionFusion(FusionModel):
    """Cross-modal attention over modality tokens, mean-pooled per modality, concatenated -> linear.

    `tokens="time"`: per-time tokens where an encoder has them (`tokens` / `frame_features`), else one
    token; `"clip"`: one token (the features) per modality. Needs at least two modalities.
    """

    def __init__(self, encoders: Mapping[str, nn.Module], num_classes: int, *, dim: int = 128, heads: int = 4,
                 layers: int = 1, mlp_ratio: float = 2.0, dropout: float = 0.1, tokens: str = "time",
                 keys: Mapping[str, str] | None = None, modality_dropout: float = 0.0) -> None:
        super().__init__(encoders, num_classes, keys, modality_dropout)
        if len(self.modalities) < 2:
            raise ConfigError(None, "attention fusion needs at least two modalities")
        if tokens not in ("time", "clip"):
            raise ConfigError(None, f"tokens must be 'time' or 'clip', got {tokens!r}")
        if dim % heads:
            raise ConfigError(None, f"attention fusion dim ({dim}) must be divisible by heads ({heads})")
        self.per_time = tokens == "time"
        self.proj = nn.ModuleDict({m: nn.Linear(token_dim(self.encoders[m], self.per_time), dim) for m in self.modalities})
        self.modality_embed = nn.Parameter(torch.zeros(len(self.modalities), dim))
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({m: _CrossBlock(dim, heads, mlp_ratio, dropout) for m in self.modalities}) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim * len(self.modalities))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim * len(self.modalities), num_classes)
        self.dim = dim
        self.feature_dim = dim * len(self.modalities)

    def modality_tokens(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """`{modality: (B,N_m,dim)}` projected tokens with modality and time encodings added."""
        out = {}
        for i, (m, x) in enumerate(self.inputs(batch).items()):
            t = self.proj[m](encode_tokens(self.encoders[m], x, self.per_time))
            t = t + self.modality_embed[i] + _time_encoding(t.shape[1], self.dim, t.device, t.dtype)
            out[m] = t
        return out

    def features(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B, dim * num_modalities)` fused embedding."""
        toks = self.modality_tokens(batch)
        for block in self.blocks:
            toks = {m: block[m](toks[m], torch.cat([toks[o] for o in self.modalities if o != m], dim=1))
                    for m in self.modalities}
        pooled = self._drop_modalities([toks[m].mean(dim=1) for m in self.modalities])
        return self.norm(torch.cat(pooled, dim=1))

    def forward(self, batch: Mapping[str, Any]) -> Tensor:
        """Batch dict -> `(B,num_classes)` logits."""
        return self.fc(self.dropout(self.features(batch)))


def build_fusion(kind: str, encoders: Mapping[str, nn.Module], num_classes: int, *,
                 keys: Mapping[str, str] | None = None, strip_heads: bool = True, **options: Any) -> FusionModel:
    """`kind`: "early" | "late" | "attention"; `encoders`: `{modality: encoder}` (modality = batch key
    unless `keys` maps it to another); `options`: the chosen class's keyword arguments
    (`EarlyFusion`: hidden, dropout, modality_dropout; `LateFusion`: weights, learn_weights, combine,
    dropout; `AttentionFusion`: dim, heads, layers, mlp_ratio, dropout, tokens, modality_dropout).

    `strip_heads=True` replaces each encoder's own classifier (`fc`) by `nn.Identity` (in place):
    fusion never uses it. The model gets `fusion_kind` and `fusion_args` attributes.
    """
    classes = {"early": EarlyFusion, "late": LateFusion, "attention": AttentionFusion}
    if kind not in classes:
        raise ConfigError(None, f"unknown fusion kind {kind!r}; valid: {', '.join(FUSION_KINDS)}")
    if strip_heads:
        for enc in encoders.values():
            strip_classifier(enc)
    try:
        model = classes[kind](encoders, num_classes, keys=keys, **options)
    except TypeError as exc:
        raise ConfigError(None, f"fusion {kind}: invalid options {sorted(options)}: {exc}") from exc
    model.fusion_kind = kind
    model.fusion_args = dict(options)
    return model
