"""Retrieval frame descriptor (`vidlens.tasks.retrieval.embed`) on real footage.

What a user relies on: one unit row per frame on screen every 1/fps s with the frame's own time and
index, a clear VideoDecodeError for a broken file, a mirrored / letterboxed / re-encoded copy
(made with the ffmpeg CLI) close to its source, an unrelated video far from it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidlens.errors import VideoDecodeError
from vidlens.io import frame_index
from vidlens.tasks.retrieval.embed import EmbedConfig, VideoEmbedder, pool
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample

pytestmark = pytest.mark.usefixtures("one_thread")

BIKES = sample_media("bikes.mp4")  # 640x272, 25 fps, 10 s, several cuts
STREET = opencv_sample("vtest.avi")  # 768x576 street scene, 10 fps


def ffmpeg(*args: str) -> None:
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def embedder() -> VideoEmbedder:
    return VideoEmbedder()


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, Path]:
    """The first 6 s of bikes.mp4, and three copies: mirrored + smaller, letterboxed into 4:3 + brighter, CRF 35 MPEG-4."""
    d = tmp_path_factory.mktemp("embed")
    src = d / "src.mp4"
    ffmpeg("-i", str(BIKES), "-t", "6", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(src))
    out = {"src": src, "mirror": d / "mirror.mp4", "letterbox": d / "letterbox.mp4", "mpeg4": d / "mpeg4.avi",
           "street": d / "street.mp4"}
    ffmpeg("-i", str(src), "-vf", "hflip,scale=320:136", "-c:v", "libx264", "-crf", "28", str(out["mirror"]))
    ffmpeg("-i", str(src), "-vf", "pad=640:480:0:104:black,eq=brightness=0.08:contrast=1.2",
           "-c:v", "libx264", "-crf", "26", str(out["letterbox"]))
    ffmpeg("-i", str(src), "-c:v", "mpeg4", "-q:v", "12", str(out["mpeg4"]))
    ffmpeg("-i", str(STREET), "-t", "6", "-vf", "scale=640:-2", "-c:v", "libx264", "-crf", "23", str(out["street"]))
    return out


def test_rows_times_and_frames(embedder, copies):
    emb = embedder.embed_video(copies["src"])
    assert emb.features.shape == (12, embedder.dim) and emb.features.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb.features, axis=1), 1.0, atol=1e-4)
    # every 0.5 s, the frame on screen: its own index and timestamp (25 fps source)
    assert np.all(np.abs(emb.frames - np.arange(12) * 12.5) <= 1) and np.all(np.diff(emb.frames) > 0)
    own = frame_index(copies["src"]).times
    assert np.allclose(emb.times_s, own[emb.frames])
    assert np.all(np.abs(emb.times_s - np.arange(12) * 0.5) <= 0.041)
    assert emb.duration_s == pytest.approx(6.0, abs=0.05) and emb.encoder == "mobilenet_v2"
    part = embedder.embed_video(copies["src"], start_s=2.0, end_s=4.0)
    assert len(part) == 4 and part.times_s[0] == pytest.approx(2.0, abs=0.041) and part.times_s[-1] < 4.0
    # the same frame gives the same row whether read whole or from the middle
    i = int(np.argmin(np.abs(emb.times_s - part.times_s[0])))
    assert float(emb.features[i] @ part.features[0]) > 0.99


def test_copies_close_unrelated_far(embedder, copies):
    src = embedder.embed_video(copies["src"])
    street = embedder.embed_video(copies["street"])
    n = len(src)
    for name in ("mirror", "letterbox", "mpeg4"):
        c = embedder.embed_video(copies[name])
        assert len(c) == n
        same = np.sum(src.features * c.features, axis=1)  # frame k against frame k
        cross = src.features @ street.features.T
        assert np.median(same) > 0.8, (name, same)
        assert np.median(same) > cross.max() + 0.2, (name, np.median(same), cross.max())
        assert float(pool(src.features) @ pool(c.features)) > 0.9
    assert float(pool(src.features) @ pool(street.features)) < 0.5


def test_mirror_invariance_on_images(embedder):
    frame = next(iter(__import__("vidlens.io", fromlist=["iter_frames"]).iter_frames(STREET, fps=1)))
    a, b = embedder.embed_images([frame.image, np.ascontiguousarray(frame.image[:, ::-1])])
    assert float(a @ b) > 0.999
    no_mirror = VideoEmbedder(EmbedConfig(mirror=False))
    a2, b2 = no_mirror.embed_images([frame.image, np.ascontiguousarray(frame.image[:, ::-1])])
    assert float(a2 @ b2) < float(a @ b)


def test_bad_files_raise_decode_error(embedder, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    for bad in (empty, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError) as err:
            embedder.embed_video(bad)
        assert str(bad) in str(err.value)
