"""Train a `ShotNet` on transitions synthesised from a folder of real videos (`vidlens shots train`).

1. `load_clips(paths)`: every video decoded once at `CACHE_SIZE` (`uint8 (T, 54, 96, 3)`), its own
   cuts found by a frame-difference check (`vidlens.data.transitions.likely_cuts`) so segments come
   from single shots; unreadable files are reported and skipped.
2. `train_shot_net(clips, TrainConfig(...))`: windows from `synth_window` (new ones every step, so
   nothing is memorised but the footage), loss = weighted BCE on the boundary frame + BCE on
   "inside a transition" + cross-entropy on the kind of gradual frames; AdamW, cosine schedule.
3. `save_shot_model(model, out)`: `shotnet.pt` (state dict + sizes + how it was trained; loads with
   `weights_only=True`) and `shotnet.onnx` (what `--method learned` runs), both written atomically.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.tasks.shots.net import ShotNet, ShotNetConfig
from vidlens.tasks.shots.synth import CACHE_SIZE, SourceClip, synth_window

MIN_CLIP_FRAMES = 16


@dataclass
class TrainConfig:
    """How `train_shot_net` trains (stored beside the model)."""

    steps: int = 1200
    batch: int = 8  # windows per step
    window: int = 100  # frames per window
    lr: float = 3e-3
    weight_decay: float = 1e-4
    transition_weight: float = 5.0  # weight of boundary frames in the boundary loss (they are ~2% of frames)
    seed: int = 0
    device: str = "cpu"
    threads: int = 1  # torch threads on CPU (small models: more threads are slower on a busy machine)
    workers: int = 0  # processes synthesising windows (0: in the training loop; worth it with a GPU)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.window < 16:
            raise ConfigError(None, f"need steps >= 1, batch >= 1, window >= 16 (got {self.steps}, {self.batch}, {self.window})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(None, f"lr must be a positive number, got {self.lr}")


def load_clips(paths: Sequence[str | os.PathLike[str]], progress: Callable[[int], None] | None = None
               ) -> tuple[list[SourceClip], list[tuple[str, str]]]:
    """Decode each video at `CACHE_SIZE`; returns the clips and `(path, reason)` for every file skipped."""
    from vidlens.io.reader import iter_frames

    clips, skipped = [], []
    for i, path in enumerate(paths):
        try:
            frames = np.stack([f.image for f in iter_frames(path, size=CACHE_SIZE, keep_aspect=False)])
        except (VideoDecodeError, OSError, ValueError, RuntimeError) as exc:
            skipped.append((os.fspath(path), str(exc)))
            continue
        if len(frames) < MIN_CLIP_FRAMES:
            skipped.append((os.fspath(path), f"only {len(frames)} frames (need {MIN_CLIP_FRAMES})"))
        else:
            spans = clip_spans(frames)
            if spans:
                clips.append(SourceClip(Path(path).name, frames, spans))
            else:
                skipped.append((os.fspath(path), "no single shot of 8 frames or more"))
        if progress:
            progress(i + 1)
    return clips, skipped


def clip_spans(frames: np.ndarray) -> list[tuple[int, int]]:
    """Single-shot stretches `[start, end)` of `uint8 (T, H, W, 3)` frames (its own cuts found by frame differences)."""
    from vidlens.data.transitions import likely_cuts, shot_spans

    grey = frames.mean(axis=3).astype(np.uint8)
    return [s for s in shot_spans(len(frames), likely_cuts(grey)) if s[1] - s[0] >= 8]


def save_clips(clips: list[SourceClip], path: str | os.PathLike[str]) -> Path:
    """Decoded training frames in one compressed `.npz` (train elsewhere, e.g. on a GPU machine without PyAV)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, **{f"{i:04d}|{c.name}": c.frames for i, c in enumerate(clips)})
    os.replace(tmp, path)
    return path


def load_clip_file(path: str | os.PathLike[str]) -> list[SourceClip]:
    """Clips saved by `save_clips` (spans recomputed)."""
    with np.load(path) as data:
        return [SourceClip(key.split("|", 1)[1], data[key], clip_spans(data[key])) for key in sorted(data.files)]


def _batch(rng: np.random.Generator, clips: list[SourceClip], config: TrainConfig) -> dict[str, torch.Tensor]:
    windows = [synth_window(rng, clips, config.window) for _ in range(config.batch)]
    return {
        "frames": torch.from_numpy(np.stack([w.frames for w in windows])),
        "transition": torch.from_numpy(np.stack([w.transition for w in windows])),
        "gradual": torch.from_numpy(np.stack([w.gradual for w in windows])),
        "kind": torch.from_numpy(np.stack([w.kind for w in windows])),
    }


