"""`vidlens emotion DIR|MANIFEST`: many real videos in one process, bad files recorded, models loaded once."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from vidlens.cli.main import main
from vidlens.tasks.emotion.folder import EmotionModels, output_names, read_manifest
from vidlens.testing import make_bad_files
from vidlens.testing.real import realdata_dir

pytestmark = pytest.mark.usefixtures("one_thread")


def _clips() -> list:
    try:
        folder = realdata_dir() / "expressions"
    except FileNotFoundError:
        pytest.skip("shared/realdata is not here")
    return [folder / "W011_front_happy_level3_001.mp4", folder / "W011_front_surprised_level3_001.mp4"]


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code or 0


def _rows(path) -> dict[str, dict[str, str]]:
    return {row["video"]: row for row in csv.DictReader(open(path))}


def test_folder_of_real_clips_and_bad_files_one_model_load(tmp_path, capsys):
    videos = tmp_path / "videos"
    (videos / "more").mkdir(parents=True)
    happy, surprised = _clips()
    shutil.copy(happy, videos / "happy.mp4")
    shutil.copy(surprised, videos / "more" / "happy.mp4")  # same stem in a subfolder: its own output folder
    bad = make_bad_files(tmp_path / "bad", happy)
    shutil.copy(bad["truncated"], videos / "truncated.mp4")  # corrupt: the index is at the end of this mp4
    shutil.copy(bad["text"], videos / "notes.mp4")  # a text file named .mp4
    (videos / "README.txt").write_text("not listed: not a video extension\n")
    out = videos / "out"  # inside the input folder: never read back as input
    loads = EmotionModels.loads
    assert _run(["emotion", str(videos), "--out", str(out), "--fps", "3"]) == 2  # every video done, 2 failed
    assert EmotionModels.loads == loads + 1  # both videos analysed with the models of one load
    captured = capsys.readouterr()
    assert "4 videos; models loaded once" in captured.out
    rows = _rows(out / "summary.csv")
    assert set(rows) == {"happy.mp4", "more/happy.mp4", "truncated.mp4", "notes.mp4"}
    assert [rows[v]["status"] for v in ("happy.mp4", "more/happy.mp4")] == ["ok", "ok"]
    assert {rows["happy.mp4"]["folder"], rows["more/happy.mp4"]["folder"]} == {"happy", "happy_2"}
    assert rows["truncated.mp4"]["status"] == rows["notes.mp4"]["status"] == "failed"
    assert "not a readable media file" in rows["notes.mp4"]["error"] and rows["truncated.mp4"]["error"]
    assert "notes.mp4: not a readable media file" in captured.err
    for name in ("happy.mp4", "more/happy.mp4"):
        row = rows[name]
        doc = json.loads((out / row["folder"] / "emotion.json").read_text())
        assert int(row["faces"]) == len(doc["tracks"]) >= 1  # one actor, front view
        assert row["dominant"] == doc["dominant"] and float(row["duration_s"]) == pytest.approx(doc["duration_s"], abs=1e-3)
        assert row["sentiment"] in ("positive", "neutral", "negative") and -1 <= float(row["valence"]) <= 1
        assert {p.name for p in (out / row["folder"]).iterdir()} == {"emotion.json", "emotion.csv", "emotion.png"}
    assert rows["happy.mp4"]["dominant"] == "happy"  # the acted smile
    assert (out / "summary.png").stat().st_size > 5000
    assert not list(tmp_path.rglob(".*staging*"))  # every video was staged and moved in, nothing left over


def test_manifests_txt_and_csv_and_nothing_readable_exits_2(tmp_path, capsys):
    happy, _ = _clips()
    (tmp_path / "clips").mkdir()
    shutil.copy(happy, tmp_path / "clips" / "a.mp4")
    (tmp_path / "list.txt").write_text("# my clips\nclips/a.mp4\n\nclips/gone.mp4\n")
    assert read_manifest(tmp_path / "list.txt") == [tmp_path / "clips" / "a.mp4", tmp_path / "clips" / "gone.mp4"]
    assert _run(["emotion", str(tmp_path / "list.txt"), "--out", str(tmp_path / "out"), "--fps", "2"]) == 2  # gone.mp4
    rows = _rows(tmp_path / "out" / "summary.csv")
    assert rows["clips/a.mp4"]["status"] == "ok" and int(rows["clips/a.mp4"]["faces"]) >= 1
    assert rows["clips/gone.mp4"]["status"] == "failed" and "does not exist" in rows["clips/gone.mp4"]["error"]
    # A CSV manifest (any other columns are fine) whose videos all fail: exit 2, yet summary.csv says why.
    (tmp_path / "bad.csv").write_text("label,path\nx,gone1.mp4\ny,gone2.mp4\n")
    assert _run(["emotion", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "out2")]) == 2
    assert [r["status"] for r in _rows(tmp_path / "out2" / "summary.csv").values()] == ["failed", "failed"]
    assert "2 of 2 videos failed" in capsys.readouterr().err
    # A CSV without a path column, and an empty folder: one line, exit 2.
    (tmp_path / "nopath.csv").write_text("file,label\na.mp4,x\n")
    assert _run(["emotion", str(tmp_path / "nopath.csv"), "--out", str(tmp_path / "out3")]) == 2
    (tmp_path / "empty").mkdir()
    assert _run(["emotion", str(tmp_path / "empty"), "--out", str(tmp_path / "out4")]) == 2
    err = capsys.readouterr().err
    assert "needs a 'path' column" in err and "no video files in this folder" in err and "Traceback" not in err


def test_output_names_are_unique_without_case():
    from pathlib import Path

    names = output_names([Path("a/clip.mp4"), Path("b/clip.mov"), Path("c/CLIP.mp4"), Path("summary.mp4")])
    assert names == ["clip", "clip_2", "CLIP_3", "summary"]
