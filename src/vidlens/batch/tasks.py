"""The jobs `vidlens batch` can run over many videos: one `TaskSpec` per task.

A spec splits a task in two: `load(options)` builds what is expensive (networks, ONNX sessions),
once per worker process or Ray actor; `run(models, video, out_dir, options)` handles one video,
writes the files the single-video command writes (through that command's own writer functions)
into `out_dir`, and returns the task's headline fields (JSON-able scalars) for the results table.
`run` raises `VidlensError` (or a decoder's error) for a video it cannot handle; `items.run_item`
turns that into a failed row.

Options are a flat dict; each task lists its defaults (`TaskSpec.defaults`), `resolve_options`
merges them with what the user gave and rejects unknown names, so the resolved dict is the same
for `--fps 2` and for no flag when 2 is the default (it goes into the content key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidlens.errors import ConfigError, VidlensError

__all__ = ["TaskSpec", "TASKS", "get_task", "resolve_options", "PATH_OPTIONS"]

# Options naming a file whose content (not only its path) decides the result: hashed into the key.
PATH_OPTIONS = ("checkpoint", "model", "av_model", "expression_checkpoint", "voice_model")


@dataclass(frozen=True)
class TaskSpec:
    """One batch task: how to load its models once and how to run it on one video."""

    name: str  # classify, shots, keyframes, summarize, emotion, features
    load: Callable[[dict[str, Any]], Any]  # options -> loaded models (called once per worker, inside it)
    run: Callable[[Any, Path, Path, dict[str, Any]], dict[str, Any]]  # (models, video, out_dir, options) -> headline fields
    headline: tuple[str, ...]  # names of the headline fields, in table order
    defaults: Mapping[str, Any] = field(default_factory=dict)  # every option the task accepts, with its default
    files: tuple[str, ...] = ()  # the main files a video's folder holds (for docs and checks)
    help: str = ""


def resolve_options(spec: TaskSpec, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task's defaults updated with `options`; unknown names are a `ConfigError` listing the known ones.

    Values must be JSON-able (they are hashed as canonical JSON and sent to workers)."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(spec.defaults))
    if unknown:
        raise ConfigError(None, f"task {spec.name!r} has no option {', '.join(unknown)}; "
                                f"it accepts: {', '.join(sorted(spec.defaults)) or 'none'}")
    resolved = {**spec.defaults, **given}
    try:
        json.dumps(resolved, sort_keys=True)
    except TypeError as exc:
        raise ConfigError(None, f"options must be JSON values ({exc})") from None
    return resolved


def _config(cls: type, options: Mapping[str, Any]) -> Any:
    """A config dataclass built from the option names it has (the other options are the batch task's own)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in options.items() if k in names})


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(options: Mapping[str, Any]) -> str:
    """The `device` option inside a worker: "auto" = cuda when this worker sees a GPU (a Ray actor
    with `--gpus-per-worker`), else cpu. ConfigError for another name or cuda without a GPU."""
    import torch

    name = str(options.get("device") or "auto")
    if name not in DEVICES:
        raise ConfigError(None, f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(None, "device cuda asked for, but this worker sees no GPU")
    return name


# ------------------------------------------------------------------ classify

def _classify_load(options: dict[str, Any]) -> Any:
    from vidlens.tasks.predictor import VideoClassifier

    checkpoints = options.get("checkpoint")
    if not checkpoints:
        raise ConfigError(None, "classify needs --checkpoint (a model from `vidlens train`)")
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    return VideoClassifier.from_checkpoints(list(checkpoints), options.get("weight") or None,
                                            num_clips=options.get("test_clips"), device=resolve_device(options))


def _classify_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """`predictions.jsonl` / `predictions.csv` of this one video, as `vidlens predict VIDEO` writes them."""
    from vidlens.workflows.predict import write_predictions

    row = models.predict(video, int(options["top_k"]))
    if "error" in row:
        raise VidlensError(video, row["error"])
    row["status"] = "ok"
    write_predictions([row], out_dir)
    best = row["top"][0]
    return {"label": best["label"], "score": float(best["score"])}


# ------------------------------------------------------------------ shots

def _shots_defaults() -> dict[str, Any]:
    from vidlens.tasks.shots import ShotConfig

    return {**asdict(ShotConfig()), "plot": True}


def _shots_load(options: dict[str, Any]) -> Any:
    """Fails early on a bad --model; the ONNX session itself is opened per video by `detect_shots`."""
    if options.get("method", "learned") != "classic":
        from vidlens.tasks.shots.learned import model_path

        try:
            model_path(options.get("model"))
        except FileNotFoundError as exc:
            raise ConfigError(None, str(exc)) from None
    return None


def _shots_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """scenes.json, scenes.csv, scores.png: `vidlens shots VIDEO` (detect_shots + write_shot_outputs)."""
    from vidlens.tasks.shots import ShotConfig, detect_shots, write_shot_outputs

    result = detect_shots(video, _config(ShotConfig, options))
    write_shot_outputs(result, out_dir, plot=bool(options.get("plot", True)))
    return {"shots": len(result.scenes), "boundaries": len(result.boundaries)}


# ------------------------------------------------------------------ keyframes

def _embedder_load(options: dict[str, Any]) -> Any:
    from vidlens.tasks.frame_features import FrameEmbedder

    return FrameEmbedder(options.get("features", "mobilenet_v2"), device=resolve_device(options))


def _keyframes_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """keyframes/, keyframes.json, contact_sheet.png: the steps of `extract_keyframes`, with the
    worker's loaded embedder (that function loads its network per call)."""
    from vidlens.io import probe
    from vidlens.tasks.frame_features import sample_frame_features
    from vidlens.tasks.keyframes import KeyframeConfig, choose_keyframes, save_keyframes
    from vidlens.tasks.shots import detect_shots

    config = _config(KeyframeConfig, options)
    probe(video)  # unreadable input fails here, with the reason
    shots = detect_shots(video).scenes
    features = sample_frame_features(video, fps=config.fps, kind=config.features, embedder=models)
    keyframes = choose_keyframes(features, shots, config)
    save_keyframes(video, keyframes, out_dir, config,
                   title=f"{Path(video).name}: {len(keyframes)} keyframes from {len(shots)} shots")
    return {"keyframes": len(keyframes)}


# ------------------------------------------------------------------ summarize

def _summarize_load(options: dict[str, Any]) -> Any:
    from vidlens.tasks.summarize.pipeline import load_video_summarizer

    trained = load_video_summarizer(options["model"]) if options.get("model") else None
    features = trained[1]["preprocess"]["features"] if trained else options.get("features", "mobilenet_v2")
    return {"embedder": _embedder_load({"features": features, "device": options.get("device")}), "trained": trained}


def _summarize_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """summary.mp4, summary.json, segments.csv, importance.png, keyframes/: `vidlens summarize VIDEO`."""
    from vidlens.tasks.summarize.pipeline import SummaryConfig, summarize_video

    opts = dict(options)
    if opts.get("model"):
        opts["method"] = "model"
    config = _config(SummaryConfig, opts)
    result = summarize_video(video, out_dir, config, embedder=models["embedder"], trained=models["trained"])
    fps = result.info.fps or 25.0
    return {"segments": len(result.selected), "summary_s": round(result.summary_frames / fps, 3)}


# ------------------------------------------------------------------ emotion

def _emotion_defaults() -> dict[str, Any]:
    from vidlens.tasks.emotion import EmotionConfig

    return {**asdict(EmotionConfig()), "av_model": None, "annotate": False}


def _emotion_load(options: dict[str, Any]) -> Any:
    from vidlens.tasks.emotion import EmotionConfig
    from vidlens.tasks.emotion.folder import EmotionModels

    return EmotionModels.load(_config(EmotionConfig, options), options.get("av_model"))


def _emotion_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """emotion.json, emotion.csv, emotion.png [, av.csv]: `vidlens emotion VIDEO` (analyse_one)."""
    from vidlens.tasks.emotion import EmotionConfig
    from vidlens.tasks.emotion.analyse import sentiment, valence
    from vidlens.tasks.emotion.folder import analyse_one

    result, _av, _files = analyse_one(video, out_dir, _config(EmotionConfig, options), models,
                                      annotate=bool(options.get("annotate")))
    row: dict[str, Any] = {"faces": len(result.tracks), "dominant": None, "valence": None, "sentiment": None,
                           "confidence": None}
    if result.dominant is not None and result.video_probs is not None:
        mood, confidence = sentiment(result.video_probs, result.labels)
        row.update(dominant=result.dominant, valence=round(float(valence(result.video_probs, result.labels)), 4),
                   sentiment=mood, confidence=round(float(confidence), 4))
    return row


# ------------------------------------------------------------------ features (embeddings for retrieval)

def _features_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """`embedding.npy` (D,) float32: the mean of `frames` uniformly spaced frames' ImageNet embeddings;
    `frame_embeddings.npy` (N,D); `features.json` (encoder, dim, frame indices and times)."""
    import numpy as np

    from vidlens.io import probe
    from vidlens.tasks.frame_features import sample_frame_features

    wanted = int(options["frames"])
    if wanted < 1:
        raise ConfigError(None, f"frames must be at least 1, got {wanted}")
    info = probe(video)
    rate = wanted / info.duration_s if info.duration_s > 0 else 1.0
    feats = sample_frame_features(video, fps=rate, size=int(options["size"]), embedder=models)
    if len(feats) == 0:
        raise VidlensError(video, "no frame could be decoded")
    keep = np.unique(np.linspace(0, len(feats) - 1, min(wanted, len(feats))).round().astype(int))
    rows = feats.features[keep].astype(np.float32)
    embedding = rows.mean(axis=0).astype(np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(out_dir / "embedding.npy", embedding)
    np.save(out_dir / "frame_embeddings.npy", rows)
    doc = {"video": str(video), "encoder": feats.kind, "dim": int(embedding.shape[0]), "frames": len(keep),
           "pooling": "mean", "frame_indices": [int(i) for i in feats.frames[keep]],
           "times_s": [round(float(t), 3) for t in feats.frame_times_s[keep]], "duration_s": round(info.duration_s, 3)}
    (out_dir / "features.json").write_text(json.dumps(doc, indent=2) + "\n")
    return {"dim": int(embedding.shape[0]), "frames": len(keep)}


def _classify_spec() -> TaskSpec:
    return TaskSpec("classify", _classify_load, _classify_run, ("label", "score"),
                    {"checkpoint": None, "weight": None, "top_k": 5, "test_clips": None, "device": "auto"},
                    ("predictions.jsonl", "predictions.csv"), "top-k labels from a trained checkpoint")


def _shots_spec() -> TaskSpec:
    return TaskSpec("shots", _shots_load, _shots_run, ("shots", "boundaries"), _shots_defaults(),
                    ("scenes.json", "scenes.csv", "scores.png"), "shot boundaries and scenes")


def _keyframes_spec() -> TaskSpec:
    from vidlens.tasks.keyframes import KeyframeConfig

    return TaskSpec("keyframes", _embedder_load, _keyframes_run, ("keyframes",), {**asdict(KeyframeConfig()), "device": "auto"},
                    ("keyframes.json", "contact_sheet.png", "keyframes/"), "representative frames per shot")


def _summarize_spec() -> TaskSpec:
    from vidlens.tasks.summarize.pipeline import SummaryConfig

    return TaskSpec("summarize", _summarize_load, _summarize_run, ("segments", "summary_s"), {**asdict(SummaryConfig()), "device": "auto"},
                    ("summary.json", "segments.csv", "importance.png", "summary.mp4", "keyframes/"),
                    "a short summary video")


def _emotion_spec() -> TaskSpec:
    return TaskSpec("emotion", _emotion_load, _emotion_run, ("faces", "dominant", "valence", "sentiment", "confidence"),
                    _emotion_defaults(), ("emotion.json", "emotion.csv", "emotion.png"),
                    "facial (and voice) emotion per face track and per video")


def _features_spec() -> TaskSpec:
    return TaskSpec("features", _embedder_load, _features_run, ("dim", "frames"),
                    {"features": "mobilenet_v2", "frames": 16, "size": 224, "device": "auto"},
                    ("embedding.npy", "frame_embeddings.npy", "features.json"),
                    "one mean-pooled ImageNet embedding per video, for retrieval")


# ------------------------------------------------------------------ tags

def _tags_load(options: dict[str, Any]) -> Any:
    """The ImageNet MobileNetV2 (with its classifier) once per worker, and the user's classifier if --checkpoint."""
    from vidlens.tasks.tags import TagModel

    classifier = None
    if options.get("checkpoint"):
        from vidlens.tasks.predictor import VideoClassifier

        classifier = VideoClassifier.from_checkpoints([str(options["checkpoint"])], device=resolve_device(options))
    return TagModel(device=resolve_device(options)), classifier


def _tags_run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """tags.json, tags.csv, tags.png: `vidlens tags VIDEO` (tag_video + write_tag_outputs)."""
    from vidlens.tasks.tags import TagConfig, tag_video, write_tag_outputs

    model, classifier = models
    result = tag_video(video, _config(TagConfig, options), model, classifier=classifier)
    write_tag_outputs(result, out_dir, sheet=bool(options.get("plot", True)))
    return {"tags": ", ".join(t["tag"] for t in result.tags[:5]), "shots": len(result.shots)}


def _tags_spec() -> TaskSpec:
    from vidlens.tasks.tags import TagConfig

    return TaskSpec("tags", _tags_load, _tags_run, ("tags", "shots"),
                    {**asdict(TagConfig()), "checkpoint": None, "plot": True, "device": "auto"},
                    ("tags.json", "tags.csv", "tags.png"), "readable ImageNet tags per shot and per video")


# name -> builder; a spec is built on first use (its defaults import that task's config, and some of
# those modules import torch: a shots batch should not pay for that).
_BUILDERS: dict[str, Callable[[], TaskSpec]] = {
    "classify": _classify_spec, "shots": _shots_spec, "keyframes": _keyframes_spec,
    "summarize": _summarize_spec, "emotion": _emotion_spec, "features": _features_spec,
    "tags": _tags_spec,
    # `vidlens index build --engine ray`: per-video index entries (descriptors, shots, tags), added by the driver.
    "index": lambda: __import__("vidlens.batch.index_task", fromlist=["index_task_spec"]).index_task_spec(),
}


class _Tasks(dict):
    """`TASKS`: name -> TaskSpec, each built on first access; `in`, `len` and iterating names build nothing."""

    def __missing__(self, key: str) -> TaskSpec:
        if key not in _BUILDERS:
            raise KeyError(key)
        spec = self[key] = _BUILDERS[key]()
        return spec

    def __contains__(self, key: object) -> bool:
        return key in _BUILDERS

    def __iter__(self):
        return iter(_BUILDERS)

    def __len__(self) -> int:
        return len(_BUILDERS)

    def keys(self):
        return _BUILDERS.keys()

    def values(self):
        return [self[k] for k in _BUILDERS]

    def items(self):
        return [(k, self[k]) for k in _BUILDERS]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in _BUILDERS else default


TASKS: dict[str, TaskSpec] = _Tasks()


def get_task(name: str) -> TaskSpec:
    """The spec of task `name`; a `ConfigError` listing the tasks when unknown."""
    if name not in TASKS:
        raise ConfigError(None, f"unknown batch task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
