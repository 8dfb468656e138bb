"""`vidlens stream`: real-time classification of a file, webcam or RTSP/HTTP stream."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from vidlens.cli.common import STATE, console


def stream_command(
    source: str = typer.Argument(..., help="A video file, a webcam index (0 -> /dev/video0) or an rtsp:// / http:// URL."),
    checkpoint: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="Checkpoint (.pt or .onnx); repeat for an ensemble."),
    anomaly: Optional[Path] = typer.Option(None, "--anomaly", help="An anomaly model (`vidlens anomaly train`) instead of a "
                                                                  "classifier: per-decision scores and start/end events."),
    every: int = typer.Option(4, "--every", help="Run the model every K new frames."),
    smooth: float = typer.Option(0.5, "--smooth", help="EMA weight of past probabilities (0 = none)."),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-realtime",
                                            help="Pace a file at its own frame rate (default: on for files)."),
    events: bool = typer.Option(False, "--events", help="Also emit start/end events when a label crosses --threshold."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Events: start at this smoothed score, end below it - 0.1 "
                                                                        "(default 0.6); with --anomaly: the absolute score "
                                                                        "(default: the model's calibrated threshold)."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Write decisions (and events) here instead of stdout."),
    output: Optional[Path] = typer.Option(None, "--output", help="Annotated video with the current label drawn."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Write the run's statistics as JSON."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Stop after this much stream time."),
) -> None:
    """Classify a live source clip by clip (or, with --anomaly, score it for anomalies); one JSON line per decision
    (and event); statistics at the end."""
    from vidlens.errors import ConfigError

    if bool(checkpoint) == (anomaly is not None):
        raise ConfigError(None, "give --checkpoint (classification) or --anomaly (anomaly model), one of the two")
    handle = open(jsonl, "w") if jsonl else sys.stdout

    def emit(row: dict) -> None:
        handle.write(json.dumps(row) + "\n")
        handle.flush()

    try:
        if anomaly is not None:
            from vidlens.deploy.anomaly_stream import run_anomaly_stream
            from vidlens.tasks.anomaly.base import AnomalyModel
            from vidlens.tasks.anomaly.events import EventConfig

            result = run_anomaly_stream(source, AnomalyModel.load(anomaly), every=every, realtime=realtime,
                                        max_seconds=max_seconds, on_decision=emit, on_event=emit,
                                        events=EventConfig(high=threshold))
        else:
            from vidlens.deploy.stream import StreamConfig, run_stream
            from vidlens.tasks.predictor import VideoClassifier

            config = StreamConfig(every=every, smooth=smooth, threshold=0.6 if threshold is None else threshold, events=events,
                                  realtime=realtime, output=str(output) if output else None, max_seconds=max_seconds)
            result = run_stream(source, VideoClassifier.from_checkpoints(checkpoint), config, on_decision=emit, on_event=emit)
    finally:
        if jsonl:
            handle.close()
    if stats:
        result.write_json(stats)
    summary = (f"frames {result.frames} at {result.input_fps:.1f} fps (target {result.target_fps:g}); "
               f"decisions {result.decisions}; dropped {result.dropped_frames}; "
               f"latency p50/p90/p99 {result.latency_p50_ms:.1f}/{result.latency_p90_ms:.1f}/{result.latency_p99_ms:.1f} ms")
    if not STATE.quiet or jsonl:
        # With decisions on stdout, the summary goes to stderr so the JSON lines stay parseable.
        (console if jsonl else _stderr()).print(summary, highlight=False, soft_wrap=True)


def _stderr():
    from vidlens.cli.common import console_err

    return console_err


def register(app: typer.Typer) -> None:
    app.command("stream")(stream_command)
