"""Tests of vidlens.models.

`one_thread`: the model tests run tiny tensors, where intra-op threads only add overhead, and on a
busy 2-core machine OpenMP spin-waiting made them ~6x slower (75 s vs 12 s). Each test module
imports this autouse fixture; the previous thread count is restored afterwards.
"""

from __future__ import annotations

import pytest

from vidlens.testing import single_thread


@pytest.fixture(autouse=True)
def one_thread():
    with single_thread():
        yield
