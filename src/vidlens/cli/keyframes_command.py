"""`vidlens keyframes VIDEO`: representative frames per shot, a contact sheet and JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress, stage_progress


def keyframes_command(
    video: Path = typer.Argument(..., help="Video file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: keyframes/, keyframes.json, contact_sheet.png."),
    fps: float = typer.Option(2.0, "--fps", help="Candidate frames per second."),
    features: str = typer.Option("mobilenet_v2", "--features", help="Frame embeddings: mobilenet_v2 (ImageNet) or hsv."),
    seconds_per_keyframe: float = typer.Option(10.0, "--seconds-per-keyframe", help="A shot gets 1 + length / this keyframes."),
    max_per_shot: int = typer.Option(3, "--max-per-shot"),
    max_similarity: float = typer.Option(0.9, "--max-similarity", help="Cosine similarity above which a candidate repeats a chosen keyframe."),
    image_size: int = typer.Option(360, "--image-size", help="Shorter side of the saved images, pixels."),
    image_format: str = typer.Option("jpg", "--format", help="jpg or png."),
) -> None:
    """Detect shots, cluster each shot's frame embeddings and save one medoid per cluster, without repeats."""
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.keyframes import KeyframeConfig, extract_keyframes

    config = KeyframeConfig(fps=fps, features=features, seconds_per_keyframe=seconds_per_keyframe,
                            max_per_shot=max_per_shot, max_similarity=max_similarity, image_size=image_size,
                            image_format=image_format)
    duration = probe(video).duration_s
    with staged_output(out) as stage, make_progress() as bar:
        result = extract_keyframes(video, stage.path, config, progress=stage_progress(bar, duration))
    console.print(f"keyframes: {len(result.keyframes)} from {result.num_shots} shots -> {out}/keyframes/, "
                  "keyframes.json, contact_sheet.png", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("keyframes")(keyframes_command)
