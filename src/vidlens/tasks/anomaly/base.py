"""The anomaly-method protocol, the registry of methods and the saved model file.

A method learns "normal" for one fixed camera from normal footage only, then scores frames: higher =
more anomalous. Every method sees the same input: consecutive frames of one video, `uint8 (T,H,W,3)` RGB
at the model's working size and rate (`AnomalyConfig.size`, `.fps`). A method that needs history
(future-frame prediction: the previous 4 frames; flow: the previous frame) says so in `context`; the
scorer then feeds it `context` earlier frames before the ones to score, also across chunks of a long
video and in a live stream.

The model file is a vidlens checkpoint (DESIGN.md §3): `{"model": "anomaly/<method>", "model_args":
{...}, "state_dict": {tensors}, "labels": ["anomaly"], "preprocess": {"size", "fps"}, "config": {...},
"metrics": {"calibration": {...}}}`, written atomically and read with `weights_only=True`, so a method's
state is tensors, numbers, strings, lists and dicts only.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Protocol, runtime_checkable

import numpy as np

from vidlens.errors import CheckpointError, ConfigError

Progress = Callable[[str, float], None]  # (stage, fraction 0..1 or a count) -> None


@dataclass
class AnomalyConfig:
    """How a model sees its camera. `size` is (H, W) of the working frames (the camera's aspect is not kept:
    one fixed camera, one fixed size, as the papers resize to 256x256); `fps` the analysis rate (None:
    the file's own rate)."""

    method: str = "features"
    size: tuple[int, int] = (192, 256)
    fps: float | None = None
    seed: int = 0
    method_args: dict[str, Any] = field(default_factory=dict)  # passed to the method's constructor

    def check(self) -> None:
        load_builtin_methods()
        if self.method not in METHODS:
            raise ConfigError(None, f"unknown anomaly method {self.method!r}: use one of {', '.join(sorted(METHODS))}")
        h, w = self.size
        if h < 32 or w < 32 or h % 16 or w % 16:
            raise ConfigError(None, f"anomaly working size must be >= 32 and a multiple of 16 (got {h}x{w})")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(None, f"fps must be positive, got {self.fps}")


@dataclass
class FrameScores:
    """What a method says of a run of frames: `scores (T,)` float64, higher = more anomalous (a method's raw
    units, e.g. negative PSNR); `heat (T,h,w)` float32, where in the frame, same units or any monotone
    map of them, at the method's own grid (the scorer resizes it to the frame). One row per scored frame."""

    scores: np.ndarray
    heat: np.ndarray

    def __post_init__(self) -> None:
        if self.scores.ndim != 1 or self.heat.ndim != 3 or len(self.scores) != len(self.heat):
            raise ValueError(f"scores (T,) and heat (T,h,w) with the same T, got {self.scores.shape} and {self.heat.shape}")


@runtime_checkable
class AnomalyMethod(Protocol):
    """One way to learn normal and score frames. Implementations: `prediction` (future-frame prediction,
    Liu et al. 2018), `features` (frozen ImageNet patch features, a memory of normal), `flow` (optical-flow
    statistics per cell). Register a new one with `register_method`."""

    name: ClassVar[str]
    context: int  # frames before the first scored one that `score` needs (0 = none)

    def fit(self, videos: Iterable[np.ndarray], progress: Progress | None = None) -> dict[str, Any]:
        """Learn normal from normal footage: each item is one video's (or one part's) consecutive frames,
        `uint8 (T,H,W,3)` RGB at the working size. Returns training facts for the model file (epochs, loss,
        memory size, seconds)."""
        ...

    def score(self, frames: np.ndarray) -> FrameScores:
        """Score `frames[context:]` of `uint8 (T,H,W,3)` consecutive frames (the first `context` are history
        only): `T - context` rows. Deterministic, no state between calls."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything `from_state` needs: tensors, numbers, strings, lists, dicts (no numpy arrays, no objects)."""
        ...

    @classmethod
    def from_state(cls, state: dict[str, Any], args: dict[str, Any]) -> AnomalyMethod:
        """Rebuild a fitted method from `state()` and its constructor `args`."""
        ...


METHODS: dict[str, Callable[..., AnomalyMethod]] = {}  # name -> class (called with **method_args)
BUILTIN_MODULES = ["vidlens.tasks.anomaly.prediction", "vidlens.tasks.anomaly.features", "vidlens.tasks.anomaly.motion"]


def register_method(cls: type) -> type:
    """Class decorator: make a method available by its `name` to `vidlens anomaly train --method`."""
    METHODS[cls.name] = cls
    return cls


def build_method(config: AnomalyConfig) -> AnomalyMethod:
    """A fresh, unfitted method for `config` (loads the built-in methods on first use)."""
    config.check()
    try:
        return METHODS[config.method](**config.method_args)
    except TypeError as exc:
        raise ConfigError(None, f"bad options for anomaly method {config.method!r}: {exc}") from None


def load_builtin_methods() -> None:
    """Import the built-in methods so they register themselves (each imports torch/cv2 lazily)."""
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)


