"""`POST /v1/sync` (added to the app by `create_app`): how far a video's sound is off its picture, and a fix.

Multipart `file` (a video with sound, checked like every upload: 413/400/415) plus `method` (auto, speech,
events, baseline), `max_offset_ms`, `window_s`, and `fix` (also write a corrected copy: video stream copied,
audio moved; `offset_ms` fixes by a known offset without measuring) -> 202 and a job of kind `sync` behind the
same API key, queue and limits as the other jobs (needs no model, so every server offers it). The finished
job's `result` holds the estimate (offset_ms, positive = audio late; confidence; verdict; reason; windows;
drift), a one-line `summary`, and the URLs of `plot` (sync.png) and, with `fix`, `fixed` (the corrected
video); `artifacts` lists every file (sync.json, sync_windows.csv, sync.png, fixed.*).

`POST /v1/sync/train` (several `file` parts: in-sync videos with a visible speaker) trains the learned method
(`train_sync`) as a job of kind `sync-train`; its artifact `sync_model.pt` is the checkpoint. `POST /v1/sync` with
`method=learned` and `model_job=<that job's id>` then uses it (local worker engine: jobs share one folder).
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse

__all__ = ["add_sync_routes", "SYNC_SERVICE_METHODS"]
SYNC_SERVICE_METHODS = ("auto", "speech", "events", "baseline", "learned")
Method = Literal["auto", "speech", "events", "baseline", "learned"]
MODEL_FILE = "sync_model.pt"


def add_sync_routes(app: FastAPI, rt: Callable[[], Any], accept: Callable[..., JSONResponse],
                    accept_many: Callable[..., JSONResponse], key_header: Any) -> None:
    """Register `POST /v1/sync` and `POST /v1/sync/train`. `rt()`: the running `ServiceRuntime`;
    `accept(kind, upload, options)` / `accept_many(kind, uploads, options)` queue checked uploads."""

    @app.post("/v1/sync", status_code=202, dependencies=[key_header], tags=["jobs"])
    def sync(file: Annotated[UploadFile, File(description="the video with sound (mp4, avi, mkv, webm, mov, ...)")],
             method: Annotated[Method, Form(description="how the offset is measured (auto picks speech when faces "
                                                        "are seen, else events; learned needs model_job)")] = "auto",
             model_job: Annotated[str | None, Form(description="with learned (or auto): the id of a finished "
                                                               "/v1/sync/train job whose model to use")] = None,
             max_offset_ms: Annotated[float, Form(ge=40, le=5000, description="largest offset searched, ms")] = 1000.0,
             window_s: Annotated[float, Form(ge=1, le=60, description="window for the offset over time, s")] = 4.0,
             fix: Annotated[bool, Form(description="also write a corrected copy (fixed.*)")] = False,
             offset_ms: Annotated[float | None, Form(ge=-10000, le=10000, description="with fix: correct by this known "
                                                     "offset (ms, positive = audio late) instead of measuring")] = None,
             ) -> JSONResponse:
        """Measure the audio-video offset of the upload (positive = audio late), its confidence and drift, with
        the correlation curve and the offset over time in sync.png; with `fix`, a corrected copy."""
        if offset_ms is not None and not fix:
            raise HTTPException(400, "offset_ms is the known offset to fix by: send it with fix=true")
        model_job = (model_job or "").strip() or None
        if method == "learned" and model_job is None:
            raise HTTPException(400, "method learned needs model_job: the id of a finished /v1/sync/train job")
        if model_job is not None:
            job = rt().store.get(model_job)
            if job is None or job.kind != "sync-train":
                raise HTTPException(404, f"no sync training job {model_job}")
            if job.status != "done" or MODEL_FILE not in job.artifacts:
                raise HTTPException(409, f"sync training job {model_job} is {job.status}, not done")
        return accept("sync", file, {"method": method, "max_offset_ms": max_offset_ms, "window_s": window_s,
                                     "fix": fix, "offset_ms": offset_ms, "model_job": model_job})

    @app.post("/v1/sync/train", status_code=202, dependencies=[key_header], tags=["jobs"])
    def sync_train(file: Annotated[list[UploadFile], File(description="in-sync videos with a visible speaker and sound; "
                                                                      "several `file` parts")],
                   epochs: Annotated[int | None, Form(ge=1, le=500, description="training epochs (default: the "
                                                                                "method's)")] = None,
                   seed: Annotated[int, Form(ge=0)] = 0) -> JSONResponse:
        """Train the learned (SyncNet-style) method self-supervised on the uploads: aligned windows are positives,
        shifted ones negatives. The job's artifact sync_model.pt is the checkpoint; pass the job id as `model_job`
        to `POST /v1/sync` to use it."""
        return accept_many("sync-train", file, {"epochs": epochs, "seed": seed})
