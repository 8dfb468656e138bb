"""Classification from several modalities (video + audio, ...) for the engine's `fit`/`evaluate`.

Batches: `{"video": (B,T,C,H,W), "audio": (B,1,n_mels,frames), "label": (B,), "meta": ...}` (any
modality keys). `inputs` says what the model gets: a tuple of keys -> the batch dict itself (a
`vidlens.models.fusion` model reads its modalities from it); one key (a string) -> that tensor only,
so a single-modality baseline (a video model, `AudioCNN`) is trained by the very same task and loop.

Loss and metrics are `ClassificationTask`'s (cross-entropy with label smoothing / class weights;
top-1, mean class accuracy, macro F1). `aux_weight > 0` adds, for a model that leaves its
per-modality logits in `last_modality_logits` after `forward` (`LateFusion`), the mean cross-entropy of each modality's own prediction, so each head also learns
on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from vidlens.tasks.base import StepOutput
from vidlens.tasks.classify import ClassificationTask


@dataclass(eq=False)
class MultimodalTask(ClassificationTask):
    """`ClassificationTask` whose model input is several batch entries (or one, chosen by key)."""

    model_name: str = "fusion"
    model_args: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | str = ("video", "audio")
    aux_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.multi_label:
            raise ValueError("MultimodalTask is single-label")
        if not isinstance(self.inputs, str):
            self.inputs = tuple(self.inputs)

    def model_input(self, batch: dict[str, Any]) -> Any:
        """What the model is called with: one tensor (`inputs` a key) or the dict of the `inputs` keys."""
        if isinstance(self.inputs, str):
            return batch[self.inputs]
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise KeyError(f"batch has no {', '.join(missing)} (has {', '.join(map(str, batch))})")
        return {k: batch[k] for k in self.inputs}

    def train_step(self, batch: dict[str, Any]) -> StepOutput:
        x, targets = self.model_input(batch), batch["label"]
        logits = self.model(x)
        loss = self.loss(logits, targets)
        if self.aux_weight > 0:
            inner = getattr(self.model, "module", self.model)  # the model itself under DDP
            per = getattr(inner, "last_modality_logits", None)  # set by LateFusion.forward
            if per:
                inner.last_modality_logits = {}  # hold no autograd graph past this step
                loss = loss + self.aux_weight * sum(self.loss(v, targets) for v in per.values()) / len(per)
        return StepOutput(loss=loss, scores=logits.detach(), targets=targets)

    def eval_step(self, batch: dict[str, Any]) -> StepOutput:
        targets = batch["label"]
        probs = torch.softmax(self.model(self.model_input(batch)).float(), dim=-1)
        loss = F.nll_loss(torch.log(probs.clamp_min(1e-12)), targets.long())
        return StepOutput(loss=loss, scores=probs, targets=targets)
