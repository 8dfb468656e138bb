"""The interface between a task (what is learned, how it is scored) and the engine (how it is run).

The engine only knows this interface: it moves batches to the device, calls
`train_step`/`eval_step`, back-propagates `loss`, gathers `scores`/`targets` across
processes and hands them to `compute_metrics`. Everything specific to a job (loss,
multi-view averaging, metrics, what goes into the checkpoint) lives in the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor, nn


@dataclass
class StepOutput:
    """What one step returns. `scores`: `(B,K)` logits in training, probabilities in evaluation."""

    loss: Tensor
    scores: Tensor
    targets: Tensor
    extras: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    model: nn.Module
    # Metric the engine monitors for best checkpoints and early stopping, and whether higher is better.
    monitor: str
    monitor_mode: str  # "max" or "min"

    def train_step(self, batch: dict[str, Any]) -> StepOutput: ...

    def eval_step(self, batch: dict[str, Any]) -> StepOutput: ...

    def compute_metrics(self, scores: Tensor, targets: Tensor) -> dict[str, float]:
        """Metrics over a whole evaluation set (`scores` `(N,K)`, `targets` `(N,)` or `(N,K)`)."""
        ...

    def checkpoint_fields(self) -> dict[str, Any]:
        """`model`, `model_args`, `labels`, `preprocess`: what inference needs to rebuild everything."""
        ...
