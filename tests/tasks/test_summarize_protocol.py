"""SumMe/TVSum protocol: knapsack, summary generation, F-score, HDF5/splits loading."""

from __future__ import annotations

import itertools
import json

import h5py
import numpy as np
import pytest

from vidlens.errors import DatasetError
from vidlens.tasks.summarize import (
    evaluate_summary, frame_scores_from_picks, generate_summary, knapsack, load_h5, load_splits, make_splits, resolve_metric,
)


def _brute(values, weights, capacity):
    best, best_set = 0.0, ()
    for r in range(len(values) + 1):
        for subset in itertools.combinations(range(len(values)), r):
            if sum(weights[i] for i in subset) <= capacity:
                v = sum(values[i] for i in subset)
                if v > best + 1e-12:
                    best, best_set = v, subset
    return best, best_set


def test_knapsack_hand_case_and_ties():
    assert knapsack([60, 100, 120], [10, 20, 30], 50) == [1, 2]
    assert knapsack([60, 100, 120], [10, 20, 30], 0) == []
    assert knapsack([1.0, 1.0], [1, 1], 1) == [0]  # equal items: the earlier one, deterministically
    assert knapsack([-1.0, 0.0, 2.0], [1, 1, 5], 3) == []  # non-positive values never taken; item 2 too heavy
    assert knapsack([], [], 10) == []


def test_knapsack_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        values = rng.random(n).round(3).tolist()
        weights = rng.integers(0, 12, n).tolist()
        capacity = int(rng.integers(0, 30))
        picks = knapsack(values, weights, capacity)
        assert picks == sorted(set(picks))
        assert sum(weights[i] for i in picks) <= capacity
        best, _ = _brute(values, weights, capacity)
        assert sum(values[i] for i in picks) == pytest.approx(best, abs=1e-9)


def test_knapsack_fast_on_long_video():
    import time

    rng = np.random.default_rng(1)
    weights = rng.integers(30, 300, 200)  # ~33k frames in 200 shots, 15 % budget
    start = time.perf_counter()
    picks = knapsack(rng.random(200).tolist(), weights.tolist(), int(weights.sum() * 0.15))
    assert time.perf_counter() - start < 1.0 and picks


def test_evaluate_summary_hand_computed():
    machine = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    users = np.array([
        [1, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # overlap 2: P 2/4, R 2/2, F 2/3
        [0, 0, 0, 1, 1, 1, 0, 0, 0, 0],  # overlap 1: P 1/4, R 1/3, F 2/7
        [0, 0, 0, 0, 0, 0, 0, 1, 1, 1],  # overlap 0: F 0
    ])
    f, p, r = evaluate_summary(machine, users, "avg")
    assert f == pytest.approx((2 / 3 + 2 / 7 + 0) / 3, abs=1e-6)  # 0.317460
    assert p == pytest.approx(0.25, abs=1e-6)
    assert r == pytest.approx((1 + 1 / 3) / 3, abs=1e-6)  # 0.444444
    f, p, r = evaluate_summary(machine, users, "max")
    assert (f, p, r) == pytest.approx((2 / 3, 0.5, 1.0), abs=1e-6)
    # non-binary input is binarised; a longer machine summary is cropped, a shorter one zero-padded
    f2 = evaluate_summary(np.concatenate([machine * 0.3, [1, 1]]), users, "max")
    assert f2 == pytest.approx((2 / 3, 0.5, 1.0), abs=1e-6)
    f3 = evaluate_summary(machine[:6], users, "avg")
    assert f3[0] == pytest.approx((2 / 3 + 2 / 7) / 3, abs=1e-6)
    assert evaluate_summary(np.zeros(10), users, "avg") == (0.0, 0.0, 0.0)


def test_frame_scores_and_generate_summary_hand_made_video():
    n_frames = 90
    picks = np.arange(0, 90, 15)  # subsampled by 15: 0, 15, ..., 75
    scores = np.array([0.1, 0.9, 0.8, 0.2, 0.3, 0.7])
    frame = frame_scores_from_picks(scores, picks, n_frames)
    assert frame[14] == pytest.approx(0.1) and frame[15] == pytest.approx(0.9) and frame[89] == pytest.approx(0.7)
    cps = np.array([[0, 19], [20, 39], [40, 59], [60, 89]])
    nfps = np.array([20, 20, 20, 30])
    # segment means: 0.30, 0.85, 0.35, 0.50
    summary = generate_summary(scores, cps, n_frames, nfps, picks, ratio=0.5)  # capacity 45: segments 1 + 2
    expected = np.zeros(n_frames)
    expected[20:60] = 1
    np.testing.assert_array_equal(summary, expected)
    summary = generate_summary(scores, cps, n_frames, nfps, picks, ratio=0.34)  # capacity 30: segment 1 only
    expected = np.zeros(n_frames)
    expected[20:40] = 1
    np.testing.assert_array_equal(summary, expected)
    assert generate_summary(scores, cps, n_frames, nfps, picks, ratio=0.15).sum() == 0  # capacity 13: nothing fits


def _write_video(group, n_picks=8, with_fields=None):
    n_frames = n_picks * 15
    data = {
        "features": np.random.default_rng(0).random((n_picks, 4)).astype(np.float32),
        "gtscore": np.linspace(0, 1, n_picks).astype(np.float32),
        "user_summary": np.zeros((3, n_frames), dtype=np.float32),
        "change_points": np.array([[0, 59], [60, n_frames - 1]]),
        "n_frame_per_seg": np.array([60, n_frames - 60]),
        "n_frames": n_frames,
        "picks": np.arange(0, n_frames, 15),
    }
    for name in with_fields or data:
        group[name] = data[name]


def test_load_h5_and_missing_field(tmp_path):
    path = tmp_path / "tvsum_small.h5"
    with h5py.File(path, "w") as handle:
        _write_video(handle.create_group("video_1"))
        handle["video_1/video_name"] = "cats"
        _write_video(handle.create_group("video_2"))
    records = load_h5(path)
    assert list(records) == ["video_1", "video_2"]
    assert records["video_1"].features.shape == (8, 4) and records["video_1"].n_frames == 120
    assert records["video_1"].video_name == "cats" and records["video_2"].gtsummary is None
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as handle:
        _write_video(handle.create_group("video_1"))
        _write_video(handle.create_group("video_9"), with_fields=["features", "gtscore", "change_points", "n_frame_per_seg", "n_frames", "picks"])
    with pytest.raises(DatasetError, match="video_9.*user_summary") as info:
        load_h5(bad)
    assert info.value.path == str(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_h5(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        load_h5(tmp_path / "text.h5")


def test_splits_roundtrip_and_metric(tmp_path):
    keys = [f"video_{i}" for i in range(1, 11)]
    splits = make_splits(keys, folds=5, seed=0)
    assert len(splits) == 5
    tested = [k for s in splits for k in s["test_keys"]]
    assert sorted(tested) == sorted(keys)
    for s in splits:
        assert set(s["train_keys"]) | set(s["test_keys"]) == set(keys) and not set(s["train_keys"]) & set(s["test_keys"])
    assert make_splits(keys, 5, 0) == splits and make_splits(keys, 5, 1) != splits
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(splits))
    assert load_splits(path) == splits
    path.write_text(json.dumps([{"train_keys": ["a"]}]))
    with pytest.raises(DatasetError, match="test_keys"):
        load_splits(path)
    assert resolve_metric("auto", "eccv16_dataset_summe_google_pool5.h5") == "max"
    assert resolve_metric("auto", "eccv16_dataset_tvsum_google_pool5.h5") == "avg"
    assert resolve_metric("max", "tvsum.h5") == "max"
