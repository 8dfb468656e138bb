"""vidlens.data.samplers: pure index arithmetic, so every case is checked exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vidlens.data.samplers import (
    SamplerConfig,
    clip_indices,
    multi_clip_indices,
    random_clip_indices,
    resample_indices,
    sample_indices,
    tsn_indices,
    uniform_indices,
)
from vidlens.errors import ConfigError

NUM_FRAMES = [1, 2, 3, 7, 16, 17, 31, 100, 301]
CLIP_LENS = [1, 2, 8, 16]
STRIDES = [1, 2, 5]


def _check(idx: np.ndarray, num_frames: int, shape: tuple[int, ...]) -> None:
    assert idx.dtype == np.int64
    assert idx.shape == shape
    assert idx.min() >= 0 and idx.max() < num_frames


# ---------------------------------------------------------------- resample_indices


def test_resample_none_is_identity():
    np.testing.assert_array_equal(resample_indices(5, 30.0, None), np.arange(5))


def test_resample_down_picks_every_third_frame():
    np.testing.assert_array_equal(resample_indices(30, 30.0, 10.0), np.arange(0, 30, 3))
    # A tick that falls inside the last, partial period still shows a frame (as io.iter_frames does).
    np.testing.assert_array_equal(resample_indices(10, 30.0, 10.0), [0, 3, 6, 9])


def test_resample_up_repeats_frames():
    np.testing.assert_array_equal(resample_indices(3, 10.0, 30.0), [0, 0, 0, 1, 1, 1, 2, 2, 2])


def test_resample_ntsc_rate_shows_frame_on_screen():
    out = resample_indices(300, 30000 / 1001, 10.0)
    # Tick k at k/10 s shows the last frame starting at or before it.
    expected = np.floor(np.arange(out.size) / 10.0 * (30000 / 1001) + 1e-9).astype(np.int64)
    np.testing.assert_array_equal(out, expected)
    assert out.size == 101  # ceil(300 * 10 / 29.97)


@pytest.mark.parametrize("num_frames", NUM_FRAMES)
@pytest.mark.parametrize("src,dst", [(30, 10), (25, 8), (10, 30), (29.97, 15), (30, 0.5), (24, 24)])
def test_resample_in_range_and_monotonic(num_frames, src, dst):
    out = resample_indices(num_frames, src, dst)
    assert out.dtype == np.int64 and out.size >= 1
    assert out.min() == 0 and out.max() < num_frames
    assert np.all(np.diff(out) >= 0)
    assert out.size == max(1, int(np.ceil(num_frames * dst / src - 1e-6)))


# ---------------------------------------------------------------- uniform_indices


def test_uniform_takes_segment_centres():
    np.testing.assert_array_equal(uniform_indices(100, 4), [12, 37, 62, 87])
    np.testing.assert_array_equal(uniform_indices(8, 8), np.arange(8))


@pytest.mark.parametrize("num_frames", NUM_FRAMES)
@pytest.mark.parametrize("n", [1, 3, 8, 32])
def test_uniform_spread_over_whole_video(num_frames, n):
    idx = uniform_indices(num_frames, n)
    _check(idx, num_frames, (n,))
    assert np.all(np.diff(idx) >= 0)
    if num_frames >= n:
        assert np.unique(idx).size == n  # no repeats when there are enough frames
    else:
        assert np.unique(idx).size == num_frames  # every frame used, some repeated
    # Pick i lies in segment i, [i*N/n, (i+1)*N/n), at most half a frame from its centre.
    i = np.arange(n)
    assert np.all(idx + 1 > i * num_frames / n) and np.all(idx < (i + 1) * num_frames / n)
    assert np.all(np.abs(idx + 0.5 - (i + 0.5) * num_frames / n) <= 0.5 + 1e-9)


def test_uniform_repeats_when_short():
    np.testing.assert_array_equal(uniform_indices(2, 4), [0, 0, 1, 1])
    np.testing.assert_array_equal(uniform_indices(1, 5), [0, 0, 0, 0, 0])


# ---------------------------------------------------------------- clip_indices


def test_clip_indices_basic():
    np.testing.assert_array_equal(clip_indices(100, 4, 3, 10), [10, 13, 16, 19])


def test_short_video_loop_wraps_and_pad_repeats_last():
    np.testing.assert_array_equal(clip_indices(3, 7, 1, 0, "loop"), [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(clip_indices(3, 7, 1, 0, "pad"), [0, 1, 2, 2, 2, 2, 2])
    np.testing.assert_array_equal(clip_indices(5, 4, 2, 0, "loop"), [0, 2, 4, 1])
    np.testing.assert_array_equal(clip_indices(5, 4, 2, 0, "pad"), [0, 2, 4, 4])


@pytest.mark.parametrize("mode", ["loop", "pad"])
def test_one_frame_video(mode):
    np.testing.assert_array_equal(clip_indices(1, 16, 4, 0, mode), np.zeros(16))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(random_clip_indices(1, 8, 2, rng, mode), np.zeros(8))
    assert multi_clip_indices(1, 8, 2, 3, mode).tolist() == [[0] * 8] * 3
    for sampler_mode in ("clip", "uniform", "tsn"):
        cfg = SamplerConfig(mode=sampler_mode, clip_len=8, num_clips=2, short_video=mode)
        for train in (True, False):
            out = sample_indices(cfg, 1, 30.0, train, np.random.default_rng(1))
            assert out.dtype == np.int64 and np.all(out == 0)


@pytest.mark.parametrize(
    "num_frames,clip_len,stride", list(itertools.product(NUM_FRAMES, CLIP_LENS, STRIDES))
)
@pytest.mark.parametrize("short_video", ["loop", "pad"])
def test_random_and_multi_clip_shapes_and_ranges(num_frames, clip_len, stride, short_video):
    rng = np.random.default_rng(num_frames * 1000 + clip_len * 10 + stride)
    span = (clip_len - 1) * stride + 1
    for _ in range(5):
        idx = random_clip_indices(num_frames, clip_len, stride, rng, short_video)
        _check(idx, num_frames, (clip_len,))
        if span <= num_frames:
            # Fits: a plain strided run, never wrapped or padded.
            np.testing.assert_array_equal(np.diff(idx), np.full(clip_len - 1, stride))
        else:
            ideal = stride * np.arange(clip_len)
            if short_video == "pad":
                np.testing.assert_array_equal(idx, np.minimum(ideal, num_frames - 1))
            else:
                np.testing.assert_array_equal(idx, ideal % num_frames)
    multi = multi_clip_indices(num_frames, clip_len, stride, 3, short_video)
    _check(multi, num_frames, (3, clip_len))


def test_random_clip_covers_every_start():
    rng = np.random.default_rng(0)
    starts = {int(random_clip_indices(20, 4, 2, rng)[0]) for _ in range(500)}
    assert starts == set(range(20 - 7 + 1))  # span 7: starts 0..13, all reachable


# ---------------------------------------------------------------- multi_clip_indices


def test_multi_clip_covers_start_to_end():
    clips = multi_clip_indices(100, 8, 2, 5)
    assert clips.shape == (5, 8)
    assert clips[0, 0] == 0 and clips[-1, -1] == 99
    starts = clips[:, 0]
    assert np.all(np.diff(starts) > 0)
    assert np.diff(starts).max() - np.diff(starts).min() <= 1  # evenly spread
    np.testing.assert_array_equal(np.diff(clips, axis=1), np.full((5, 7), 2))


def test_single_test_clip_is_centred():
    (clip,) = multi_clip_indices(100, 10, 1, 1)
    assert clip[0] == 45 and clip[-1] == 54


def test_multi_clip_short_video_all_views_start_at_zero():
    clips = multi_clip_indices(5, 8, 1, 3, "pad")
    assert clips.tolist() == [[0, 1, 2, 3, 4, 4, 4, 4]] * 3


# ---------------------------------------------------------------- tsn_indices


def test_tsn_test_takes_centres():
    np.testing.assert_array_equal(tsn_indices(100, 4, train=False), [12, 37, 62, 87])
    np.testing.assert_array_equal(tsn_indices(100, 4, train=False), uniform_indices(100, 4))


@pytest.mark.parametrize("num_frames,segments", [(100, 8), (10, 3), (8, 8), (33, 7), (301, 16)])
def test_tsn_train_stays_in_segments_and_varies(num_frames, segments):
    edges = (np.arange(segments + 1) * num_frames) // segments
    draws = np.stack([tsn_indices(num_frames, segments, True, np.random.default_rng(s)) for s in range(50)])
    assert draws.dtype == np.int64 and draws.shape == (50, segments)
    assert np.all(draws >= edges[:-1]) and np.all(draws < edges[1:])
    if num_frames >= 2 * segments:
        # Different generators give different frames, and each segment's draws vary.
        assert len({tuple(d) for d in draws}) > 10
        assert all(np.unique(draws[:, i]).size > 1 for i in range(segments))


def test_tsn_fewer_frames_than_segments():
    out = tsn_indices(3, 8, True, np.random.default_rng(0))
    _check(out, 3, (8,))
    assert np.all(np.diff(out) >= 0)
    _check(tsn_indices(3, 8, False), 3, (8,))


# ---------------------------------------------------------------- sample_indices


@pytest.mark.parametrize("mode", ["clip", "uniform", "tsn"])
@pytest.mark.parametrize("num_frames", [1, 5, 64, 250])
def test_sample_indices_shapes(mode, num_frames):
    cfg = SamplerConfig(mode=mode, clip_len=8, stride=2, num_clips=4)
    train = sample_indices(cfg, num_frames, 25.0, True, np.random.default_rng(0))
    _check(train, num_frames, (8,))
    test = sample_indices(cfg, num_frames, 25.0, False)
    _check(test, num_frames, (1 if mode == "uniform" else 4, 8))  # clip and tsn average num_clips views


def test_segment_views_spread_inside_segments_and_one_view_is_the_centres():
    from vidlens.data.samplers import segment_views

    np.testing.assert_array_equal(segment_views(100, 4, 1), [uniform_indices(100, 4)])
    views = segment_views(100, 4, 3)  # segments of 25 frames; offsets 1/6, 1/2, 5/6 of each
    np.testing.assert_array_equal(views, [[4, 29, 54, 79], [12, 37, 62, 87], [20, 45, 70, 95]])
    # Several views of a tsn sampler see distinct frames that cover the clip; each stays in its segment.
    cfg = SamplerConfig(mode="tsn", clip_len=8, num_clips=4)
    test = sample_indices(cfg, 160, 25.0, False)
    assert len(np.unique(test)) == test.size
    assert ((test // 20) == np.arange(8)[None, :]).all()
    # A 5-frame trimmed clip: views still stay inside the clip.
    assert segment_views(5, 8, 3).max() == 4 and segment_views(5, 8, 3).min() == 0


def test_sample_indices_fps_resampling_maps_back_to_source():
    # 30 fps source, 10 fps target, stride 1 at 10 fps = every 3rd source frame.
    cfg = SamplerConfig(mode="clip", clip_len=4, fps=10.0, num_clips=1)
    for seed in range(20):
        idx = sample_indices(cfg, 90, 30.0, True, np.random.default_rng(seed))
        assert idx[0] % 3 == 0
        np.testing.assert_array_equal(np.diff(idx), [3, 3, 3])
    (test,) = sample_indices(cfg, 90, 30.0, False)
    np.testing.assert_array_equal(test, [39, 42, 45, 48])  # centred in the 30-tick timeline
    # Upsampling 10 -> 30 fps repeats each source frame three times.
    up = SamplerConfig(mode="clip", clip_len=6, fps=30.0)
    (clip,) = sample_indices(up, 10, 10.0, False)
    np.testing.assert_array_equal(clip, [4, 4, 4, 5, 5, 5])  # 30 ticks, centred start 12


def test_sample_indices_stride_counts_target_fps_ticks():
    cfg = SamplerConfig(mode="clip", clip_len=3, stride=2, fps=12.5, num_clips=2)
    test = sample_indices(cfg, 100, 25.0, False)
    np.testing.assert_array_equal(test, [[0, 4, 8], [90, 94, 98]])


def test_sample_indices_deterministic_with_seed_and_at_test():
    for mode in ("clip", "tsn"):
        cfg = SamplerConfig(mode=mode, clip_len=8, num_clips=3)
        a = [sample_indices(cfg, 300, 30.0, True, np.random.default_rng(7)) for _ in range(3)]
        assert all(np.array_equal(a[0], x) for x in a)
        b = [sample_indices(cfg, 300, 30.0, True, np.random.default_rng(s)) for s in range(10)]
        assert len({tuple(x) for x in b}) > 1
        t = [sample_indices(cfg, 300, 30.0, False, np.random.default_rng(s)) for s in range(3)]
        assert all(np.array_equal(t[0], x) for x in t)


def test_uniform_mode_same_in_train_and_test():
    cfg = SamplerConfig(mode="uniform", clip_len=5, num_clips=7)
    train = sample_indices(cfg, 50, 30.0, True, np.random.default_rng(0))
    np.testing.assert_array_equal(train, [5, 15, 25, 35, 45])
    np.testing.assert_array_equal(sample_indices(cfg, 50, 30.0, False), train[None])


# ---------------------------------------------------------------- config and errors


def test_config_round_trip():
    cfg = SamplerConfig(mode="tsn", clip_len=8, stride=2, fps=15.0, num_clips=3, short_video="pad")
    d = cfg.to_dict()
    assert d == {"mode": "tsn", "clip_len": 8, "stride": 2, "fps": 15.0, "num_clips": 3, "short_video": "pad"}
    assert SamplerConfig.from_dict(d) == cfg
    assert SamplerConfig.from_dict({}) == SamplerConfig()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "dense"},
        {"clip_len": 0},
        {"clip_len": -3},
        {"clip_len": 2.5},
        {"stride": 0},
        {"num_clips": 0},
        {"fps": 0.0},
        {"fps": -1.0},
        {"short_video": "wrap"},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ConfigError):
        SamplerConfig(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="frames"):
        SamplerConfig.from_dict({"frames": 8})


@pytest.mark.parametrize(
    "call",
    [
        lambda: resample_indices(0, 30.0, 10.0),
        lambda: resample_indices(10, 0.0, 10.0),
        lambda: resample_indices(10, 30.0, -5.0),
        lambda: uniform_indices(0, 4),
        lambda: uniform_indices(10, 0),
        lambda: clip_indices(10, 0, 1, 0),
        lambda: clip_indices(10, 4, 0, 0),
        lambda: clip_indices(10, 4, 1, 10),
        lambda: clip_indices(10, 4, 1, -1),
        lambda: clip_indices(10, 4, 1, 0, "wrap"),
        lambda: random_clip_indices(-1, 4, 1, np.random.default_rng()),
        lambda: multi_clip_indices(10, 4, 1, 0),
        lambda: tsn_indices(10, 0, False),
        lambda: tsn_indices(0, 3, True, np.random.default_rng()),
        lambda: sample_indices(SamplerConfig(), 0, 30.0, False),
        lambda: sample_indices(SamplerConfig(fps=10.0), 10, 0.0, False),
    ],
)
def test_bad_arguments_raise_config_error(call):
    with pytest.raises(ConfigError) as info:
        call()
    assert info.value.path is None and info.value.reason
