"""Distributed data parallel through torchrun, with the same command as a single-process run.

`torchrun --nproc_per_node N ...` sets `WORLD_SIZE`/`RANK`/`LOCAL_RANK`/`MASTER_ADDR`/
`MASTER_PORT`; `distributed_context` then initialises the process group (gloo on CPU,
nccl on CUDA, one GPU per local rank) unless one exists; later `fit`/`evaluate` calls in
the same process reuse it, and it is destroyed at interpreter exit (re-creating a
destroyed default group in one process can hang in the rendezvous).

Samplers, both pure functions of (seed, epoch, rank):
- `EpochSampler` (training): a permutation (or, balanced, a weighted draw with
  replacement) of the whole set from a generator seeded by (seed, epoch), padded by
  wrap-around to a multiple of the world size and dealt round-robin to the ranks, as
  `DistributedSampler` does; every rank gets the same number of batches. It also serves
  the single-process case, so the data order of epoch `e` is the same wherever it runs.
- `ShardSampler` (evaluation): rank `r` reads items `r, r+W, r+2W, ...` with no padding,
  so nothing is evaluated twice; `gather_eval` interleaves the shards back into dataset
  order, so metrics computed on every rank equal a single-process evaluation.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from vidlens.engine.state import derive_seed
from vidlens.errors import ConfigError

logger = logging.getLogger("vidlens.engine")


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` = CUDA if available, else CPU; `cuda` under torchrun = `cuda:LOCAL_RANK`."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(None, f"device {name!r} asked for but CUDA is not available")
        return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device(name)
    return torch.device(name)


def env_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@contextlib.contextmanager
def distributed_context(device: str) -> Iterator[DistContext]:
    """Yield the run's `DistContext`; under torchrun (WORLD_SIZE > 1) join/create the process group."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        yield DistContext(dist.get_rank(), dist.get_world_size(), local, resolve_device(device, local))
        return
    world = env_world_size()
    if world <= 1:
        yield DistContext(device=resolve_device(device))
        return
    if not dist.is_available():
        raise ConfigError(None, "WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    atexit.register(_destroy_group)
    yield DistContext(dist.get_rank(), dist.get_world_size(), local, dev, owns_group=True)


def _destroy_group() -> None:
    """At interpreter exit. The group is kept between calls: destroying the default group and
    initialising it again in the same process (fit, then evaluate) can hang in the gloo rendezvous."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


# ---------------------------------------------------------------------- samplers


class EpochSampler(Sampler[int]):
    """This rank's indices for epoch `set_epoch(e)`: a function of (seed, e, rank) only."""

    def __init__(self, num_items: int, *, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 weights: Sequence[float] | torch.Tensor | None = None, passes: int = 1) -> None:
        if num_items < 1:
            raise ConfigError(None, "cannot sample from an empty training set")
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.epoch = 0
        self.passes = max(1, int(passes))  # passes over the set per epoch (step-based schedules on small sets)
        self.per_pass = -(-self.num_items // self.num_replicas)
        self.num_samples = self.per_pass * self.passes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_order(self) -> list[int]:
        """Every rank's items of this epoch: `passes` shuffles of the set, each padded to a multiple of the ranks."""
        out: list[int] = []
        for p in range(self.passes):
            g = torch.Generator()
            g.manual_seed(derive_seed(self.seed, self.epoch, 2) if p == 0 else derive_seed(self.seed, self.epoch, 2, p))
            if self.weights is not None:
                order = torch.multinomial(self.weights, self.num_items, replacement=True, generator=g)
            else:
                order = torch.randperm(self.num_items, generator=g)
            order = order.tolist()
            total = self.per_pass * self.num_replicas
            while len(order) < total:
                order += order[: total - len(order)]
            out += order
        return out

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        per = self.per_pass * self.num_replicas  # each pass split across ranks on its own
        return iter([i for p in range(self.passes) for i in order[p * per : (p + 1) * per][self.rank :: self.num_replicas]])

    def __len__(self) -> int:
        return self.num_samples


class ShardSampler(Sampler[int]):
    """In-order items `rank, rank + W, ...` (evaluation; no padding, no duplicates)."""

    def __init__(self, num_items: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.num_items, self.num_replicas, self.rank = int(num_items), int(num_replicas), int(rank)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_items, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_items, self.num_replicas))


def item_labels(dataset: Any) -> list[list[int]]:
    """Each item's class ids, cheaply when the dataset says them.

    Looks for, in order: `labels_of_items()`, a `targets` attribute, `records` whose items
    have `.labels`; otherwise reads `dataset[i]["label"]` for every item (decodes videos: slow).
    """
    raw: Any = None
    if callable(getattr(dataset, "labels_of_items", None)):
        raw = dataset.labels_of_items()
    elif getattr(dataset, "targets", None) is not None:
        raw = dataset.targets
    elif getattr(dataset, "records", None) is not None and all(hasattr(r, "labels") for r in dataset.records):
        raw = [list(r.labels) for r in dataset.records]
    else:
        logger.warning("balanced sampler: %s does not list its labels (labels_of_items/targets/records); "
                       "reading every item once to find them", type(dataset).__name__)
        raw = [dataset[i]["label"] for i in range(len(dataset))]
    if isinstance(raw, torch.Tensor):
        raw = list(raw)
    out: list[list[int]] = []
    for label in raw:
        if isinstance(label, torch.Tensor) and label.ndim > 0:
            label = label.nonzero().flatten().tolist() if label.dtype.is_floating_point or label.dtype == torch.bool \
                else label.tolist()
        elif isinstance(label, torch.Tensor):
            label = [int(label)]
        elif isinstance(label, int | float):
            label = [int(label)]
        out.append([int(c) for c in label])
    if len(out) != len(dataset):
        raise ConfigError(None, f"balanced sampler: {len(out)} labels for {len(dataset)} items")
    return out


def item_weights(dataset: Any) -> torch.Tensor:
    """Inverse class frequency per item `(N,)` float64 (mean over its classes if multi-label; 0 if none)."""
    labels = item_labels(dataset)
    counts: dict[int, int] = {}
    for item in labels:
        for c in item:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        raise ConfigError(None, "balanced sampler: the training set has no labels")
    total = sum(counts.values())
    per_class = {c: total / (len(counts) * n) for c, n in counts.items()}
    weights = torch.tensor([sum(per_class[c] for c in item) / len(item) if item else 0.0 for item in labels],
                           dtype=torch.float64)
    if not (weights > 0).any():
        raise ConfigError(None, "balanced sampler: every item has weight 0")
    return weights


# ---------------------------------------------------------------------- collectives


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 vector over ranks (returns it unchanged in a single process)."""
    if not ctx.enabled:
        return values
    buf = values.to(ctx.device, torch.float64)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.cpu()


def all_ranks_ok(ok: bool, ctx: DistContext, group: Any = None) -> bool:
    """True when every rank is ok (one tiny all-reduce; single process: `ok`).

    `group`: a gloo group for CPU flags when the default group is nccl (no GPU sync per step).
    """
    if not ctx.enabled:
        return ok
    device = ctx.device if group is None else torch.device("cpu")
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=group)
    return bool(flag.item())


def gather_eval(scores: torch.Tensor, targets: torch.Tensor, paths: list[str], extra: list[float],
                ctx: DistContext) -> tuple[torch.Tensor, torch.Tensor, list[str], list[float]]:
    """Gather every rank's `ShardSampler` shard (CPU tensors) and interleave into dataset order.

    `extra`: numbers summed over ranks (e.g. loss sum, item count, substitutions).
    """
    if not ctx.enabled:
        return scores, targets, paths, extra
    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, (scores.cpu(), targets.cpu(), list(paths), list(extra)))
    world = ctx.world_size
    total = sum(int(p[0].shape[0]) for p in parts)
    summed = [sum(float(p[3][i]) for p in parts) for i in range(len(extra))]
    if total == 0:
        return scores.cpu(), targets.cpu(), [], summed
    first = next(p for p in parts if p[0].shape[0] > 0)
    out_scores = torch.empty((total, *first[0].shape[1:]), dtype=first[0].dtype)
    out_targets = torch.empty((total, *first[1].shape[1:]), dtype=first[1].dtype)
    out_paths = [""] * total
    for rank, (s, t, p, _) in enumerate(parts):
        if s.shape[0] == 0:
            continue
        out_scores[rank::world] = s
        out_targets[rank::world] = t
        out_paths[rank::world] = p if len(p) == s.shape[0] else [""] * int(s.shape[0])
    return out_scores, out_targets, out_paths, summed


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Give every rank rank 0's buffers (BatchNorm running stats drift apart in the last training
    forward: each rank updates them from its own batch), so evaluation matches rank 0's checkpoint."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for buf in module.buffers():
            dist.broadcast(buf.data, src=0)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
