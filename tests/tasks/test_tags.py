"""`vidlens tags`: readable ImageNet tags per shot and per video, on real footage.

What a user relies on: a bicycle clip is tagged bicycle, a street with pedestrians gets no animal
tags, a joined video's two halves get their own tags, weak tags are dropped, the CLI and the batch
task write tags.json / tags.csv / tags.png, and a broken file is one line and exit 2."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vidlens.cli.main import main
from vidlens.tasks.tags import ANIMAL_GROUPS, TagConfig, TagModel, shot_tags, tag_video
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample

pytestmark = pytest.mark.usefixtures("one_thread")

BIKES = sample_media("bikes.mp4")
BUNNY = sample_media("bigbuckbunny.mp4")
STREET = opencv_sample("vtest.avi")


def cli(*args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def model() -> TagModel:
    return TagModel()


@pytest.fixture(scope="module")
def joined(tmp_path_factory) -> Path:
    """5 s of Big Buck Bunny then 5 s of the vtest.avi street, re-encoded to one size with the ffmpeg CLI."""
    out = tmp_path_factory.mktemp("joined") / "joined.mp4"
    subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", "-t", "5", "-i", str(BUNNY),
                    "-t", "5", "-i", str(STREET), "-filter_complex",
                    "[0:v]scale=480:270,setsar=1,fps=25[a];[1:v]scale=480:270,setsar=1,fps=25[b];[a][b]concat=n=2:v=1[v]",
                    "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def test_bikes_are_tagged_bicycle(model):
    result = tag_video(BIKES, model=model)
    words = [t["tag"] for t in result.tags]
    assert "bicycle" in words, words
    assert result.facts["shots"] == len(result.shots) >= 3  # bikes.mp4 has several cuts
    bike_shots = [s for s in result.shots if any(t["tag"] == "bicycle" for t in s.tags)]
    assert bike_shots and all(s.end_s > s.start_s for s in bike_shots)


def test_street_with_pedestrians_gets_no_animal_tags(model):
    result = tag_video(STREET, model=model)
    words = {t["tag"] for t in result.tags} | {t["tag"] for s in result.shots for t in s.tags}
    assert not words & set(ANIMAL_GROUPS), words


def test_cartoon_animals_get_an_animal_tag(model):
    result = tag_video(BUNNY, model=model)
    assert {t["tag"] for t in result.tags} & set(ANIMAL_GROUPS), result.tags


def test_every_kept_tag_obeys_the_threshold_and_the_frame_count(model):
    strict = TagConfig(threshold=0.5, min_frames=3)
    result = tag_video(BIKES, strict, model=model)
    loose = tag_video(BIKES, TagConfig(threshold=0.05, min_frames=1), model=model)
    for s in result.shots:
        for t in s.tags:
            assert t["score"] >= 0.5 and t["frames"] >= min(3, strict.frames_per_shot)
    assert sum(len(s.tags) for s in result.shots) < sum(len(s.tags) for s in loose.shots)
    # the rule itself on known probabilities: one strong frame alone is not a tag
    probs = np.zeros((4, 3))
    probs[:, 0] = 0.6  # steady
    probs[0, 1] = 0.9  # one frame only
    kept = shot_tags(probs, ["a", "b", "c"], TagConfig(threshold=0.15, min_frames=2))
    assert [t["tag"] for t in kept] == ["a"]


def test_each_half_of_a_joined_video_gets_its_own_tags(joined, model):
    result = tag_video(joined, model=model)
    assert len(result.shots) >= 2
    first = [s for s in result.shots if s.end_s <= 5.2]
    second = [s for s in result.shots if s.start_s >= 4.8]
    assert first and second
    a = {t["tag"] for s in first for t in s.tags}
    b = {t["tag"] for s in second for t in s.tags}
    assert a & set(ANIMAL_GROUPS), a
    assert not b & set(ANIMAL_GROUPS), b
    assert a != b


def test_cli_writes_json_csv_png_and_bad_file_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "tags"
    assert cli("tags", BIKES, "--out", out) == 0
    doc = json.loads((out / "tags.json").read_text())
    assert "bicycle" in [t["tag"] for t in doc["tags"]]
    assert doc["shots"] and {"start_s", "end_s", "tags"} <= set(doc["shots"][0])
    rows = list(csv.DictReader(open(out / "tags.csv")))
    assert len(rows) == len(doc["shots"])
    assert (out / "tags.png").stat().st_size > 10_000
    capsys.readouterr()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert cli("tags", bad, "--out", tmp_path / "bad") == 2
    err = capsys.readouterr()
    lines = [line for line in (err.out + err.err).splitlines() if line.strip()]
    assert len(lines) == 1 and "broken.mp4" in lines[0], lines
    assert not (tmp_path / "bad").exists()


def test_batch_tags_over_two_videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(BIKES, folder / "bikes.mp4")
    shutil.copy(STREET, folder / "street.avi")
    out = tmp_path / "out"
    assert cli("--quiet", "batch", "tags", folder, "--out", out, "--workers", 1) == 0
    table = {Path(r["video"]).name: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert set(table) == {"bikes.mp4", "street.avi"}
    assert all(r["status"] == "done" for r in table.values()), table
    assert "bicycle" in table["bikes.mp4"]["tags"]
    assert table["bikes.mp4"]["shots"] >= 3
    assert (Path(table["street.avi"]["out_dir"]) / "tags.json").is_file()


def test_checkpoint_adds_the_user_classifier_labels(tmp_path):
    """An untrained tiny C3D (seeded): its labels must come out beside the ImageNet tags, as `predict` ranks them."""
    import torch

    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.transforms import TransformConfig
    from vidlens.engine import save_checkpoint
    from vidlens.models import build_model
    from vidlens.tasks.classify import preprocess_fields
    from vidlens.tasks.predictor import VideoClassifier

    classes = ["cartoon", "street", "nature"]
    torch.manual_seed(0)
    net = build_model("c3d", len(classes), load_weights=False, width=0.25)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", {
        "model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(), "labels": classes,
        "preprocess": preprocess_fields(SamplerConfig(mode="clip", clip_len=8, stride=1),
                                        TransformConfig(size=32, resize=32, crop="center", hflip=False), 32),
        "config": {}, "metrics": {}})
    out = tmp_path / "tags"
    assert cli("tags", STREET, "--out", out, "--checkpoint", ckpt) == 0
    labels = json.loads((out / "tags.json").read_text())["labels"]
    assert sorted(t["label"] for t in labels) == sorted(classes)
    expected = VideoClassifier.from_checkpoints([str(ckpt)]).predict(STREET, 5)["top"][0]["label"]
    assert labels[0]["label"] == expected
