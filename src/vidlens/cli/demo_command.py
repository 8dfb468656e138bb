"""`vidlens demo`: synthetic data -> temporal model vs frame averaging -> eval -> predict -> HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, progress_enabled


def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder (replaced if it holds an earlier demo)."),
    per_class: int = typer.Option(None, "--per-class", help="Synthetic clips per class (default 100)."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs of the temporal model (default 14)."),
    seed: int = typer.Option(0, "--seed"),
    quick: bool = typer.Option(False, "--quick", help="A seconds-long smoke run that exercises every step but does not learn."),
) -> None:
    """Train and evaluate a temporal action model on synthetic motions against a frame-averaging baseline."""
    from vidlens.workflows.demo import DemoSettings, run_demo

    settings = DemoSettings.quick() if quick else DemoSettings()
    settings.seed = seed
    if per_class is not None:
        settings.per_class = per_class
    if epochs is not None:
        settings.epochs = epochs
    with make_progress() as bar:
        task = bar.add_task("synthetic clips", total=None)

        def synth_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        outcome = run_demo(out, settings, progress=progress_enabled(), log=lambda m: console.print(m, highlight=False),
                           synth_progress=synth_progress)
    console.print(f"temporal model (C3D)        test top-1 {outcome.temporal_top1:.3f}")
    console.print(f"frame-averaging model (TSN) test top-1 {outcome.baseline_top1:.3f}   (chance {outcome.chance:.3f})")
    console.print(f"held-out videos: {outcome.heldout_correct}/{outcome.heldout_total} correct; "
                  f"took {outcome.seconds:.0f} s")
    console.print(f"output folder: {outcome.out.resolve()}  (open {outcome.report.resolve()})")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
