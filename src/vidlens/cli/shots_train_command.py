"""`vidlens shots train VIDEOS... -o DIR`: train the learned shot detector on your own real footage.

Transitions (cuts, dissolves, fades, wipes) are synthesised on the fly between single shots of the
given videos, so no labels are needed. Writes shotnet.pt, shotnet.onnx (use with `vidlens shots VIDEO
--model DIR`), shotnet.json (how it was trained) and loss.png.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, print_skipped


def shots_train_command(
    videos: list[Path] = typer.Argument(..., help="Video files or folders of videos (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the model."),
    steps: int = typer.Option(1200, "--steps", help="Training steps (each a batch of windows with new transitions)."),
    batch: int = typer.Option(8, "--batch", help="Windows per step."),
    window: int = typer.Option(100, "--window", help="Frames per window."),
    lr: float = typer.Option(3e-3, "--lr", help="Peak learning rate (one-cycle schedule)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (windows, initialisation)."),
    init: Path | None = typer.Option(None, "--init", help="Fine-tune this shotnet.pt (or its folder) instead of starting "
                                     "from scratch; `--init default` starts from the packaged model."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: int = typer.Option(1, "--threads", help="CPU threads for torch (1 is fastest on a busy machine)."),
) -> None:
    """Train ShotNet on transitions synthesised from real footage (no labels needed)."""
    from vidlens.outputs import staged_output
    from vidlens.tasks.predictor import find_videos_arg
    from vidlens.tasks.shots.train import TrainConfig, load_clips, save_shot_model, train_shot_net

    config = TrainConfig(steps=steps, batch=batch, window=window, lr=lr, seed=seed, device=device, threads=threads)
    files = [f for v in videos for f in find_videos_arg(v)]
    if not files:
        raise typer.BadParameter("no video files found", param_hint="VIDEOS")
    with make_progress() as bar:
        task = bar.add_task("decode", total=len(files))
        clips, skipped = load_clips(files, progress=lambda n: bar.update(task, completed=n))
    print_skipped(skipped)
    frames = sum(len(c.frames) for c in clips)
    console.print(f"train: {len(clips)} videos, {frames} frames, {sum(len(c.spans) for c in clips)} single shots",
                  highlight=False)
    start = None
    if init is not None:
        from vidlens.tasks.shots.learned import DEFAULT_MODEL
        from vidlens.tasks.shots.train import load_shot_net

        start = load_shot_net(DEFAULT_MODEL.parent if str(init) == "default" else init)
    with make_progress() as bar:
        task = bar.add_task("train", total=steps)
        model, history = train_shot_net(clips, config, init=start,
                                        progress=lambda s, loss: bar.update(task, completed=s, description=f"train loss {loss:.3f}"))
    meta = {"train": config.__dict__, "videos": [c.name for c in clips], "frames": frames, "history": history,
            "skipped": [p for p, _ in skipped], "init": str(init) if init else None}
    with staged_output(out) as stage:
        paths = save_shot_model(model, stage.path, meta)
        from vidlens.report.curves import plot_training_curves

        plot_training_curves([{"epoch": h["step"], "train_loss": h["loss"]} for h in history], stage.path / "loss.png",
                             title="ShotNet training loss (x: step)")
    console.print(f"model: {out / paths['onnx'].name} (use: vidlens shots VIDEO -o DIR --model {out}); "
                  f"final loss {history[-1]['loss']:.3f}", highlight=False, soft_wrap=True)
