"""`vidlens data ...`: dataset tools (synth, scan, cache)."""

from __future__ import annotations

import typer

from vidlens.cli.dataset_commands import register as register_dataset_tools
from vidlens.cli.synth_command import register as register_synth

data_app = typer.Typer(help="Dataset tools: make synthetic data, scan a dataset, build a decoded cache.", no_args_is_help=True)
register_synth(data_app)
register_dataset_tools(data_app)
