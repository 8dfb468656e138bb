"""`vidlens summarize VIDEO`: shots -> scores -> knapsack -> a frame-exact summary mp4 with its audio."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vidlens.cli.main import main
from vidlens.data.synthetic.shots import make_shot_video
from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io import probe, read_audio, read_clip
from vidlens.tasks.summarize.pipeline import (
    Segment,
    SummaryConfig,
    merged_spans,
    select_segments,
    split_into_segments,
    summarize_video,
)
from vidlens.testing import make_bad_files, sample_media


@pytest.fixture(scope="module")
def shot_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("sumvid") / "shots.mp4"
    truth = make_shot_video(path, num_shots=8, size=(144, 256), seed=5)
    return path, truth


def test_long_shots_are_split_into_equal_sub_shots():
    class Shot:
        def __init__(self, a, b):
            self.start_frame, self.end_frame = a, b

    segments = split_into_segments([Shot(0, 30), Shot(30, 130)], fps=10, max_segment_s=4)
    assert [(s.start_frame, s.end_frame, s.shot) for s in segments] == [(0, 30, 0), (30, 63, 1), (63, 97, 1), (97, 130, 1)]
    assert segments[1].start_s == pytest.approx(3.0)


def test_knapsack_selection_respects_the_budget_and_prefers_high_scores():
    segments = [Segment(0, 40, 0, 4, 0, score=0.9), Segment(40, 60, 4, 6, 1, score=0.2),
                Segment(60, 90, 6, 9, 2, score=0.8), Segment(90, 100, 9, 10, 3, score=0.1)]
    select_segments(segments, num_frames=100, ratio=0.7)  # budget 70 frames
    assert [s.selected for s in segments] == [True, False, True, False]
    assert merged_spans(segments) == [(0, 40), (60, 90)]


def test_summary_of_a_shot_video_is_short_exact_and_documented(shot_video, tmp_path):
    path, truth = shot_video
    result = summarize_video(path, tmp_path, SummaryConfig(ratio=0.2, method="kmeans", features="hsv", keyframes=True,
                                                            shot_method="classic"))  # synthetic: the classic rules find all 7
    assert 0.1 * truth.num_frames <= result.summary_frames <= 0.2 * truth.num_frames
    assert result.num_shots == len(truth.scenes)  # the detector found every shot
    for seg in result.segments:  # no segment straddles a shot boundary
        scene = truth.scenes[seg.shot]
        assert scene.start_frame <= seg.start_frame < seg.end_frame <= scene.end_frame
    info = probe(result.files["summary.mp4"])
    assert info.num_frames == result.summary_frames
    # The summary's frames are the source's selected frames, in order.
    spans = merged_spans(result.segments)
    source_frames = np.concatenate([np.arange(a, b) for a, b in spans])
    pick = [0, len(source_frames) // 2, len(source_frames) - 1]
    got = read_clip(result.files["summary.mp4"], pick).astype(int)
    want = read_clip(path, source_frames[pick]).astype(int)
    assert np.abs(got - want).mean() < 4
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["ratio_requested"] == 0.2 and doc["ratio_achieved"] <= 0.2
    assert len(doc["frame_scores"]["score"]) == len(result.features)
    assert {"start_s", "end_s", "start_frame", "end_frame", "score"} <= set(doc["selected"][0])
    rows = list(csv.DictReader(open(tmp_path / "segments.csv")))
    assert len(rows) == len(result.segments) and sum(int(r["selected"]) for r in rows) == len(result.selected)
    assert (tmp_path / "importance.png").stat().st_size > 5000
    assert (tmp_path / "contact_sheet.png").exists() and list((tmp_path / "keyframes").glob("*.jpg"))


def test_summary_keeps_the_audio_in_sync(tmp_path):
    video = sample_media("bigbuckbunny.mp4")  # 5.3 s, 720p, 6-channel 48 kHz audio, one shot
    result = summarize_video(video, tmp_path, SummaryConfig(ratio=0.4, method="uniform", features="hsv", keyframes=False,
                                                            max_segment_s=1.0))
    info = probe(result.files["summary.mp4"])
    assert info.has_audio and info.num_frames == result.summary_frames
    seconds = result.summary_frames / info.fps
    assert read_audio(result.files["summary.mp4"]).shape[1] / 16000 == pytest.approx(seconds, abs=0.1)


def test_dsn_per_video_summary_covers_several_scenes(shot_video, tmp_path):
    path, truth = shot_video
    result = summarize_video(path, tmp_path, SummaryConfig(ratio=0.3, dsn_epochs=30, keyframes=False, video=False))
    assert len({s.shot for s in result.selected}) >= 3  # diverse: not one long shot
    assert np.isfinite(result.scores).all() and result.scores.max() == pytest.approx(1.0)


def test_cli_summarize_video_and_bad_inputs(shot_video, tmp_path, capsys):
    path, _ = shot_video
    with pytest.raises(SystemExit) as exit_info:
        main(["summarize", str(path), "--out", str(tmp_path / "cli"), "--method", "kmeans", "--features", "hsv",
              "--no-keyframes"])
    assert exit_info.value.code in (0, None)
    assert "summary: kept" in capsys.readouterr().out
    assert (tmp_path / "cli" / "summary.mp4").exists()
    bad = make_bad_files(tmp_path / "bad", path)
    for name in ("zero_byte", "text", "audio_only", "garbage", "missing"):
        with pytest.raises(VideoDecodeError):
            summarize_video(bad[name], tmp_path / name, SummaryConfig(method="uniform", features="hsv"))
    with pytest.raises(ConfigError, match="ratio"):
        SummaryConfig(ratio=1.5)


def test_dsn_trained_on_a_folder_of_videos_then_used_on_a_new_one(tmp_path, capsys):
    folder = tmp_path / "corpus"
    for seed in range(3):
        make_shot_video(folder / f"v{seed}.mp4", num_shots=4, size=(72, 128), seed=seed, shot_seconds=(1.0, 2.0))
    (folder / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(SystemExit) as exit_info:
        main(["summarize", "train", "--videos", str(folder), "--out", str(tmp_path / "model"), "--features", "hsv",
              "--epochs", "20"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "skipped" in out and "broken.mp4" in out and "trained dsn on 3 videos" in out
    new = make_shot_video(tmp_path / "new.mp4", num_shots=5, size=(72, 128), seed=11, shot_seconds=(1.0, 2.0))
    result = summarize_video(tmp_path / "new.mp4", tmp_path / "sum",
                             SummaryConfig(method="model", model=str(tmp_path / "model" / "model.pt"), keyframes=False))
    assert result.config.features == "hsv"  # taken from the checkpoint, not the default
    assert 0 < result.summary_frames <= 0.15 * new.num_frames
    with pytest.raises(SystemExit) as exit_info:
        main(["summarize", "train", "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "exactly one of --h5 FILE or --videos DIR" in capsys.readouterr().err