@dataclass
class Calibration:
    """How the model's raw scores fall on held-out normal frames, for the absolute (live) score:
    `absolute = (raw - median) / scale`, scale = 1.4826 * MAD (a robust standard deviation); `threshold`
    is the absolute score above which a frame is called anomalous by default (the normal frames'
    99.5th percentile of absolute score, at least 3)."""

    median: float = 0.0
    scale: float = 1.0
    threshold: float = 3.0
    frames: int = 0

    @classmethod
    def from_scores(cls, raw: np.ndarray, quantile: float = 0.995, floor: float = 3.0) -> Calibration:
        raw = np.asarray(raw, dtype=np.float64)
        raw = raw[np.isfinite(raw)]
        if raw.size < 10:
            raise ConfigError(None, f"too little normal footage to calibrate scores ({raw.size} frames; need >= 10)")
        median = float(np.median(raw))
        scale = float(1.4826 * np.median(np.abs(raw - median))) or float(raw.std()) or 1.0
        absolute = (raw - median) / scale
        return cls(median, scale, max(floor, float(np.quantile(absolute, quantile))), int(raw.size))

    def absolute(self, raw: np.ndarray) -> np.ndarray:
        return (np.asarray(raw, dtype=np.float64) - self.median) / self.scale


@dataclass
class AnomalyModel:
    """A fitted method with its working size/rate and its calibration on normal footage."""

    config: AnomalyConfig
    method: AnomalyMethod
    calibration: Calibration = field(default_factory=Calibration)
    facts: dict[str, Any] = field(default_factory=dict)  # training facts: videos, frames, seconds, method's own

    def save(self, path: str | os.PathLike[str]) -> Path:
        from vidlens.engine.checkpoint import save_checkpoint

        config = asdict(self.config)
        config["size"] = list(self.config.size)
        return save_checkpoint(path, {
            "model": f"anomaly/{self.config.method}", "model_args": dict(self.config.method_args),
            "state_dict": self.method.state(), "labels": ["anomaly"],
            "preprocess": {"size": list(self.config.size), "fps": self.config.fps},
            "config": config, "metrics": {"calibration": asdict(self.calibration), "train": self.facts}})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnomalyModel:
        from vidlens.engine.checkpoint import load_checkpoint

        data = load_checkpoint(path)
        name = str(data["model"])
        if not name.startswith("anomaly/"):
            raise CheckpointError(path, f"not an anomaly model (it is a {name!r} checkpoint); train one with `vidlens anomaly train`")
        load_builtin_methods()
        method_name = name.split("/", 1)[1]
        if method_name not in METHODS:
            raise CheckpointError(path, f"anomaly method {method_name!r} is not registered in this vidlens")
        raw = dict(data.get("config") or {})
        config = AnomalyConfig(method=method_name, size=tuple(data["preprocess"]["size"]), fps=data["preprocess"].get("fps"),
                               seed=int(raw.get("seed", 0)), method_args=dict(data["model_args"]))
        method = METHODS[method_name].from_state(data["state_dict"], dict(data["model_args"]))
        metrics = data.get("metrics") or {}
        return cls(config, method, Calibration(**metrics.get("calibration", {})), dict(metrics.get("train", {})))
