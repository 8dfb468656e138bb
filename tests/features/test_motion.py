"""Frame-difference energy and changed-pixel fraction."""

from __future__ import annotations

import numpy as np
import pytest

from vidlens.features import extract_features, frame_difference, to_gray
from vidlens.testing import write_lossless_video, write_pattern_video


def test_difference_of_known_frames():
    black = np.zeros((10, 10), np.uint8)
    white = np.full((10, 10), 255, np.uint8)
    assert frame_difference(black, white) == (pytest.approx(1.0), pytest.approx(1.0))
    half = black.copy()
    half[:, :5] = 51  # a 0.2 step on half the pixels
    energy, changed = frame_difference(black, half, threshold=0.1)
    assert energy == pytest.approx(0.1) and changed == pytest.approx(0.5)
    assert frame_difference(black, half, threshold=0.2).changed == 0.0  # strictly above the threshold
    with pytest.raises(ValueError):
        frame_difference(black, np.zeros((5, 5), np.uint8))


def test_gray_is_bt601_luma():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(to_gray(rgb)[0], [76, 150, 29], atol=1)


def test_static_video_has_zero_difference(tmp_path):
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = write_lossless_video(tmp_path / "static.mkv", np.stack([frame] * 12))
    table = extract_features(path, size=None, which=("diff",))
    assert len(table) == 12 and table.names == ["diff_energy", "diff_changed"]
    assert np.all(table.column("diff_energy") == 0.0)
    assert np.all(table.column("diff_changed") == 0.0)


def test_changing_video_has_positive_difference(tmp_path):
    path = write_pattern_video(tmp_path / "pattern.mp4", 10, size=(48, 64))
    energy = extract_features(path, size=None, which="diff").column("diff_energy")
    assert energy[0] == 0.0  # no previous frame
    assert (energy[1:] > 0.01).all()
