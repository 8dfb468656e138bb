"""The batch engine's `index` task (`vidlens batch index ...`, `vidlens index build --engine ray`): each worker
computes one video's index entry (descriptors, shots, tags) and saves it as entry.npz / entry.json; the index
process adds the saved entries (`VideoIndex.add_computed`). Lives in the batch layer so that the retrieval task
does not import the engine above it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from vidlens.batch.tasks import TaskSpec, resolve_device


def _load(options: dict[str, Any]) -> Any:
    """The embedder and tag model once per worker, from the flat option dict (`batch_options`)."""
    from vidlens.tasks.retrieval.embed import EmbedConfig
    from vidlens.tasks.retrieval.index import IndexModels, IndexOptions

    def pick(cls: type) -> Any:
        return cls(**{f.name: options[f.name] for f in fields(cls) if f.name in options})

    models = IndexModels(pick(EmbedConfig), pick(IndexOptions), device=resolve_device(options))
    models.embedder  # noqa: B018 - load now, once per worker
    models.tag_model  # noqa: B018
    return models


def _run(models: Any, video: Path, out_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """entry.npz / entry.json of one video."""
    from vidlens.tasks.retrieval.index import compute_entry, save_entry

    entry = compute_entry(video, models, with_text=False)
    save_entry(entry, out_dir)
    return {"frames": int(len(entry.features)), "shots": sum(s.kind == "shot" for s in entry.segments),
            "tags": ", ".join(t["tag"] for t in entry.tags[:5])}


def index_task_spec() -> TaskSpec:
    from vidlens.tasks.retrieval.index import batch_options

    return TaskSpec("index", _load, _run, ("frames", "shots", "tags"), batch_options(),
                    ("entry.npz", "entry.json"), "video index entries (descriptors, shots, tags) for vidlens index")
