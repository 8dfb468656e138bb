"""Temporal heads over per-frame features, and the frame-encoder + head composite.

A head maps per-frame features `(B,T,D)` to a clip embedding `(B,out_dim)`:

- `MeanPool` / `MaxPool`: TSN segmental consensus. With a linear classifier, mean pooling equals
  averaging the per-frame logits: the "frame-averaging" baseline.
- `RNNHead`: LSTM or GRU (uni- or bidirectional, stacked), then attention pooling over time (LRCN-style).
- `TransformerHead`: linear projection, class token, learned positional embedding, pre-norm
  `nn.TransformerEncoder` (batch_first, scaled dot-product self-attention); the class token's output.
- `TConvHead`: 1D temporal convolutions (Conv1d-BN-ReLU) then mean pooling over time; cheap, sees motion.

`FrameTemporalModel` folds time into the batch, runs a `FrameEncoder` on every frame, applies a
head and a linear classifier. Written once for every encoder. `feature_diff=True` appends
temporal differences of the frame features to every frame, `[f_t, f_t - f_{t-1}]` (`(B,T,2D)`,
the first frame's difference is zero): TSN's RGB-difference idea on features, so even an
order-blind mean pool sees how much, and in which feature directions, the clip moves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidlens.errors import ConfigError
from vidlens.models.base import VideoModel


class MeanPool(nn.Module):
    """`(B,T,D)` -> `(B,D)`: average over time."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, f: Tensor) -> Tensor:
        return f.mean(dim=1)


class MaxPool(nn.Module):
    """`(B,T,D)` -> `(B,D)`: maximum over time."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, f: Tensor) -> Tensor:
        return f.amax(dim=1)


class AttentionPool(nn.Module):
    """`(B,T,D)` -> `(B,D)`: softmax(w . tanh(W f_t)) weighted sum over time.

    No bias on the scoring layer: softmax is shift-invariant, a bias would never get a gradient.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, f: Tensor) -> Tensor:
        weights = torch.softmax(self.score(torch.tanh(self.proj(f))).squeeze(-1), dim=1)  # (B,T)
        return torch.einsum("bt,btd->bd", weights, f)


class RNNHead(nn.Module):
    """`(B,T,D)` -> `(B,hidden*directions)`: LSTM/GRU over time, then attention pooling."""

    def __init__(self, dim: int, kind: str = "gru", hidden: int = 256, layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in ("lstm", "gru"):
            raise ConfigError(None, f"rnn kind must be 'lstm' or 'gru', got {kind!r}")
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                       dropout=dropout if layers > 1 else 0.0)
        self.out_dim = hidden * (2 if bidirectional else 1)
        self.pool = AttentionPool(self.out_dim, hidden)

    def forward(self, f: Tensor) -> Tensor:
        out, _ = self.rnn(f)
        return self.pool(out)


class TransformerHead(nn.Module):
    """`(B,T,D)` -> `(B,dim)`: project to `dim`, prepend a class token, add a learned positional
    embedding, pre-norm Transformer encoder layers, final LayerNorm; returns the class token.

    Positions beyond `max_len` frames are linearly interpolated from the learned table.
    """

    def __init__(self, in_dim: int, dim: int = 256, layers: int = 2, heads: int = 4, mlp_ratio: float = 2.0,
                 attn_dropout: float = 0.1, max_len: int = 64) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(None, f"transformer dim ({dim}) must be divisible by heads ({heads})")
        self.proj = nn.Linear(in_dim, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_len + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), attn_dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def _positions(self, length: int) -> Tensor:
        table = self.pos_embed
        if length <= table.shape[1]:
            return table[:, :length]
        cls, rest = table[:, :1], table[:, 1:]
        rest = nn.functional.interpolate(rest.transpose(1, 2), size=length - 1, mode="linear", align_corners=True)
        return torch.cat([cls, rest.transpose(1, 2)], dim=1)

    def forward(self, f: Tensor) -> Tensor:
        x = self.proj(f)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self._positions(x.shape[1])
        x = self.encoder(x)
        return self.norm(x[:, 0])


class TConvHead(nn.Module):
    """`(B,T,D)` -> `(B,hidden)`: `layers` x (Conv1d over time, BN, ReLU), then mean over time."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 2, kernel: int = 3) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ConfigError(None, f"tconv kernel must be odd and positive, got {kernel}")
        blocks: list[nn.Module] = []
        cin = dim
        for _ in range(layers):
            blocks += [nn.Conv1d(cin, hidden, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            cin = hidden
        self.net = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f.transpose(1, 2)).mean(dim=2)


def with_differences(f: Tensor) -> Tensor:
    """`(B,T,D)` -> `(B,T,2D)`: each frame's features and their change from the previous frame (zero at t=0)."""
    diff = torch.zeros_like(f)
    diff[:, 1:] = f[:, 1:] - f[:, :-1]
    return torch.cat([f, diff], dim=-1)


