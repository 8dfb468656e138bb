import tracemalloc

import numpy as np
import pytest

from tests.io.conftest import FORMATS, NUM_FRAMES
from vidlens.io import iter_frames
from vidlens.testing import read_pattern_index, sample_media, write_pattern_video


@pytest.mark.parametrize("name", [name for name, _ in FORMATS])
def test_every_frame_in_order(format_videos, name):
    frames = list(iter_frames(format_videos[name]))
    assert [f.index for f in frames] == list(range(NUM_FRAMES))
    assert [read_pattern_index(f.image) for f in frames] == list(range(NUM_FRAMES))
    assert frames[10].time_s == pytest.approx(0.4)


def test_lower_fps_picks_the_frame_on_screen_at_each_tick(format_videos):
    frames = list(iter_frames(format_videos["h264.mp4"], fps=10))
    assert len(frames) == 24  # 2.4 s at 10 fps
    assert [f.time_s for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2])
    expected = [int(np.floor(k * 2.5 + 1e-9)) for k in range(24)]  # 25 fps source: frame on screen at t=k/10
    assert [f.index for f in frames] == expected
    assert [read_pattern_index(f.image) for f in frames] == expected


def test_higher_fps_repeats_frames(format_videos):
    frames = list(iter_frames(format_videos["h264.mp4"], fps=50))
    assert len(frames) == 120
    assert [f.index for f in frames[:6]] == [0, 0, 1, 1, 2, 2]


def test_start_and_end_seek_and_keep_exact_indices(long_gop_video):
    frames = list(iter_frames(long_gop_video, start=10.0, end=10.4))
    assert [f.index for f in frames] == list(range(250, 260))
    assert [read_pattern_index(f.image) for f in frames] == list(range(250, 260))
    assert frames[0].time_s == pytest.approx(10.0)
    resampled = list(iter_frames(long_gop_video, fps=5, start=20.0, end=21.0))
    assert [f.index for f in resampled] == [500, 505, 510, 515, 520]


def test_resize_and_vfr_resampling(vfr_video):
    path, times = vfr_video
    frames = list(iter_frames(path, fps=10, size=48))
    assert frames[0].image.shape == (48, 64, 3)
    for f in frames:
        on_screen = int(np.searchsorted(times, f.time_s + 1e-9, side="right") - 1)
        assert read_pattern_index(f.image) == on_screen


def test_memory_stays_flat_on_a_long_video(tmp_path):
    path = write_pattern_video(tmp_path / "long.mp4", 1500, 25, (96, 128), gop=250)
    all_frames_bytes = 1500 * 96 * 128 * 3
    tracemalloc.start()
    count = 0
    for frame in iter_frames(path, fps=12):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 720
    assert peak < all_frames_bytes / 20


def test_real_sample_streams_at_reduced_rate():
    frames = list(iter_frames(sample_media("bikes.mp4"), fps=5, size=64))
    assert len(frames) == 50
    assert frames[0].image.shape == (64, 151, 3)
    assert frames[-1].time_s == pytest.approx(9.8)
