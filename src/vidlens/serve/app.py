"""The FastAPI app of `vidlens serve`: upload, check, queue; job status; artifacts; health; a web page.

Routes: `POST /v1/classify|summarize|emotion` (multipart `file` + options) -> 202 with a job id; `/v1/emotion`
also takes several `file` parts in one job (a folder job: per-video results, summary.csv);
`GET /v1/jobs/{id}[?wait=S]` (long poll); `GET /v1/jobs/{id}/artifacts/{name}`; `DELETE /v1/jobs/{id}`; `GET /v1/jobs`;
`GET /v1/info`; `GET /healthz`; `GET /` (web page); `/docs` (OpenAPI); with `--index`, `POST /v1/search` and
`GET|POST /v1/index`, `DELETE /v1/index/{video}` (routes_search.py); with a classifier or an audio-visual model,
`POST /v1/explain` (routes_explain.py); always `POST /v1/sync` and `POST /v1/sync/train` (routes_sync.py).
Uploads are checked before a job exists: size (413), non-empty (400), `probe()` (415 with the decoder's reason);
a full queue is 429.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, File, Form, HTTPException, Query, Security, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader

from vidlens import __version__
from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io import probe
from vidlens.serve.config import ServeConfig
from vidlens.serve.guards import ApiKeyGuard, BodyLimit
from vidlens.serve.jobs import DB_NAME, Job, JobStore, video_facts
from vidlens.serve.pool import WorkerPool
from vidlens.serve.routes_explain import add_explain_routes
from vidlens.serve.routes_search import IMAGE_EXTENSIONS, add_search_routes, image_facts
from vidlens.serve.routes_sync import SYNC_SERVICE_METHODS, add_sync_routes

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and option fields on top of the file itself
COPY_CHUNK = 1 << 20
WAIT_STEP_S = 0.01  # how often a long poll looks at its job
Upload = Annotated[UploadFile, File(description="the video (mp4, avi, mkv, webm, mov, gif, ...)")]
Uploads = Annotated[list[UploadFile], File(description="the video (mp4, avi, mkv, webm, mov, gif, ...); several `file` "
                                                       "parts make one folder job (per-video results and summary.csv)")]
MAX_FILES_PER_JOB = 100


@dataclass
class ServiceRuntime:
    """What a running server owns: its settings, a private work folder, the jobs and the workers."""

    config: ServeConfig
    work_dir: Path
    store: JobStore
    pool: Any  # WorkerPool, or engine_ray.RayPool
    models: dict[str, Any]
    lock: Any = None  # the open, locked WORK/server.lock
    index: Any = None  # serve.search.IndexHandle of --index, for the server's own reads (info, list, remove)

    @classmethod
    def start(cls, config: ServeConfig) -> ServiceRuntime:
        """Open the work folder and its job store, start the workers, queue again the jobs an earlier server
        on the same folder left unfinished (raises `ConfigError` when models cannot load or another
        server uses the folder)."""
        base = Path(config.work_dir) if config.work_dir else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        # Kept jobs: WORK/jobs.sqlite3 and WORK/jobs/<id>/; else a fresh folder, deleted at exit.
        work_dir = base if config.keeps_jobs else Path(tempfile.mkdtemp(prefix="vidlens-serve-", dir=base))
        lock = _lock_folder(work_dir)
        index = None
        try:
            if config.index:
                from vidlens.serve.search import IndexHandle, ensure_index, sweep_uploads

                ensure_index(config.index)
                sweep_uploads(config.index, older_than_s=max(2 * config.job_timeout_s, 3600.0))  # killed jobs' copies
                index = IndexHandle(config.index)
            store = (JobStore(work_dir / "jobs", config.max_jobs, db=work_dir / DB_NAME) if config.keeps_jobs
                     else JobStore(work_dir, config.max_jobs))
            again = store.reload()
            pool = make_pool(config, store)
            models = pool.start()
        except BaseException:
            lock.close()
            if not config.keeps_jobs:
                shutil.rmtree(work_dir, ignore_errors=True)
            raise
        for job in again:  # in their original order, whatever the queue bound
            pool.submit(job, force=True)
        return cls(config, work_dir, store, pool, models, lock, index)

    def close(self) -> None:
        """Stop the workers; delete every upload and artifact unless jobs are kept (`keeps_jobs`)."""
        self.pool.stop()
        self.store.close()
        if self.index is not None:
            self.index.close()
        if self.lock is not None:
            self.lock.close()
        if not self.config.keeps_jobs:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def make_pool(config: ServeConfig, store: JobStore) -> Any:
    """The engine's pool: worker processes (`local`) or a Ray actor pool (`ray`, imported only then)."""
    if config.engine == "ray":
        from vidlens.serve.engine_ray import RayPool

        return RayPool(config, store)
    return WorkerPool(config, store)


