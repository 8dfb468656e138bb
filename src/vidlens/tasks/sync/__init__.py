"""Audio-video synchronisation: measure the offset (ms, > 0 = audio late), its confidence and drift.

`estimate_sync(video, method="auto")` -> `SyncResult`. Methods: `speech` (mouth motion of a tracked face vs the
voice envelope), `events` (visual motion onsets vs audio onsets), `baseline` (audio RMS envelope vs whole-frame
difference energy), `learned` (a SyncNet-style network trained on the user's own videos).
"""

from vidlens.tasks.sync.base import (
    CONFIDENT,
    SYNC_METHODS,
    SyncMethodFn,
    SyncOptions,
    SyncResult,
    WindowOffset,
    estimate_sync,
    make_result,
    register_sync_method,
    verdict_for,
)

__all__ = [
    "CONFIDENT",
    "SYNC_METHODS",
    "SyncMethodFn",
    "SyncOptions",
    "SyncResult",
    "WindowOffset",
    "estimate_sync",
    "make_result",
    "register_sync_method",
    "verdict_for",
]

# Fixing a file and writing the report (helper C): `fix_sync(video, out, offset_ms, drift_ms_per_min=None)`,
# `write_sync(result, out_dir)`.
from vidlens.tasks.sync.fix import fix_sync  # noqa: E402
from vidlens.tasks.sync.outputs import write_sync  # noqa: E402

__all__ += ["fix_sync", "write_sync"]
