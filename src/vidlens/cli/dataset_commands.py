"""`vidlens data scan` and `vidlens data cache`."""

from __future__ import annotations

import typer


def register(data_app: typer.Typer) -> None:
    """Add the `scan` and `cache` commands to the `data` group."""
