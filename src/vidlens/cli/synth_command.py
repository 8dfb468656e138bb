"""`vidlens data synth`: write synthetic datasets with ground truth.

Three sub-commands:

    vidlens data synth actions OUT [--per-class 40] [--frames 32] [--size 112] [--fps 16]
                                   [--seed 0] [--audio] [--workers 2] [--overwrite]
    vidlens data synth audiovisual OUT [--per-class 60] [--frames 12] [--size 48] [--fps 12] [--seed 0]
                                       [--signal both|split|video|audio] [--split-other neutral|random]
                                       [--visual-noise 0.03] [--audio-noise 0.15] [--workers 2] [--overwrite]
    vidlens data synth shots OUT [--videos 5] [--shots 4-8] [--fps 25] [--size 144x256]
                                 [--seed 0] [--transitions cut,fade,dissolve] [--workers 2] [--overwrite]
"""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import console, make_progress
from vidlens.errors import ConfigError

synth_app = typer.Typer(
    help="Write synthetic datasets as real H.264 files with ground truth (actions, audio-visual sentiment, shot boundaries).",
    no_args_is_help=True,
)


def _parse_size(text: str) -> int | tuple[int, int]:
    """'112' -> 112 (square); '144x256' -> (144, 256) as height x width."""
    try:
        if "x" in text.lower():
            h, w = text.lower().split("x")
            return int(h), int(w)
        return int(text)
    except ValueError:
        raise ConfigError(None, f"--size: expected N or HxW (e.g. 112 or 144x256), got {text!r}") from None


def _parse_range(text: str) -> tuple[int, int]:
    """'6' -> (6, 6); '4-8' -> (4, 8)."""
    try:
        if "-" in text:
            lo, hi = text.split("-")
            return int(lo), int(hi)
        return int(text), int(text)
    except ValueError:
        raise ConfigError(None, f"--shots: expected N or LO-HI (e.g. 6 or 4-8), got {text!r}") from None


def actions_command(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    per_class: int = typer.Option(40, "--per-class", min=1, help="Clips per class (8 classes)."),
    frames: int = typer.Option(32, "--frames", min=2, help="Frames per clip."),
    size: str = typer.Option("112", "--size", help="Frame size: N (square) or HxW."),
    fps: float = typer.Option(16.0, "--fps", min=0.001, help="Frame rate of the clips."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same dataset."),
    audio: bool = typer.Option(False, "--audio", help="Add a chirp sound track (rising or falling by class)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes rendering and encoding clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synthetic actions dataset in OUT."),
) -> None:
    """Eight motion classes (move/rotate/grow/shrink) that single frames cannot tell apart."""
    from vidlens.data.synthetic import ACTION_CLASSES, make_action_dataset

    hw = _parse_size(size)
    with make_progress() as progress:
        task = progress.add_task("clips", total=per_class * len(ACTION_CLASSES))
        info = make_action_dataset(
            out, num_per_class=per_class, num_frames=frames, size=hw, fps=fps, seed=seed,
            audio=audio, workers=workers, overwrite=overwrite,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    h, w = info.size
    console.print(
        f"wrote {info.num_clips} clips ({len(info.classes)} classes x {per_class}, {frames} frames, {h}x{w}"
        f"{', audio' if audio else ''}) to {info.root} in {info.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


def shots_command(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    videos: int = typer.Option(5, "--videos", min=1, help="Number of videos."),
    shots: str = typer.Option("4-8", "--shots", help="Shots per video: N or LO-HI."),
    fps: float = typer.Option(25.0, "--fps", min=0.001, help="Frame rate."),
    size: str = typer.Option("144x256", "--size", help="Frame size: N (square) or HxW."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same videos."),
    transitions: str = typer.Option("cut,fade,dissolve", "--transitions", help="Comma-separated transition types."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes rendering and encoding videos."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synthetic shots dataset in OUT."),
) -> None:
    """Videos of random scenes joined by cuts, fades and dissolves, with hard non-boundary events."""
    from vidlens.data.synthetic import make_shot_dataset

    kinds = tuple(t.strip() for t in transitions.split(",") if t.strip())
    hw, shot_range = _parse_size(size), _parse_range(shots)
    with make_progress() as progress:
        task = progress.add_task("videos", total=videos)
        info = make_shot_dataset(
            out, videos, num_shots=shot_range, fps=fps, size=hw, seed=seed,
            transitions=kinds, workers=workers, overwrite=overwrite,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    n_trans = sum(len(gt.transitions) for gt in info.ground_truth)
    console.print(
        f"wrote {len(info.videos)} video{'s' if len(info.videos) != 1 else ''} ({info.num_frames} frames, "
        f"{n_trans} transitions) to {info.root} "
        f"in {info.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


def audiovisual_command(
    out: Path = typer.Argument(..., help="Output folder (created; must be empty unless --overwrite)."),
    per_class: int = typer.Option(60, "--per-class", min=1, help="Clips per class (3 classes)."),
    frames: int = typer.Option(12, "--frames", min=2, help="Frames per clip (the clip lasts frames/fps seconds)."),
    size: str = typer.Option("48", "--size", help="Frame size: N (square) or HxW."),
    fps: float = typer.Option(12.0, "--fps", min=0.001, help="Frame rate of the clips."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same dataset."),
    signal: str = typer.Option("both", "--signal", help="Which modality carries the class: both, split, video, audio."),
    split_other: str = typer.Option("neutral", "--split-other", help="What the other modality shows: neutral or random."),
    visual_noise: float = typer.Option(0.03, "--visual-noise", min=0.0, help="Pixel noise std (fraction of 255)."),
    audio_noise: float = typer.Option(0.15, "--audio-noise", min=0.0, help="Noise RMS relative to the tone's."),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes rendering and encoding clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synthetic audiovisual dataset in OUT."),
) -> None:
    """Cartoon faces (smile/straight/frown) with rising/flat/falling tones: positive/neutral/negative."""
    from vidlens.data.synthetic import AV_CLASSES, make_audiovisual_dataset

    hw = _parse_size(size)
    with make_progress() as progress:
        task = progress.add_task("clips", total=per_class * len(AV_CLASSES))
        info = make_audiovisual_dataset(
            out, num_per_class=per_class, num_frames=frames, size=hw, fps=fps, seed=seed, signal=signal,
            split_other=split_other, visual_noise=visual_noise, audio_noise=audio_noise, workers=workers,
            overwrite=overwrite, progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    h, w = info.size
    console.print(
        f"wrote {info.num_clips} clips ({len(info.classes)} classes x {per_class}, {frames} frames, {h}x{w}, audio, "
        f"signal {signal}) to {info.root} in {info.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )


def register(data_app: typer.Typer) -> None:
    """Add the `synth` command group (`actions`, `audiovisual`, `shots`) to the `data` group."""
    synth_app.command("actions")(actions_command)
    synth_app.command("audiovisual")(audiovisual_command)
    synth_app.command("shots")(shots_command)
    data_app.add_typer(synth_app, name="synth")
