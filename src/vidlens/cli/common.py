"""Shared CLI state and helpers: consoles, progress bars, JSON output."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any

from rich.console import Console
from typer.core import TyperGroup
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
console_err = Console(stderr=True)


@dataclass
class CliState:
    debug: bool = False
    quiet: bool = False


STATE = CliState()


class VideoDefaultGroup(TyperGroup):
    """A typer group whose unknown first argument (not a subcommand, not an option: a video path)
    goes to its `video` subcommand, so `vidlens GROUP VIDEO ...` means `vidlens GROUP video VIDEO ...`."""

    default_command = "video"

    def _with_default(self, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-") and self.default_command in self.commands:
            return [self.default_command, *args]
        return args

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._with_default(list(args)))

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        return super().resolve_command(ctx, self._with_default(list(args)))


def progress_enabled() -> bool:
    """Progress bars only for a person watching: not with --quiet, not when stderr is not a TTY."""
    return not STATE.quiet and sys.stderr.isatty()


def make_progress() -> Progress:
    """A rich progress bar on stderr (disabled when not a TTY or with --quiet)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console_err,
        disable=not progress_enabled(),
        transient=False,
    )


def stage_progress(bar: Progress, total: float) -> Callable[[str, float], None]:
    """A `progress(stage, done)` callback drawing one bar per stage, each out of `total` (seconds of video)."""
    tasks: dict[str, Any] = {}

    def update(stage: str, done: float) -> None:
        if stage not in tasks:
            for other in tasks.values():
                bar.update(other, completed=total)
            tasks[stage] = bar.add_task(stage, total=max(total, 1e-6))
        bar.update(tasks[stage], completed=min(done, total))

    return update


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def exit_if_failed(failed: list[str], total: int) -> None:
    """After a multi-file command went through every file: exit 2 when any failed (each was reported already)."""
    if failed:
        console_err.print(f"{len(failed)} of {total} files failed", highlight=False)
        raise SystemExit(2)


def print_skipped(skipped: list[tuple[str, str]] | dict[str, str], what: str = "unreadable files skipped") -> None:
    """One warning line per file a command left out (path: reason), after a count."""
    from rich.markup import escape

    items = list(skipped.items()) if isinstance(skipped, dict) else list(skipped)
    if not items:
        return
    console_err.print(f"[yellow]{len(items)} {what}:[/yellow]", highlight=False)
    for path, reason in items:
        console_err.print(f"  [yellow]{escape(str(path))}: {escape(str(reason))}[/yellow]", highlight=False, soft_wrap=True)
