"""Video classification / action recognition (single- and multi-label).

Training batches: `{"video": (B,T,C,H,W), "label": (B,) int or (B,K) multi-hot}`.
Evaluation batches may carry test views: `(B,V,T,C,H,W)` (V = clips x crops); the
probabilities of the views are averaged (softmax, or sigmoid for multi-label),
as in multi-view testing of TSN/SlowFast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidlens.tasks.base import StepOutput


def view_probabilities(model: nn.Module, video: Tensor, multi_label: bool, clip_ndim: int = 4) -> Tensor:
    """`(B,T,C,H,W)` or `(B,V,T,C,H,W)` -> `(B,K)` probabilities averaged over views.

    `clip_ndim`: dimensions of one clip (4 for `(T,C,H,W)` frames, 2 for `(T,D)` precomputed features).
    """
    if video.ndim == clip_ndim + 1:
        video = video.unsqueeze(1)
    batch, views = video.shape[:2]
    logits = model(video.flatten(0, 1))
    probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits.float(), dim=-1)
    return probs.view(batch, views, -1).mean(dim=1)


@dataclass(eq=False)
class ClassificationTask:
    """Wraps a `VideoModel`: cross-entropy (label smoothing, class weights) or BCE for multi-label."""

    model: nn.Module
    labels: list[str]
    model_name: str
    model_args: dict[str, Any]
    preprocess: dict[str, Any]
    multi_label: bool = False
    label_smoothing: float = 0.0
    class_weights: Tensor | None = None
    monitor: str = field(default="")
    monitor_mode: str = "max"
    clip_ndim: int = 4  # one input clip: (T,C,H,W) frames; 2 for (T,D) precomputed frame features

    def __post_init__(self) -> None:
        if not self.monitor:
            self.monitor = "mAP" if self.multi_label else "top1"

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        weight = None if self.class_weights is None else self.class_weights.to(logits.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=None, weight=None)
        return F.cross_entropy(logits.float(), targets.long(), weight=weight, label_smoothing=self.label_smoothing)

    def train_step(self, batch: dict[str, Any]) -> StepOutput:
        logits = self.model(batch["video"])
        targets = batch["label"]
        return StepOutput(loss=self.loss(logits, targets), scores=logits.detach(), targets=targets)

    def eval_step(self, batch: dict[str, Any]) -> StepOutput:
        targets = batch["label"]
        probs = view_probabilities(self.model, batch["video"], self.multi_label, self.clip_ndim)
        if self.multi_label:
            loss = F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), targets.float())
        else:
            loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), targets.long())
        return StepOutput(loss=loss, scores=probs, targets=targets)

    def compute_metrics(self, scores: Tensor, targets: Tensor) -> dict[str, float]:
        return classification_metrics(scores.float().cpu().numpy(), targets.cpu().numpy(), self.num_classes, self.multi_label)

    def checkpoint_fields(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "model_args": dict(self.model_args),
            "labels": list(self.labels),
            "preprocess": dict(self.preprocess),
        }


def classification_metrics(scores: np.ndarray, targets: np.ndarray, num_classes: int, multi_label: bool = False) -> dict[str, float]:
    """Top-1/top-5, mean class accuracy and macro F1 (single-label) or mAP (multi-label), via scikit-learn.

    `scores` `(N,K)` probabilities or logits; `targets` `(N,)` class ids or `(N,K)` multi-hot.
    """
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score, top_k_accuracy_score

    n = int(scores.shape[0])
    if n == 0:
        return {"num_videos": 0}
    if multi_label:
        targets = targets.astype(int)
        present = targets.sum(axis=0) > 0
        ap = average_precision_score(targets[:, present], scores[:, present], average=None) if present.any() else []
        predicted = (scores >= 0.5).astype(int)
        return {
            "mAP": float(np.mean(ap)) if len(ap) else 0.0,
            "macro_f1": float(f1_score(targets, predicted, average="macro", zero_division=0)),
            "exact_match": float((predicted == targets).all(axis=1).mean()),
            "num_videos": n,
        }
    targets = targets.astype(int)
    classes = np.arange(num_classes)
    predicted = scores.argmax(axis=1)
    return {
        "top1": float((predicted == targets).mean()),
        # with 3-5 classes every label is within the top 5 (1.0; sklearn would warn that k >= n_classes)
        "top5": float(top_k_accuracy_score(targets, scores, k=5, labels=classes)) if num_classes > 5 else 1.0 if num_classes > 2 else float((predicted == targets).mean()),
        "mean_class_acc": float(balanced_accuracy_score(targets, predicted)) if len(np.unique(targets)) > 1 else float((predicted == targets).mean()),
        "macro_f1": float(f1_score(targets, predicted, labels=classes, average="macro", zero_division=0)),
        "num_videos": n,
    }


def preprocess_fields(sampler: Any, transform: Any, decode_size: int | None) -> dict[str, Any]:
    """The checkpoint's `preprocess` entry: everything inference needs to see clips as training did.

    `sampler` a `SamplerConfig`, `transform` a `TransformConfig`; the flat keys (fps, clip_len,
    size, mean, std) are for people and other tools, the nested configs are what vidlens rebuilds.
    """
    return {
        "fps": sampler.fps,
        "clip_len": sampler.clip_len,
        "stride": sampler.stride,
        "size": transform.size,
        "decode_size": decode_size,
        "mean": list(transform.mean),
        "std": list(transform.std),
        "sampler": sampler.to_dict(),
        "transform": transform.to_dict(),
    }
