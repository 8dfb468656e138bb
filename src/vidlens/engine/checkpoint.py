"""Checkpoints: one file, written atomically, read with `weights_only=True`.

Format 1 (DESIGN.md §3):
    {"format": 1, "model": name, "model_args": {...}, "state_dict": {...}, "labels": [...],
     "preprocess": {"fps", "clip_len", "size", "mean", "std", "sampler", ...}, "config": {...},
     "metrics": {...}, "vidlens_version": "...",
     "train_state": {...}}   # optional: optimizer/scheduler/scaler/EMA/RNG/epoch for exact resume
Everything in it is tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)`
reads it without running any code from the file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from vidlens import __version__
from vidlens.errors import CheckpointError

FORMAT = 1
REQUIRED = ("format", "model", "model_args", "state_dict", "labels", "preprocess")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write `payload` to `path` atomically: a temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "vidlens_version": __version__, **payload}
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise CheckpointError(path, f"refusing to write a checkpoint without {missing}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a vidlens checkpoint safely (`weights_only=True`) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors, truncated zip, foreign pickles
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(path, f"not a readable vidlens checkpoint ({reason})") from None
    if not isinstance(data, dict) or "format" not in data:
        raise CheckpointError(path, "not a vidlens checkpoint (no 'format' field)")
    if data["format"] != FORMAT:
        raise CheckpointError(path, f"checkpoint format {data['format']} is not supported (expected {FORMAT})")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise CheckpointError(path, f"checkpoint lacks {missing}")
    return data
