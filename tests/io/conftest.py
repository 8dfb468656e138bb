"""Media shared by the io tests, written once per session."""

from __future__ import annotations

import numpy as np
import pytest

from vidlens.testing import write_lossless_video, write_pattern_video

# (file name, codec or None for the extension's default)
FORMATS = [
    ("h264.mp4", None),
    ("mpeg4.avi", None),
    ("mjpeg.avi", "mjpeg"),
    ("h264.mkv", None),
    ("vp9.webm", None),
    ("anim.gif", None),
]
NUM_FRAMES = 60


@pytest.fixture(scope="session")
def format_videos(media_dir):
    """60 pattern frames at 25 fps, 96x128, keyframe every 12 frames, in each supported format."""
    return {name: write_pattern_video(media_dir / name, NUM_FRAMES, 25, (96, 128), codec=codec, gop=12) for name, codec in FORMATS}


@pytest.fixture(scope="session")
def long_gop_video(media_dir):
    """600 frames, keyframe every 50: long enough that decoding from the start would show."""
    return write_pattern_video(media_dir / "long.mp4", 600, 25, (96, 128), gop=50)


@pytest.fixture(scope="session")
def lossless_frames():
    return np.random.default_rng(7).integers(0, 256, (6, 241, 321, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def lossless_odd_video(media_dir, lossless_frames):
    """Random noise at an odd size (321x241), FFV1 lossless: decoding must return it bit-exactly."""
    return write_lossless_video(media_dir / "odd_lossless.mkv", lossless_frames, fps=12)


@pytest.fixture(scope="session")
def vfr_video(media_dir):
    """40 frames: 20 at 33 ms intervals, then 20 at 100 ms."""
    times = np.cumsum([0.0] + [0.033 if i < 20 else 0.1 for i in range(39)])
    path = write_pattern_video(media_dir / "vfr.mp4", 40, 30, (96, 128), frame_times=times)
    return path, times


@pytest.fixture(scope="session")
def av_video(media_dir):
    """2 s of pattern video at 25 fps with a 440 Hz tone at 16 kHz."""
    return write_pattern_video(media_dir / "with_audio.mp4", 50, 25, (96, 128), audio_rate=16000)