class HeadModel(nn.Module):
    """`(B,T,D)` precomputed per-frame features -> `(B,num_classes)` logits.

    Holds the *same* head/dropout/classifier modules as its `FrameTemporalModel` (shared parameters),
    so a head trained on cached features is the head inside the full model.
    """

    def __init__(self, head: nn.Module, dropout: nn.Module, fc: nn.Linear, feature_diff: bool = False) -> None:
        super().__init__()
        self.feature_diff = feature_diff
        self.head = head
        self.dropout = dropout
        self.fc = fc
        self.num_classes = fc.out_features
        self.feature_dim = fc.in_features

    def features(self, f: Tensor) -> Tensor:
        return self.head(with_differences(f) if self.feature_diff else f)

    def forward(self, f: Tensor) -> Tensor:
        return self.fc(self.dropout(self.features(f)))


class FrameTemporalModel(VideoModel):
    """`(B,T,C,H,W)` -> per-frame encoder -> `(B,T,D)` -> temporal head -> `(B,D')` -> linear -> logits.

    `freeze_encoder=True`: the encoder's parameters get `requires_grad=False`, the encoder stays in eval
    mode (BatchNorm statistics frozen) even under `model.train()`, and it runs under `torch.no_grad()`.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, num_classes: int, dropout: float = 0.5,
                 freeze_encoder: bool = False, multi_label: bool = False, feature_diff: bool = False) -> None:
        super().__init__()
        self.feature_diff = feature_diff  # the head sees (B,T,2D): [f_t, f_t - f_{t-1}]
        self.encoder = encoder
        self.head = head
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head.out_dim, num_classes)
        self.num_classes = num_classes
        self.feature_dim = head.out_dim
        self.frame_dim = encoder.out_dim
        self.multi_label = multi_label
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for p in self.encoder.parameters():
                p.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> "FrameTemporalModel":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def frame_features(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` -> `(B,T,D)` per-frame embeddings."""
        if x.ndim != 5:
            raise ValueError(f"expected a (B,T,C,H,W) batch, got shape {tuple(x.shape)}")
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        if self.freeze_encoder:
            with torch.no_grad():
                f = self.encoder(frames)
        else:
            f = self.encoder(frames)
        return f.view(b, t, -1)

    def features_from_frame_features(self, f: Tensor) -> Tensor:
        """`(B,T,D)` per-frame encoder features -> `(B,feature_dim)` (differences appended first with `feature_diff`)."""
        return self.head(with_differences(f) if self.feature_diff else f)

    def classify(self, features: Tensor) -> Tensor:
        """`(B,feature_dim)` -> `(B,num_classes)`."""
        return self.fc(self.dropout(features))

    def features(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` frames, or `(B,T,D)` per-frame features precomputed by this model's
        (frozen) encoder, -> `(B,feature_dim)`."""
        if x.ndim == 3:
            return self.features_from_frame_features(x)
        return self.features_from_frame_features(self.frame_features(x))

    def forward(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` frames or `(B,T,D)` precomputed frame features -> `(B,num_classes)` logits."""
        return self.classify(self.features(x))

    def head_model(self) -> HeadModel:
        """A module `(B,T,D)` -> logits sharing this model's head and classifier parameters."""
        return HeadModel(self.head, self.dropout, self.fc, self.feature_diff)


HEADS = ("mean", "max", "lstm", "gru", "transformer", "tconv")


def build_head(kind: str, in_dim: int, /, **args) -> nn.Module:
    """A temporal head over `(B,T,in_dim)`; `args` are the head's own options."""
    if kind == "mean":
        return MeanPool(in_dim)
    if kind == "max":
        return MaxPool(in_dim)
    if kind in ("lstm", "gru"):
        return RNNHead(in_dim, kind, **args)
    if kind == "transformer":
        return TransformerHead(in_dim, **args)
    if kind == "tconv":
        return TConvHead(in_dim, **args)
    raise ConfigError(None, f"unknown temporal head {kind!r}; valid heads: {', '.join(HEADS)}")


def build_frame_temporal(
    head: str,
    num_classes: int,
    *,
    encoder: str = "small_cnn",
    width: float = 1.0,
    spatial_grid: int = 1,
    pretrained: str | None = None,
    weights_file: str | None = None,
    freeze_encoder: bool = False,
    dropout: float = 0.5,
    multi_label: bool = False,
    load_weights: bool = True,
    feature_diff: bool = False,
    **head_args,
) -> FrameTemporalModel:
    """Encoder + head + linear classifier (the builder behind `tsn`, `lstm`, `gru`, `transformer`, ...).

    `feature_diff`: the head reads `[f_t, f_t - f_{t-1}]` (twice the encoder's width)."""
    from vidlens.models.encoders import build_encoder

    enc = build_encoder(encoder, width=width, pretrained=pretrained, weights_file=weights_file,
                        load_weights=load_weights, spatial_grid=spatial_grid)
    in_dim = enc.out_dim * (2 if feature_diff else 1)
    return FrameTemporalModel(enc, build_head(head, in_dim, **head_args), num_classes, dropout,
                              freeze_encoder=freeze_encoder, multi_label=multi_label, feature_diff=feature_diff)
