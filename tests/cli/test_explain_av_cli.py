"""`vidlens explain` on an audio-visual fusion checkpoint (`vidlens train-av`), end to end on real footage.

Clips made with the ffmpeg CLI: the same real pedestrian footage (OpenCV's vtest.avi) under a real voice (the
SyncNet sample's speaker) or real music (the Chaplin clip's score). The picture is identical for both labels, so
only the sound tells them apart; a model trained on them must be explained as resting on the audio, and the
seconds of the test video (3 s of voice, then 3 s of music, on footage it has not seen) must be ranked by
what is heard in them.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli.console import run_main
from vidlens.testing.real import opencv_sample, realdata

pytestmark = pytest.mark.usefixtures("one_thread")
SPEECH_S = (0.0, 3.0)  # the test video: voice in 0-3 s, music in 3-6 s


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def av_run(tmp_path_factory) -> dict[str, Path]:
    try:
        vtest, speech, music = opencv_sample("vtest.avi"), realdata("faces/guangfan.avi"), realdata("scenes/chaplin.mp4")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("explain_av")
    data = root / "data"
    (data / "clips").mkdir(parents=True)
    rows = []
    for label, source in (("speech", speech), ("music", music)):
        for k in range(14):  # 1 s clips from the first 6.5 s of each sound; the same picture for both labels
            out = data / "clips" / f"{label}_{k}.mp4"
            ffmpeg("-ss", 0.7 * k, "-t", 1, "-i", vtest, "-ss", 0.42 * k, "-t", 1, "-i", source, "-map", "0:v", "-map", "1:a",
                   "-vf", "scale=64:48", "-r", 10, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", 1,
                   "-ar", 16000, "-shortest", out)
            rows.append({"path": f"clips/{out.name}", "label": label, "split": "train" if k < 10 else "val"})
    with open(data / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    test = root / "voice_then_music.mp4"  # unseen footage (20-26 s) and unseen stretches of both sounds
    ffmpeg("-ss", 20, "-t", 6, "-i", vtest, "-ss", 6.9, "-t", 3, "-i", speech, "-ss", 6.5, "-t", 3, "-i", music,
           "-filter_complex", "[1:a]aresample=16000,aformat=channel_layouts=mono[a1];"
           "[2:a]aresample=16000,aformat=channel_layouts=mono[a2];[a1][a2]concat=n=2:v=0:a=1[a];[0:v]scale=128:96[v]",
           "-map", "[v]", "-map", "[a]", "-r", 10, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-t", 6, test)
    return {"root": root, "data": data, "test": test}


@pytest.fixture(scope="module")
def av_checkpoint(av_run) -> Path:
    from vidlens.cli.main import main  # capsys is function-scoped: the trainer runs through main() directly

    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "train-av", "--data", str(av_run["data"]), "--out", str(av_run["root"] / "run"), "--fusion", "late",
              "--epochs", "15", "--batch-size", "8", "--lr", "3e-3", "--num-frames", "4", "--size", "32"])
    assert exit_info.value.code in (0, None)
    return av_run["root"] / "run" / "best.pt"


def test_explain_an_av_model_rests_on_the_sound_and_ranks_the_seconds_by_it(av_run, av_checkpoint, tmp_path, capsys):
    out = tmp_path / "music"
    code, output = run_main(capsys, "explain", "--checkpoint", av_checkpoint, av_run["test"], "--out", out, "--target", "music",
                            "--no-video")
    assert code == 0, output
    assert "'music'" in output and "(occlusion, 6 clips)" in output and "audio" in output  # occlusion: the fusion default
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["model"] == "av_fusion (late)" and doc["method"] == "occlusion"
    # Measured: audio 0.90 of the decision (the picture is the same for both labels), music's windows 0.91 vs 0.33-0.62.
    assert doc["modalities"]["audio"] > 0.7, doc["modalities"]
    assert all(s >= SPEECH_S[1] for s in doc["top_seconds"]), doc["top_seconds"]  # music is heard in 3-6 s
    music_windows = [c["probability"] for c in doc["clips"] if c["start_s"] >= SPEECH_S[1]]
    voice_windows = [c["probability"] for c in doc["clips"] if c["end_s"] <= SPEECH_S[1]]
    assert min(music_windows) > max(voice_windows), doc["clips"]
    assert doc["crop_box"] == [0.0, 0.0, 1.0, 1.0] and doc["has_heat"]  # whole frames, as the model read them
    with np.load(out / "heat.npz") as z:
        assert z["heat"].shape[1:] == (32, 43)  # 128x96 video read at shorter side 32, as in training
    assert (out / "frames.png").stat().st_size > 0 and not (out / "overlay.mp4").exists()

    speech = tmp_path / "speech"
    code, output = run_main(capsys, "explain", "--checkpoint", av_checkpoint, av_run["test"], "--out", speech, "--target",
                            "speech", "--method", "integrated-gradients", "--no-video")
    assert code == 0, output
    doc = json.loads((speech / "explanation.json").read_text())
    assert doc["method"] == "integrated-gradients" and doc["modalities"]["audio"] > doc["modalities"]["video"]
    assert all(s < SPEECH_S[1] for s in doc["top_seconds"]), doc["top_seconds"]  # the voice is heard in 0-3 s


def test_explain_an_av_model_refuses_what_it_cannot_do(av_run, av_checkpoint, tmp_path, capsys):
    code, output = run_main(capsys, "explain", "--checkpoint", av_checkpoint, av_run["test"], "--out", tmp_path / "g",
                            "--method", "gradcam")
    assert code == 2 and "'gradcam' does not apply to this late model; use one of: occlusion, integrated-gradients" in output
    code, output = run_main(capsys, "explain", "--checkpoint", av_checkpoint, av_run["test"], "--out", tmp_path / "t",
                            "--target", "birdsong")
    assert code == 2 and "unknown label 'birdsong'" in output and "music" in output

    from vidlens.engine.checkpoint import save_checkpoint
    from vidlens.tasks.audiovisual import AVSpec, build_av_model

    spec = AVSpec(fusion="audio", num_frames=4, size=32)
    torch.manual_seed(0)
    audio_only = save_checkpoint(tmp_path / "audio_only.pt", {
        "model": "av_fusion", "model_args": {**spec.__dict__}, "labels": ["music", "speech"],
        "state_dict": build_av_model(spec, 2).state_dict(), "preprocess": {}})
    code, output = run_main(capsys, "explain", "--checkpoint", audio_only, av_run["test"], "--out", tmp_path / "a")
    assert code == 2 and "an audio-only model: there is no picture to explain" in output
    assert not (tmp_path / "a").exists() and not (tmp_path / "g").exists()
