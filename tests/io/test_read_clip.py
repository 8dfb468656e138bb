import numpy as np
import pytest

import vidlens.io.reader as reader
from tests.io.conftest import FORMATS, NUM_FRAMES
from vidlens.errors import VideoDecodeError
from vidlens.io import read_clip
from vidlens.testing import read_pattern_index, sample_media, write_lossless_video, write_pattern_video

REQUEST = [0, 5, 59, 17, 33, 34, 2, 17]  # out of order, crossing keyframes, with a repeat


def decoded_indices(clip):
    return [read_pattern_index(frame) for frame in clip]


@pytest.mark.parametrize("name", [name for name, _ in FORMATS])
def test_exact_frames_in_every_format(format_videos, name):
    clip = read_clip(format_videos[name], REQUEST)
    assert clip.dtype == np.uint8
    assert clip.shape == (len(REQUEST), 96, 128, 3)
    assert decoded_indices(clip) == REQUEST


def test_lossless_odd_size_is_bit_exact(lossless_odd_video, lossless_frames):
    clip = read_clip(lossless_odd_video, [5, 0, 3])
    np.testing.assert_array_equal(clip, lossless_frames[[5, 0, 3]])


def test_resize_shorter_side_keeps_aspect(format_videos):
    clip = read_clip(format_videos["h264.mp4"], [3, 40], size=48)
    assert clip.shape == (2, 48, 64, 3)
    assert decoded_indices(clip) == [3, 40]


def test_resize_exact_size_stretches(format_videos):
    clip = read_clip(format_videos["h264.mp4"], [7], size=(60, 60), keep_aspect=False)
    assert clip.shape == (1, 60, 60, 3)
    assert decoded_indices(clip) == [7]


def test_keep_aspect_letterboxes_to_the_exact_size(format_videos):
    clip = read_clip(format_videos["h264.mp4"], [7], size=(96, 96), keep_aspect=True)
    assert clip.shape == (1, 96, 96, 3)
    # 128x96 fitted into 96x96 is 96x72: black bars of 12 rows above and below.
    assert clip[0, :10].max() == 0 and clip[0, -10:].max() == 0
    assert clip[0, 12:84].mean() > 20


def test_odd_target_and_odd_source_sizes(tmp_path):
    import cv2

    rng = np.random.default_rng(3)
    # Smooth, natural-looking content at an odd size (noise is the one case the fast resize aliases).
    frames = np.stack([cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (321, 241)) for _ in range(3)])
    path = write_lossless_video(tmp_path / "smooth_odd.mkv", frames)
    clip = read_clip(path, [1], size=(33, 47), keep_aspect=False)
    assert clip.shape == (1, 33, 47, 3)
    expected = cv2.resize(frames[1], (47, 33), interpolation=cv2.INTER_AREA)
    assert np.abs(clip[0].astype(int) - expected).mean() < 3


def test_timestamps_pick_the_frame_on_screen(vfr_video):
    path, times = vfr_video
    asked = [0.0, 0.5, 1.0, 2.0, 99.0]
    expected = list(np.clip(np.searchsorted(times, asked, side="right") - 1, 0, 39))
    assert decoded_indices(read_clip(path, timestamps=asked)) == expected


def test_frame_out_of_range_is_a_clear_error(format_videos):
    with pytest.raises(VideoDecodeError, match="frame 60 requested but the video has 60 frames"):
        read_clip(format_videos["h264.mp4"], [0, 60])
    with pytest.raises(ValueError):
        read_clip(format_videos["h264.mp4"], [])


def test_seeks_instead_of_decoding_from_the_start(long_gop_video, monkeypatch):
    """Frames near the end of a 600-frame file cost about one GOP (50 frames) of decoding, not 600."""
    decoded = {"n": 0}
    real = reader.decode_packets

    def counting(*args, **kwargs):
        for frame in real(*args, **kwargs):
            decoded["n"] += 1
            yield frame

    monkeypatch.setattr(reader, "decode_packets", counting)
    clip = read_clip(long_gop_video, [560, 590, 595])
    assert decoded_indices(clip) == [560, 590, 595]
    assert decoded["n"] <= 60
    decoded["n"] = 0
    # Two far-apart frames: two seeks, not a decode of everything in between.
    assert decoded_indices(read_clip(long_gop_video, [101, 502])) == [101, 502]
    assert decoded["n"] <= 2 * 55


def test_many_clips_from_one_file_agree_with_sequential_decoding(long_gop_video):
    rng = np.random.default_rng(0)
    for _ in range(10):
        start = int(rng.integers(0, 600 - 32))
        wanted = list(range(start, start + 32, 4))
        assert decoded_indices(read_clip(long_gop_video, wanted, size=64)) == wanted


def test_one_frame_video(tmp_path):
    path = write_pattern_video(tmp_path / "one.mp4", 1, 25)
    clip = read_clip(path, [0, 0, 0])
    assert decoded_indices(clip) == [0, 0, 0]


def test_rotated_video_is_returned_upright(tmp_path):
    path = write_pattern_video(tmp_path / "phone.mp4", 6, 30, (96, 128), rotation=90)
    clip = read_clip(path, [4])
    assert clip.shape == (1, 128, 96, 3)
    # Display rotation is 90 degrees counter-clockwise: undoing it gives the stored pattern back.
    assert read_pattern_index(np.rot90(clip[0], k=-1)) == 4
    clip = read_clip(path, [4], size=32)
    assert clip.shape == (1, 43, 32, 3)


def test_colour_matches_ffmpeg_conversion_on_real_footage():
    """Our fast YUV->RGB path agrees with FFmpeg's own rgb24 conversion on real 720p video."""
    import av

    path = sample_media("bigbuckbunny.mp4")
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == 40:
                reference = frame.to_ndarray(format="rgb24")
                break
    ours = read_clip(path, [40])[0]
    diff = np.abs(ours.astype(int) - reference)
    assert diff.mean() < 2.0 and diff.max() <= 8


def test_real_video_with_b_frames_random_access_matches_sequential():
    import av

    path = sample_media("bikes.mp4")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    wanted = [249, 3, 120, 121, 200, 0]
    clip = read_clip(path, wanted)
    for got, i in zip(clip, wanted):
        assert np.abs(got.astype(int) - frames[i]).mean() < 2.0, f"frame {i}"
