"""A small CNN on log-mel spectrograms, with the shared model surface.

Input: log-mel `(B,1,n_mels,frames)` or `(B,n_mels,frames)` float (e.g. `vidlens.features.audio.log_mel`
in dB). Output: logits `(B,num_classes)` from `forward`, a clip embedding `(B,feature_dim)` from
`features`, and per-time tokens `(B,frames',feature_dim)` from `tokens` (for cross-modal attention).

Each example is standardised on its own first (`input_norm="instance"`: minus its mean, over its
std), so the model ignores recording gain and the dB offset; `"batch"` uses a BatchNorm instead.
"""

from __future__ import annotations

from torch import Tensor, nn

from vidlens.errors import ConfigError


class AudioCNN(nn.Module):
    """Four conv3x3-BN-ReLU blocks (2x2 max-pool after each but the last), then mean over frequency
    -> `(B,C,frames/8)` time tokens, mean over time -> `(B,C)` features -> dropout -> linear.

    Channels `(16, 32, 64, 128) x width`; ~0.1 M parameters at width 1. Any `n_mels`/`frames` >= 8.
    """

    BASE = (16, 32, 64, 128)

    def __init__(self, num_classes: int, width: float = 1.0, dropout: float = 0.3, input_norm: str = "instance",
                 in_channels: int = 1) -> None:
        super().__init__()
        if input_norm not in ("instance", "batch", "none"):
            raise ConfigError(None, f"input_norm must be 'instance', 'batch' or 'none', got {input_norm!r}")
        chans = [max(4, int(round(c * width))) for c in self.BASE]
        self.input_norm = input_norm
        self.in_bn = nn.BatchNorm2d(in_channels) if input_norm == "batch" else nn.Identity()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(chans):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_classes)
        self.num_classes = num_classes
        self.feature_dim = cin
        self.in_channels = in_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _prepare(self, x: Tensor) -> Tensor:
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected log-mel (B,{self.in_channels},n_mels,frames) or (B,n_mels,frames), "
                             f"got shape {tuple(x.shape)}")
        x = x.float()
        if self.input_norm == "instance":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
            x = (x - mean) / std
        return self.in_bn(x)

    def tokens(self, x: Tensor) -> Tensor:
        """Log-mel -> per-time embeddings `(B,frames',feature_dim)` (`frames' = ceil(frames/8)`)."""
        return self.body(self._prepare(x)).mean(dim=2).transpose(1, 2)

    def features(self, x: Tensor) -> Tensor:
        """Log-mel -> `(B,feature_dim)` clip embedding."""
        return self.tokens(x).mean(dim=1)

    def classify(self, features: Tensor) -> Tensor:
        """`(B,feature_dim)` -> `(B,num_classes)` logits."""
        return self.fc(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        """Log-mel `(B,1,n_mels,frames)` or `(B,n_mels,frames)` -> `(B,num_classes)` logits."""
        return self.classify(self.features(x))


def build_audio_cnn(num_classes: int, width: float = 1.0, dropout: float = 0.3, input_norm: str = "instance") -> AudioCNN:
    """An `AudioCNN` with `num_classes` outputs (`width` multiplies the channel counts)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(None, f"num_classes must be a positive integer, got {num_classes!r}")
    if not isinstance(width, int | float) or isinstance(width, bool) or width <= 0:
        raise ConfigError(None, f"width must be a positive number, got {width!r}")
    return AudioCNN(num_classes, float(width), float(dropout), input_norm)