class _Windows(torch.utils.data.IterableDataset):
    """Endless batches from `_batch`; each DataLoader worker draws from its own random stream."""

    def __init__(self, clips: list[SourceClip], config: TrainConfig) -> None:
        self.clips, self.config = clips, config

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.config.seed, info.id if info else 0])
        while True:
            yield _batch(rng, self.clips, self.config)


def _batches(clips: list[SourceClip], config: TrainConfig):
    if config.workers <= 0:
        rng = np.random.default_rng(config.seed)
        while True:
            yield _batch(rng, clips, config)
    loader = torch.utils.data.DataLoader(_Windows(clips, config), batch_size=None, num_workers=config.workers,
                                         pin_memory=config.device != "cpu", prefetch_factor=4, persistent_workers=True)
    yield from loader


def shot_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor], transition_weight: float) -> torch.Tensor:
    """Loss of logits `(B, T, 5)` against the window targets (see `vidlens.tasks.shots.net.OUTPUTS`)."""
    weight = 1.0 + (transition_weight - 1.0) * batch["transition"]
    loss = F.binary_cross_entropy_with_logits(logits[..., 0], batch["transition"], weight=weight)
    loss = loss + F.binary_cross_entropy_with_logits(logits[..., 1], batch["gradual"])
    kind = batch["kind"]
    if bool((kind >= 0).any()):
        loss = loss + 0.3 * F.cross_entropy(logits[..., 2:][kind >= 0], kind[kind >= 0])
    return loss


def train_shot_net(clips: list[SourceClip], config: TrainConfig | None = None, *, init: ShotNet | None = None,
                   progress: Callable[[int, float], None] | None = None) -> tuple[ShotNet, list[dict]]:
    """Train (or fine-tune `init`) on windows synthesised from `clips`; `progress(step, loss)` after each step.

    Returns the model (eval mode, on the CPU) and the loss history (one entry per 25 steps)."""
    config = config or TrainConfig()
    if not clips:
        raise ConfigError(None, "no usable training video: need at least one readable video of 16 frames or more")
    if config.device == "cpu":
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    model = (init or ShotNet(ShotNetConfig())).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.steps, pct_start=0.1)
    history, running, t0 = [], [], time.perf_counter()
    batches = _batches(clips, config)
    for step in range(1, config.steps + 1):
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        loss = shot_loss(model(batch["frames"]), batch, config.transition_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"training diverged at step {step} (loss {value}); try a lower --lr")
        running.append(value)
        if step % 25 == 0 or step == config.steps:
            history.append({"step": step, "loss": float(np.mean(running)), "seconds": time.perf_counter() - t0})
            running = []
        if progress:
            progress(step, value)
    return model.cpu().eval(), history


def save_shot_model(model: ShotNet, out_dir: str | os.PathLike[str], meta: dict | None = None) -> dict[str, Path]:
    """Write `shotnet.pt` and `shotnet.onnx` (and `shotnet.json`, the metadata) into `out_dir`, atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    info = {"config": model.config.to_dict(), **(meta or {})}
    paths = {"pt": out / "shotnet.pt", "onnx": out / "shotnet.onnx", "json": out / "shotnet.json"}
    tmp = paths["pt"].with_suffix(".pt.partial")
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
    os.replace(tmp, paths["pt"])
    export_onnx(model, paths["onnx"])
    tmp = paths["json"].with_suffix(".json.partial")
    tmp.write_text(json.dumps(info, indent=2))
    os.replace(tmp, paths["json"])
    return paths


def export_onnx(model: ShotNet, path: Path) -> Path:
    """ONNX graph of `model` with a free number of frames (input `frames` uint8 `(1, T, 27, 48, 3)`)."""
    import warnings

    from vidlens.tasks.shots.net import FRAME_SIZE

    tmp = path.with_suffix(".onnx.partial")
    example = torch.zeros((1, 64, *FRAME_SIZE, 3), dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), input_names=["frames"], output_names=["logits"],
                          dynamic_axes={"frames": {1: "frames"}, "logits": {1: "frames"}}, opset_version=17, dynamo=False)
    import onnx

    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = "receptive_field", str(model.receptive_field())
    onnx.save(graph, str(tmp))
    os.replace(tmp, path)
    return path


def load_shot_net(path: str | os.PathLike[str]) -> ShotNet:
    """A `ShotNet` from a `shotnet.pt` (or a folder holding one), loaded with `weights_only=True`."""
    p = Path(path)
    if p.is_dir():
        p = p / "shotnet.pt"
    if not p.is_file():
        raise FileNotFoundError(f"no shot model at {p} (expected shotnet.pt written by `vidlens shots train`)")
    data = torch.load(p, map_location="cpu", weights_only=True)
    try:
        model = ShotNet(ShotNetConfig(**data["info"]["config"]))
        model.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{p} is not a ShotNet checkpoint this version can load ({exc}); retrain with "
                         "`vidlens shots train`") from None
    return model.eval()

