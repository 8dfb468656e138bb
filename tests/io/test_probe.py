import numpy as np
import pytest

from tests.io.conftest import FORMATS, NUM_FRAMES
from vidlens.io import probe
from vidlens.testing import sample_media, write_pattern_video


@pytest.mark.parametrize("name", [name for name, _ in FORMATS])
def test_probe_every_format(format_videos, name):
    info = probe(format_videos[name])
    assert info.num_frames == NUM_FRAMES
    assert info.fps == pytest.approx(25.0, rel=1e-3)
    assert info.duration_s == pytest.approx(NUM_FRAMES / 25, rel=1e-3)
    assert (info.width, info.height) == (128, 96)
    assert not info.is_vfr
    assert info.complete and info.warnings == []
    assert not info.has_audio


def test_frame_count_is_exact_when_the_header_is_silent(format_videos):
    # Matroska and WebM headers carry no frame count; the packet scan still counts every frame.
    for name in ("h264.mkv", "vp9.webm"):
        info = probe(format_videos[name])
        assert info.header_frames == 0
        assert info.num_frames == NUM_FRAMES


def test_variable_frame_rate_is_detected(vfr_video):
    path, times = vfr_video
    info = probe(path)
    assert info.is_vfr
    assert info.num_frames == 40
    expected_duration = times[-1] + 0.1
    assert info.duration_s == pytest.approx(expected_duration, abs=0.01)
    assert info.fps == pytest.approx(40 / expected_duration, rel=0.01)


@pytest.mark.parametrize("fps", [60, 30000 / 1001])
def test_millisecond_clock_rounding_is_not_vfr(tmp_path, fps):
    # Matroska stores times in ms: 60 fps becomes 16/17 ms steps, which is still constant frame rate.
    info = probe(write_pattern_video(tmp_path / "cfr.mkv", 30, fps, (48, 64)))
    assert not info.is_vfr
    assert info.fps == pytest.approx(fps, rel=0.01)


def test_rotation_is_reported_and_sizes_are_as_displayed(tmp_path):
    info = probe(write_pattern_video(tmp_path / "phone.mp4", 5, 30, (96, 128), rotation=90))
    assert info.rotation == 90
    assert (info.coded_width, info.coded_height) == (128, 96)
    assert (info.width, info.height) == (96, 128)


def test_audio_fields(av_video):
    info = probe(av_video)
    assert info.has_audio
    assert info.audio_sample_rate == 16000
    assert info.audio_channels == 1
    assert info.audio_codec == "aac"


def test_odd_size(lossless_odd_video):
    info = probe(lossless_odd_video)
    assert (info.width, info.height) == (321, 241)
    assert info.codec == "ffv1"


@pytest.mark.parametrize(
    "name, frames, size, fps, audio",
    [
        ("bigbuckbunny.mp4", 132, (1280, 720), 25.0, True),
        ("bikes.mp4", 250, (640, 272), 25.0, False),
        ("carphone_pristine.mp4", 120, (176, 144), 30000 / 1001, False),
    ],
)
def test_real_sample_videos(name, frames, size, fps, audio):
    info = probe(sample_media(name))
    assert info.num_frames == frames
    assert (info.width, info.height) == size
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert info.has_audio is audio
    assert info.codec == "h264"


def test_to_dict_is_json_ready(format_videos):
    import json

    data = json.loads(json.dumps(probe(format_videos["h264.mp4"]).to_dict()))
    assert data["num_frames"] == NUM_FRAMES
    assert np.isfinite(data["duration_s"])
