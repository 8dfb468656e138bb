"""The service's sync job (`POST /v1/sync`): the audio-video offset of the upload, and optionally a fixed copy.

Runs in a worker process (`worker.run_job`, kind "sync"); needs no model. Artifacts: sync.json,
sync_windows.csv, sync.png (`vidlens.tasks.sync.outputs`) and, with `fix`, `fixed.<ext>` (the upload's own
container when `fix_sync` can write it, else .mkv).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
        result = estimate_sync(video, method, max_offset_ms=float(options.get("max_offset_ms", 1000.0)),
                               window_s=float(options.get("window_s", 4.0)),
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
