"""One worker process of the service: loads the models once, then runs jobs sent over a pipe.

Messages in: `(job_id, kind, video_path, out_dir, display_name, options, video_facts)` or `None` (stop);
`video_facts` come from the probe the server ran on the upload, so a job does not probe it again.
Messages out: `("ready", info)` or `("error", reason)` once at start-up; then per job any number of
`("progress", job_id, stage, seconds_done)` and one `("done", job_id, result, artifacts)` or
`("failed", job_id, reason)`. `artifacts` maps a file name to its name inside `out_dir`.
Processes, not threads: a job that overruns its timeout is stopped by killing its process.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlens.errors import ConfigError, VidlensError
from vidlens.serve.config import ServeConfig


@dataclass
class LoadedModels:
    """Everything a worker keeps in memory between jobs."""

    classifier: Any = None  # VideoClassifier
    embedder: Any = None  # FrameEmbedder (MobileNetV2) for summaries
    summarizer: Any = None  # (model, checkpoint) from load_video_summarizer
    expression: Any = None  # (model, labels, preprocess)
    voice: Any = None  # (model, labels, preprocess)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.classifier is not None:
            out["classify"] = {"labels": self.classifier.labels, "multi_label": self.classifier.multi_label,
                               "models": [m.model_name for m in self.classifier.members]}
        if self.embedder is not None:
            out["summarize"] = {"features": self.embedder.kind, "trained_model": self.summarizer is not None}
        if self.expression is not None:
            out["emotion"] = {"labels": list(self.expression[1]), "voice_model": self.voice is not None}
        return out


def load_models(config: ServeConfig) -> LoadedModels:
    """Load every model the configured tasks need (raises `VidlensError` naming the file that fails)."""
    models = LoadedModels()
    if config.checkpoints:
        from vidlens.tasks.predictor import VideoClassifier

        models.classifier = VideoClassifier.from_checkpoints(config.checkpoints)
    if config.summarize:
        from vidlens.tasks.frame_features import FrameEmbedder

        if config.summarizer:
            from vidlens.tasks.summarize.pipeline import load_video_summarizer

            models.summarizer = load_video_summarizer(config.summarizer)
        kind = models.summarizer[1]["preprocess"]["features"] if models.summarizer else "mobilenet_v2"
        models.embedder = FrameEmbedder(kind)
    if config.emotion:
        from vidlens.tasks.faces.expression import load_expression_model

        models.expression = load_expression_model(config.expression_model)
        if config.voice_model:
            from vidlens.tasks.voice import load_voice_model

            models.voice = load_voice_model(config.voice_model)
    return models


def worker_main(conn: Any, config: ServeConfig, threads: int) -> None:
    """Process entry point (spawned): load, report ready, serve jobs until told to stop."""
    import torch

    torch.set_num_threads(threads)
    try:
        models = load_models(config)
    except VidlensError as exc:
        conn.send(("error", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the server
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", models.describe()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        job_id, kind, video, out_dir, name, options, facts = message

        last = [0.0, ""]

        def progress(stage: str, seconds: float, job_id: str = job_id, last: list = last) -> None:
            now = time.monotonic()  # at most a few messages a second, and every change of stage
            if stage != last[1] or now - last[0] >= 0.25:
                last[0], last[1] = now, stage
                conn.send(("progress", job_id, stage, float(seconds)))

        try:
            result, artifacts = run_job(models, config, kind, Path(video), Path(out_dir), name, options, progress, facts)
            conn.send(("done", job_id, result, artifacts))
        except VidlensError as exc:
            conn.send(("failed", job_id, exc.reason))
        except Exception as exc:  # noqa: BLE001 - one bad job must not take the worker down
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
            conn.send(("failed", job_id, f"internal error: {type(exc).__name__}: {exc}{where}"))


def run_job(models: LoadedModels, config: ServeConfig, kind: str, video: Path, out: Path, name: str,
            options: dict[str, Any], progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run one job; returns `(result document, {artifact name: file name in out})`. `facts`: `video_facts`
    of `video` (from the upload's probe), the result's `info`."""
    out.mkdir(parents=True, exist_ok=True)
    runner = {"classify": _classify, "summarize": _summarize, "emotion": _emotion}.get(kind)
    if runner is None:
        raise ConfigError(None, f"unknown job kind {kind!r}")
    result, files = runner(models, config, video, out, options, progress, facts)
    artifacts = {}
    for file_name, path in files.items():
        path = Path(path)
        if path.is_file() and path.parent == out:
            if path.suffix in (".json", ".csv"):  # no server paths in what clients download
                path.write_text(path.read_text().replace(str(video), name).replace(f"{out}{os.sep}", ""))
            artifacts[file_name] = path.name
    result["video"] = name
    return result, artifacts


def _classify(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
              progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    if models.classifier is None:
        raise ConfigError(None, "this server has no classifier (start it with --checkpoint)")
    progress("classify", 0.0)
    probs = models.classifier.predict_proba(video)
    labels = models.classifier.labels
    order = sorted(range(len(labels)), key=lambda i: -float(probs[i]))[: options.get("top_k", 5)]
    result: dict[str, Any] = {"kind": "classify", "info": facts,
                              "top": [{"label": labels[i], "score": round(float(probs[i]), 6)} for i in order]}
    files: dict[str, Path] = {}
    if options.get("timeline"):
        from vidlens.report.timeline import plot_timeline

        progress("timeline", 0.0)
        timeline = models.classifier.timeline(video, hop_s=options.get("hop_s"), min_segment_s=options.get("min_segment_s", 0.0))
        result["segments"] = [s.to_dict() for s in timeline.segments]
        files["timeline.png"] = plot_timeline(timeline, out / "timeline.png")
    files["predictions.json"] = out / "predictions.json"
    files["predictions.json"].write_text(json.dumps(result, indent=2) + "\n")
    return result, files


def _summarize(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
               progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    from vidlens.tasks.summarize.pipeline import SummaryConfig, summarize_video

    method = options.get("method", "model" if models.summarizer else "diverse")
    if method == "model" and models.summarizer is None:
        raise ConfigError(None, "this server has no trained summarizer (start it with --summarizer); use diverse, dsn, kmeans or uniform")
    summary_config = SummaryConfig(ratio=options.get("ratio", 0.15), method=method,
                                   model=config.summarizer if method == "model" else None)
    summary = summarize_video(video, out, summary_config, progress=progress, embedder=models.embedder,
                              trained=models.summarizer if method == "model" else None)
    doc = json.loads((out / "summary.json").read_text())
    result = {"kind": "summarize", "info": facts,
              **{k: doc[k] for k in ("num_shots", "ratio_requested", "ratio_achieved", "summary_s", "selected")},
              "method": method}
    return result, dict(summary.files)


def _emotion(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
             progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    from vidlens.tasks.emotion.analyse import EmotionConfig, analyse_emotions
    from vidlens.tasks.emotion.outputs import emotion_document, write_emotion_outputs

    if models.expression is None:
        raise ConfigError(None, "this server does not offer emotion analysis")
    emotion_config = EmotionConfig(fps=options.get("fps", 5.0), voice_model=config.voice_model)
    analysed = analyse_emotions(video, emotion_config, progress=progress, expression=models.expression, voice=models.voice)
    files = write_emotion_outputs(analysed, out, annotate=bool(options.get("annotate", False)))
    doc = emotion_document(analysed)
    doc.pop("video", None)
    return {"kind": "emotion", "info": facts, **doc}, files
