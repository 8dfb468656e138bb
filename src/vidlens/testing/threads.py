"""Torch's intra-op threads for tests of tiny models: `single_thread()` is `vidlens.threads.one_torch_thread()`."""

from vidlens.threads import one_torch_thread as single_thread

__all__ = ["single_thread"]
