"""What a run records: `log.csv`, TensorBoard events, `curves.png`, and the progress bars.

Only rank 0 writes. `log.csv` is rewritten (atomically) from the whole history at
every epoch end, so after a resume it holds exactly the epochs the checkpoint knows.
TensorBoard (`run_dir/tb/`) gets the training loss and lr every `log_every` optimizer
steps and every epoch's row; on resume, events past the resumed step are purged.
`curves.png` is redrawn at most once a minute and always at the end of the run.
Progress bars (rich) go to stderr and only when it is a terminal (or `progress=True`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger("vidlens.engine")

LEADING = ("epoch", "lr", "train_loss", "train_acc")
TRAILING = ("clips_per_s", "seconds", "substitutions", "bad_batches", "val_substitutions")


@contextlib.contextmanager
def make_progress(enabled: bool | None) -> Iterator[Any]:
    """A started `rich.progress.Progress` on stderr, or None when disabled / not a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if enabled is None:
        enabled = console.is_terminal
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console, refresh_per_second=4,
    )
    with progress:
        yield _Bars(progress)


class _Bars:
    """Thin wrapper so callers need not pass the `info` field every time."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def add_task(self, description: str, total: int) -> Any:
        return self.progress.add_task(description, total=total, info="")

    def advance(self, bar: Any, info: str | None = None) -> None:
        if info is None:
            self.progress.advance(bar)
        else:
            self.progress.update(bar, advance=1, info=info)

    def remove_task(self, bar: Any) -> None:
        self.progress.remove_task(bar)

    def summary(self, row: dict[str, Any], total_epochs: int) -> None:
        """One line per finished epoch above the bars (stays in the terminal's scrollback)."""
        parts = [f"epoch {row['epoch']}/{total_epochs}"]
        for key in ("train_loss", "train_acc", "val_loss", "val_top1", "val_mAP", "clips_per_s", "seconds"):
            value = row.get(key)
            if isinstance(value, float) and not math.isnan(value):
                parts.append(f"{key} {value:.4g}")
        if row.get("substitutions") or row.get("bad_batches"):
            parts.append(f"substituted {row.get('substitutions', 0)} skipped {row.get('bad_batches', 0)}")
        self.progress.console.print("  ".join(parts), highlight=False)


def csv_columns(history: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for row in history:
        for key in row:
            if key not in seen:
                seen.append(key)
    middle = [k for k in seen if k not in LEADING and k not in TRAILING]
    return [k for k in LEADING if k in seen] + middle + [k for k in TRAILING if k in seen]


def write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    """One row per epoch; metrics not computed in an epoch (eval_every > 1) are left empty."""
    columns = csv_columns(history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return value


class RunLogger:
    """Rank 0's writer of `log.csv`, TensorBoard events and `curves.png` (a no-op elsewhere)."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, purge_step: int | None = None,
                 plot_interval_s: float = 60.0) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.plot_interval_s = plot_interval_s
        self._last_plot = time.monotonic()  # first drawing after plot_interval_s, or at the end
        self.tb = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge_step)
        except Exception as exc:  # tensorboard missing or broken: CSV and PNG still work
            logger.warning("TensorBoard logging disabled: %s", exc)

    def step(self, global_step: int, loss: float, lr: float) -> None:
        if self.tb is not None:
            self.tb.add_scalar("train/loss_step", loss, global_step)
            self.tb.add_scalar("train/lr", lr, global_step)

    def epoch(self, row: dict[str, Any], history: list[dict[str, Any]], *, final: bool = False) -> None:
        if not self.enabled:
            return
        write_csv(self.run_dir / "log.csv", history)
        if self.tb is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and not math.isnan(float(value)):
                    group = "val" if key.startswith("val_") else "train" if key.startswith("train_") else "run"
                    name = key[4:] if group == "val" else key[6:] if group == "train" else key
                    self.tb.add_scalar(f"{group}/{name}", value, int(row["epoch"]))
            self.tb.flush()
        if final or time.monotonic() - self._last_plot >= self.plot_interval_s:
            self.plot(history)

    def plot(self, history: list[dict[str, Any]]) -> None:
        if not self.enabled or not history:
            return
        from vidlens.report.curves import plot_training_curves

        try:
            plot_training_curves(history, self.run_dir / "curves.png")
        except Exception as exc:  # a plot must never kill a training run
            logger.warning("could not draw %s: %s", self.run_dir / "curves.png", exc)
        self._last_plot = time.monotonic()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
