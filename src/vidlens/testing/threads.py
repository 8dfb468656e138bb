"""Torch's intra-op threads for tests of tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch intra-op thread inside the block, the previous count after it.

    Tiny tensors on a few shared cores run faster and steadier on one thread, and deterministically.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
