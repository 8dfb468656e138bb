"""`vidlens data synth`: write synthetic datasets with ground truth."""

from __future__ import annotations

import typer


def register(data_app: typer.Typer) -> None:
    """Add the `synth` command to the `data` group."""
