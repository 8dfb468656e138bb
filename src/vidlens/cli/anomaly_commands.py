"""`vidlens anomaly ...`: learn normal for a fixed camera, score videos, evaluate on the published datasets.

`vidlens anomaly train --normal DIR --out MODEL`, `vidlens anomaly VIDEO --model MODEL --out DIR`
(= `anomaly video`), `vidlens anomaly eval --data ROOT --format ped2|avenue|shanghaitech`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vidlens.cli.common import VideoDefaultGroup, console, make_progress, print_skipped, stage_progress

anomaly_app = typer.Typer(
    cls=VideoDefaultGroup,
    help="Anomaly detection for fixed cameras: `train` on normal footage, `vidlens anomaly VIDEO --model MODEL` scores "
         "every frame and raises events, `eval` reports frame-level AUC on UCSD Ped2 / CUHK Avenue / ShanghaiTech.",
    no_args_is_help=True,
)
METHOD_HELP = "prediction (future-frame U-Net), features (frozen ImageNet patch features vs a memory of normal), flow (optical-flow statistics per cell)."


def parse_size(text: str) -> tuple[int, int]:
    """`192x256` -> (192, 256) (height x width)."""
    from vidlens.errors import ConfigError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(None, f"--size is HEIGHTxWIDTH, e.g. 192x256 (got {text!r})") from None
    return h, w


def _config(method: str, size: str, fps: Optional[float], seed: int, epochs: Optional[int]):
    from vidlens.tasks.anomaly.base import AnomalyConfig

    args = {} if epochs is None or method != "prediction" else {"epochs": epochs}
    config = AnomalyConfig(method=method, size=parse_size(size), fps=fps, seed=seed, method_args=args)
    config.check()
    return config


@anomaly_app.command("train")
def train_command(
    normal: Path = typer.Option(..., "--normal", help="Normal footage of one camera: a video, a folder/glob/manifest of "
                                                      "videos, a folder of frame images or of frame folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (.pt)."),
    method: str = typer.Option("features", "--method", help=METHOD_HELP),
    size: str = typer.Option("192x256", "--size", help="Working size HEIGHTxWIDTH (multiples of 16)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Analysis rate (default: the footage's own)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (prediction only)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Learn what is normal for this camera from normal footage only, and calibrate the live score on its last 20 %."""
    import warnings

    from vidlens.tasks.anomaly.frames import list_sources
    from vidlens.tasks.anomaly.train import train_anomaly_model

    config = _config(method, size, fps, seed, epochs)
    sources = list_sources(normal)
    with make_progress() as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_anomaly_model(sources, config, progress=stage_progress(bar, 1.0))
    model.save(out)
    facts = model.facts
    print_skipped([(s["source"], s["reason"]) for s in facts.get("skipped", [])])
    console.print(f"anomaly model ({method}): {facts['fit_frames']} normal frames from {facts['sources']} source(s), "
                  f"calibrated on {facts['calibration_frames']} held-out frames, threshold {model.calibration.threshold:.2f}; "
                  f"{facts['total_s']:.1f} s -> {out}", highlight=False, soft_wrap=True)


@anomaly_app.command("video")
def video_command(
    video: Path = typer.Argument(..., help="Video (or folder of frame images) to score."),
    model: Path = typer.Option(..., "--model", "-m", help="Model from `vidlens anomaly train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: anomaly.json, anomaly.csv, scores.png, heat.npz [, annotated.mp4]."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Event start on the absolute score (default: the model's calibrated one)."),
    min_duration_s: float = typer.Option(0.2, "--min-duration-s", help="Drop events shorter than this."),
    annotate: bool = typer.Option(False, "--annotate", help="Also write annotated.mp4 with the heat map over the frames."),
) -> None:
    """Score every frame, find events (hysteresis), write JSON, CSV, a score plot and optionally an annotated video."""
    from vidlens.io import probe
    from vidlens.outputs import staged_output
    from vidlens.tasks.anomaly.base import AnomalyModel
    from vidlens.tasks.anomaly.events import EventConfig
    from vidlens.tasks.anomaly.frames import image_list
    from vidlens.tasks.anomaly.outputs import write_anomaly_outputs
    from vidlens.tasks.anomaly.score import score_video

    loaded = AnomalyModel.load(model)
    images = image_list(video)
    total = len(images) / (loaded.config.fps or 25.0) if images is not None else probe(video).duration_s
    with staged_output(out) as stage, make_progress() as bar:
        result = score_video(loaded, video, progress=stage_progress(bar, total),
                             events=EventConfig(high=threshold, min_duration_s=min_duration_s))
        write_anomaly_outputs(result, stage.path, source=video if annotate else None, fps=loaded.config.fps,
                              extra={"model": str(model)})
    console.print(f"{len(result.raw)} frames scored ({result.method}), {len(result.events)} event(s) above "
                  f"{result.threshold:.2f}, max score {result.absolute.max():.2f} -> {out}", highlight=False, soft_wrap=True)
    for event in result.events[:10]:
        console.print(f"  {event.start_s:8.2f}-{event.end_s:8.2f} s  peak {event.peak_score:6.2f} at {event.peak_s:.2f} s",
                      highlight=False)


@anomaly_app.command("eval")
def eval_command(
    data: Path = typer.Option(..., "--data", help="Dataset root in its published layout."),
    format: str = typer.Option(..., "--format", help="ped2, avenue or shanghaitech."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: metrics.json, per_video.csv, roc.png."),
    method: str = typer.Option("features", "--method", help=METHOD_HELP),
    size: str = typer.Option("192x256", "--size", help="Working size HEIGHTxWIDTH (multiples of 16)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Analysis rate (default: the footage's own)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (prediction only)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train on the dataset's training split, score its test split, report frame-level AUC (micro, macro) and EER."""
    from vidlens.outputs import staged_output
    from vidlens.tasks.anomaly.evaluate import evaluate_dataset

    config = _config(method, size, fps, seed, epochs)
    with staged_output(out) as stage, make_progress() as bar:
        metrics = evaluate_dataset(data, format, config, stage.path, progress=stage_progress(bar, 1.0))
    summary = metrics.to_json() if hasattr(metrics, "to_json") else dict(metrics)
    shown = {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}
    console.print(f"{format} ({method}): " + ", ".join(f"{k} {v}" for k, v in shown.items()) + f" -> {out}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(anomaly_app, name="anomaly")
