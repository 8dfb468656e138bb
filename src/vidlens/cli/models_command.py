"""`vidlens models [NAME]`: the model registry and the offline pretrained weights, as tables (or JSON)."""

from __future__ import annotations

import json

import typer

from vidlens.cli.common import console


def _human(count: int) -> str:
    return f"{count / 1e6:.2f} M" if count >= 1e6 else f"{count / 1e3:.1f} k"


def models_table() -> list[dict]:
    """One row per registered model: name, family, parameters (defaults, 400 classes), pretrained offline."""
    from vidlens.models.registry import MODELS, default_parameter_count, pretrained_status

    rows = []
    for name, entry in MODELS.items():
        available, where = pretrained_status(name)
        rows.append({
            "name": name,
            "family": entry.family,
            "description": entry.description,
            "parameters": default_parameter_count(name),
            "pretrained": entry.weights,
            "pretrained_available": available,
            "where": where,
            "default_args": dict(entry.defaults),
        })
    return rows


def models_command(
    name: str | None = typer.Argument(None, help="Show one model's default arguments and weights."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List the registered video models and which pretrained weights are available offline."""
    from rich.table import Table

    from vidlens.models.encoders import frame_encoder_table
    from vidlens.models.weights import torch_cache_dir
    from vidlens.models.registry import input_normalization, resolved_args

    if name is not None:
        args = resolved_args(name)  # ConfigError (exit 2) listing valid names when unknown
        row = next(r for r in models_table() if r["name"] == name)
        row["input_normalization"] = input_normalization(name)
        row["default_args"] = args
        if as_json:
            typer.echo(json.dumps(row, indent=2))
            return
        console.print(f"[bold]{name}[/bold] ({row['family']}): {row['description']}", highlight=False)
        console.print(f"parameters at defaults (400 classes): {row['parameters']:,}", highlight=False)
        console.print(f"pretrained: {row['where']}", highlight=False, soft_wrap=True)
        for line in _weight_details(name, args):
            console.print("  " + line, highlight=False, soft_wrap=True)
        console.print("input normalization: " + json.dumps(row["input_normalization"]), highlight=False, soft_wrap=True)
        console.print("default args: " + json.dumps(args), highlight=False, soft_wrap=True)
        return

    models = models_table()
    encoders = frame_encoder_table()
    if as_json:
        typer.echo(json.dumps({"models": models, "encoders": encoders}, indent=2))
        return

    yes_no = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}
    table = Table(title="vidlens models (parameters at default settings, 400 classes)")
    for column in ("name", "family", "parameters", "pretrained offline", "from / how to get"):
        table.add_column(column, overflow="fold")
    for r in models:
        table.add_row(r["name"], r["family"], _human(r["parameters"]), yes_no[r["pretrained_available"]], r["where"])
    console.print(table)

    table = Table(title="frame encoders (for tsn, tsn_max, lstm, gru, transformer, tconv: encoder=NAME)")
    for column in ("encoder", "dim", "parameters", "imagenet offline", "from / how to get"):
        table.add_column(column, overflow="fold")
    for r in encoders:
        table.add_row(r["name"], str(r["feature_dim"]), _human(r["parameters"]), yes_no[r["imagenet"]], r["where"])
    console.print(table)
    console.print(
        f"torch cache = {torch_cache_dir()} (torch.hub.get_dir()/checkpoints; TORCH_HOME moves it). "
        "Nothing is downloaded; `vidlens models NAME` shows the file names and torchvision URLs.",
        highlight=False, soft_wrap=True,
    )


def _weight_details(name: str, args: dict) -> list[str]:
    """Per-file availability lines for `vidlens models NAME`."""
    from vidlens.models import weights as W

    if "encoder" in args:
        sources = [W.imagenet_source(e) for e in ("mobilenet_v2", "efficientnet_lite0", "resnet18", "mobilenet_v3_small", "efficientnet_b0")]
    else:
        sources = [W.kinetics_source(name)]
    lines = []
    for source in sources:
        if source is None:
            continue
        path, _ = W.find_weights(source)
        lines.append(f"{source.model}: {path}" if path is not None else f"{source.model}: {W.missing_message(source)}")
    return lines


def register(app: typer.Typer) -> None:
    """Add the `models` command to the root app."""
    app.command("models")(models_command)
