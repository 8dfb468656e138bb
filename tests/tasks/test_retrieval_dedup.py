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
    out = {"fast": d / "bunny_fast.mp4", "slow": d / "megamind_slow.mp4", "bunny": d / "bunny_source.mp4"}
    # the source: bunny seconds 4-24 at 384x216 (its 720p VP8 would dominate the test's time)
    ffmpeg("-ss", "4", "-t", "20", "-i", str(BUNNY30), "-vf", "scale=384:216", "-an", "-c:v", "libx264",
           "-preset", "veryfast", "-crf", "18", str(out["bunny"]))
    # source seconds 4-16, 10 % faster, mirrored, 240p, CRF 30: shows ref [4, 16) in 10.9 s
    ffmpeg("-ss", "4", "-t", "12", "-i", str(out["bunny"]), "-vf", "setpts=PTS/1.1,scale=426:240,hflip", "-an",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", str(out["fast"]))
    # seconds 3-9 of Megamind, 10 % slower, centre crop 80 %, more contrast: shows ref [3, 9) in 6.67 s
    ffmpeg("-ss", "3", "-t", "6", "-i", str(MEGAMIND), "-vf", "setpts=PTS/0.9,crop=iw*0.8:ih*0.8,eq=contrast=1.3",
           "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", str(out["slow"]))
    return out


@pytest.fixture(scope="module")
def refs(embedder, media) -> dict[str, object]:
    return {"bunny": embedder.embed_video(media["bunny"]), "megamind": embedder.embed_video(MEGAMIND),
            "bikes": embedder.embed_video(BIKES)}


def test_trimmed_sped_up_copy_aligns_to_its_range(embedder, media, refs):
    q = embedder.embed_video(media["fast"])
    m = align(q, refs["bunny"])
    assert isinstance(m, Match)
    assert m.ref_start_s == pytest.approx(4.0, abs=0.5) and m.ref_end_s == pytest.approx(16.0, abs=0.5)
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


@pytest.fixture(scope="module")
def folder(tmp_path_factory, media) -> Path:
    """Two transformed copies of source seconds 4-16 / 6-14, Megamind's slowed crop, and unrelated videos
    (bikes, chaplin), plus a truncated file."""
    d = tmp_path_factory.mktemp("dedup")
    shutil.copy(media["fast"], d / "bunny_fast.mp4")
    ffmpeg("-ss", "6", "-t", "8", "-i", str(media["bunny"]), "-vf", "pad=iw:ih*1.33:0:(oh-ih)/2,scale=480:-2",
           "-an", "-c:v", "mpeg4", "-q:v", "8", str(d / "bunny_letterbox.avi"))
    shutil.copy(media["bunny"], d / "bunny_source.mp4")
    shutil.copy(BIKES, d / "bikes.mp4")
    shutil.copy(realdata("scenes/chaplin.mp4"), d / "chaplin.mp4")
    (d / "broken.mp4").write_bytes(BIKES.read_bytes()[:3000])
    return d


def test_dedup_folder_one_group_with_ranges(folder, embedder, tmp_path):
    from vidlens.tasks.retrieval.dedup import dedup, write_dedup_outputs

    result = dedup(folder, embedder=embedder)
    assert result.videos == 5
    assert list(result.failed) == [str(folder / "broken.mp4")]
    assert len(result.groups) == 1, result.to_json()
    members = {Path(m["video"]).name: m for m in result.groups[0].members}
    assert set(members) == {"bunny_source.mp4", "bunny_fast.mp4", "bunny_letterbox.avi"}
    src = members["bunny_source.mp4"]
    assert src["start_s"] == pytest.approx(4.0, abs=0.5) and src["end_s"] == pytest.approx(16.0, abs=0.5)
    assert members["bunny_letterbox.avi"]["start_s"] == pytest.approx(0.0, abs=0.5)
    assert members["bunny_letterbox.avi"]["end_s"] == pytest.approx(8.0, abs=0.5)
    pair = next(p for p in result.groups[0].pairs if {Path(p["a"]).name, Path(p["b"]).name}
                == {"bunny_letterbox.avi", "bunny_source.mp4"})
    ref = ("b" if Path(pair["b"]).name == "bunny_source.mp4" else "a")
    assert pair[f"{ref}_start_s"] == pytest.approx(6.0, abs=0.5) and pair[f"{ref}_end_s"] == pytest.approx(14.0, abs=0.5)
    files = write_dedup_outputs(result, tmp_path / "out")
    assert [f.name for f in files] == ["dedup.json", "dedup.csv", "dedup.png"] and all(f.stat().st_size > 0 for f in files)
    rows = (tmp_path / "out" / "dedup.csv").read_text().splitlines()
    assert rows[0] == "group,video,start_s,end_s,duration_s" and len(rows) == 4
