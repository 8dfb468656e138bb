"""`vidlens serve`: the HTTP service (FastAPI + uvicorn) over classify, summarize, emotion and video search."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vidlens.cli.common import STATE, console
from vidlens.serve.config import API_KEY_ENV


def serve_command(
    checkpoint: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="Classifier checkpoint (.pt or .onnx); repeat for an ensemble. Enables /v1/classify."),
    summarizer: Optional[Path] = typer.Option(None, help="Summarizer from `vidlens summarize train --videos` (default: the content-diverse selection)."),
    expression_model: Optional[Path] = typer.Option(None, help="Fine-tuned face expression checkpoint (default: FER2013 weights)."),
    voice_model: Optional[Path] = typer.Option(None, help="Voice emotion checkpoint (`vidlens emotion train-voice`)."),
    av_model: Optional[Path] = typer.Option(None, help="Audio-visual model (`vidlens emotion train-av`) applied per face track in /v1/emotion jobs."),
    summarize: bool = typer.Option(True, "--summarize/--no-summarize", help="Offer /v1/summarize."),
    emotion: bool = typer.Option(True, "--emotion/--no-emotion", help="Offer /v1/emotion."),
    index: Optional[Path] = typer.Option(None, "--index", help="A video index (`vidlens index build`; a missing or empty folder gets a new one). "
                                                               "Offers /v1/search and /v1/index (add, list, remove)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(0, help="Worker processes (0: one per CPU, one torch thread each; fewer give each more threads)."),
    queue_size: int = typer.Option(16, help="Jobs that may wait; more get 429."),
    max_upload_mb: float = typer.Option(200.0, help="Largest upload accepted (413 above)."),
    job_timeout: float = typer.Option(600.0, help="Seconds a job may run before it is stopped and failed."),
    max_jobs: int = typer.Option(200, help="Finished jobs kept with their files; older ones are deleted."),
    work_dir: Optional[Path] = typer.Option(None, help="Where the job store (jobs.sqlite3), uploads and artifacts live; a restart on the same folder "
                                                       "runs its unfinished jobs and keeps finished ones (default: a temp folder, removed at exit)."),
    keep_jobs: bool = typer.Option(True, "--keep-jobs/--no-keep-jobs", help="With --work-dir: keep jobs across restarts (--no-keep-jobs: a fresh "
                                                                            "folder inside, removed at exit, as without --work-dir)."),
    engine: str = typer.Option("local", help="local: worker processes on this machine; ray: a Ray actor pool holding the models (pip install 'vidlens[ray]')."),
    address: Optional[str] = typer.Option(None, help="With --engine ray: the cluster (auto, HOST:PORT or ray://HOST:PORT; default: a private local Ray)."),
    api_key: Optional[str] = typer.Option(None, envvar=API_KEY_ENV, help="Require this key (X-API-Key header) on every route but /healthz."),
) -> None:
    """Serve the tasks over HTTP: upload a video, get a job id, poll it; web page at /, API docs at /docs."""
    from vidlens.errors import ConfigError

    try:
        import uvicorn

        from vidlens.serve.app import ServiceRuntime, create_app
    except ImportError as exc:
        raise ConfigError(None, f"vidlens serve needs {exc.name}: pip install 'vidlens[serve]' (make test installs it)") from None
    from vidlens.serve.config import ServeConfig

    config = ServeConfig(
        checkpoints=[str(p) for p in checkpoint or []], summarizer=str(summarizer) if summarizer else None,
        expression_model=str(expression_model) if expression_model else None, voice_model=str(voice_model) if voice_model else None,
        av_model=str(av_model) if av_model else None,
        summarize=summarize, emotion=emotion, index=str(index) if index else None, workers=workers, queue_size=queue_size, max_upload_mb=max_upload_mb,
        job_timeout_s=job_timeout, max_jobs=max_jobs, work_dir=str(work_dir) if work_dir else None, api_key=api_key or None,
        keep_jobs=keep_jobs, engine=engine, ray_address=address,
    )
    if address is not None and engine != "ray":
        raise ConfigError(None, "--address needs --engine ray")
    if not config.tasks:
        raise ConfigError(None, "nothing to serve: give --checkpoint or --index, or leave summarize or emotion on")
    what = "Ray actor(s)" if engine == "ray" else "worker process(es)"
    with console.status(f"starting {config.num_workers} {what} and loading models"):
        runtime = ServiceRuntime.start(config)
    auth = "API key required (X-API-Key)" if config.api_key else "no API key"
    pool = (f"{config.num_workers} Ray actors" if engine == "ray" else
            f"{config.num_workers} workers x {config.threads_per_worker} threads")
    store = f"jobs kept in {config.work_dir}" if config.keeps_jobs else "jobs removed at exit"
    console.print(f"serving {', '.join(config.tasks)} on http://{host}:{port}  ({pool}, queue {config.queue_size}, {store}, {auth}); "
                  "docs at /docs, page at /")
    uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning" if STATE.quiet else "info",
                timeout_graceful_shutdown=10)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
