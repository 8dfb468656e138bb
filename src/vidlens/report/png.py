"""Writing a matplotlib figure to a PNG file: the folder is made, and the file appears whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def save_png(fig: Any, path: str | os.PathLike[str], *, dpi: float | None = None) -> Path:
    """Save `fig` as PNG at `path` (a hidden temporary beside it, then `os.replace`), creating the parent folder;
    returns the path. A reader never sees a half-written picture, and a failed save leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png", dpi=dpi if dpi is not None else "figure")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
