"""Frozen-encoder training: embed every clip's frames once, then train only the temporal head.

With the encoder frozen its output never changes, so decoding and running the CNN every epoch
is wasted work. Each clip of the training set is sampled (and augmented) once, its frames are
embedded `(T,D)`, and the head trains on those tensors for all epochs. The trade-off, as in
every feature-extraction pipeline: one augmented view per training video instead of a new one
per epoch.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vidlens.engine.config import TrainConfig


class FrameFeatureDataset(Dataset):
    """Precomputed per-frame features: items `{"video": (T,D) or (V,T,D), "label", "meta"}`."""

    def __init__(self, features: torch.Tensor, labels: list[Any], metas: list[dict[str, Any]]) -> None:
        self.features = features
        self.labels = labels
        self.metas = metas

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"video": self.features[index], "label": self.labels[index], "meta": self.metas[index]}

    def labels_of_items(self) -> list[list[int]]:
        return [[int(x)] if not torch.is_tensor(x) else x.nonzero().flatten().tolist() for x in self.labels]


def precompute_features(model: Any, dataset: Dataset, cfg: TrainConfig, *,
                        progress: bool | None = None) -> FrameFeatureDataset:
    """Run `model.frame_features` over every item of `dataset` once (train items `(T,C,H,W)`, test items views),
    on the run's device (`cfg.device`: a GPU when there is one); features are kept on the CPU."""
    from vidlens.engine.distributed import resolve_device

    device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.workers, shuffle=False,
                        pin_memory=device.type == "cuda")
    model.to(device)
    model.eval()
    feats: list[torch.Tensor] = []
    labels: list[Any] = []
    metas: list[dict[str, Any]] = []
    with torch.inference_mode():
        for batch in loader:
            video = batch["video"].to(device, non_blocking=True)
            if video.ndim == 6:  # (B,V,T,C,H,W) test views
                b, v = video.shape[:2]
                f = model.frame_features(video.flatten(0, 1))
                f = f.view(b, v, *f.shape[1:])
            else:
                f = model.frame_features(video)
            feats.append(f.float().cpu())
            label = batch["label"]
            labels.extend(label.unbind(0) if label.ndim > 1 else [int(x) for x in label])
            meta = batch["meta"]
            for i in range(f.shape[0]):
                metas.append({"path": meta["path"][i], "substituted": bool(meta["substituted"][i])})
    return FrameFeatureDataset(torch.cat(feats), labels, metas)
