"""Torch's intra-op threads for small models.

Tiny networks (face detection, expressions, the DSN's bi-LSTM, ShotNet-sized heads) lose more to
intra-op thread hand-offs than they gain, and on a busy 2-core machine two spinning threads made a
small CNN up to 100x slower (measured: a 64x64 face 240-700 ms on 2 threads under load, 3 ms on 1;
100 DSN updates 14.0 s vs 6.0 s). They run inside `one_torch_thread()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One torch intra-op thread inside the block, the previous count after it (set only when it differs)."""
    import torch

    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)
