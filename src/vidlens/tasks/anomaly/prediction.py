"""Future-frame prediction (Liu et al., "Future Frame Prediction for Anomaly Detection", CVPR 2018).

A small U-Net sees the previous `context` (4) frames and predicts the next one; trained on normal
footage only, it predicts normal motion and appearance well and anything else badly. A frame's raw score
is the negative PSNR of its prediction (higher = more anomalous), its heat the per-pixel squared error.

Kept from the paper: the U-Net generator, frames scaled to [-1, 1], the intensity (L2) and gradient
losses, PSNR scoring. Left out, for CPU training in minutes: the adversarial loss (no discriminator) and
the optical-flow loss (no FlowNet). The network runs at a reduced `train_size` (default 64x80, any
working size is resized to it), `width` 16 channels at the first level, three pooling levels.

Measured (one thread, 2 busy cores): fitting on vtest.avi's 795 frames (192x256 working size, 6 epochs) took
75 s; scoring ~150 frames/s. Frame AUC on vtest.avi with inserted anomalies: 4x fast motion 1.00, a face
pasted and moving across the road 0.98; weak on normal-looking people walking where nobody did (0.40).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import cv2
import numpy as np

from vidlens.tasks.anomaly._cells import Stopwatch, check_frames, fit_videos, notify
from vidlens.tasks.anomaly.base import FrameScores, Progress, register_method


def _unet(in_channels: int, out_channels: int, width: int):
    """A 3-level U-Net `(N,in,H,W)` -> `(N,out,H,W)` in [-1, 1] (tanh); H, W multiples of 8."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                             nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = [width, width * 2, width * 4, width * 8]
            self.down = nn.ModuleList([block(in_channels, c[0]), block(c[0], c[1]), block(c[1], c[2])])
            self.bottom = block(c[2], c[3])
            self.up = nn.ModuleList([nn.ConvTranspose2d(c[i + 1], c[i], 2, stride=2) for i in range(3)])
            self.merge = nn.ModuleList([block(2 * c[i], c[i]) for i in range(3)])
            self.out = nn.Conv2d(c[0], out_channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for level in self.down:
                x = level(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for i in reversed(range(3)):
                x = self.merge[i](torch.cat([self.up[i](x), skips[i]], dim=1))
            return torch.tanh(self.out(x))

    return UNet()


def _gradient_loss(pred, target):
    """Liu et al.'s gradient difference loss (alpha = 1) between `(N,C,H,W)` images."""
    def grads(x):
        return (x[..., :, 1:] - x[..., :, :-1]).abs(), (x[..., 1:, :] - x[..., :-1, :]).abs()

    (px, py), (tx, ty) = grads(pred), grads(target)
    return (px - tx).abs().mean() + (py - ty).abs().mean()


@register_method
class FramePrediction:
    """Future-frame prediction: a U-Net predicts frame t from frames t-4..t-1; score = -PSNR (dB).

    `epochs` passes over the normal windows (at most `max_windows` random windows per epoch), Adam with
    learning rate `lr`, batches of `batch`; `train_size` (H, W) (multiples of 8) is where the network runs;
    `heat_cell` px of `train_size` per heat-map cell; `seed` fixes initialisation and sample order.
    """

    name: ClassVar[str] = "prediction"

    def __init__(self, epochs: int = 6, lr: float = 1e-3, width: int = 16, train_size: tuple[int, int] | list[int] = (64, 80),
                 batch: int = 8, max_windows: int = 1000, heat_cell: int = 4, context: int = 4, seed: int = 0) -> None:
        from vidlens.errors import ConfigError

        h, w = (int(v) for v in train_size)
        if h < 16 or w < 16 or h % 8 or w % 8:
            raise ConfigError(None, f"prediction train_size must be multiples of 8 and >= 16, got {h}x{w}")
        if epochs < 1 or batch < 1 or width < 1 or context < 1 or heat_cell < 1 or lr <= 0:
            raise ConfigError(None, "prediction epochs, batch, width, context and heat_cell must be >= 1, lr > 0")
        self.epochs, self.lr, self.width, self.batch, self.seed = int(epochs), float(lr), int(width), int(batch), int(seed)
        self.train_size = (h, w)
        self.max_windows, self.heat_cell, self.context = int(max_windows), int(heat_cell), int(context)
        self.net = None

    # ---- data -------------------------------------------------------------------------------------------------
    def _prepare(self, frames: np.ndarray) -> np.ndarray:
        """`uint8 (T,H,W,3)` -> `float32 (T,3,h,w)` in [-1, 1] at `train_size`."""
        h, w = self.train_size
        small = np.stack([f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
        return (small.astype(np.float32).transpose(0, 3, 1, 2) / 127.5) - 1.0

    def _windows(self, video, starts):
        """`(N, context*3, h, w)` inputs and `(N,3,h,w)` targets for windows starting at `starts` of a `(T,3,h,w)` tensor."""
        import torch

        idx = torch.as_tensor(starts)[:, None] + torch.arange(self.context + 1)[None, :]
        clips = video[idx]  # (N, context+1, 3, h, w)
        return clips[:, :-1].flatten(1, 2), clips[:, -1]

    def _build(self):
        import torch

        torch.manual_seed(self.seed)
        return _unet(3 * self.context, 3, self.width)

    # ---- protocol ---------------------------------------------------------------------------------------------
    def fit(self, videos: Iterable[np.ndarray], progress: Progress | None = None) -> dict[str, Any]:
        import torch

        from vidlens.threads import one_torch_thread

        clock = Stopwatch()
        data = [torch.from_numpy(self._prepare(v)) for v in fit_videos(videos, self.context, self.name)]
        pairs = [(i, s) for i, v in enumerate(data) for s in range(len(v) - self.context)]
        frames = sum(len(v) for v in data)
        with one_torch_thread():
            net = self._build()
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            gen = torch.Generator().manual_seed(self.seed)
            per_epoch = min(len(pairs), self.max_windows)
            steps = self.epochs * ((per_epoch + self.batch - 1) // self.batch)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
            net.train()
            losses = []
            for epoch in range(self.epochs):
                order = torch.randperm(len(pairs), generator=gen)[:per_epoch].tolist()
                total, count = 0.0, 0
                for b in range(0, per_epoch, self.batch):
                    chosen = [pairs[k] for k in order[b:b + self.batch]]
                    x, y = self._batch(data, chosen)
                    pred = net(x)
                    loss = ((pred - y) ** 2).mean() + _gradient_loss(pred, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total, count = total + loss.item() * len(chosen), count + len(chosen)
                losses.append(total / count)
                notify(progress, "prediction: train", (epoch + 1) / self.epochs)
        self.net = net.eval()
        return {"frames": frames, "windows": len(pairs), "epochs": self.epochs, "loss": round(losses[-1], 6),
                "loss_per_epoch": [round(v, 6) for v in losses], "train_size": list(self.train_size), "seconds": clock.seconds()}

    def _batch(self, data, chosen):
        import torch

        xs, ys = [], []
        for i, s in chosen:
            x, y = self._windows(data[i], [s])
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def score(self, frames: np.ndarray) -> FrameScores:
        import torch

        from vidlens.threads import one_torch_thread

        if self.net is None:
            raise RuntimeError("prediction: score() before fit() or from_state()")
        frames = check_frames(frames, self.context, self.name)
        video = torch.from_numpy(self._prepare(frames))
        starts = np.arange(len(frames) - self.context)
        scores, heats = [], []
        with one_torch_thread(), torch.no_grad():
            for b in range(0, len(starts), 32):
                x, y = self._windows(video, starts[b:b + 32])
                err = ((self.net(x) - y) ** 2).mean(dim=1)  # (N,h,w), on the [-1,1] scale
                mse01 = err.flatten(1).mean(dim=1).double() / 4.0  # on the [0,1] scale, as PSNR is defined
                scores.append((10.0 * torch.log10(mse01.clamp_min(1e-10))).numpy())  # = -PSNR
                heats.append(torch.nn.functional.avg_pool2d(err[:, None], self.heat_cell)[:, 0].numpy())
        return FrameScores(np.concatenate(scores).astype(np.float64), np.concatenate(heats).astype(np.float32))

    def args(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "width": self.width, "train_size": list(self.train_size),
                "batch": self.batch, "max_windows": self.max_windows, "heat_cell": self.heat_cell,
                "context": self.context, "seed": self.seed}

    def state(self) -> dict[str, Any]:
        if self.net is None:
            raise RuntimeError("prediction: state() before fit()")
        return {"args": self.args(), "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any], args: dict[str, Any]) -> FramePrediction:
        method = cls(**{**dict(state.get("args", {})), **dict(args)})
        net = method._build()
        net.load_state_dict(state["net"])
        method.net = net.eval()
        return method
