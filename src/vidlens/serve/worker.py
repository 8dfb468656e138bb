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
    emotion: Any = None  # EmotionModels: expression predictor, face detector, voice and audio-visual models
    index: Any = None  # serve.search.IndexHandle: the --index, reopened after writes, with its search models

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.classifier is not None:
            out["classify"] = {"labels": self.classifier.labels, "multi_label": self.classifier.multi_label,
                               "models": [m.model_name for m in self.classifier.members]}
        if self.embedder is not None:
            out["summarize"] = {"features": self.embedder.kind, "trained_model": self.summarizer is not None}
        if self.emotion is not None:
            av = self.emotion.av
            out["emotion"] = {"labels": list(self.emotion.expression.labels), "voice_model": self.emotion.voice is not None,
                              "av_model": None if av is None else {"labels": list(av.labels), "fusion": av.spec.fusion,
                                                                   "clip_s": av.clip_s}}
        if self.index is not None:
            out["search"] = self.index.describe()
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
        from vidlens.tasks.emotion.folder import EmotionModels

        models.emotion = EmotionModels.load(_emotion_config(config, {}), config.av_model)
    if config.index:
        from vidlens.serve.search import IndexHandle

        models.index = IndexHandle.load(config.index)
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
                try:
                    conn.send(("progress", job_id, stage, float(seconds)))
                except OSError:  # the server is gone (killed): stop this job and exit
                    raise _ServerGone from None

        try:
            try:
                result, artifacts = run_job(models, config, kind, Path(video), Path(out_dir), name, options, progress, facts)
                conn.send(("done", job_id, result, artifacts))
            except _ServerGone:
                return
            except VidlensError as exc:
                conn.send(("failed", job_id, exc.reason))
            except Exception as exc:  # noqa: BLE001 - one bad job must not take the worker down
                last = traceback.extract_tb(exc.__traceback__)[-1:]
                where = f" at {Path(last[0].filename).name}:{last[0].lineno}" if last else ""
                conn.send(("failed", job_id, f"internal error: {type(exc).__name__}: {exc}{where}"))
        except OSError:  # the answer cannot be sent: the server is gone
            return


class _ServerGone(Exception):
    """The pipe to the server broke mid-job (the server was killed): the worker exits quietly."""


