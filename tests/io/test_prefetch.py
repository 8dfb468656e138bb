"""`vidlens.io.prefetch`: read-ahead in a thread keeps order, re-raises errors, stops early and cleanly."""

from __future__ import annotations

import threading

import pytest

from vidlens.io.prefetch import prefetch


def test_items_in_order():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch([], depth=1)) == []


def test_error_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("broken file")

    got = []
    with pytest.raises(ValueError, match="broken file"):
        for item in prefetch(source(), depth=4):
            got.append(item)
    assert got == [1, 2]


def test_early_stop_closes_the_source_in_its_thread():
    closed = threading.Event()

    def source():
        try:
            for i in range(10_000):
                yield i
        finally:
            closed.set()

    gen = prefetch(source(), depth=2)
    assert [next(gen) for _ in range(5)] == list(range(5))
    gen.close()
    assert closed.wait(5)
    assert not any(t.name == "vidlens-prefetch" and t.is_alive() for t in threading.enumerate())


def test_bad_depth():
    with pytest.raises(ValueError):
        list(prefetch([1], depth=0))
