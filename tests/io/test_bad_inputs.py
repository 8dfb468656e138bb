"""Bad input gets a clear VideoDecodeError, fast, and partial damage loses only what is damaged."""

import os
import shutil
import subprocess
import sys
import time
import warnings

import pytest

from vidlens.errors import VideoDecodeError
from vidlens.io import PartialDecodeWarning, frame_index, iter_frames, probe, read_audio, read_clip
from vidlens.testing import corrupt_middle, make_bad_files, read_pattern_index, write_pattern_video

REASONS = {
    "zero_byte": "empty file",
    "text": "not a readable media file",
    "truncated": "not a readable media file",
    "audio_only": "no video stream",
    "garbage": "not a readable media file",
    "missing": "does not exist",
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = write_pattern_video(folder / "good.mp4", 50, 25)
    return make_bad_files(folder, good)


@pytest.mark.parametrize("kind", sorted(REASONS))
@pytest.mark.parametrize("reader", ["probe", "read_clip", "iter_frames"])
def test_bad_file_raises_fast_with_its_reason(bad_files, kind, reader):
    path = bad_files[kind]
    calls = {
        "probe": lambda: probe(path),
        "read_clip": lambda: read_clip(path, [0]),
        "iter_frames": lambda: list(iter_frames(path)),
    }
    started = time.perf_counter()
    with pytest.raises(VideoDecodeError) as info:
        calls[reader]()
    assert time.perf_counter() - started < 2.0
    assert REASONS[kind] in info.value.reason
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(VideoDecodeError, match="is a directory"):
        probe(tmp_path)


def test_permission_denied(tmp_path):
    path = write_pattern_video(tmp_path / "secret.mp4", 5, 25)
    os.chmod(path, 0)
    os.chmod(tmp_path, 0o755)
    if os.geteuid() != 0:
        with pytest.raises(VideoDecodeError, match="permission denied"):
            probe(path)
        return
    # Root reads everything: drop the capabilities that bypass file permissions in a child process.
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a permission error")
    code = (
        "import sys\n"
        "from vidlens.io import probe\n"
        "from vidlens.errors import VideoDecodeError\n"
        "try:\n    probe(sys.argv[1])\nexcept VideoDecodeError as e:\n    print(e.reason)\n"
    )
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", sys.executable, "-c", code, str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert "permission denied" in result.stdout, result.stderr


def test_read_audio_reports_bad_files(bad_files):
    for kind in ("zero_byte", "text", "missing", "garbage"):
        with pytest.raises(VideoDecodeError):
            read_audio(bad_files[kind])


def test_partly_corrupt_file_yields_what_decodes_and_reports_the_rest(tmp_path):
    # MJPEG: every frame is its own packet, so damage hits only the frames it touches.
    good = write_pattern_video(tmp_path / "mj.mp4", 100, 25, codec="mjpeg")
    bad = corrupt_middle(good, tmp_path / "mj_bad.mp4", fraction=0.05)
    with pytest.warns(PartialDecodeWarning, match=r"damaged packets skipped; \d+ of the 100 frames listed in the header decoded"):
        frames = list(iter_frames(bad))
    assert 80 <= len(frames) < 100
    # What comes out is the real frames, with times that place them where they were
    # (a frame hit at its edge may still decode with concealed damage).
    shown = [read_pattern_index(f.image) for f in frames]
    assert sum(abs(f.time_s * 25 - n) < 1e-6 for f, n in zip(frames, shown)) >= 0.95 * len(frames)


def test_truncated_file_with_index_up_front(tmp_path):
    # 'faststart' puts the index first, so a cut file still opens: the lost tail is reported.
    path = write_pattern_video(tmp_path / "fs.mp4", 200, 25, container_options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "fs_cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    info = probe(cut)
    assert not info.complete
    assert info.warnings and "truncated" in info.warnings[0]
    assert 50 < info.num_frames < 200
    clip = read_clip(cut, [0, 10])
    assert [read_pattern_index(f) for f in clip] == [0, 10]
    with pytest.raises(VideoDecodeError, match="requested but the video has"):
        read_clip(cut, [199])


def test_strict_read_raises_on_missing_frames(tmp_path):
    good = write_pattern_video(tmp_path / "mj.avi", 100, 25, codec="mjpeg")
    bad = corrupt_middle(good, tmp_path / "mj_bad.avi", fraction=0.1)
    everything = list(range(frame_index(bad).num_frames))
    with pytest.raises(VideoDecodeError, match="could not be decoded"):
        read_clip(bad, everything, strict=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clip = read_clip(bad, everything)
    assert clip.shape[0] == len(everything)
    assert any(issubclass(w.category, PartialDecodeWarning) for w in caught)
