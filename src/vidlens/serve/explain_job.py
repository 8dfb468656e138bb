"""The service's explain job (`POST /v1/explain`): the served classifier's decision on the upload, explained.

Runs in a worker process (`worker.run_job`, kind "explain") with the models it loaded at start-up: the served
classifier (`--checkpoint`; an ensemble: every member, averaged with its weights), or with `model = "av"` the
audio-visual model (`--av-model`, over whole frames and the sound: `tasks/explain/av_video.py`), explains the
whole-video top label or the `target` asked for. Artifacts: `vidlens.tasks.explain.outputs.FILES` (overlay.gif, frames.png,
temporal.png, temporal.csv, overlay.mp4, heat.npz, explanation.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlens.errors import ConfigError


def run_explain(models: Any, config: Any, video: Path, out: Path, options: dict[str, Any], progress: Any,
                facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """One explain job: `(result document, {artifact name: path in out})`."""
    from vidlens.tasks.explain.outputs import write_explanation
    from vidlens.tasks.explain.video import explain_video

    if options.get("model") == "av":
        source = None if models.emotion is None else models.emotion.av
        if source is None:
            raise ConfigError(None, "this server has no audio-visual model (start it with --av-model)")
    else:
        source = models.classifier
        if source is None:
            raise ConfigError(None, "this server has no classifier (start it with --checkpoint)")
    method = options.get("method")  # None: Grad-CAM, occlusion for fusion models
    shown = method or "default method"
    progress(f"explain ({shown})", 0.0)

    def report(done: int, total: int) -> None:
        progress(f"explain ({shown}): clip {done}/{total}", float(done))

    result = explain_video(source, video, method=method, target=options.get("target"), clips=options.get("clips"),
                           progress=report)  # an AVModel is handed to the audio-visual explainer there
    result.checkpoint = Path(result.checkpoint).name  # no server paths in what clients see
    for member in result.members:
        member["checkpoint"] = Path(member["checkpoint"]).name
    progress("writing overlays", float(len(result.clips)))
    files = write_explanation(result, out, video=bool(options.get("video", True)))
    doc = result.to_json()
    keep = ("target", "top", "method", "top_seconds", "seconds", "crop_box", "modalities", "notes", "model")
    urls = {name: f"/v1/jobs/{out.name}/artifacts/{name}" for name in files}
    body = {"kind": "explain", "info": facts, **{k: doc[k] for k in keep},
            "top": doc["top"][: int(options.get("top_k", 5))], "clips": len(result.clips),
            "overlay": {"gif": urls.get("overlay.gif"), "strip": urls["frames.png"], "curve": urls["temporal.png"],
                        "mp4": urls.get("overlay.mp4")}}
    if result.members:
        body["members"] = doc["members"]
    return body, dict(files)
