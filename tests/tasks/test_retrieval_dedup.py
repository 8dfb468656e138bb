"""Temporal alignment (`retrieval.align`) and near-duplicate groups (`retrieval.dedup`) on real footage.

Copies are made from real videos with the ffmpeg CLI, so the truth is how they were cut: which
seconds of the source they show and at what speed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidlens.tasks.retrieval.align import Match, align
from vidlens.tasks.retrieval.embed import VideoEmbedder
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample, realdata

pytestmark = pytest.mark.usefixtures("one_thread")

BUNNY30 = realdata("scenes/big_buck_bunny_0_30.webm")  # 30 s of Big Buck Bunny with cuts, VP8 1280x720
MEGAMIND = opencv_sample("Megamind.avi")  # 11 s trailer, MPEG-4 720x528
BIKES = sample_media("bikes.mp4")


def ffmpeg(*args: str) -> None:
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def embedder() -> VideoEmbedder:
    return VideoEmbedder()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("align")
    out = {"fast": d / "bunny_fast.mp4", "slow": d / "megamind_slow.mp4"}
    # seconds 8-20 of the bunny, 10 % faster, mirrored, 240p, CRF 30: shows ref [8, 20) in 10.9 s
    ffmpeg("-ss", "8", "-t", "12", "-i", str(BUNNY30), "-vf", "setpts=PTS/1.1,scale=426:240,hflip", "-an",
           "-c:v", "libx264", "-crf", "30", str(out["fast"]))
    # seconds 3-9 of Megamind, 10 % slower, centre crop 80 %, more contrast: shows ref [3, 9) in 6.67 s
    ffmpeg("-ss", "3", "-t", "6", "-i", str(MEGAMIND), "-vf", "setpts=PTS/0.9,crop=iw*0.8:ih*0.8,eq=contrast=1.3",
           "-an", "-c:v", "libx264", "-crf", "26", str(out["slow"]))
    return out


@pytest.fixture(scope="module")
def refs(embedder) -> dict[str, object]:
    return {"bunny": embedder.embed_video(BUNNY30), "megamind": embedder.embed_video(MEGAMIND),
            "bikes": embedder.embed_video(BIKES)}


def test_trimmed_sped_up_copy_aligns_to_its_range(embedder, media, refs):
    q = embedder.embed_video(media["fast"])
    m = align(q, refs["bunny"])
    assert isinstance(m, Match)
    assert m.ref_start_s == pytest.approx(8.0, abs=0.5) and m.ref_end_s == pytest.approx(20.0, abs=0.5)
    assert m.query_start_s == pytest.approx(0.0, abs=0.5) and m.query_end_s == pytest.approx(10.9, abs=0.5)
    assert 1.0 < m.speed <= 1.12 and m.score > 0.7
    # the tuple form (stored frame rows) gives the same answer
    m2 = align((q.features.astype(np.float16), q.times_s), (refs["bunny"].features, refs["bunny"].times_s))
    assert m2 is not None and m2.ref_start_s == pytest.approx(m.ref_start_s, abs=0.25)

    q = embedder.embed_video(media["slow"])
    m = align(q, refs["megamind"])
    assert m is not None
    assert m.ref_start_s == pytest.approx(3.0, abs=0.5) and m.ref_end_s == pytest.approx(9.0, abs=0.5)
    assert 0.88 <= m.speed < 1.0


def test_unrelated_videos_do_not_align(embedder, media, refs):
    q = embedder.embed_video(media["fast"])
    assert align(q, refs["megamind"]) is None
    assert align(q, refs["bikes"]) is None
    assert align(refs["bikes"], refs["bunny"]) is None
    assert align(refs["megamind"], refs["bikes"]) is None
