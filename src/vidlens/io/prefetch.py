"""Read-ahead: run an iterator (a decoder) in a background thread, feeding a small bounded queue.

PyAV releases the GIL while it decodes and OpenCV while it resizes, so decoding the next frames
overlaps whatever the caller does with the current one (on 2 cores, nearly the whole decode time
is hidden when the caller's work is of the same order). Memory stays flat: at most `depth` items
wait in the queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(source: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Yield the items of `source`, produced `depth` items ahead in a daemon thread.

    Exceptions raised by `source` are re-raised here, in order (after the items before them).
    Closing this generator early (`break`, `close()`, garbage collection) stops the thread and
    closes `source` there (so a decoder's file is closed by the thread that used it).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(source)
        try:
            for item in iterator:
                if not put(item):
                    break
            else:
                put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(_Raised(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="vidlens-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            try:
                buffer.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)
