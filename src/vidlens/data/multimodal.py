"""`AudioVisualDataset`: clips with their sound, as `{"video", "audio", "label", "meta"}` items.

- ``video``: `float32 (T,C,H,W)` RGB in [0, 1] (`T = num_frames` spread evenly over the clip), or
  the output of `transform` on the uint8 `(T,C,H,W)` frames;
- ``audio``: log-mel `float32 (1,n_mels,frames)` (dB, `vidlens.features.audio.log_mel`) of the
  first `seconds` of the track at `sample_rate` (zero-padded when shorter);
- ``label``: class id; ``meta``: ``path``, ``index``.

Reads a folder with `manifest.csv` (`path,label,split`) and `labels.json`, as the synthetic sets
write them (`make_audiovisual_dataset`, `make_action_dataset(audio=True)`). `preload=True` decodes
everything once (in the constructor), for small sets trained many times; otherwise items are
decoded on access and kept (`cache=True`) or not.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from vidlens.errors import DatasetError


class AudioVisualDataset(Dataset):
    """Video frames + log-mel of each clip listed in `root/manifest.csv` (rows of `split`, or all when None)."""

    def __init__(self, root: str | os.PathLike[str], split: str | None = "train", *, num_frames: int = 8,
                 size: int | None = None, sample_rate: int = 16000, seconds: float | None = None, n_mels: int = 64,
                 win_ms: float = 25.0, hop_ms: float = 10.0, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 preload: bool = False, cache: bool = True) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.csv"
        if not manifest.is_file():
            raise DatasetError(self.root, "has no manifest.csv")
        labels_file = self.root / "labels.json"
        with open(manifest, newline="") as f:
            rows = [r for r in csv.DictReader(f) if split is None or r.get("split") == split]
        self.labels: list[str] = (json.loads(labels_file.read_text()) if labels_file.is_file()
                                  else sorted({r["label"] for r in rows}))
        unknown = sorted({r["label"] for r in rows} - set(self.labels))
        if unknown:
            raise DatasetError(manifest, f"labels {unknown} are not in labels.json")
        self.items = [(str(self.root / r["path"]), self.labels.index(r["label"])) for r in rows]
        self.targets = [label for _, label in self.items]
        self.num_frames, self.size = int(num_frames), size
        self.sample_rate, self.n_mels, self.win_ms, self.hop_ms = int(sample_rate), int(n_mels), win_ms, hop_ms
        meta = self.root / "dataset.json"
        if seconds is None and meta.is_file():
            info = json.loads(meta.read_text())
            if info.get("num_frames") and info.get("fps"):
                seconds = float(info["num_frames"]) / float(info["fps"])
        self.seconds = float(seconds) if seconds else 1.0
        self.transform = transform
        self.cache = cache or preload
        self._store: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if preload:
            for i in range(len(self.items)):
                self._load(i)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def _load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self._store.get(index)
        if hit is not None:
            return hit
        from vidlens.features.audio import log_mel
        from vidlens.io import frame_index, read_audio, read_clip

        path = self.items[index][0]
        count = frame_index(path).num_frames
        wanted = np.linspace(0, max(count - 1, 0), self.num_frames).round().astype(np.int64)
        frames = torch.from_numpy(read_clip(path, wanted, size=self.size)).permute(0, 3, 1, 2).contiguous()
        samples = read_audio(path, self.sample_rate, mono=True, end=self.seconds)
        want = int(round(self.seconds * self.sample_rate))
        fixed = np.zeros((1, want), np.float32)
        fixed[:, : min(want, samples.shape[1])] = samples[:, :want]
        mel = torch.from_numpy(log_mel(fixed, self.sample_rate, self.n_mels, self.win_ms, self.hop_ms))[None]
        out = (frames, mel)
        if self.cache:
            self._store[index] = out
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = int(index) % len(self)
        frames, mel = self._load(index)
        video = self.transform(frames) if self.transform is not None else frames.float() / 255.0
        path, label = self.items[index]
        return {"video": video, "audio": mel.clone(), "label": label, "meta": {"path": path, "index": index}}
