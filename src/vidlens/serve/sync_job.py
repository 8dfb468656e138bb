"""The service's sync job (`POST /v1/sync`): the audio-video offset of the upload, and optionally a fixed copy.

Runs in a worker process (`worker.run_job`, kind "sync"); needs no model. Artifacts: sync.json,
sync_windows.csv, sync.png (`vidlens.tasks.sync.outputs`) and, with `fix`, `fixed.<ext>` (the upload's own
container when `fix_sync` can write it, else .mkv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlens.serve.routes_sync import MODEL_FILE


def run_sync(models: Any, config: Any, video: Path, out: Path, options: dict[str, Any], progress: Any,
             facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """One sync job: `(result document, {artifact name: path in out})`."""
    from vidlens.tasks.sync.fix import FIX_CONTAINERS, fix_sync
    from vidlens.tasks.sync.outputs import moved

    suffix = video.suffix.lower() if video.suffix.lower() in FIX_CONTAINERS else ".mkv"
    fixed_path = out / f"fixed{suffix}"
    body: dict[str, Any] = {"kind": "sync", "info": facts}
    files: dict[str, Path] = {}
    known = options.get("offset_ms")
    if options.get("fix") and known is not None:  # a known offset: no measuring
        progress("fixing", 0.0)
        fix_sync(video, fixed_path, float(known), progress=progress)
        body.update({"offset_ms": float(known), "summary": f"{moved(float(known))} (the offset given)",
                     "measured": False})
    else:
        from vidlens.tasks.sync.base import estimate_sync
        from vidlens.tasks.sync.outputs import drift_line, summary_line, write_sync

        method = options.get("method", "auto")
        progress(f"sync ({method})", 0.0)
        seconds = float(facts.get("duration_s") or 1.0)  # estimate_sync reports fractions; jobs report seconds
        model_job = options.get("model_job")
        checkpoint = None if not model_job else out.parent / model_job / MODEL_FILE  # jobs live side by side
        result = estimate_sync(video, method, max_offset_ms=float(options.get("max_offset_ms", 1000.0)),
                               window_s=float(options.get("window_s", 4.0)), checkpoint=checkpoint,
                               progress=lambda stage, done: progress(stage, done * seconds))
        result.video = video.name  # no server paths in what clients see
        progress("writing the plot", float(result.duration_s))
        files.update(write_sync(result, out))
        doc = result.to_dict()
        body.update(doc)
        body["summary"] = summary_line(result)
        body["measured"] = True
        body["plot"] = f"/v1/jobs/{out.name}/artifacts/sync.png"
        if options.get("fix"):
            if result.offset_ms is None:  # the estimate stands; no fixed file
                body["fixed"] = None
                body["fix_error"] = (f"cannot tell the offset ({result.reason}), so nothing was fixed; send offset_ms "
                                     "to fix by a known offset")
                return body, files
            line = drift_line(result)
            progress("fixing", 0.0)
            if line is None:
                fix_sync(video, fixed_path, result.offset_ms, progress=progress)
            else:
                fix_sync(video, fixed_path, line[0], result.drift_ms_per_min, reference_s=0.0, progress=progress)
    if options.get("fix"):
        files[fixed_path.name] = fixed_path
        body["fixed"] = f"/v1/jobs/{out.name}/artifacts/{fixed_path.name}"
    return body, files


def run_sync_train(models: Any, config: Any, video: Path, out: Path, options: dict[str, Any], progress: Any,
                   facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """One sync training job over the uploaded files (`options["files"]`, beside `video`): `train_sync` ->
    sync_model.pt. Files the upload check could not read are reported, not trained on."""
    from vidlens.errors import ConfigError
    from vidlens.tasks.sync.learned import train_sync

    readable = [row["name"] for row in facts.get("videos", []) if "error" not in row]
    names = readable or list(options.get("files") or [video.name])
    videos = [video.parent / name for name in names]
    if not videos:
        raise ConfigError(None, "no readable videos to train on")
    kwargs: dict[str, Any] = {"seed": int(options.get("seed") or 0)}
    if options.get("epochs"):
        kwargs["epochs"] = int(options["epochs"])
    path = train_sync(videos, out / MODEL_FILE, progress=lambda stage, done: progress(stage, done), **kwargs)
    return {"kind": "sync-train", "videos": names, "model": f"/v1/jobs/{out.name}/artifacts/{MODEL_FILE}",
            "skipped": [row for row in facts.get("videos", []) if "error" in row]}, {MODEL_FILE: Path(path)}
