"""`vidlens features VIDEO`: classic colour/motion features over a frame stream."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress


def features_command(
    video: Path = typer.Argument(..., help="Video file to analyse."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for features.npz, features.csv, features.png."),
    fps: float = typer.Option(10.0, "--fps", help="Frames per second to analyse; 0 = every decoded frame."),
    size: int = typer.Option(160, "--size", help="Shorter side of the analysed frames, in pixels."),
    which: str = typer.Option("hsv,diff,flow,edges", "--which", help="Comma-separated feature groups: hsv, diff, flow, edges."),
    start: float | None = typer.Option(None, "--start", help="Start time in seconds."),
    end: float | None = typer.Option(None, "--end", help="End time in seconds."),
) -> None:
    """Per-frame HSV histograms, frame differences, Farneback flow and edge change ratio."""
    from vidlens.errors import ConfigError, VidlensError
    from vidlens.features import extract_features, parse_which
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.report.features import plot_feature_curves

    groups = parse_which(which)
    if fps < 0:
        raise ConfigError(None, f"--fps must be >= 0, got {fps}")
    if size <= 0:
        raise ConfigError(None, f"--size must be positive, got {size}")
    if start is not None and end is not None and end <= start:
        raise ConfigError(None, f"--end ({end}) must be after --start ({start})")
    info = probe(video)  # fails fast, with the reason, on files that are not video
    rate = fps or None
    total = _expected_frames(info.duration_s, info.num_frames, rate, start, end)
    with make_progress() as bar:
        task = bar.add_task(f"features {video.name}", total=total)
        table = extract_features(
            video, fps=rate, size=size, which=groups, start=start, end=end,
            progress=lambda done: bar.update(task, completed=done),
        )
        bar.update(task, total=len(table), completed=len(table))
    if len(table) == 0:
        raise VidlensError(video, "no frames in the requested time range")
    with staged_output(out) as stage:
        table.to_npz(stage.path / "features.npz")
        table.to_csv(stage.path / "features.csv")
        plot_feature_curves(table, stage.path / "features.png")
    h, w = table.meta["frame_size"]
    rate_text = f"{fps:g} fps" if rate else "every frame"
    console.print(
        f"features: {len(table)} frames ({table.times[0]:.3f}-{table.times[-1]:.3f} s, {rate_text}, {w}x{h} px), "
        f"{','.join(groups)} -> {out}/features.npz, .csv, .png",
        highlight=False,
        soft_wrap=True,
    )


def _expected_frames(duration: float, num_frames: int, fps: float | None, start: float | None, end: float | None) -> int:
    """Frames the bar should expect (an estimate: the bar is corrected when extraction ends)."""
    lo = max(0.0, start or 0.0)
    hi = min(duration, end) if end is not None else duration
    span = max(0.0, hi - lo)
    if fps:
        return max(1, math.ceil(span * fps))
    return max(1, round(num_frames * span / duration)) if duration > 0 else max(1, num_frames)


def register(app: typer.Typer) -> None:
    """Add the `features` command to the root app."""
    app.command("features")(features_command)
