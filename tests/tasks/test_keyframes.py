"""Keyframes: one or more per shot, inside the shot and away from its transitions, never repeating a view."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vidlens.data.synthetic.shots import make_shot_video
from vidlens.errors import ConfigError
from vidlens.io import read_clip
from vidlens.tasks.frame_features import sample_frame_features
from vidlens.tasks.keyframes import KeyframeConfig, choose_keyframes, save_keyframes
from vidlens.testing import write_lossless_video


@pytest.fixture(scope="module")
def shot_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("kf") / "shots.mp4"
    truth = make_shot_video(path, num_shots=4, size=(144, 256), seed=3)
    return path, truth


def test_one_keyframe_per_short_shot_inside_its_pure_frames(shot_video):
    path, truth = shot_video
    features = sample_frame_features(path, fps=4, kind="hsv")
    keyframes = choose_keyframes(features, truth.scenes, KeyframeConfig(features="hsv", max_similarity=1.0))
    assert [kf.shot for kf in keyframes] == [1, 2, 3, 4]  # every shot is under 10 s: one each; numbered from 1
    for kf in keyframes:
        pure = truth.shots[kf.shot - 1]
        assert pure["start_frame"] <= kf.frame < pure["end_frame"], (kf, pure)  # not in a fade or dissolve
        assert kf.time_s == pytest.approx(kf.frame / truth.fps, abs=1e-3)


def test_long_shots_get_more_keyframes_and_repeated_views_are_dropped(tmp_path):
    # Three "shots" of 6 s each at 10 fps: red, blue, red again. A red keyframe must not come twice.
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 40, 200), (200, 40, 40)]
    frames = []
    for colour in colours:
        for i in range(60):
            image = np.empty((48, 64, 3), np.uint8)
            image[:] = colour
            image[10:20, (i % 50):(i % 50) + 10] = 255  # a moving white square
            frames.append(np.clip(image + rng.integers(0, 6, image.shape), 0, 255).astype(np.uint8))
    path = write_lossless_video(tmp_path / "rbr.mkv", np.stack(frames), fps=10)
    features = sample_frame_features(path, fps=2, kind="hsv")

    class Span:
        def __init__(self, a, b):
            self.start_frame, self.end_frame = a, b

    shots = [Span(0, 60), Span(60, 120), Span(120, 180)]
    diverse = choose_keyframes(features, shots, KeyframeConfig(features="hsv", max_similarity=0.9))
    assert sorted({kf.shot for kf in diverse}) == [1, 2]  # the second red shot (3) repeats the first
    every = choose_keyframes(features, shots, KeyframeConfig(features="hsv", max_similarity=1.0, seconds_per_keyframe=3))
    assert [sum(kf.shot == s for kf in every) for s in (1, 2, 3)] == [3, 3, 3]  # 1 + 6 // 3, capped at 3
    assert [kf.frame for kf in every] == sorted(kf.frame for kf in every)


def test_saved_keyframes_contact_sheet_and_json(shot_video, tmp_path):
    path, truth = shot_video
    config = KeyframeConfig(features="hsv", image_size=96)
    features = sample_frame_features(path, fps=2, kind="hsv")
    keyframes = choose_keyframes(features, truth.scenes, config)
    files = save_keyframes(path, keyframes, tmp_path, config, title="test")
    doc = json.loads(files["keyframes.json"].read_text())
    assert len(doc["keyframes"]) == len(keyframes) >= 3
    first = doc["keyframes"][0]
    assert set(first) >= {"shot", "frame", "time_s", "timecode", "path"}
    assert first["timecode"].startswith("00:00:")
    saved = cv2.cvtColor(cv2.imread(str(tmp_path / first["path"])), cv2.COLOR_BGR2RGB)
    assert saved.shape[0] == 96  # shorter side
    expected = read_clip(path, [first["frame"]], size=96)[0].astype(int)
    assert np.abs(saved.astype(int) - expected).mean() < 6  # the right frame (JPEG-close)
    sheet = cv2.imread(str(files["contact_sheet.png"]))
    assert sheet.shape[1] > 3 * 200 and sheet.std() > 10


def test_shot_numbers_agree_with_scenes_csv_on_real_footage(tmp_path):
    """Shot n of keyframes.json, of the contact sheet captions and of kf_NNN names is scene n of scenes.csv (1-based)."""
    import csv

    from vidlens.tasks.keyframes import extract_keyframes
    from vidlens.tasks.shots import detect_shots, write_shot_outputs
    from vidlens.testing import sample_media

    video = sample_media("bikes.mp4")  # real footage, 6 shots
    shots = detect_shots(video)
    rows = list(csv.reader(write_shot_outputs(shots, tmp_path / "shots", plot=False)["csv"].read_text().splitlines()))[2:]
    by_number = {int(r[0]): (int(r[1]) - 1, int(r[4])) for r in rows}  # 1-based Start Frame, inclusive End Frame
    assert sorted(by_number) == list(range(1, len(shots.scenes) + 1))
    config = KeyframeConfig(fps=5, features="hsv", image_size=64, max_similarity=1.0)  # the last shot lasts 0.32 s
    result = extract_keyframes(video, tmp_path / "kf", config, shots=shots.scenes)
    doc = json.loads(result.files["keyframes.json"].read_text())
    assert {kf["shot"] for kf in doc["keyframes"]} == set(by_number)  # every shot, numbered 1..N
    for i, kf in enumerate(doc["keyframes"]):
        start, end = by_number[kf["shot"]]
        assert start <= kf["frame"] < end, (kf, start, end)
        assert kf["path"].startswith(f"keyframes/kf_{i + 1:03d}_")


def test_mobilenet_features_one_row_per_sampled_frame(shot_video):
    path, truth = shot_video
    features = sample_frame_features(path, fps=2, kind="mobilenet_v2", size=112)
    duration = truth.num_frames / truth.fps
    assert features.features.shape == (len(features.frames), 1280)
    assert abs(len(features) - duration * 2) <= 2
    assert np.all(np.diff(features.times_s) > 0) and np.isfinite(features.features).all()
    # frames of one shot are closer to each other than to another shot's
    unit = features.features / np.linalg.norm(features.features, axis=1, keepdims=True)
    shot_of = np.searchsorted([s.end_frame for s in truth.scenes], features.frames, side="right")
    sim = unit @ unit.T
    same = sim[shot_of[:, None] == shot_of[None, :]].mean()
    other = sim[shot_of[:, None] != shot_of[None, :]].mean()
    assert same > other + 0.05


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="features"):
        KeyframeConfig(features="clip")
    with pytest.raises(ConfigError, match="max_similarity"):
        KeyframeConfig(max_similarity=0)
