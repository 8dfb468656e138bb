"""Farneback flow on a textured pattern translated by a known number of pixels per frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidlens.features import FeatureExtractor, direction_degrees, flow_statistics, optical_flow


def texture(h, w, seed=0, sigma=2.0):
    """Smoothed noise rescaled to a contrast of 40 grey levels (std): a pattern every window can track."""
    blurred = cv2.GaussianBlur(np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    return np.clip(128 + 40 * blurred / blurred.std(), 0, 255).astype(np.uint8)


def moving(h, w, dx, dy, steps=3, margin=40):
    """Gray crops of one large texture whose content moves by (dx, dy) px per frame (dx>0 right, dy>0 down)."""
    big = texture(h + 2 * margin, w + 2 * margin)
    return [big[margin - i * dy : margin - i * dy + h, margin - i * dx : margin - i * dx + w] for i in range(steps)]


def angle_error(a, b):
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize(("dx", "dy", "degrees", "main_bin"), [(3, 0, 0, 0), (-3, 0, 180, 4), (0, 3, 270, 6)])
def test_translation_direction_and_magnitude(dx, dy, degrees, main_bin):
    prev, cur = moving(96, 128, dx, dy, steps=2)  # shorter side 96 <= 128: flow at full size
    stats = flow_statistics(optical_flow(prev, cur))
    k = float(np.hypot(dx, dy))
    assert stats.mean_magnitude == pytest.approx(k, rel=0.15)
    assert angle_error(direction_degrees(stats.mean_dx, stats.mean_dy), degrees) < 5
    assert int(np.argmax(stats.direction_hist)) == main_bin and stats.direction_hist[main_bin] > 0.8
    assert stats.direction_hist.sum() == pytest.approx(1.0, abs=1e-5)
    assert stats.magnitude_hist.sum() == pytest.approx(1.0, abs=1e-5)


def test_flow_on_a_reduced_grid_is_scaled_back_to_input_pixels():
    k = 6
    prev, cur = moving(256, 320, k, 0, steps=2)
    flow = optical_flow(prev, cur, flow_size=128)
    assert flow.shape == (128, 160, 2)  # computed at half size ...
    stats = flow_statistics(flow)
    assert stats.mean_magnitude == pytest.approx(k, rel=0.15)  # ... reported in input pixels
    assert stats.mean_dx == pytest.approx(k, rel=0.15) and abs(stats.mean_dy) < 0.3


def test_extractor_flow_features_rightwards_then_leftwards():
    frames = moving(96, 128, 2, 0, steps=3)
    frames += moving(96, 128, -2, 0, steps=3)[1:]  # a new texture crop, then moving left
    extractor = FeatureExtractor(which=("flow",))
    rows = [extractor.update(cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)) for f in frames]
    assert rows[0]["flow_mag"][0] == 0.0 and not rows[0]["flow_dir_hist"].any()  # no previous frame
    assert rows[1]["flow_dx"][0] == pytest.approx(2, rel=0.15) and rows[2]["flow_dx"][0] == pytest.approx(2, rel=0.15)
    assert rows[4]["flow_dx"][0] == pytest.approx(-2, rel=0.15)
    assert np.argmax(rows[1]["flow_dir_hist"]) == 0 and np.argmax(rows[4]["flow_dir_hist"]) == 4
    assert rows[1]["flow_dir_hist"].shape == (8,) and rows[1]["flow_mag_hist"].shape == (8,)


def test_static_pair_has_no_flow():
    still = texture(64, 64)
    stats = flow_statistics(optical_flow(still, still))
    assert stats.mean_magnitude < 0.02
    assert stats.magnitude_hist[0] == pytest.approx(1.0)
