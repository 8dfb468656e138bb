"""Small real pieces for the engine tests: a tiny 3D-conv `VideoModel`, a learnable synthetic
video dataset (the class is the brightness trend over frames), and a `ClassificationTask` on them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from vidlens.errors import DatasetError
from vidlens.models.base import VideoModel
from vidlens.tasks.classify import ClassificationTask
from vidlens.testing import single_thread

@pytest.fixture(autouse=False)
def one_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread is faster and steadier. Import it into a
    test module to make it autouse there (`from tests.engine import one_thread`)."""
    with single_thread():
        yield


SLOPES = (-1.0, -0.6, -0.2, 0.2, 0.6, 1.0)  # class k: frames get brighter (or darker) at this rate
CLASSES = [f"trend{k}" for k in range(len(SLOPES))]


class TinyVideoNet(VideoModel):
    """Conv3d (1x3x3) -> BatchNorm -> ReLU -> spatial mean -> per-frame features -> dropout -> linear.

    Input `(B,T,C,H,W)` with `T = frames`.
    """

    def __init__(self, num_classes: int = len(SLOPES), width: int = 8, dropout: float = 0.1, frames: int = 4,
                 norm: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feature_dim = width * frames
        self.conv = nn.Conv3d(3, width, kernel_size=(1, 3, 3), padding=(0, 1, 1))
        self.norm = nn.BatchNorm3d(width) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 1, 3, 4)  # (B,T,C,H,W) -> (B,C,T,H,W)
        return torch.relu(self.norm(self.conv(x))).mean(dim=(3, 4)).flatten(1)

    def classify(self, features: Tensor) -> Tensor:
        return self.head(self.drop(features))


class TrendDataset(Dataset):
    """Items `{"video": (T,C,H,W) float, "label": int, "meta": {"path", "substituted"}}`.

    Item `i` is a fixed function of (seed, i); with `augment`, noise from the global torch RNG
    is added in `__getitem__` (so data augmentation randomness is part of what resume must
    reproduce, in the main process or in workers).
    """

    def __init__(self, n: int, seed: int = 0, frames: int = 4, size: int = 8, augment: bool = True,
                 substituted: set[int] | frozenset[int] = frozenset(), bad: set[int] | frozenset[int] = frozenset(),
                 unreadable: set[int] | frozenset[int] = frozenset()) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, len(SLOPES), (n,), generator=g)
        self.base = 0.3 + 0.4 * torch.rand(n, generator=g)
        self.noise = 0.03 * torch.randn(n, frames, 3, size, size, generator=g)
        self.frames, self.augment = frames, augment
        self.substituted, self.bad, self.unreadable = set(substituted), set(bad), set(unreadable)
        self.targets = self.labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i in self.unreadable:  # what a dataset does when even its substitutes fail
            raise DatasetError(f"clip{i:04d}.mp4", "unreadable, and so were its replacements")
        t = torch.linspace(-0.5, 0.5, self.frames).view(-1, 1, 1, 1)
        video = self.base[i] + SLOPES[int(self.labels[i])] * t + self.noise[i]
        if self.augment:
            video = video + 0.02 * torch.randn_like(video)
        if i in self.bad:  # a wrong shape: the default collate fails on the batch holding it
            video = video[:, :, :-1]
        return {"video": video.float(), "label": int(self.labels[i]),
                "meta": {"path": f"clip{i:04d}.mp4", "substituted": i in self.substituted}}


class HangingDataset(TrendDataset):
    """A `TrendDataset` that, once `run_dir/last.pt` exists, serves `after` more items in this
    process, touches `run_dir/hanging` and then sleeps (so a test can SIGKILL it mid-epoch)."""

    def __init__(self, *args: Any, run_dir: str, after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_dir, self.after, self.served = Path(run_dir), after, 0

    def __getitem__(self, i: int) -> dict[str, Any]:
        if (self.run_dir / "last.pt").exists():
            self.served += 1
            if self.served > self.after:
                (self.run_dir / "hanging").touch()
                while True:
                    time.sleep(60)
        return super().__getitem__(i)


def make_task(seed: int = 0, width: int = 8, dropout: float = 0.1, norm: bool = True,
              cls: type[ClassificationTask] = ClassificationTask) -> ClassificationTask:
    torch.manual_seed(seed)
    model = TinyVideoNet(width=width, dropout=dropout, norm=norm)
    return cls(model=model, labels=list(CLASSES), model_name="tiny_video_net",
               model_args={"width": width, "dropout": dropout, "norm": norm},
               preprocess={"clip_len": 4, "size": 8, "fps": 25.0, "mean": [0.0] * 3, "std": [1.0] * 3,
                           "sampler": "uniform"})


def datasets(n_train: int = 128, n_val: int = 64, **kwargs: Any) -> tuple[TrendDataset, TrendDataset]:
    return TrendDataset(n_train, seed=1, **kwargs), TrendDataset(n_val, seed=2, augment=False)


def state_close(a: dict[str, Tensor], b: dict[str, Tensor], atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=0) for k in a)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(repo_root()), str(repo_root() / "src"), env.get("PYTHONPATH", "")])
    return env
