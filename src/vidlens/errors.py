"""The error types every vidlens layer raises.

A leaf module (imports nothing of vidlens) so that every layer, `io` included,
can raise these. Each error carries the offending path (when there is one) and a
one-line reason a user can act on; the CLI prints `str(error)` and exits 2.
"""

from __future__ import annotations

import os


class VidlensError(Exception):
    """Base class: a user-facing problem with a path and a reason."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)

    def __reduce__(self):  # keep the two-argument form picklable across worker processes
        return (self.__class__, (self.path, self.reason))


class VideoDecodeError(VidlensError):
    """A file cannot be opened or decoded as video (or audio, for read_audio)."""


class DatasetError(VidlensError):
    """A dataset root, split file or manifest is missing or malformed."""


class CheckpointError(VidlensError):
    """A checkpoint is missing, unreadable, untrusted or of an unknown format."""


class ConfigError(VidlensError):
    """An option or a combination of options makes no sense."""
