"""`ShotNet`: a small transition detector in the spirit of TransNet V2, for `--method learned`.

Input: `uint8 (B, T, H, W, 3)` RGB frames at `FRAME_SIZE` (27x48, the whole frame squashed, as
TransNet V2 does). Output: `float32 (B, T, OUTPUTS)` logits per frame:
- `transition`: this frame is a shot boundary (a cut's first new frame, a gradual transition's middle);
- `gradual`: this frame lies inside a transition (TransNet's "many-hot" head; a cut's own frame too);
- `dissolve`, `fade`, `wipe`: which kind of gradual transition (meaningful where `gradual` is high).

Layout, chosen for CPU speed (one pass, every frame's image work done once):
1. a 3D convolution (3 frames x 3x3) on the frames: frame differences, blends and motion;
2. a per-frame 2D CNN to an embedding `E`;
3. similarity features: cosine similarity of each frame's embedding and of its colour
   histogram with the frames `ShotNetConfig.sim_offsets` away (TransNet's frame-similarity idea: a boundary is
   where the past stops looking like the future);
4. residual dilated 1D convolutions over time (receptive field +-`receptive_field()` frames);
5. a 1x1 convolution to the outputs.

Fully convolutional in time, so a whole video runs in chunks with `receptive_field()` frames of
overlap and gives the same result as one pass. Exported to ONNX for inference (onnxruntime starts
in a fraction of torch's import time, which matters for a whole-process command).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from vidlens.tasks.shots.learned import FRAME_SIZE  # (H, W) of the frames the network sees (defined where inference needs it)

OUTPUTS = ("transition", "gradual", "dissolve", "fade", "wipe")
GRADUAL_KINDS = ("dissolve", "fade", "wipe")
SIM_OFFSETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)  # frames to each side compared by the similarity features
# (up to 48: a 2 s dissolve at 25 fps is 50 frames, and its two ends must be compared with each other)
HIST_BINS = 4  # per RGB channel: 64-bin joint colour histogram


@dataclass
class ShotNetConfig:
    """Sizes of a `ShotNet` (stored in checkpoints so a model is rebuilt as trained)."""

    stem: int = 12  # channels of the 3D stem
    width: int = 24  # channels of the first 2D stage (the second has 2x)
    embed: int = 64  # per-frame embedding
    temporal: int = 64  # channels of the temporal convolutions
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    sim_offsets: list[int] = field(default_factory=lambda: list(SIM_OFFSETS))

    def to_dict(self) -> dict:
        return asdict(self)


class ShotNet(nn.Module):
    """uint8 `(B, T, 27, 48, 3)` -> logits `(B, T, 5)` (see the module doc)."""

    def __init__(self, config: ShotNetConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ShotNetConfig()
        self.stem = nn.Sequential(nn.Conv3d(3, c.stem, (3, 3, 3), padding=1), nn.BatchNorm3d(c.stem), nn.ReLU())
        self.spatial = nn.Sequential(
            nn.MaxPool2d(2),  # 13x24
            nn.Conv2d(c.stem, c.width, 3, padding=1), nn.BatchNorm2d(c.width), nn.ReLU(),
            nn.MaxPool2d(2),  # 6x12
            nn.Conv2d(c.width, 2 * c.width, 3, padding=1), nn.BatchNorm2d(2 * c.width), nn.ReLU(),
            nn.AvgPool2d(2),  # 3x6
        )
        self.embed = nn.Linear(2 * c.width * 18, c.embed)
        n_sim = 2 * len(c.sim_offsets)
        self.inp = nn.Conv1d(c.embed + 2 * n_sim, c.temporal, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c.temporal, c.temporal, 3, padding=d, dilation=d), nn.BatchNorm1d(c.temporal), nn.ReLU())
            for d in c.dilations
        )
        self.head = nn.Conv1d(c.temporal, len(OUTPUTS), 1)

    def receptive_field(self) -> int:
        """Frames on each side that can change one frame's output (chunks overlap by this much)."""
        return 1 + max(self.config.sim_offsets) + sum(self.config.dilations)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, h, w, _ = frames.shape
        x = frames.float().div(255.0)
        hist = colour_histograms(x)  # (B, T, 64)
        x = x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
        x = self.stem(x)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * t, -1, h, w)
        x = self.spatial(x).reshape(b, t, -1)
        emb = self.embed(x)  # (B, T, E)
        offsets = self.config.sim_offsets
        feats = [emb, similarities(F.normalize(emb, dim=-1), offsets), similarities(F.normalize(hist, dim=-1), offsets)]
        y = self.inp(torch.cat(feats, dim=-1).transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            y = y + block(y)
        return self.head(y).transpose(1, 2)  # (B, T, 5)


def colour_histograms(x: torch.Tensor) -> torch.Tensor:
    """`float (B, T, H, W, 3)` in [0, 1] -> `float (B, T, HIST_BINS**3)` soft joint RGB histograms (sum 1)."""
    q = (x * (HIST_BINS - 1e-3)).floor().clamp(0, HIST_BINS - 1)
    idx = (q[..., 0] * HIST_BINS * HIST_BINS + q[..., 1] * HIST_BINS + q[..., 2]).flatten(2).long()  # (B, T, HW)
    bins = torch.arange(HIST_BINS**3, device=x.device)
    return (idx.unsqueeze(-1) == bins).float().mean(dim=2)  # one-hot by comparison: exports to ONNX


def similarities(v: torch.Tensor, offsets: list[int]) -> torch.Tensor:
    """`(B, T, D)` unit vectors -> `(B, T, 2 * len(offsets))`: dot products with the frames d before and
    d after, d in `offsets` (beyond the ends the end frame is repeated: nothing there to differ from)."""
    t = v.shape[1]
    pad = max(offsets)
    padded = F.pad(v.transpose(1, 2), (pad, pad), mode="replicate").transpose(1, 2)  # (B, T + 2p, D)
    out = []
    for d in offsets:
        out.append((v * padded[:, pad - d : pad - d + t]).sum(-1))
        out.append((v * padded[:, pad + d : pad + d + t]).sum(-1))
    return torch.stack(out, dim=-1)
