"""`vidlens features VIDEO`: classic colour/motion features over a frame stream."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `features` command to the root app."""
