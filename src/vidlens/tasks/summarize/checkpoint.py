"""Summarization model checkpoints: vidlens format 1 (engine/checkpoint.py), written atomically,
read with `weights_only=True`. `model` is "dsn" (`DSN`) or "vasnet" (`AttentionRegressor`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from vidlens.engine.checkpoint import load_checkpoint, save_checkpoint
from vidlens.errors import CheckpointError
from vidlens.tasks.summarize.dsn import DSN
from vidlens.tasks.summarize.supervised import AttentionRegressor

BUILDERS: dict[str, type[nn.Module]] = {"dsn": DSN, "vasnet": AttentionRegressor}
METHOD_OF_MODEL = {"dsn": "dsn", "vasnet": "supervised"}


def save_summarizer(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
) -> Path:
    """Write `model` (a `DSN` or `AttentionRegressor`) with its constructor args and training config.
    `preprocess` should say where features come from (e.g. `{"features": "h5", "feature_dim": D}`)."""
    name = next((n for n, cls in BUILDERS.items() if type(model) is cls), None)
    if name is None:
        raise CheckpointError(path, f"cannot save a {type(model).__name__} as a summarization model")
    args = model.model_args()  # type: ignore[operator]
    return save_checkpoint(path, {
        "model": name,
        "model_args": args,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "labels": [],
        "preprocess": {"feature_dim": args["in_dim"], **(preprocess or {})},
        "config": {"task": "summarize", "method": METHOD_OF_MODEL[name], **config},
        "metrics": metrics or {},
    })


def load_summarizer(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a summarization model from a checkpoint (safe load); returns `(model in eval mode, checkpoint dict)`."""
    data = load_checkpoint(path)
    builder = BUILDERS.get(data["model"])
    if builder is None:
        raise CheckpointError(path, f"not a summarization checkpoint (model {data['model']!r})")
    try:
        model = builder(**data["model_args"])
        model.load_state_dict(data["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"checkpoint does not match {data['model']} ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, data
