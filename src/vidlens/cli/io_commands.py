"""`vidlens probe`: what a video file holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vidlens.cli.common import console, console_err, exit_if_failed


def probe_command(
    paths: list[Path] = typer.Argument(..., help="Video files to inspect."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """Print duration, fps, frame count, size, rotation, codec and audio of each video.

    A file that cannot be probed is reported (a JSON line with "error" under --json) and the others
    go on; the exit status is 2 when any failed.
    """
    from rich.markup import escape
    from rich.table import Table

    from vidlens.errors import VidlensError
    from vidlens.io import probe

    infos, failed = [], []
    for path in paths:
        try:
            info = probe(path)
        except VidlensError as exc:
            failed.append(str(path))
            if as_json:
                typer.echo(json.dumps({"path": str(path), "error": exc.reason}))
            console_err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        infos.append(info)
        if as_json:
            typer.echo(json.dumps(info.to_dict()))
    if as_json or not infos:
        exit_if_failed(failed, len(paths))
        return
    table = Table("file", "duration s", "fps", "frames", "size", "rot", "codec", "audio")
    for info in infos:
        fps = f"{info.fps:.3f}" + (" (vfr)" if info.is_vfr else "")
        if info.nominal_fps and abs(info.nominal_fps - info.fps) > 0.05 * info.fps:
            fps += f", clock {info.nominal_fps:.3g}"  # frames held (AVI repeat entries) or dropped
        audio = f"{info.audio_codec} {info.audio_sample_rate} Hz" if info.has_audio else "-"
        table.add_row(
            Path(info.path).name, f"{info.duration_s:.3f}", fps, str(info.num_frames),
            f"{info.width}x{info.height}", str(info.rotation), info.codec, audio,
        )
    console.print(table)
    for info in infos:
        for warning in info.warnings:
            console.print(f"[yellow]warning:[/yellow] {info.path}: {warning}")
    exit_if_failed(failed, len(paths))


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_command)
