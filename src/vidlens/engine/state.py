"""Randomness and resume state: seeds derived from (seed, epoch), RNG snapshots a safe load can read.

Exact resume rests on one rule: everything random in epoch `e` is a function of
`(seed, e)` (and the rank), never of how many random numbers earlier epochs drew.
At the start of each epoch `fit` calls `seed_epoch`, which reseeds python/numpy/torch
(CPU and CUDA) and returns a `torch.Generator` for the sampler and the DataLoader (its
first draw becomes the workers' base seed; `worker_init_fn` seeds numpy in each
worker from it). RNG snapshots are also stored in `last.pt` (`rng_state`), as
tensors/lists/numbers so `torch.load(weights_only=True)` reads them.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

_MASK63 = (1 << 63) - 1


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (e.g. `(seed, epoch, rank)`), stable across runs and machines."""
    state = np.random.SeedSequence([int(p) & _MASK63 for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & _MASK63


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> torch.Generator:
    """Reseed the global RNGs for `epoch` (per rank: dropout differs across ranks) and
    return the CPU generator that drives this epoch's data order (the same on every rank)."""
    seed_everything(derive_seed(seed, epoch, rank, 1))
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, epoch, 0))
    return generator


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker init: torch and `random` are already seeded by the loader from its
    generator (`base_seed + worker_id`); give numpy's global RNG the same per-worker seed."""
    seed = torch.initial_seed()
    np.random.seed(seed % (2**32))
    random.seed(seed)


# ---------------------------------------------------------------------- RNG snapshots


def get_rng_state() -> dict[str, Any]:
    """python/numpy/torch(/CUDA) RNG states as tensors, lists and numbers (`weights_only`-loadable)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [int(version), [int(x) for x in internal], gauss],
        "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `get_rng_state` captured (missing parts are left alone)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(x) for x in internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        keys = np.asarray(torch.as_tensor(s["keys"]).numpy(), dtype=np.uint32)
        np.random.set_state((s["name"], keys, int(s["pos"]), int(s["has_gauss"]), float(s["cached_gaussian"])))
    if "torch" in state:
        torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])


def to_cpu(obj: Any) -> Any:
    """A copy of a nested state (dicts/lists/tensors) with every tensor on the CPU, for checkpoints."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
