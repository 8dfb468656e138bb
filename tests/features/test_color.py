"""HSV histograms and histogram distances, on frames and across a hard cut in a real encoded video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidlens.features import extract_features, histogram_distance, hsv_histogram, hue_bin
from vidlens.io import VideoWriter


def solid(rgb, h=24, w=32):
    return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()


def test_histogram_blocks_are_l1_normalised():
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    hist = hsv_histogram(image, bins=(12, 5, 6))
    assert hist.shape == (23,) and hist.dtype == np.float32
    assert (hist >= 0).all()
    np.testing.assert_allclose([hist[:12].sum(), hist[12:17].sum(), hist[17:].sum()], 1.0, atol=1e-6)


def test_histogram_matches_a_numpy_reference():
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int64)
    assert hsv[:, 0].max() <= 179  # OpenCV's 8-bit hue range
    hb, sb, vb = 16, 8, 8
    h_idx = np.floor(((hsv[:, 0] + 180 / (2 * hb)) % 180) * hb / 180).astype(int)
    expected = np.concatenate([
        np.bincount(h_idx, minlength=hb), np.bincount(hsv[:, 1] * sb // 256, minlength=sb),
        np.bincount(hsv[:, 2] * vb // 256, minlength=vb),
    ]) / len(hsv)
    np.testing.assert_allclose(hsv_histogram(image), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("rgb", "degrees", "expected_bin"),
    [
        ((255, 0, 0), 0, 0),  # red: bin 0 is centred on hue 0
        ((255, 0, 12), 357, 0),  # a red just below 360 degrees wraps into the same bin
        ((0, 255, 0), 120, 5),  # 16 bins of 22.5 deg centred on k*22.5: 120 is in bin 5 (101.25..123.75)
        ((0, 0, 255), 240, 11),  # 240 is in bin 11 (236.25..258.75)
    ],
)
def test_pure_colour_lands_in_its_hue_bin(rgb, degrees, expected_bin):
    hist = hsv_histogram(solid(rgb))
    assert hue_bin(degrees) == expected_bin
    assert hist[expected_bin] == pytest.approx(1.0)
    assert hist[:16].sum() == pytest.approx(1.0)
    assert hist[16 + 7] == pytest.approx(1.0)  # saturation 255: last S bin
    assert hist[24 + 7] == pytest.approx(1.0)  # value 255: last V bin


def test_distance_is_zero_for_identical_and_one_for_disjoint():
    image = np.random.default_rng(2).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    h = hsv_histogram(image)
    for method in ("chi2", "intersection"):
        assert histogram_distance(h, h, method) == pytest.approx(0.0, abs=1e-9)
        a, b = np.array([1.0, 0, 0, 0]), np.array([0, 0, 0.5, 0.5])
        assert histogram_distance(a, b, method) == pytest.approx(1.0)
    # Half the mass moved: intersection distance is exactly the moved fraction.
    assert histogram_distance([1.0, 0.0], [0.5, 0.5], "intersection") == pytest.approx(0.5)
    assert 0 < histogram_distance([1.0, 0.0], [0.5, 0.5], "chi2") < 0.5
    with pytest.raises(ValueError):
        histogram_distance(h, h, "euclid")


def _scene(rng, base_rgb, h=72, w=96):
    texture = cv2.GaussianBlur(rng.normal(0, 40, (h + 16, w + 16)).astype(np.float32), (0, 0), 2)
    return lambda shift: np.clip(np.array(base_rgb, np.float32) + texture[8 : 8 + h, shift : shift + w, None], 0, 255).astype(np.uint8)


def test_distance_peaks_at_a_hard_cut(tmp_path):
    rng = np.random.default_rng(3)
    shot_a, shot_b = _scene(rng, (170, 60, 50)), _scene(rng, (40, 90, 180))
    cut = 11
    path = tmp_path / "cut.mp4"
    with VideoWriter(path, 25) as writer:  # lossy H.264, like real footage
        for i in range(20):
            writer.write((shot_a if i < cut else shot_b)(i % 8))
    table = extract_features(path, size=None, which="hsv")
    dist = table.column("hsv_dist")
    assert len(table) == 20
    assert int(table.frame_indices[np.argmax(dist)]) == cut
    assert dist[cut] > 0.3
    within = np.delete(dist, cut)
    assert within.max() < 0.05 and dist[0] == 0.0
