"""`extract_features` over real and synthetic videos, the `FeatureTable` files, and flat memory."""

from __future__ import annotations

import csv
import tracemalloc

import numpy as np
import pytest

from vidlens.errors import ConfigError, VideoDecodeError, VidlensError
from vidlens.features import FEATURE_GROUPS, FeatureConfig, FeatureExtractor, FeatureTable, extract_features
from vidlens.testing import make_bad_files, sample_media, write_pattern_video

SCALARS = [
    "hsv_dist", "diff_energy", "diff_changed", "flow_mag", "flow_dx", "flow_dy",
    "edge_density", "edge_ecr", "edge_ecr_in", "edge_ecr_out",
]


@pytest.fixture(scope="module")
def bikes_table():
    done = []
    table = extract_features(sample_media("bikes.mp4"), fps=5, progress=done.append)
    return table, done


def test_real_video_at_5_fps_has_consistent_rows(bikes_table):
    table, done = bikes_table
    n = len(table)
    assert n == 50  # 10.0 s at 5 fps
    np.testing.assert_allclose(table.times, np.arange(n) / 5, atol=1e-6)
    np.testing.assert_array_equal(table.frame_indices, np.arange(n) * 5)  # 25 fps source
    assert table.times.dtype == np.float64 and table.frame_indices.dtype == np.int64
    assert all(arr.shape[0] == n for arr in table.features.values())
    assert table.features["hsv_hist"].shape == (n, 32)
    assert table.features["flow_dir_hist"].shape == (n, 8) and table.features["flow_mag_hist"].shape == (n, 8)
    assert table.scalar_columns() == SCALARS
    assert all(np.isfinite(arr).all() for arr in table.features.values())
    np.testing.assert_allclose(table.features["hsv_hist"].sum(axis=1), 3.0, atol=1e-4)
    for name in ("hsv_dist", "diff_energy", "diff_changed", "edge_density", "edge_ecr"):
        assert ((table.column(name) >= 0) & (table.column(name) <= 1)).all(), name
    assert table.meta["frame_size"] == [160, 376]  # 640x272 with the shorter side at 160
    assert done == list(range(1, n + 1))


def test_npz_and_csv_round_trip(bikes_table, tmp_path):
    table, _ = bikes_table
    back = FeatureTable.from_npz(table.to_npz(tmp_path / "f.npz"))
    assert back.names == table.names and back.meta["which"] == list(FEATURE_GROUPS)
    np.testing.assert_array_equal(back.times, table.times)
    np.testing.assert_array_equal(back.frame_indices, table.frame_indices)
    for name in table.names:
        np.testing.assert_array_equal(back.features[name], table.features[name])
    with open(table.to_csv(tmp_path / "f.csv"), newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["time_s", "frame", *SCALARS]
    assert len(rows) == len(table) + 1
    assert rows[2][:2] == ["0.200", "5"]
    assert float(rows[2][2]) == pytest.approx(table.column("hsv_dist")[1], rel=1e-5)


def test_from_npz_rejects_other_files(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VidlensError, match="not a vidlens feature file"):
        FeatureTable.from_npz(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(VidlensError):
        FeatureTable.from_npz(tmp_path / "text.npz")


def test_which_start_end_and_errors(tmp_path):
    path = write_pattern_video(tmp_path / "p.mp4", 40, fps=20, size=(48, 64))
    table = extract_features(path, size=None, which="edges,hsv", start=0.5, end=1.5)
    assert table.names == ["hsv_hist", "hsv_dist", "edge_density", "edge_ecr", "edge_ecr_in", "edge_ecr_out"]
    assert table.frame_indices.tolist() == list(range(10, 30))
    assert table.times[0] == pytest.approx(0.5)
    assert table.column("hsv_dist")[0] == 0.0  # the first analysed frame has no previous one
    empty = extract_features(path, size=None, which="diff", start=5.0)
    assert len(empty) == 0 and empty.features["diff_energy"].shape == (0, 1)
    with pytest.raises(ConfigError, match="unknown feature group"):
        extract_features(path, which=("hsv", "colour"))
    with pytest.raises(ConfigError):
        extract_features(path, which="")
    with pytest.raises(ConfigError):
        FeatureConfig(hist_distance="euclid")
    text = make_bad_files(tmp_path / "bad", path)["text"]
    with pytest.raises(VideoDecodeError):
        extract_features(text)


def test_extractor_resets_on_a_new_frame_size():
    extractor = FeatureExtractor()
    rng = np.random.default_rng(0)
    extractor.update(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    row = extractor.update(rng.integers(0, 256, (40, 32, 3), dtype=np.uint8))
    assert row["diff_energy"][0] == 0.0 and row["edge_ecr"][0] == 0.0 and row["flow_mag"][0] == 0.0
    assert set(row) == set(extractor.dims())
    assert all(row[name].shape == (d,) for name, d in extractor.dims().items())


@pytest.mark.slow
def test_memory_stays_flat_on_a_long_video(tmp_path):
    n, h, w = 2000, 64, 64
    path = write_pattern_video(tmp_path / "long.mp4", n, fps=25, size=(h, w), preset="ultrafast")
    all_frames_bytes = n * h * w * 3  # 24.6 MB if the video were held in memory
    tracemalloc.start()
    try:
        # Every feature group; flow on a 32 px grid only to keep the test fast (memory does not depend on it).
        table = extract_features(path, size=None, config=FeatureConfig(flow_size=32))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == n
    feature_bytes = sum(arr.nbytes for arr in table.features.values()) + table.times.nbytes * 2
    assert peak < all_frames_bytes / 10, f"peak {peak / 1e6:.1f} MB"
    assert peak < 4 * feature_bytes + 2_000_000, f"peak {peak / 1e6:.1f} MB for {feature_bytes / 1e6:.2f} MB of features"
