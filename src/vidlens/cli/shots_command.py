"""`vidlens shots VIDEO`: shot boundary detection (cuts, dissolves, fades, wipes) -> scenes.json, .csv, scores.png;
`--split DIR` also writes one video file per scene (`<stem>-Scene-001.mp4`, ...). `vidlens shots train` (in
`shots_train_command`) trains the learned detector; the group sends any other first argument to `video`."""

from __future__ import annotations

from pathlib import Path

import typer

from vidlens.cli.common import VideoDefaultGroup, console, make_progress

shots_app = typer.Typer(
    cls=VideoDefaultGroup,
    help="Shot boundary detection: `vidlens shots VIDEO -o DIR` writes the scene list; `vidlens shots train VIDEOS -o DIR` "
         "trains the learned detector on transitions synthesised from your own footage.",
    no_args_is_help=True,
)


def shots_command(
    video: Path = typer.Argument(..., help="Video file to split into shots."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for scenes.json, scenes.csv, scores.png."),
    method: str = typer.Option("learned", "--method", help="learned (the packaged ShotNet, or --model), classic "
                               "(hand-made rules: the options below), both (learned + classic boundaries it missed)."),
    model: Path | None = typer.Option(None, "--model", help="A shotnet.onnx (or its folder) from `vidlens shots train`; "
                                      "default: the model shipped in the package."),
    learned_threshold: float = typer.Option(0.5, "--learned-threshold", help="learned: boundary probability to exceed."),
    threshold: float = typer.Option(3.0, "--threshold", help="Cut score / local level ratio a cut must exceed (> 1)."),
    min_score: float = typer.Option(0.12, "--min-score", help="Absolute floor on the cut score, 0..1."),
    min_shot_s: float = typer.Option(0.5, "--min-shot-s", help="Shortest shot in seconds; closer boundaries keep the stronger."),
    size: int = typer.Option(96, "--size", help="Shorter side of the analysed frames, pixels (about; exact divisors preferred)."),
    gradual: bool = typer.Option(True, "--gradual/--no-gradual", help="Also detect fades through black and dissolves."),
    edges: bool = typer.Option(False, "--edges", help="Also compute the edge change ratio (slower; shown in the JSON scores)."),
    deep: bool = typer.Option(False, "--deep", help="Also compute MobileNetV2 feature distances (needs its ImageNet weights)."),
    plot: bool = typer.Option(True, "--plot/--no-plot", help="Write scores.png."),
    split: Path | None = typer.Option(None, "--split", help="Also write one video file per scene into this folder "
                                      "(<stem>-Scene-001.<ext>, numbered from 1 as in scenes.csv)."),
    split_mode: str = typer.Option("auto", "--split-mode", help="auto: stream copy when every scene starts on a "
                                   "keyframe, else re-encode; copy: stream copy or fail; encode: always re-encode (H.264 .mp4)."),
    split_audio: bool = typer.Option(True, "--split-audio/--no-split-audio", help="Keep the audio in the split files."),
) -> None:
    """Detect shot boundaries and write the scene list (JSON, PySceneDetect-style CSV) and a score plot."""
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.shots import ShotConfig, detect_shots, write_shot_outputs
    from vidlens.tasks.shots.split import SPLIT_MODES

    if split_mode not in SPLIT_MODES:
        raise typer.BadParameter(f"must be one of {', '.join(SPLIT_MODES)}", param_hint="--split-mode")

    from vidlens.tasks.shots.config import METHODS

    if method not in METHODS:
        raise typer.BadParameter(f"must be one of {', '.join(METHODS)}", param_hint="--method")
    if method != "classic":
        from vidlens.tasks.shots.learned import model_path

        try:
            model_path(model)
        except FileNotFoundError as exc:
            from vidlens.errors import ConfigError

            raise ConfigError(None, str(exc)) from None
    config = ShotConfig(method=method, model=str(model) if model else None, learned_threshold=learned_threshold, size=size, threshold=threshold, min_score=min_score, min_shot_s=min_shot_s,
                        gradual=gradual, edges=edges, deep=deep)
    info = probe(video)  # fails fast, with the reason, on files that are not video
    with make_progress() as bar:
        task = bar.add_task(f"shots {video.name}", total=max(info.num_frames, 1))
        result = detect_shots(video, config, progress=lambda done: bar.update(task, completed=done))
        bar.update(task, total=len(result.times), completed=len(result.times))
    with staged_output(out) as stage:
        paths = {k: stage.final(p) for k, p in write_shot_outputs(result, stage.path, plot=plot).items()}
    kinds = {}
    for b in result.boundaries:
        kinds[b.kind] = kinds.get(b.kind, 0) + 1
    by_kind = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "none"
    rate = len(result.times) / result.seconds if result.seconds > 0 else 0.0
    console.print(
        f"shots: {len(result.scenes)} shots, boundaries: {by_kind} "
        f"({len(result.times)} frames at {rate:.0f} frames/s)",
        highlight=False, soft_wrap=True,
    )
    for path in paths.values():
        console.print(f"  {path}", highlight=False, soft_wrap=True)
    if split is not None:
        from vidlens.tasks.shots.split import split_scenes

        with staged_output(split) as stage, make_progress() as bar:
            task = bar.add_task(f"split {video.name}", total=len(result.scenes))
            done = split_scenes(video, result.scenes, stage.path, mode=split_mode, audio=split_audio,
                                progress=lambda n: bar.update(task, completed=n))
        console.print(f"split: {len(done.files)} files by {done.mode} ({done.reason}) -> {split}/",
                      highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the `shots` group (`video`, the default, and `train`) to the root app."""
    from vidlens.cli.shots_train_command import shots_train_command

    shots_app.command("video")(shots_command)
    shots_app.command("train")(shots_train_command)
    app.add_typer(shots_app, name="shots")
