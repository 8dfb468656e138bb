"""Dataset layouts -> records: folder, UCF101, HMDB51, Kinetics CSV, CSV/JSONL manifests, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vidlens.data.sources import (
    detect_layout,
    load_labels,
    load_spec,
    parse_folder,
    parse_hmdb51,
    parse_kinetics,
    parse_manifest,
    parse_split_arg,
    parse_ucf101,
    save_labels,
)
from vidlens.errors import ConfigError, DatasetError
from vidlens.testing import write_pattern_video


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """One real tiny video; trees are made of copies of it (parsers never decode)."""
    return write_pattern_video(tmp_path_factory.mktemp("src") / "clip.mp4", 8, fps=8, size=(48, 64))


def put(video: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(video, path)
    return path


def paths(records) -> set[str]:
    return {r.path for r in records}


# ------------------------------------------------------------------ folder


def test_folder_split_is_stratified_and_seeded(tmp_path, video):
    counts = {"walk": 10, "run": 7, "jump": 3, "pair": 2, "solo": 1}
    for name, n in counts.items():
        for i in range(n):
            put(video, tmp_path / name / ("sub" if i % 2 else "") / f"{name}_{i}.mp4")
    (tmp_path / "walk" / "notes.txt").write_text("not a video")
    (tmp_path / "empty_class").mkdir()

    spec = parse_folder(tmp_path, val_frac=0.2, test_frac=0.2, seed=3)
    assert spec.labels == sorted(counts)  # empty folders are not classes
    splits = spec.records_by_split
    assert set(splits) == {"train", "val", "test"}
    everything = [r for recs in splits.values() for r in recs]
    assert len(everything) == sum(counts.values()) == len(paths(everything))
    assert not any(r.path.endswith(".txt") for r in everything)
    for rec in everything:
        assert Path(rec.path).relative_to(tmp_path).parts[0] == spec.labels[rec.label]
    per_split = {s: {spec.labels[r.label] for r in recs} for s, recs in splits.items()}
    for name in ("walk", "run", "jump"):  # >= 3 videos: present in every split
        assert all(name in per_split[s] for s in splits), name
    assert sum(r.label == spec.labels.index("walk") for r in splits["val"]) == 2
    assert "pair" in per_split["train"] and "pair" in per_split["val"] and "pair" not in per_split["test"]
    assert "solo" in per_split["train"] and "solo" not in per_split["val"]

    again = parse_folder(tmp_path, val_frac=0.2, test_frac=0.2, seed=3)
    assert {s: paths(r) for s, r in again.records_by_split.items()} == {s: paths(r) for s, r in splits.items()}
    other = parse_folder(tmp_path, val_frac=0.2, test_frac=0.2, seed=4)
    assert paths(other.records_by_split["val"]) != paths(splits["val"])
    assert set(parse_folder(tmp_path, val_frac=0.2, test_frac=0.0).records_by_split) == {"train", "val"}


def test_folder_errors(tmp_path, video):
    with pytest.raises(DatasetError, match="does not exist"):
        parse_folder(tmp_path / "nope")
    put(video, tmp_path / "file.mp4")
    with pytest.raises(DatasetError, match="not a directory"):
        parse_folder(tmp_path / "file.mp4")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no videos"):
        parse_folder(tmp_path / "empty")
    put(video, tmp_path / "ok" / "a" / "x.mp4")
    with pytest.raises(ConfigError):
        parse_folder(tmp_path / "ok", val_frac=0.6, test_frac=0.5)


# ------------------------------------------------------------------ UCF101


def make_ucf(root: Path, video: Path, nested: bool) -> None:
    video_root = root / "UCF-101" if nested else root
    lists = root / "ucfTrainTestlist" if nested else root
    lists.mkdir(parents=True, exist_ok=True)
    # classInd order is not alphabetical here: labels must follow it.
    (lists / "classInd.txt").write_text("1 YoYo\r\n2 ApplyLipstick\r\n3 Biking\r\n\r\n")
    train = ["YoYo/v_YoYo_g01_c01.avi 1", "ApplyLipstick/v_ApplyLipstick_g01_c01.avi 2", "Biking/v_Biking_g01_c01.avi",
             "Biking/v_Biking_g02_c01.avi 3"]
    test = ["YoYo/v_YoYo_g09_c01.avi", "Biking/v_Biking_g09_c01.avi", "ApplyLipstick/v_ApplyLipstick_g09_c01.avi"]
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    for line in train + test[:2]:  # the last test video is not downloaded
        put(video, video_root / line.split()[0])


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "UCF-101+ucfTrainTestlist"])
def test_ucf101(tmp_path, video, nested):
    make_ucf(tmp_path, video, nested)
    spec = parse_ucf101(tmp_path, split=1)
    assert spec.labels == ["YoYo", "ApplyLipstick", "Biking"]
    train, test = spec.records_by_split["train"], spec.records_by_split["test"]
    assert [(Path(r.path).name, r.label) for r in train] == [
        ("v_YoYo_g01_c01.avi", 0), ("v_ApplyLipstick_g01_c01.avi", 1), ("v_Biking_g01_c01.avi", 2), ("v_Biking_g02_c01.avi", 2)]
    assert [(Path(r.path).name, r.label) for r in test] == [("v_YoYo_g09_c01.avi", 0), ("v_Biking_g09_c01.avi", 2)]
    assert all(Path(r.path).is_file() for r in train + test)
    assert len(spec.missing) == 1 and spec.missing[0]["path"].endswith("v_ApplyLipstick_g09_c01.avi")
    assert detect_layout(tmp_path) == "ucf101"
    assert {k: len(v) for k, v in load_spec(tmp_path, "ucf101:1").records_by_split.items()} == {"train": 4, "test": 2}


def test_ucf101_errors(tmp_path, video):
    make_ucf(tmp_path, video, nested=False)
    with pytest.raises(DatasetError, match="trainlist02.txt.*split file not found"):
        parse_ucf101(tmp_path, split=2)
    with pytest.raises(ConfigError):
        parse_ucf101(tmp_path, split=4)
    with open(tmp_path / "trainlist01.txt", "a") as handle:
        handle.write("Swimming/v_Swimming_g01_c01.avi 2\n")
    with pytest.raises(DatasetError, match="unknown class 'Swimming'"):
        parse_ucf101(tmp_path)
    (tmp_path / "trainlist01.txt").write_text("Biking/v_Biking_g01_c01.avi 1\n")
    with pytest.raises(DatasetError, match="index 1 is 'YoYo'"):
        parse_ucf101(tmp_path)
    (tmp_path / "classInd.txt").unlink()
    with pytest.raises(DatasetError, match="classInd.txt not found"):
        parse_ucf101(tmp_path)


# ------------------------------------------------------------------ HMDB51


def make_hmdb(root: Path, video: Path) -> Path:
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for name, lines in {
        "wave": ["w1.avi 1", "w2.avi 2", "w3.avi 0", "w4.avi 1"],
        "brush_hair": ["b1.avi 2", "b2.avi 1"],
    }.items():
        (splits / f"{name}_test_split1.txt").write_text(" \n".join(lines) + " \n")
        for line in lines:
            put(video, root / name / line.split()[0])
    return splits


def test_hmdb51(tmp_path, video):
    splits = make_hmdb(tmp_path, video)
    spec = parse_hmdb51(tmp_path, split=1)
    assert spec.labels == ["brush_hair", "wave"]
    named = {s: sorted((Path(r.path).name, r.label) for r in recs) for s, recs in spec.records_by_split.items()}
    assert named == {"train": [("b2.avi", 0), ("w1.avi", 1), ("w4.avi", 1)], "test": [("b1.avi", 0), ("w2.avi", 1)]}
    assert detect_layout(tmp_path) == "hmdb51"
    assert parse_hmdb51(tmp_path, 1, splits_dir=splits).num_records == 5

    with pytest.raises(DatasetError, match="split file not found"):
        parse_hmdb51(tmp_path, split=2)
    (splits / "wave_test_split1.txt").write_text("w1.avi 3\n")
    with pytest.raises(DatasetError, match="line 1"):
        parse_hmdb51(tmp_path)
    (splits / "cook_test_split1.txt").write_text("c1.avi 1\n")
    with pytest.raises(DatasetError, match="class folder"):
        parse_hmdb51(tmp_path)


# ------------------------------------------------------------------ Kinetics


def test_kinetics_csv(tmp_path, video):
    root = tmp_path / "k400"
    put(video, root / "train" / "abseiling" / "aaaaaaaaaaa_000010_000020.mp4")  # official downloader: trimmed
    put(video, root / "bowling" / "bbbbbbbbbbb.mp4")  # untrimmed, by label folder
    put(video, root / "misc" / "ccccccccccc.f137.mkv")  # any file whose stem starts with the id
    put(video, root / "train" / "abseiling" / "ddddddddddd_000000_000010.mp4")  # another window: not row 5's
    csv_path = tmp_path / "kinetics400.csv"
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,aaaaaaaaaaa,10,20,train,0\n"
        "bowling,bbbbbbbbbbb,30,40,validate,0\n"
        "bowling,ccccccccccc,5,15,test,0\n"
        "zumba,zzzzzzzzzzz,0,10,train,0\n"
        "abseiling,ddddddddddd,50,60,train,0\n"
    )
    spec = parse_kinetics(root, csv_path)
    assert spec.labels == ["abseiling", "bowling", "zumba"]  # from every row, found or not
    by_split = {s: [(Path(r.path).name, r.label, r.start_s, r.end_s) for r in recs] for s, recs in spec.records_by_split.items()}
    assert by_split == {
        "train": [("aaaaaaaaaaa_000010_000020.mp4", 0, None, None)],
        "val": [("bbbbbbbbbbb.mp4", 1, 30.0, 40.0)],
        "test": [("ccccccccccc.f137.mkv", 1, 5.0, 15.0)],
    }
    assert sorted(m["youtube_id"] for m in spec.missing) == ["ddddddddddd", "zzzzzzzzzzz"]
    assert spec.missing[0]["line"] in (5, 6)
    assert detect_layout(root, csv_path) == "kinetics"
    assert load_spec(root, "kinetics", manifest=csv_path).num_records == 3

    bad = tmp_path / "bad.csv"
    bad.write_text("label,id\nx,y\n")
    with pytest.raises(DatasetError, match="youtube_id"):
        parse_kinetics(root, bad)
    only_missing = tmp_path / "missing.csv"
    only_missing.write_text("label,youtube_id,time_start,time_end,split\nzumba,zzzzzzzzzzz,0,10,train\n")
    with pytest.raises(DatasetError, match="none of the 1 listed"):
        parse_kinetics(root, only_missing)


# ------------------------------------------------------------------ manifests


def test_csv_manifest_relative_paths_segments_multilabel(tmp_path, video):
    data = tmp_path / "data"
    put(video, data / "clips" / "a.mp4")
    put(video, data / "clips" / "b.mp4")
    put(video, tmp_path / "elsewhere" / "c.mp4")
    manifest = data / "manifest.csv"
    manifest.write_text(
        "path,label,start,end,split\n"
        "clips/a.mp4,cat;dog,0.5,1.5,train\n"
        "clips/b.mp4,dog,,,val\n"
        f"{tmp_path / 'elsewhere' / 'c.mp4'},bird,,,test\n"
        "clips/gone.mp4,cat,,,train\n"
    )
    spec = parse_manifest(manifest)
    assert spec.labels == ["bird", "cat", "dog"]
    train, val, test = (spec.records_by_split[s] for s in ("train", "val", "test"))
    assert Path(train[0].path) == data / "clips" / "a.mp4"
    assert (train[0].label, train[0].start_s, train[0].end_s) == ([1, 2], 0.5, 1.5)
    assert (val[0].label, val[0].start_s) == ([2], None)  # one record type: every label a list
    assert Path(test[0].path) == tmp_path / "elsewhere" / "c.mp4"
    assert [m["path"] for m in spec.missing] == [str(data / "clips" / "gone.mp4")]


def test_jsonl_manifest_and_label_file(tmp_path, video):
    for i in range(6):
        put(video, tmp_path / "v" / f"{i}.mp4")
    save_labels(tmp_path / "labels.json", ["zebra", "ant"])
    assert load_labels(tmp_path / "labels.json") == ["zebra", "ant"]
    manifest = tmp_path / "m.jsonl"
    rows = [{"path": f"v/{i}.mp4", "label": i % 2} for i in range(6)]  # indices into labels.json
    rows[0]["label"] = ["zebra", "ant"]
    rows[1].update(start=1, end=2)
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    spec = parse_manifest(manifest, val_frac=0.2, test_frac=0.2, seed=1)  # no split: stratified
    assert spec.labels == ["zebra", "ant"]
    records = {Path(r.path).name: r for _, r in spec.all_records()}
    assert records["0.mp4"].label == [0, 1] and records["2.mp4"].label == [0] and records["3.mp4"].label == [1]
    assert (records["1.mp4"].start_s, records["1.mp4"].end_s) == (1.0, 2.0)
    assert set(spec.records_by_split) == {"train", "val", "test"}
    assert detect_layout(None, manifest) == "manifest"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("file,label\na.mp4,x\n", "lacks column.*path"),
        ("path,category\na.mp4,x\n", "lacks column.*label"),
        ("path,label,split\nv.mp4,x,holdout\n", "unknown split 'holdout'"),
        ("path,label,start,end\nv.mp4,x,2,1\n", "not after start"),
        ("path,label,start\nv.mp4,x,soon\n", "not a number"),
    ],
)
def test_manifest_errors(tmp_path, video, content, match):
    put(video, tmp_path / "v.mp4")
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DatasetError, match=match):
        parse_manifest(tmp_path / "m.csv")


def test_manifest_and_label_file_errors(tmp_path, video):
    put(video, tmp_path / "v.mp4")
    with pytest.raises(DatasetError, match="manifest not found"):
        parse_manifest(tmp_path / "nope.csv")
    (tmp_path / "m.jsonl").write_text('{"path": "v.mp4"}\n')
    with pytest.raises(DatasetError, match="'path' and 'label'"):
        parse_manifest(tmp_path / "m.jsonl")
    (tmp_path / "m.csv").write_text("path,label\nv.mp4,horse\n")
    with pytest.raises(DatasetError, match="unknown class 'horse'"):
        parse_manifest(tmp_path / "m.csv", labels=["cat"])
    (tmp_path / "labels.json").write_text('{"not": "a list"}')
    with pytest.raises(DatasetError, match="label"):
        load_labels(tmp_path / "labels.json")
    with pytest.raises(DatasetError, match="not found"):
        load_labels(tmp_path / "none.json")


def test_parse_split_arg_and_dispatch(tmp_path):
    assert parse_split_arg("ucf101:1") == ("ucf101", 1)
    assert parse_split_arg("HMDB51:2") == ("hmdb51", 2)
    assert parse_split_arg("folder") == ("folder", 1)
    with pytest.raises(ConfigError):
        parse_split_arg("imagenet:1")
    with pytest.raises(ConfigError):
        parse_split_arg("ucf101:one")
    with pytest.raises(ConfigError, match="needs the CSV"):
        load_spec(tmp_path, "kinetics")
    with pytest.raises(ConfigError):
        load_spec(tmp_path, "nonsense")


def test_root_manifest_is_detected(tmp_path, video):
    """A folder tree that also holds manifest.csv (as `vidlens data synth` writes) uses the manifest's split."""
    for name in ("left", "right"):
        for i in range(3):
            put(video, tmp_path / name / f"{i}.mp4")
    save_labels(tmp_path / "labels.json", ["right", "left"])
    rows = [f"{c}/{i}.mp4,{c},{'test' if i == 2 else 'train'}" for c in ("left", "right") for i in range(3)]
    (tmp_path / "manifest.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    assert detect_layout(tmp_path) == "manifest"
    spec = load_spec(tmp_path)
    assert spec.labels == ["right", "left"]  # labels.json order, not sorted
    assert {k: len(v) for k, v in spec.records_by_split.items()} == {"train": 4, "test": 2}
    assert load_spec(tmp_path, "folder").labels == ["left", "right"]