def _lock_folder(folder: Path) -> Any:
    """Hold an exclusive lock on `folder/server.lock` while this server runs (released by the OS if it dies):
    two servers on one job store would run its jobs twice."""
    handle = open(folder / "server.lock", "a+")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX: no lock
        pass
    except OSError:
        handle.close()
        raise ConfigError(str(folder), "another vidlens serve is using this work folder (its job store); "
                                       "give each server its own --work-dir") from None
    return handle


def safe_filename(filename: str | None) -> str:
    """The client's file name as one harmless path component: no folders, no control characters,
    not `.`/`..`, at most 120 characters (keeping the extension); `upload` when nothing is left."""
    name = Path((filename or "").replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    if name.strip(".") == "":
        return "upload"
    if len(name) > 120:
        stem, suffix = Path(name).stem, Path(name).suffix[:10]
        name = stem[: 120 - len(suffix)] + suffix
    return name


def create_app(runtime: ServiceRuntime | None = None, config: ServeConfig | None = None) -> FastAPI:
    """The app over a started `runtime` (closed at shutdown), or one it starts from `config` at start-up."""
    if runtime is None and config is None:
        raise ValueError("give a started runtime or a config")
    state: dict[str, ServiceRuntime] = {}
    settings = runtime.config if runtime is not None else config
    assert settings is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["runtime"] = runtime or ServiceRuntime.start(settings)
        try:
            yield
        finally:
            state["runtime"].close()

    app = FastAPI(title="vidlens", version=__version__, lifespan=lifespan,
                  description="Video classification, summaries, emotion analysis and video search as jobs. Upload a video to a task route, "
                              "then poll `GET /v1/jobs/{id}` until `status` is `done` or `failed`.")
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes + FORM_OVERHEAD, limit_mb=settings.max_upload_mb)
    app.add_middleware(ApiKeyGuard, api_key=settings.api_key)  # added last = runs first: no key, no body read
    key_header = Security(APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when the server has --api-key"))

    def rt() -> ServiceRuntime:
        return state["runtime"]

    def offered(kind: str) -> None:
        if kind in ("sync", "sync-train", "explain"):  # sync needs no model (routes_sync.py); explain checks the
            return  # model it is asked for itself (the classifier or the audio-visual model: routes_explain.py)
        if kind not in settings.tasks:
            hint = {"classify": "start the server with --checkpoint CKPT", "search": "start the server with --index PATH",
                    "index": "start the server with --index PATH"}.get(kind, f"the server was started with --no-{kind}")
            raise HTTPException(503, f"this server does not offer {kind}: {hint}")

    def accept(kind: str, upload: UploadFile, options: dict[str, Any], image_ok: bool = False) -> JSONResponse:
        """Save, check and queue one upload. `image_ok`: an upload with an image extension is checked as an
        image (and `options["query"]` says `image`), anything else as a video (`clip`)."""
        service = rt()
        offered(kind)
        name = safe_filename(upload.filename)
        is_image = image_ok and Path(name).suffix.lower() in IMAGE_EXTENSIONS
        if image_ok:
            options = {**options, "query": "image" if is_image else "clip"}
        job = service.store.create(kind, name, options)
        try:
            size = 0
            with open(job.upload, "wb") as handle:
                while chunk := upload.file.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > settings.max_upload_bytes:
                        raise HTTPException(413, f"upload too large: the limit is {settings.max_upload_mb:g} MB")
                    handle.write(chunk)
            if size == 0:
                raise HTTPException(400, "empty upload: the file has no bytes")
            if is_image:
                job.video = image_facts(job.upload)
            else:
                try:
                    job.video = video_facts(probe(job.upload))
                except VideoDecodeError as exc:
                    raise HTTPException(415, f"not a readable video: {exc.reason}") from None
            service.store.accept(job)  # in the job store (committed) before it is queued and before the 202
            if not service.pool.submit(job):
                raise HTTPException(429, f"the job queue is full ({settings.queue_size} waiting); try again later",
                                    headers={"Retry-After": "5"})
        except BaseException:
            service.store.discard(job)
            raise
        body = {"id": job.id, "kind": kind, "status": job.status, "url": f"/v1/jobs/{job.id}"}
        if is_image:
            body["image"] = job.video
        else:
            body["video"] = {key: job.video[key] for key in ("duration_s", "fps", "width", "height", "warnings")}
        return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def accept_query(kind: str, label: str, options: dict[str, Any]) -> JSONResponse:
        """Queue a job that has no upload (a text or "more like this" search): same queue, key and 429 as
        uploads; its upload folder stays empty. `label`: the job's display name."""
        service = rt()
        offered(kind)
        job = service.store.create(kind, label, options)
        try:
            service.store.accept(job)
            if not service.pool.submit(job):
                raise HTTPException(429, f"the job queue is full ({settings.queue_size} waiting); try again later",
                                    headers={"Retry-After": "5"})
        except BaseException:
            service.store.discard(job)
            raise
        return JSONResponse({"id": job.id, "kind": kind, "status": job.status, "url": f"/v1/jobs/{job.id}"},
                            status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def accept_many(kind: str, uploads: list[UploadFile], options: dict[str, Any]) -> JSONResponse:
        """Several files, one job: each is saved and probed; an unreadable one becomes a failed row of the
        job's summary (the others go on), and only when none is readable is the upload refused (415)."""
        service = rt()
        offered(kind)
        if len(uploads) > MAX_FILES_PER_JOB:
            raise HTTPException(400, f"too many files: at most {MAX_FILES_PER_JOB} in one job")
        names: list[str] = []
        taken: set[str] = set()
        for upload in uploads:  # unique names in the job's upload folder: clip.mp4, clip-2.mp4, ...
            name, n = safe_filename(upload.filename), 1
            while name.lower() in taken:
                n += 1
                name = f"{Path(safe_filename(upload.filename)).stem}-{n}{Path(safe_filename(upload.filename)).suffix}"
            taken.add(name.lower())
            names.append(name)
        job = service.store.create(kind, names[0], {**options, "files": names})
        try:
            size = 0
            facts: list[dict[str, Any]] = []
            for upload, name in zip(uploads, names):
                path = job.upload.parent / name
                written = 0
                with open(path, "wb") as handle:
                    while chunk := upload.file.read(COPY_CHUNK):
                        size += len(chunk)
                        written += len(chunk)
                        if size > settings.max_upload_bytes:
                            raise HTTPException(413, f"upload too large: the limit is {settings.max_upload_mb:g} MB")
                        handle.write(chunk)
                if written == 0:
                    facts.append({"name": name, "error": "empty file (0 bytes)"})
                    continue
                try:
                    facts.append({"name": name, **video_facts(probe(path))})
                except VideoDecodeError as exc:
                    facts.append({"name": name, "error": f"not a readable video: {exc.reason}"})
            if all("error" in f for f in facts):
                raise HTTPException(415, "none of the files is a readable video: " +
                                    "; ".join(f"{f['name']}: {f['error']}" for f in facts))
            job.filename = ", ".join(names) if len(", ".join(names)) <= 200 else f"{names[0]} and {len(names) - 1} more"
            job.video = {"videos": facts}
            service.store.accept(job)  # in the job store (committed) before it is queued and before the 202
            if not service.pool.submit(job):
                raise HTTPException(429, f"the job queue is full ({settings.queue_size} waiting); try again later",
                                    headers={"Retry-After": "5"})
        except BaseException:
            service.store.discard(job)
            raise
        body = {"id": job.id, "kind": kind, "status": job.status, "url": f"/v1/jobs/{job.id}",
                "videos": [{key: f[key] for key in ("name", "duration_s", "fps", "width", "height", "warnings", "error") if key in f}
                           for f in facts]}
        return JSONResponse(body, status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @app.post("/v1/classify", status_code=202, dependencies=[key_header], tags=["jobs"])
    def classify(file: Upload,
                 top_k: Annotated[int, Form(ge=1, le=100)] = 5,
                 timeline: Annotated[bool, Form(description="labels over time, merged into segments (+ timeline.png)")] = False,
                 hop_s: Annotated[float | None, Form(gt=0)] = None,
                 min_segment_s: Annotated[float, Form(ge=0)] = 0.0) -> JSONResponse:
        """Top-k labels for the video (and, with `timeline`, labelled segments over time)."""
        return accept("classify", file, {"top_k": top_k, "timeline": timeline, "hop_s": hop_s, "min_segment_s": min_segment_s})

    @app.post("/v1/summarize", status_code=202, dependencies=[key_header], tags=["jobs"])
    def summarize(file: Upload,
                  ratio: Annotated[float, Form(gt=0, lt=1, description="summary length / video length")] = 0.15,
                  method: Annotated[Literal["diverse", "dsn", "kmeans", "uniform", "model"] | None, Form()] = None) -> JSONResponse:
        """A summary: kept segments, summary.mp4, importance curve and keyframes."""
        return accept("summarize", file, {"ratio": ratio, **({"method": method} if method else {})})

    @app.post("/v1/emotion", status_code=202, dependencies=[key_header], tags=["jobs"])
    def emotion(file: Uploads,
                fps: Annotated[float, Form(gt=0, le=30, description="frames analysed per second")] = 5.0,
                annotate: Annotated[bool, Form(description="also write annotated.mp4")] = False) -> JSONResponse:
        """Faces, their expressions and the video's sentiment, second by second (with the server's
        --av-model, also its classes per face track). Several `file` parts: one job over all of them,
        with `NAME/emotion.json` per video and `summary.csv` / `summary.png` as artifacts."""
        options = {"fps": fps, "annotate": annotate}
        return accept("emotion", file[0], options) if len(file) == 1 else accept_many("emotion", file, options)

    def find(job_id: str) -> Job:
        job = rt().store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} (finished jobs are kept for the newest {settings.max_jobs})")
        return job

    @app.get("/v1/jobs/{job_id}", dependencies=[key_header], tags=["jobs"])
    async def job_status(job_id: str, wait: Annotated[float, Query(ge=0, le=60, description=(
            "long poll: answer as soon as the job is done or failed, or after this many seconds"))] = 0.0) -> dict[str, Any]:
        """Status (`queued`, `running`, `done`, `failed`), result or error, and artifact URLs."""
        job = find(job_id)
        deadline = time.monotonic() + wait
        while not job.finished and time.monotonic() < deadline:
            await asyncio.sleep(WAIT_STEP_S)  # cheap: an attribute read per step, on the event loop
        return job.public()

    @app.get("/v1/jobs", dependencies=[key_header], tags=["jobs"])
    def jobs(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        """The newest jobs first."""
        return [job.public() for job in reversed(rt().store.list()[-limit:])]

    @app.delete("/v1/jobs/{job_id}", dependencies=[key_header], tags=["jobs"])
    def delete_job(job_id: str) -> dict[str, Any]:
        """Delete a finished job and its files."""
        job = find(job_id)
        if not rt().store.remove(job.id):
            raise HTTPException(409, f"job {job_id} is {job.status}; only finished jobs can be deleted")
        return {"id": job_id, "deleted": True}

    @app.get("/v1/jobs/{job_id}/artifacts/{name:path}", dependencies=[key_header], tags=["jobs"])
    def artifact(job_id: str, name: str) -> FileResponse:
        """A file the job produced (names are listed in the job's `artifacts`; a folder job's per-video
        files are `VIDEO/emotion.json` and the like). Only listed names are served."""
        job = find(job_id)
        if name not in job.artifacts:
            raise HTTPException(404, f"job {job_id} has no artifact {name!r}; it has: {', '.join(sorted(job.artifacts)) or 'none'}")
        path = job.dir / job.artifacts[name]
        if not path.is_file():
            raise HTTPException(410, f"artifact {name!r} was deleted")
        return FileResponse(path, filename=Path(name).name)

    @app.get("/v1/info", dependencies=[key_header], tags=["service"])
    def info() -> dict[str, Any]:
        """Tasks offered, their models and labels, the limits, and (with --index) the index's facts."""
        body = {"version": __version__, "tasks": settings.tasks, "models": rt().models,
                "limits": {"max_upload_mb": settings.max_upload_mb, "queue_size": settings.queue_size,
                           "job_timeout_s": settings.job_timeout_s, "workers": settings.num_workers}}
        if rt().index is not None:
            body["index"] = rt().index.facts()
        body["sync"] = {"methods": list(SYNC_SERVICE_METHODS)}  # POST /v1/sync, offered by every server
        return body

    add_search_routes(app, rt, accept, accept_query, offered, key_header)
    add_explain_routes(app, rt, accept, offered, key_header)
    add_sync_routes(app, rt, accept, accept_many, key_header)

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """Liveness and load (always 200 while the server runs; `status` is `degraded` while no worker
        process is alive, e.g. the only one is being replaced after a timeout). Needs no API key."""
        service = rt()
        health = service.pool.health()
        return {"status": "ok" if health["alive"] > 0 else "degraded", **health, "jobs": service.store.counts()}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("vidlens.serve").joinpath("static/index.html").read_text())

    return app
