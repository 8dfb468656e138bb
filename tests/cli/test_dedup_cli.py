"""`vidlens dedup DIR`: exit codes and the files it writes, on copies of real footage made with the ffmpeg CLI."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vidlens.cli.main import main
from vidlens.testing import sample_media

pytestmark = pytest.mark.usefixtures("one_thread")

BIKES = sample_media("bikes.mp4")
PHONE = sample_media("carphone_pristine.mp4")


def cli(*args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def ffmpeg(*args: str) -> None:
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """bikes.mp4 seconds 0-6, a mirrored smaller copy of seconds 1-5 and the unrelated carphone clip."""
    d = tmp_path_factory.mktemp("dedup_cli") / "videos"
    d.mkdir()
    ffmpeg("-t", "6", "-i", str(BIKES), "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", str(d / "bikes.mp4"))
    ffmpeg("-ss", "1", "-t", "4", "-i", str(BIKES), "-vf", "hflip,scale=320:-2", "-c:v", "libx264",
           "-preset", "veryfast", "-crf", "28", str(d / "bikes_mirror.mp4"))
    shutil.copy(PHONE, d / "phone.mp4")
    return d


def test_dedup_writes_groups_and_exits_0(folder, tmp_path):
    out = tmp_path / "out"
    assert cli("--quiet", "dedup", folder, "--out", out) == 0
    data = json.loads((out / "dedup.json").read_text())
    assert data["videos"] == 3 and data["failed"] == []
    assert len(data["groups"]) == 1
    members = {Path(m["video"]).name: m for m in data["groups"][0]["members"]}
    assert set(members) == {"bikes.mp4", "bikes_mirror.mp4"}
    assert members["bikes.mp4"]["start_s"] == pytest.approx(1.0, abs=0.5)
    assert members["bikes.mp4"]["end_s"] == pytest.approx(5.0, abs=0.5)
    rows = list(csv.DictReader((out / "dedup.csv").open()))
    assert len(rows) == 2 and {r["group"] for r in rows} == {"0"}
    assert (out / "dedup.png").stat().st_size > 1000


def test_bad_file_reported_exit_1_and_bad_input_exit_2(folder, tmp_path, capsys):
    broken = tmp_path / "with_broken"
    shutil.copytree(folder, broken)
    (broken / "broken.mp4").write_bytes(b"\x00" * 2000)
    out = tmp_path / "out"
    assert cli("--quiet", "dedup", broken, "--out", out) == 1
    err = capsys.readouterr().err
    assert "broken.mp4" in err
    data = json.loads((out / "dedup.json").read_text())
    assert [f["video"] for f in data["failed"]] == [str(broken / "broken.mp4")] and len(data["groups"]) == 1

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("--quiet", "dedup", empty, "--out", tmp_path / "o2") == 2
    assert "no video files" in capsys.readouterr().err
    assert cli("--quiet", "dedup", folder, "--out", tmp_path / "o3", "--threshold", "1.5") == 2
    assert not (tmp_path / "o3").exists()


def test_dedup_reads_an_index_frame_rows(folder, tmp_path):
    """`vidlens dedup INDEX` uses the rows `vidlens index build` stored: same group, no decoding of the videos."""
    from vidlens.tasks.retrieval.index import IndexOptions, VideoIndex

    with VideoIndex.create(tmp_path / "idx", options=IndexOptions(tags=False)) as index:
        index.add_videos(sorted(folder.iterdir()))
    out = tmp_path / "out"
    assert cli("--quiet", "dedup", tmp_path / "idx", "--out", out) == 0
    data = json.loads((out / "dedup.json").read_text())
    assert data["videos"] == 3 and len(data["groups"]) == 1
    assert {Path(m["video"]).name for m in data["groups"][0]["members"]} == {"bikes.mp4", "bikes_mirror.mp4"}