def run_job(models: LoadedModels, config: ServeConfig, kind: str, video: Path, out: Path, name: str,
            options: dict[str, Any], progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Run one job; returns `(result document, {artifact name: file name in out})`. `facts`: `video_facts`
    of `video` (from the upload's probe), the result's `info`."""
    out.mkdir(parents=True, exist_ok=True)
    runner = {"classify": _classify, "summarize": _summarize, "emotion": _emotion, "search": _search, "index": _index,
              "explain": _explain, "sync": _sync, "sync-train": _sync_train}.get(kind)
    if runner is None:
        raise ConfigError(None, f"unknown job kind {kind!r}")
    result, files = runner(models, config, video, out, options, progress, facts)
    artifacts = {}
    for file_name, path in files.items():
        path = Path(path)
        if path.is_file() and out in path.parents:  # a folder job's videos have their own folders: NAME/emotion.json
            if path.suffix in (".json", ".csv"):  # no server paths in what clients download
                path.write_text(path.read_text().replace(str(video), name).replace(f"{out}{os.sep}", "")
                                .replace(f"{video.parent}{os.sep}", ""))
            artifacts[file_name] = path.relative_to(out).as_posix()
    if "videos" not in result and kind not in ("search", "index"):  # an index job names the video as indexed
        result["video"] = name
    return result, artifacts


def _explain(*args: Any) -> tuple[dict[str, Any], dict[str, Path]]:
    """Explain the served classifier's decision on the upload (serve/explain_job.py)."""
    from vidlens.serve.explain_job import run_explain

    return run_explain(*args)


def _search(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
            progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """A search of the server's index (`video`: the uploaded clip or image; absent for text and video queries)."""
    from vidlens.serve.search import run_search

    if models.index is None:
        raise ConfigError(None, "this server has no index (start it with --index PATH)")
    return run_search(models.index, video, out, video.name, options, progress)


def _index(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
           progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Add the uploaded video to the server's index."""
    from vidlens.serve.search import run_add

    if models.index is None:
        raise ConfigError(None, "this server has no index (start it with --index PATH)")
    result, files = run_add(models.index, video, out, video.name, options, progress)
    return {**result, "upload": video.name, "info": facts}, files


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


def _emotion_config(config: ServeConfig, options: dict[str, Any]) -> Any:
    from vidlens.tasks.emotion.analyse import EmotionConfig

    return EmotionConfig(fps=options.get("fps", 5.0), expression_checkpoint=config.expression_model,
                         voice_model=config.voice_model)


def _emotion(models: LoadedModels, config: ServeConfig, video: Path, out: Path, options: dict[str, Any],
             progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """One video (as before), or a folder job (`options["files"]`: several uploads beside `video`)."""
    from vidlens.tasks.emotion.analyse import analyse_emotions
    from vidlens.tasks.emotion.outputs import emotion_document, write_emotion_outputs

    if models.emotion is None:
        raise ConfigError(None, "this server does not offer emotion analysis")
    emotion_config = _emotion_config(config, options)
    if options.get("files"):
        return _emotion_folder(models, emotion_config, video.parent, out, options, progress, facts)
    loaded = models.emotion
    analysed = analyse_emotions(video, emotion_config, detector=loaded.detector, progress=progress,
                                expression=loaded.expression, voice=loaded.voice)
    files = write_emotion_outputs(analysed, out, annotate=bool(options.get("annotate", False)))
    doc = emotion_document(analysed)
    if loaded.av is not None:
        from vidlens.tasks.emotion.av_apply import add_av_to_document, apply_av_model, write_av_outputs

        av = apply_av_model(analysed, loaded.av, progress=progress)
        files.update(write_av_outputs(av, out))
        add_av_to_document(doc, av)
    doc.pop("video", None)
    return {"kind": "emotion", "info": facts, **doc}, files


def _emotion_folder(models: LoadedModels, emotion_config: Any, uploads: Path, out: Path, options: dict[str, Any],
                    progress: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Several uploads in one job, as `vidlens emotion DIR`: `NAME/emotion.json|csv|png [av.csv]` per
    video, `summary.csv` and `summary.png`; a video that fails is a failed row, the others go on."""
    from vidlens.tasks.emotion.av_apply import add_av_to_document
    from vidlens.tasks.emotion.folder import analyse_folder, summary_row
    from vidlens.tasks.emotion.outputs import emotion_document

    names = list(options["files"])
    videos = [uploads / n for n in names]

    def report(i: int, stage: str, seconds: float) -> None:
        progress(f"{i + 1}/{len(names)} {names[i]}: {stage}", seconds)

    outcomes = analyse_folder(videos, out, emotion_config, models.emotion, names=names,
                              annotate=bool(options.get("annotate", False)), progress=report,
                              reserved=(uploads.name,))  # never the folder the uploads are in
    files: dict[str, Path] = {"summary.csv": out / "summary.csv", "summary.png": out / "summary.png"}
    entries = []
    by_name = {v.get("name"): v for v in facts.get("videos", [])}
    for outcome in outcomes:
        entry: dict[str, Any] = {**summary_row(outcome), "info": {k: v for k, v in by_name.get(outcome.name, {}).items()
                                                                  if k not in ("name", "error")}}
        if outcome.result is not None:
            doc = emotion_document(outcome.result)
            if outcome.av is not None:
                add_av_to_document(doc, outcome.av)
            doc.pop("video", None)
            entry["result"] = doc
            for file_name, path in outcome.files.items():
                path = Path(path)
                if path.suffix in (".json", ".csv") and path.is_file():  # the upload's path -> the client's name
                    path.write_text(path.read_text().replace(str(outcome.video), outcome.name))
                files[f"{outcome.folder}/{file_name}"] = path
        entries.append(entry)
    ok = sum(o.status == "ok" for o in outcomes)
    return {"kind": "emotion", "videos": entries, "succeeded": ok, "failed": len(outcomes) - ok}, files


def _sync(*args: Any) -> tuple[dict[str, Any], dict[str, Path]]:
    """The audio-video offset of the upload, and optionally a fixed copy (serve/sync_job.py)."""
    from vidlens.serve.sync_job import run_sync

    return run_sync(*args)


def _sync_train(*args: Any) -> tuple[dict[str, Any], dict[str, Path]]:
    """Train the learned sync method on the uploads (serve/sync_job.py)."""
    from vidlens.serve.sync_job import run_sync_train

    return run_sync_train(*args)
