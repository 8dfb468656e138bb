"""`vidlens summarize VIDEO`: a short summary video, its keyframes, segment scores and the importance curve."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, stage_progress


def summarize_video_command(
    video: Path = typer.Argument(..., help="Video file to summarize."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: summary.mp4, summary.json, segments.csv, importance.png, keyframes/."),
    ratio: float = typer.Option(0.15, "--ratio", help="Summary length as a fraction of the video's."),
    method: str = typer.Option("diverse", "--method", help="Segment scoring: diverse (content coverage, default), dsn (trained on this video, unsupervised), kmeans, uniform, model."),
    model: str = typer.Option(None, "--model", help="A DSN checkpoint from `vidlens summarize train --videos` (sets --method model)."),
    fps: float = typer.Option(2.0, "--fps", help="Frames scored per second."),
    features: str = typer.Option("mobilenet_v2", "--features", help="Frame embeddings: mobilenet_v2 (ImageNet) or hsv."),
    max_segment_s: float = typer.Option(4.0, "--max-segment-s", help="Longest sub-shot (shorter when the budget needs it to hold several)."),
    epochs: int = typer.Option(100, "--epochs", help="DSN training epochs on this video (method dsn)."),
    seed: int = typer.Option(0, "--seed"),
    audio: bool = typer.Option(True, "--audio/--no-audio", help="Keep the audio in summary.mp4."),
    keyframes: bool = typer.Option(True, "--keyframes/--no-keyframes", help="Save keyframes of the kept segments."),
) -> None:
    """Score frames, pick shots by knapsack to --ratio of the length, cut them (with audio) into summary.mp4."""
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.summarize.pipeline import SummaryConfig, summarize_video

    config = SummaryConfig(ratio=ratio, method="model" if model else method, model=model, fps=fps, features=features,
                           max_segment_s=max_segment_s, dsn_epochs=epochs, seed=seed, audio=audio, keyframes=keyframes)
    duration = probe(video).duration_s
    with staged_output(out) as stage, make_progress() as bar:
        result = summarize_video(video, stage.path, config, progress=stage_progress(bar, duration))
    kept = result.summary_frames / (result.info.fps or 25.0)
    console.print(f"summary: kept {len(result.selected)} of {len(result.segments)} segments from {result.num_shots} shots, "
                  f"{kept:.1f} s of {result.info.duration_s:.1f} s ({kept / max(result.info.duration_s, 1e-6):.0%}), "
                  f"scored by {config.method}", highlight=False, soft_wrap=True)
    if result.ratio_note:
        console.print(f"note: {result.ratio_note}", highlight=False, soft_wrap=True)
    console.print(f"wrote {', '.join(sorted(result.files))} -> {out}", highlight=False, soft_wrap=True)


def register(summarize_app: typer.Typer) -> None:
    """Add `video` to the `summarize` group (`vidlens summarize VIDEO` dispatches to it)."""
    summarize_app.command("video")(summarize_video_command)
