"""`vidlens tags VIDEO`: readable tags per shot and per video (ImageNet MobileNetV2), JSON, CSV and a contact sheet."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, stage_progress


def tags_command(
    video: Path = typer.Argument(..., help="Video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: tags.json, tags.csv, tags.png."),
    frames_per_shot: int = typer.Option(4, "--frames-per-shot", help="Frames sampled evenly in each shot."),
    threshold: float = typer.Option(0.15, "--threshold", help="Least shot-averaged probability a tag needs."),
    min_frames: int = typer.Option(2, "--min-frames", help="Sampled frames of the shot a tag must reach the threshold in."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Also add a trained vidlens classifier's top labels for the video."),
) -> None:
    """Detect shots, classify a few frames per shot with the ImageNet MobileNetV2 and keep the confident, repeated tags."""
    import torch

    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.tags import TagConfig, TagModel, tag_video, write_tag_outputs

    config = TagConfig(frames_per_shot=frames_per_shot, threshold=threshold, min_frames=min_frames)
    config.check()
    duration = probe(video).duration_s
    classifier = None
    if checkpoint is not None:
        from vidlens.tasks.predictor import VideoClassifier

        classifier = VideoClassifier.from_checkpoints([str(checkpoint)])
    torch.set_num_threads(1)
    model = TagModel()
    with staged_output(out) as stage, make_progress() as bar:
        result = tag_video(video, config, model, classifier=classifier, progress=stage_progress(bar, duration))
        write_tag_outputs(result, stage.path)
    words = ", ".join(f"{t['tag']} ({t['score']:.2f})" for t in result.tags[:5]) or "none"
    console.print(f"tags: {words}; {result.facts['shots']} shots -> {out}/tags.json, tags.csv, tags.png",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("tags")(tags_command)
