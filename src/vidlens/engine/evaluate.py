"""`evaluate`: run `task.eval_step` over a dataset and score it with `task.compute_metrics`.

Also the pieces `fit` shares with it: DataLoader construction (seeded workers),
moving a batch to the device, the autocast context, and the evaluation loop itself.
Under torchrun every rank evaluates its `ShardSampler` shard and the scores are
gathered in dataset order, so every rank gets the metrics of the whole set.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vidlens.engine.config import TrainConfig
from vidlens.engine.distributed import DistContext, ShardSampler, distributed_context, gather_eval
from vidlens.engine.logging import make_progress
from vidlens.engine.state import derive_seed, worker_init_fn
from vidlens.errors import ConfigError

logger = logging.getLogger("vidlens.engine")


@dataclass
class EvalResult:
    """Metrics over the whole set plus the raw material for confusion matrices and per-class tables.

    `scores` `(N,K)` (probabilities for classification), `targets` `(N,)` or `(N,K)`, `paths`
    (N,) as the dataset's `meta["path"]` reports them ("" when a dataset has no meta),
    all in dataset order. `metrics` also holds `loss` (mean eval loss) unless the task sets it.
    """

    metrics: dict[str, float]
    scores: torch.Tensor
    targets: torch.Tensor
    paths: list[str] = field(default_factory=list)
    loss: float = float("nan")
    substitutions: int = 0
    seconds: float = 0.0


def make_loader(dataset: Dataset, cfg: TrainConfig, sampler: Sampler, *, train: bool, device: torch.device,
                generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader whose worker seeds derive from `generator` (so from (seed, epoch))."""
    workers = cfg.workers
    batch = cfg.batch_size
    drop_last = train and len(sampler) > batch
    return DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=drop_last,
        pin_memory=device.type == "cuda", worker_init_fn=worker_init_fn if workers > 0 else None,
        generator=generator, persistent_workers=False,  # fresh workers per epoch: seeds from (seed, epoch)
    )


def eval_generator(seed: int) -> torch.Generator:
    """A fixed generator for evaluation loaders: they never draw from (and shift) the global RNG."""
    return torch.Generator().manual_seed(derive_seed(seed, 3))


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors of a (nested) batch onto `device`; `meta` stays on the CPU untouched."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: (v if k == "meta" else to_device(v, device)) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast (CPU or CUDA), fp16 autocast (CUDA only) or nothing."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(None, "amp=fp16 needs a CUDA device; use amp=bf16 on the CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def batch_meta(batch: Any) -> tuple[list[str], int, int]:
    """(paths, number substituted, batch size) from a collated batch's `meta` (when there is one)."""
    meta = batch.get("meta") if isinstance(batch, dict) else None
    paths: list[str] = []
    subs = 0
    if isinstance(meta, dict):
        raw = meta.get("path")
        if isinstance(raw, list | tuple):
            paths = [str(p) for p in raw]
        flag = meta.get("substituted")
        if isinstance(flag, torch.Tensor):
            subs = int(flag.sum())
        elif isinstance(flag, list | tuple):
            subs = sum(bool(x) for x in flag)
    return paths, subs, len(paths)


@contextlib.contextmanager
def swapped_model(task: Any, module: torch.nn.Module):
    """Temporarily make `task.model` another module (the DDP wrapper, or the EMA copy)."""
    original = task.model
    task.model = module
    try:
        yield
    finally:
        task.model = original


def run_eval(task: Any, loader: DataLoader, ctx: DistContext, amp: str, progress: Any = None,
             description: str = "eval") -> EvalResult:
    """The evaluation loop over `loader` (this rank's shard), gathered across ranks."""
    start = time.perf_counter()
    model = task.model
    was_training = model.training
    model.eval()
    scores, targets, paths = [], [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
    count = subs = 0
    bar = progress.add_task(description, total=len(loader)) if progress is not None else None
    try:
        with torch.inference_mode(), autocast(amp, ctx.device):
            for batch in loader:
                batch_paths, batch_subs, _ = batch_meta(batch)
                out = task.eval_step(to_device(batch, ctx.device))
                n = int(out.scores.shape[0])
                loss_sum += out.loss.detach().double() * n
                count += n
                subs += batch_subs
                scores.append(out.scores.float())
                targets.append(out.targets)
                paths.extend(batch_paths if len(batch_paths) == n else [""] * n)
                if bar is not None:
                    progress.advance(bar)
    finally:
        model.train(was_training)
        if bar is not None:
            progress.remove_task(bar)
    all_scores = torch.cat(scores).cpu() if scores else torch.empty(0)
    all_targets = torch.cat(targets).cpu() if targets else torch.empty(0, dtype=torch.long)
    all_scores, all_targets, paths, (loss_total, n_total, subs_total) = gather_eval(
        all_scores, all_targets, paths, [float(loss_sum), float(count), float(subs)], ctx)
    loss = loss_total / n_total if n_total else float("nan")
    metrics = task.compute_metrics(all_scores, all_targets) if n_total else {}
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics.setdefault("loss", loss)
    return EvalResult(metrics, all_scores, all_targets, paths, loss, int(subs_total),
                      time.perf_counter() - start)


def evaluate(task: Any, dataset: Dataset, cfg: TrainConfig | None = None, *,
             progress: bool | None = None) -> EvalResult:
    """Evaluate `task.model` on `dataset` (`task.eval_step` under `torch.inference_mode()`, model.eval()).

    Under torchrun (WORLD_SIZE > 1) each rank evaluates a shard and every rank returns the
    gathered result in dataset order. The model is moved to `cfg.device` and left there.
    """
    cfg = cfg or TrainConfig()
    with distributed_context(cfg.device) as ctx:
        task.model.to(ctx.device)
        sampler = ShardSampler(len(dataset), ctx.world_size, ctx.rank)
        loader = make_loader(dataset, cfg, sampler, train=False, device=ctx.device, generator=eval_generator(cfg.seed))
        with make_progress(progress if ctx.is_main else False) as bars:
            return run_eval(task, loader, ctx, cfg.amp, bars)
