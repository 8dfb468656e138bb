"""Real servers for the service tests: `vidlens serve` started as a subprocess on a free loopback port.

The main server (package scope, shared by the API and browser tests) serves a C3D trained on the
synthetic two-class action set, summaries and emotion, with an API key, two workers and a 20 MB
upload limit. Tests talk to it over HTTP only.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from vidlens.testing.server import VIDLENS, start_server

pytest.importorskip("fastapi")

API_KEY = "test-key-0123456789"
CLASSES = ("move_left", "grow")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    work_dir: Path
    log: Path
    headers: dict[str, str] = field(default_factory=dict)
    checkpoint: Path | None = None  # the classifier it serves, when it has one

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60, **kwargs)

    def wait(self, client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
        """Poll a job until it is done or failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}", params={"wait": 5}).json()  # long poll
            if job["status"] in ("done", "failed"):
                return job
        raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


@contextmanager
def running_server(tmp: Path, *args: str, api_key: str | None = None, startup_s: float = 180,
                   keep_jobs: bool = False) -> Iterator[Server]:
    """Start `vidlens serve ARGS` and wait until /healthz says ok; SIGTERM it afterwards (unless the test
    killed it). `keep_jobs`: the job store outlives the server (else `--no-keep-jobs`: a fresh folder in
    the work dir, deleted at exit)."""
    work_dir = tmp / "work"
    args = args if keep_jobs else ("--no-keep-jobs", *args)
    log = tmp / "server.log"
    env = {**os.environ, "VIDLENS_API_KEY": api_key} if api_key else {k: v for k, v in os.environ.items() if k != "VIDLENS_API_KEY"}
    try:
        process, url = start_server(["--work-dir", str(work_dir), *args], log, env=env, startup_s=startup_s)
    except RuntimeError as error:
        raise AssertionError(str(error)) from None
    server = Server(url, process, work_dir, log, {"X-API-Key": api_key} if api_key else {})
    try:
        yield server
    finally:
        server.process.terminate()  # the test may have replaced the process (a restart)
        process = server.process
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def actions(tmp_path_factory) -> Path:
    from vidlens.data.synthetic import make_action_dataset

    root = tmp_path_factory.mktemp("serve_data") / "actions"
    make_action_dataset(root, 16, 8, 32, 8, seed=0, workers=0, classes=CLASSES, overwrite=True)
    return root


@pytest.fixture(scope="package")
def trained_checkpoint(actions, tmp_path_factory) -> Path:
    """C3D trained on the synthetic set (the recipe tests/workflows uses: fits its training videos)."""
    from vidlens.engine.config import TrainConfig
    from vidlens.testing import single_thread
    from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig
    from vidlens.workflows.recognition import train_recognizer

    with single_thread():
        cfg = RecognitionConfig(
            out=str(tmp_path_factory.mktemp("serve_runs") / "c3d"),
            data=DataConfig(root=str(actions), val_frac=0.0, test_frac=0.2),
            clip=ClipConfig(clip_len=8, stride=1, size=32, crop="center"),
            model=ModelConfig(name="c3d", args={"width": 0.25, "dropout": 0.0}),
            train=TrainConfig(epochs=24, batch_size=4, workers=0, seed=0, device="cpu", optimizer="adamw", lr=2e-3),
        )
        outcome = train_recognizer(cfg, progress=False)
    return Path(outcome.best_checkpoint)


@pytest.fixture(scope="package")
def face_video(tmp_path_factory) -> Path:
    """A 2 s still video of a smiling face (scikit-image's astronaut), lossless."""
    from skimage.data import astronaut

    from vidlens.testing import write_lossless_video

    frames = np.repeat(astronaut()[None], 20, axis=0)
    return write_lossless_video(tmp_path_factory.mktemp("serve_media") / "astronaut.mkv", frames, fps=10)


@pytest.fixture(scope="package")
def server(trained_checkpoint, tmp_path_factory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("server")
    with running_server(tmp, "--checkpoint", str(trained_checkpoint), "--workers", "2", "--queue-size", "64",
                        "--max-upload-mb", "20", "--job-timeout", "120", api_key=API_KEY) as s:
        s.checkpoint = trained_checkpoint
        yield s


@pytest.fixture(scope="package")
def library_labels(trained_checkpoint, actions) -> dict[Path, str]:
    """Each synthetic video's top label by the library itself (`VideoClassifier`), the reference
    the served answers are compared with."""
    from vidlens.tasks.predictor import VideoClassifier

    classifier = VideoClassifier.from_checkpoints([trained_checkpoint])
    return {path: classifier.predict(path)["top"][0]["label"]
            for label in CLASSES for path in sorted((actions / label).glob("*.mp4"))}
