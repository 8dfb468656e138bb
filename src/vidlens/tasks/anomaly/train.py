"""Train an anomaly model on a camera's normal footage: fit the method, then calibrate its absolute score.

Each normal source is split in time: the first `1 - calibration_share` of its frames fit the method, the
last part is held out and scored to calibrate `absolute = (raw - median) / robust std` (base.Calibration),
so a live camera gets a threshold in units of "how unusual for this camera" without any anomalous example.
A source that cannot be read is reported and skipped; training fails only when none is readable.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from vidlens.errors import ConfigError, DatasetError, VideoDecodeError
from vidlens.tasks.anomaly.base import AnomalyConfig, AnomalyModel, Calibration, Progress, build_method
from vidlens.tasks.anomaly.frames import Source, describe, read_frames

MIN_FIT_FRAMES = 8


def _seed(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def split_normal(frames: np.ndarray, share: float, context: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit part, held-out part) of one source's `uint8 (T,H,W,3)` frames: the held-out part starts
    `context` frames early so its first scored frame has its history."""
    held = int(round(len(frames) * share))
    if held <= context or len(frames) - held < MIN_FIT_FRAMES:
        return frames, frames[:0]
    cut = len(frames) - held
    return frames[:cut], frames[cut - context:]


def train_anomaly_model(sources: Sequence[Source], config: AnomalyConfig, *, progress: Progress | None = None,
                        calibration_share: float = 0.2) -> AnomalyModel:
    """Fit `config.method` on normal `sources` (video files, image folders or image lists of ONE camera) and
    calibrate it on their held-out ends. Raises `DatasetError` when no source is usable."""
    config.check()
    if not 0 <= calibration_share < 0.9:
        raise ConfigError(None, f"calibration_share must be in [0, 0.9), got {calibration_share}")
    _seed(config.seed)
    method = build_method(config)
    fit_parts: list[np.ndarray] = []
    held_parts: list[np.ndarray] = []
    skipped: list[dict[str, str]] = []
    started = time.perf_counter()
    for i, source in enumerate(sources):
        if progress:
            progress("read", (i + 1) / max(1, len(sources)))
        try:
            frames, _, _ = read_frames(source, config.size, config.fps)
        except VideoDecodeError as exc:
            skipped.append({"source": describe(source), "reason": exc.reason})
            warnings.warn(f"skipping normal footage {describe(source)}: {exc.reason}", stacklevel=2)
            continue
        if len(frames) <= method.context + 1:
            skipped.append({"source": describe(source), "reason": f"only {len(frames)} frames"})
            continue
        fit, held = split_normal(frames, calibration_share, method.context)
        fit_parts.append(fit)
        if len(held):
            held_parts.append(held)
    if not fit_parts:
        reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in skipped) or "no sources given"
        raise DatasetError(None, f"no usable normal footage ({reasons})")
    read_s = time.perf_counter() - started
    facts: dict[str, Any] = dict(method.fit(fit_parts, progress=progress) or {})
    fit_s = time.perf_counter() - started - read_s
    # Calibrate on held-out normal frames; without any (very short footage), on the fit frames (optimistic).
    held_parts = held_parts or fit_parts
    raw = np.concatenate([method.score(part).scores for part in held_parts if len(part) > method.context])
    calibration = Calibration.from_scores(raw)
    facts.update({"sources": len(fit_parts), "skipped": skipped, "fit_frames": int(sum(len(p) for p in fit_parts)),
                  "calibration_frames": int(raw.size), "read_s": round(read_s, 2), "fit_s": round(fit_s, 2),
                  "total_s": round(time.perf_counter() - started, 2)})
    return AnomalyModel(config, method, calibration, facts)
