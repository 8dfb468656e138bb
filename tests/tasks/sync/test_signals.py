"""Sync signals and correlation: the file clock (stream start times), real timestamps on a VFR phone clip, lags
recovered from real audio shifted by the ffmpeg CLI, the peak/drift maths, mouth tracking on a real talking face."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from vidlens.errors import VideoDecodeError
from vidlens.tasks.sync import WindowOffset
from vidlens.tasks.sync import signals as sg
from vidlens.tasks.sync.correlate import RATE, find_peak, fit_drift, lag_grid, support, window_spans, xcorr
from vidlens.testing.sync_media import cut_clip, shift_audio

REAL = Path(__file__).resolve().parents[4] / "shared" / "realdata"
REAL = REAL if REAL.exists() else Path("/work/shared/realdata")
BBB_WEBM = REAL / "scenes" / "big_buck_bunny_0_30.webm"
GUANGFAN = REAL / "faces" / "guangfan.avi"
FIRE = REAL / "decode" / "fire2.mp4"

pytestmark = pytest.mark.skipif(not BBB_WEBM.exists(), reason="real sample media missing")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sync_signals")
    cut_clip(BBB_WEBM, d / "bbb.mp4", 17.0, 6.0, height=144)
    out = {"base": d / "bbb.mp4"}
    out["late"] = shift_audio(d / "bbb.mp4", d / "late.mp4", 300)
    out["early"] = shift_audio(d / "bbb.mp4", d / "early.mp4", -250)
    if GUANGFAN.exists():
        out["face"] = cut_clip(GUANGFAN, d / "face.mp4", 0.0, 2.0)
    return out


def _start_times(path: Path) -> dict[str, float]:
    text = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,start_time", "-of", "csv=p=0",
                           str(path)], capture_output=True, text=True, check=True).stdout
    return {kind: float(t) for kind, t in (line.split(",") for line in text.split())}


def test_audio_and_video_keep_the_file_clock(clips):
    base, late, early = (sg.decode_audio(clips[k]) for k in ("base", "late", "early"))
    # audio starts where ffprobe says (AAC priming may put it up to one 1024-sample frame earlier)
    assert late.start_s == pytest.approx(_start_times(clips["late"])["audio"], abs=0.025)
    assert late.start_s - base.start_s == pytest.approx(0.3, abs=0.025)
    assert sg.video_origin(str(clips["early"])) == pytest.approx(0.25, abs=0.002)
    assert sg.video_origin(str(clips["late"])) == pytest.approx(0.0, abs=0.002)
    motion = sg.video_motion(clips["early"])
    assert motion.times[0] == pytest.approx(0.25, abs=0.002)
    assert motion.fps == pytest.approx(24.0, rel=0.01)


def test_real_audio_lag_recovered_at_10ms(clips):
    """Onsets of the real soundtrack against the same soundtrack 300 ms later: the lag comes out exactly."""
    base, late = sg.decode_audio(clips["base"]), sg.decode_audio(clips["late"])
    n = int(7.0 * RATE)
    a0, a1 = sg.audio_onsets(base, n), sg.audio_onsets(late, n)
    lags = lag_grid(1000)
    curve = xcorr(a0, a1, lags)
    peak = find_peak(lags * 10.0, curve)
    assert peak is not None and abs(peak.offset_ms - 300.0) <= 10.0
    assert peak.confidence > 0.9 and peak.z > 8
    assert support(a0, a1, int(round(peak.offset_ms / 10))) > 3.0
    env = sg.audio_envelope(base, n, band=(300.0, 3000.0), log=True)
    assert np.isnan(env[-20:]).all() and np.isfinite(env[5:500]).all()


def test_vfr_timestamps_are_the_decoders():
    if not FIRE.exists():
        pytest.skip("sample missing")
    motion = sg.video_motion(FIRE)
    text = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time",
                           "-of", "csv=p=0", str(FIRE)], capture_output=True, text=True, check=True).stdout
    truth = np.array(sorted(float(x) for x in text.split()))
    assert motion.times.size == truth.size
    np.testing.assert_allclose(motion.times, truth, atol=0.002)
    gaps = np.diff(motion.times)
    assert gaps.max() > 1.2 * gaps.min()  # really variable frame rate (0.08-0.10 s)


def test_frames_to_grid_marks_gaps():
    times = np.array([0.0, 0.04, 0.08, 0.12, 0.40, 0.44])
    values = np.arange(6, dtype=float)
    valid = np.array([True, True, True, True, True, True])
    out = sg.frames_to_grid(times, values, 60, valid=valid)
    assert out[2] == pytest.approx(0.5) and np.isfinite(out[:13]).all()
    assert np.isnan(out[25]) and np.isnan(out[50])  # the 0.28 s hole, beyond the last frame


def test_peak_refines_and_refuses_flat_curves():
    lags = np.arange(-50, 51) * 10.0
    curve = np.exp(-((lags - 123.0) / 40.0) ** 2) + 0.02 * np.cos(lags / 37.0)
    peak = find_peak(lags, curve)
    assert peak is not None and abs(peak.offset_ms - 123.0) < 5.0 and peak.confidence > 0.9
    assert find_peak(lags, np.zeros_like(lags)) is None
    twin = np.exp(-((lags - 100) / 30.0) ** 2) + np.exp(-((lags + 300) / 30.0) ** 2)
    assert find_peak(lags, twin).confidence < 0.5  # two equal candidates: cannot tell


def test_drift_fit_needs_a_real_trend():
    spans = window_spans(30.0, 4.0)
    assert spans[0] == (0.0, 4.0) and spans[1] == (2.0, 6.0) and len(spans) == 14
    rng = np.random.default_rng(0)
    slope = 600.0  # ms per minute
    windows = [WindowOffset(s, e, 100 + slope * (s + e) / 120.0 + rng.normal(0, 8), 0.9) for s, e in spans]
    assert fit_drift(windows) == pytest.approx(slope, rel=0.1)
    flat = [WindowOffset(s, e, 100 + rng.normal(0, 8), 0.9) for s, e in spans]
    assert fit_drift(flat) is None
    unsure = [WindowOffset(w.start_s, w.end_s, w.offset_ms, 0.2) for w in windows]
    assert fit_drift(unsure) is None


def test_no_audio_stream_is_a_clear_error():
    path = REAL / "expressions" / "W011_front_angry_level3_001.mp4"
    if not path.exists():
        pytest.skip("sample missing")
    with pytest.raises(VideoDecodeError, match="no audio stream"):
        sg.decode_audio(path)


def test_mouth_track_on_a_real_talking_face(clips):
    if "face" not in clips:
        pytest.skip("talking-face sample missing")
    from vidlens.tasks.sync.mouth import MOUTH_SIZE, mouth_crops, mouth_track

    track = mouth_track(clips["face"], every=3, keep_crops=True)
    motion = sg.video_motion(clips["face"])
    assert track.found.mean() > 0.9 and track.detections == int(np.ceil(track.times.size / 3))
    np.testing.assert_allclose(track.times, motion.times, atol=1e-6)
    assert track.crops is not None and track.crops.shape == (track.times.size, *MOUTH_SIZE)
    assert track.crops.dtype == np.uint8 and track.crops[track.found].std() > 10
    assert np.isfinite(track.motion[1:][track.found[1:]]).all()
    # the mouth sits below the nose in every crop: mouth corners map into the crop's middle band
    lm = track.landmarks[track.found]
    assert (lm[:, 3, 1] > lm[:, 0, 1]).all()
    crops, times, found = mouth_crops(clips["face"], every=6)
    assert crops.shape[0] == times.size == found.size and crops.shape[1:] == MOUTH_SIZE
