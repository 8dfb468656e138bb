"""The four searches on a real-footage index (see test_retrieval_index for the collection): a clip cut
from one video finds it with the right time range, a frame finds its video, "more like this" leaves
out the video and its re-encoded copy, text finds what the tags and user text say; outputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest

from tests.tasks.test_retrieval_index import CHAPLIN, build_index, ffmpeg, make_media
from vidlens.errors import ConfigError, VidlensError
from vidlens.tasks.retrieval.index import VideoIndex
from vidlens.tasks.retrieval.search import (TEXT_NOTE, search_clip, search_image, search_text, search_video,
                                            write_search_outputs)
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("search-media"))


@pytest.fixture(scope="module")
def index(tmp_path_factory, media):
    ix, report = build_index(tmp_path_factory.mktemp("search-index") / "idx", media)
    assert len(report.added) == 5
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def queries(tmp_path_factory) -> dict[str, Path]:
    """Queries made from the original files (other size and encoding than the indexed copies)."""
    q = tmp_path_factory.mktemp("queries")
    out = {"chaplin_3_7": q / "chaplin_3_7.mp4", "street_frame": q / "street_25s.jpg"}
    ffmpeg("-ss", "3", "-t", "4", "-i", CHAPLIN.resolve(), "-vf", "scale=480:-2", "-c:v", "libx264", "-crf", "28",
           "-an", out["chaplin_3_7"])
    ffmpeg("-ss", "25", "-i", opencv_sample("vtest.avi"), "-frames:v", "1", "-q:v", "3", out["street_frame"])
    return out


def names(result) -> list[str]:
    return [h.name for h in result.hits]


def test_clip_finds_its_video_and_time_range(index, queries):
    result = search_clip(index, queries["chaplin_3_7"], k=3)
    top = result.hits[0]
    assert top.name == "chaplin.mp4", names(result)
    assert abs(top.start_s - 3.0) <= 1.0 and abs(top.end_s - 7.0) <= 1.0, (top.start_s, top.end_s)
    assert top.kind == "range" and "aligned" in top.why
    assert len(result.hits) == 3 and len(set(names(result))) == 3  # one hit per video
    assert all(h.score <= top.score for h in result.hits)


def test_clip_start_end_cuts_the_query(index):
    """Seconds 4-8 of the original bikes.mp4: bikes.mp4 or its copy first, at 4-8 s."""
    result = search_clip(index, sample_media("bikes.mp4"), start_s=4.0, end_s=8.0, k=5)
    top = result.hits[0]
    assert top.name in ("bikes.mp4", "bikes_copy.mp4"), names(result)
    assert abs(top.start_s - 4.0) <= 1.0 and abs(top.end_s - 8.0) <= 1.0, (top.start_s, top.end_s)
    assert set(names(result)[:2]) == {"bikes.mp4", "bikes_copy.mp4"}
    with pytest.raises(ConfigError):
        search_clip(index, sample_media("bikes.mp4"), start_s=5.0, end_s=2.0)


def test_image_finds_its_video(index, queries):
    result = search_image(index, queries["street_frame"], k=3)
    top = result.hits[0]
    assert top.name == "street.mp4", names(result)
    assert 0.0 <= top.start_s <= top.end_s <= 10.5
    with pytest.raises(VidlensError, match="cannot read this image"):
        search_image(index, Path(__file__))


def test_more_like_this_leaves_out_itself_and_its_copy(index):
    result = search_video(index, "bikes.mp4", k=10)
    assert "bikes.mp4" not in names(result) and "bikes_copy.mp4" not in names(result), names(result)
    assert sorted(names(result)) == ["bunny.mp4", "chaplin.mp4", "street.mp4"]
    excluded = {Path(e["video"]).name: e["reason"] for e in result.query["excluded"]}
    assert "itself" in excluded["bikes.mp4"] and "near-duplicate" in excluded["bikes_copy.mp4"]
    # a file outside the index (the original, other bytes): both indexed copies are near-duplicates of it
    outside = search_video(index, sample_media("bikes.mp4"), k=10)
    assert not {"bikes.mp4", "bikes_copy.mp4"} & set(names(outside)), names(outside)
    with pytest.raises(VidlensError, match="not a video of this index"):
        search_video(index, "no-such-video.mp4")


def test_text_finds_tags_and_user_text(index):
    result = search_text(index, "bicycle", k=5)
    top = result.hits[0]
    assert top.name in ("bikes.mp4", "bikes_copy.mp4"), names(result)
    assert "bicycle" in top.why and "bicycle" in top.tags
    assert result.to_json()["note"] == TEXT_NOTE and "not the pixels" in TEXT_NOTE
    mall = search_text(index, "people in a mall", k=3)
    assert mall.hits[0].name == "street.mp4", names(mall)
    with pytest.raises(ConfigError):
        search_text(index, "  ")


def test_removed_video_is_no_longer_found(index, queries, tmp_path):
    shutil.copytree(index.path, tmp_path / "idx")
    with VideoIndex.open(tmp_path / "idx") as copy:
        assert copy.remove(["chaplin.mp4"]) == 1
        result = search_clip(copy, queries["chaplin_3_7"], k=10)
        assert "chaplin.mp4" not in names(result) and len(result.hits) == 4
        assert all(h.kind != "range" for h in result.hits)  # nothing aligns with the clip any more


def test_outputs_json_csv_and_contact_sheet(index, queries, tmp_path):
    result = search_clip(index, queries["chaplin_3_7"], k=3)
    files = write_search_outputs(result, tmp_path / "out")
    assert [f.name for f in files] == ["results.json", "results.csv", "sheet.png"]
    doc = json.loads(files[0].read_text())
    assert doc["query"]["kind"] == "clip" and doc["hits"][0]["name"] == "chaplin.mp4"
    assert set(doc["hits"][0]) >= {"video", "score", "start_s", "end_s", "kind", "tags", "why"}
    rows = list(csv.DictReader(files[1].open()))
    assert [r["name"] for r in rows] == names(result) and rows[0]["rank"] == "1"
    sheet = cv2.imread(str(files[2]))
    assert sheet is not None and sheet.shape[1] >= 3 * 240 and sheet.shape[0] > 135
    # the first thumbnail is a real frame (not the grey placeholder of an unreadable file)
    thumb = sheet[36:36 + 135, 6:6 + 240]
    assert thumb.std() > 10
