"""Synthetic shot-boundary videos: the file, its ground truth and the pixels agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidlens.data.synthetic import ShotGroundTruth, make_shot_dataset, make_shot_video
from vidlens.errors import ConfigError
from vidlens.io import probe, read_clip

SIZE, FPS = (72, 128), 25
OPTIONS = dict(num_shots=5, fps=FPS, size=SIZE, shot_seconds=(1.0, 1.8), transition_frames=(8, 12),
               hard_case_prob={"flash": 1.0, "fast_object": 1.0, "fast_pan": 0.5})


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("shots") / "shots.mp4"
    gt = make_shot_video(path, seed=3, **OPTIONS)
    frames = read_clip(path, list(range(gt.num_frames))).astype(np.float32)
    return path, gt, frames


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_file_matches_ground_truth(video):
    path, gt, frames = video
    info = probe(path)
    assert info.num_frames == gt.num_frames == len(frames)
    assert (info.height, info.width) == SIZE and info.fps == pytest.approx(FPS) and info.codec == "h264"
    # frame count = sum of the shots' pure frames + the transitions' frames
    transition_frames = sum(t.end_frame - t.start_frame for t in gt.transitions)
    assert gt.num_frames == sum(s["length"] for s in gt.shots) + transition_frames
    on_disk = json.loads(path.with_suffix(".json").read_text())
    assert on_disk == json.loads(json.dumps(gt.to_dict()))
    assert ShotGroundTruth.load(path) == gt


def test_timeline_is_consistent(video):
    _, gt, _ = video
    assert {t.type for t in gt.transitions} == {"cut", "fade", "dissolve"}  # 4 boundaries: every type dealt
    assert len(gt.transitions) == len(gt.shots) - 1 == len(gt.scenes) - 1
    assert gt.scenes[0].start_frame == 0 and gt.scenes[-1].end_frame == gt.num_frames
    for before, after in zip(gt.scenes, gt.scenes[1:]):
        assert before.end_frame == after.start_frame  # scenes partition the video
    for i, t in enumerate(gt.transitions):
        assert t.start_frame == gt.shots[i]["end_frame"] and t.end_frame == gt.shots[i + 1]["start_frame"]
        assert t.start_s == round(t.start_frame / FPS, 3) and t.end_s == round(t.end_frame / FPS, 3)
        if t.type == "cut":
            assert t.start_frame == t.end_frame
        else:
            assert 8 <= t.end_frame - t.start_frame <= 12
        assert t.start_frame <= gt.scenes[i + 1].start_frame <= t.end_frame
    kinds = {h["type"] for h in gt.hard_cases}
    assert {"flash", "fast_object"} <= kinds
    for h in gt.hard_cases:  # hard cases sit inside a shot's pure frames
        shot = gt.shots[h["shot"]]
        assert shot["start_frame"] <= h["start_frame"] < h["end_frame"] <= shot["end_frame"]


def _within_shot_diffs(gt: ShotGroundTruth, frames: np.ndarray) -> np.ndarray:
    """Differences between consecutive frames that are both pure frames of one shot, flashes excluded."""
    flash = {f for h in gt.hard_cases if h["type"] == "flash" for f in range(h["start_frame"], h["end_frame"])}
    diffs = []
    for shot in gt.shots:
        for f in range(shot["start_frame"] + 1, shot["end_frame"]):
            if f not in flash and f - 1 not in flash:
                diffs.append(_mad(frames[f], frames[f - 1]))
    return np.asarray(diffs)


def test_cuts_spike_and_nothing_within_shots_does(video):
    _, gt, frames = video
    within = _within_shot_diffs(gt, frames)
    cuts = [t for t in gt.transitions if t.type == "cut"]
    assert cuts
    for cut in cuts:
        jump = _mad(frames[cut.start_frame], frames[cut.start_frame - 1])
        assert jump > 4 * np.median(within) and jump > within.max(), (jump, np.median(within), within.max())


def test_flashes_are_bright_but_not_boundaries(video):
    _, gt, frames = video
    brightness = frames.mean(axis=(1, 2, 3))
    boundaries = {t.start_frame for t in gt.transitions}
    for h in (h for h in gt.hard_cases if h["type"] == "flash"):
        inside = brightness[h["start_frame"] : h["end_frame"]].min()
        around = max(brightness[h["start_frame"] - 1], brightness[h["end_frame"]])
        assert inside > around + 30
        assert not boundaries & set(range(h["start_frame"] - 2, h["end_frame"] + 2))


def test_fades_go_through_black(video):
    _, gt, frames = video
    brightness = frames.mean(axis=(1, 2, 3))
    for t in (t for t in gt.transitions if t.type == "fade"):
        k_out = (t.end_frame - t.start_frame) // 2
        black = t.start_frame + k_out - 1  # the last fade-out frame
        assert brightness[black] < 6
        assert brightness[t.start_frame - 1] > brightness[black] + 20
        assert brightness[t.end_frame] > brightness[black] + 20
        fade_out = brightness[t.start_frame - 1 : black + 1]
        assert (np.diff(fade_out) < 1.0).all()  # dims steadily
        fade_in = brightness[black : t.end_frame + 1]
        assert (np.diff(fade_in) > -1.0).all()  # brightens steadily


def test_dissolves_blend_both_shots(video):
    _, gt, frames = video
    for t in (t for t in gt.transitions if t.type == "dissolve"):
        a, b = frames[t.start_frame - 1], frames[t.end_frame]
        mid = frames[(t.start_frame + t.end_frame) // 2]
        assert _mad(mid, (a + b) / 2) < 0.5 * min(_mad(mid, a), _mad(mid, b))
        steps = [_mad(frames[f], frames[f - 1]) for f in range(t.start_frame, t.end_frame + 1)]
        assert max(steps) < 0.5 * _mad(a, b)  # gradual: no single step does the change


def test_same_seed_same_video_other_seed_not(video, tmp_path):
    _, gt, frames = video
    again = make_shot_video(tmp_path / "again.mp4", seed=3, **OPTIONS)
    assert again.to_dict() | {"path": None} == gt.to_dict() | {"path": None}
    n = min(60, gt.num_frames)
    assert np.array_equal(read_clip(tmp_path / "again.mp4", list(range(n))), frames[:n].astype(np.uint8))
    other = make_shot_video(tmp_path / "other.mp4", seed=4, **OPTIONS)
    assert other.to_dict()["transitions"] != gt.to_dict()["transitions"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError):
        make_shot_video(tmp_path / "x.mp4", transitions=("cut", "wipe"))
    with pytest.raises(ConfigError):
        make_shot_video(tmp_path / "x.mp4", num_shots=0)


def test_dataset_and_cli(tmp_path):
    info = make_shot_dataset(tmp_path / "ds", 2, num_shots=(2, 3), fps=FPS, size=(48, 64), seed=1,
                             shot_seconds=(0.6, 1.0), transition_frames=(4, 6), workers=2)
    assert [p.name for p in info.videos] == ["video_0000.mp4", "video_0001.mp4"]
    for path, gt in zip(info.videos, info.ground_truth, strict=True):
        assert probe(path).num_frames == gt.num_frames and ShotGroundTruth.load(path) == gt
        assert gt.seed[:1] == [1]
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["kind"] == "shots" and meta["num_frames"] == [gt.num_frames for gt in info.ground_truth]

    exe = Path(sys.executable).parent / "vidlens"
    out = tmp_path / "cli_shots"
    result = subprocess.run(
        [str(exe), "data", "synth", "shots", str(out), "--videos", "1", "--shots", "2", "--size", "48x64",
         "--seed", "5", "--transitions", "fade", "--workers", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 1 video (" in result.stdout and str(out) in result.stdout
    gt = ShotGroundTruth.load(out / "video_0000.json")
    assert [t.type for t in gt.transitions] == ["fade"] and probe(out / "video_0000.mp4").num_frames == gt.num_frames
    bad = subprocess.run([str(exe), "data", "synth", "shots", str(tmp_path / "bad"), "--transitions", "wipe"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "wipe" in bad.stderr
