"""`vidlens emotion VIDEO --av-model RUN/best.pt`: a model from `emotion train-av` applied per face track."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from vidlens.cli.main import main
from vidlens.data.synthetic import make_audiovisual_dataset
from vidlens.testing.real import realdata_dir

pytestmark = pytest.mark.usefixtures("one_thread")


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code or 0


@pytest.fixture(scope="module")
def av_run(tmp_path_factory):
    """A late-fusion model trained for 2 epochs on the synthetic audio-visual set (labels negative/neutral/positive)."""
    root = tmp_path_factory.mktemp("av")
    make_audiovisual_dataset(root / "data", num_per_class=8, size=32, signal="both", workers=1, seed=5)
    assert _run(["emotion", "train-av", "--data", str(root / "data"), "--out", str(root / "run"), "--fusion", "late",
                 "--epochs", "2", "--size", "32", "--num-frames", "4", "--batch-size", "8"]) == 0
    return root


def test_av_model_per_face_track_on_a_real_talking_face(av_run, tmp_path, capsys):
    try:
        video = realdata_dir() / "faces" / "guangfan.avi"  # 10 s, one frontal speaker, with voice
    except FileNotFoundError:
        pytest.skip("shared/realdata is not here")
    capsys.readouterr()
    assert _run(["emotion", str(video), "--out", str(tmp_path / "out"), "--fps", "2",
                 "--av-model", str(av_run / "run" / "best.pt")]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "out" / "emotion.json").read_text())
    labels = torch.load(av_run / "run" / "best.pt", weights_only=True)["labels"]
    assert labels == ["negative", "neutral", "positive"] and doc["labels"][0] == "angry"  # the faces keep their 7
    assert doc["av"]["labels"] == labels and doc["av"]["scope"] == "faces" and doc["av"]["fusion"] == "late"
    assert doc["av"]["clip_s"] == 1.0 and doc["av"]["notes"] == []  # it has audio
    assert doc["tracks"]
    windows = 0
    for track in doc["tracks"]:
        assert track["av_labels"] == labels and list(track["av_probs"]) == labels
        assert sum(track["av_probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert track["av_dominant"] == max(track["av_probs"], key=track["av_probs"].get)
        span = track["end_s"] - track["start_s"]
        assert len(track["av_windows"]) == max(1, math.ceil(span - 1e-9))  # 1 s windows tile the track
        for w in track["av_windows"]:
            assert w["end_s"] - w["start_s"] == pytest.approx(1.0, abs=1e-3)
            assert track["start_s"] - 1.0 <= w["start_s"] and w["end_s"] <= track["end_s"] + 1.0
            assert sum(w["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        mean = np.mean([[w["probs"][k] for k in labels] for w in track["av_windows"]], axis=0)
        assert np.allclose(mean, [track["av_probs"][k] for k in labels], atol=1e-3)  # the track = its windows' mean
        windows += len(track["av_windows"])
        assert f"face #{track['id']}:" in out
    assert "av (late, " in out
    rows = list(csv.DictReader(open(tmp_path / "out" / "av.csv")))
    assert len(rows) == windows and {r["scope"] for r in rows} == {f"track{t['id']}" for t in doc["tracks"]}
    assert set(rows[0]) == {"scope", "start_s", "end_s", "dominant", "p_negative", "p_neutral", "p_positive"}


def test_av_model_on_a_synthetic_clip_reads_it_as_training_did(av_run, tmp_path):
    """The cartoon faces are no detector's faces: whole frames, one 1 s window, exactly the training input."""
    from vidlens.data.multimodal import AudioVisualDataset
    from vidlens.tasks.audiovisual import load_av_model

    data = AudioVisualDataset(av_run / "data", "test", num_frames=4, size=32, seconds=1.0)
    item = data[0]
    assert _run(["emotion", item["meta"]["path"], "--out", str(tmp_path / "out"),
                 "--av-model", str(av_run / "run" / "best.pt")]) == 0
    doc = json.loads((tmp_path / "out" / "emotion.json").read_text())
    assert doc["tracks"] == [] and doc["av"]["scope"] == "frames" and len(doc["av"]["windows"]) == 1
    model, labels, _ = load_av_model(av_run / "run" / "best.pt")
    with torch.no_grad():
        expected = torch.softmax(model({"video": item["video"][None], "audio": item["audio"][None]}), -1)[0].numpy()
    got = np.array([doc["av"]["probs"][k] for k in labels])
    assert got.sum() == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(got, expected, atol=2e-3), (got, expected)


def test_audio_only_baseline_and_bad_checkpoints(av_run, tmp_path, capsys):
    from vidlens.tasks.emotion import EmotionConfig, analyse_emotions
    from vidlens.tasks.emotion.av_apply import apply_av_model, load_av

    # A single-modality baseline takes one tensor, not the dict: the same code path serves it.
    assert _run(["emotion", "train-av", "--data", str(av_run / "data"), "--out", str(tmp_path / "audio"),
                 "--fusion", "audio", "--epochs", "1", "--batch-size", "8"]) == 0
    clip = next((av_run / "data" / "positive").glob("*.mp4"))
    av = apply_av_model(analyse_emotions(clip, EmotionConfig(fps=4)), load_av(tmp_path / "audio" / "best.pt"))
    assert av.fusion == "audio" and av.video_probs.sum() == pytest.approx(1.0, abs=1e-4)
    capsys.readouterr()
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    expression_ckpt = tmp_path / "audio" / "log.csv"
    for bad, reason in ((tmp_path / "missing.pt", "does not exist"), (notes, "not a readable vidlens checkpoint"),
                        (expression_ckpt, "not a readable vidlens checkpoint")):
        assert _run(["emotion", str(clip), "--out", str(tmp_path / "x"), "--av-model", str(bad)]) == 2
        err = capsys.readouterr().err
        assert reason in err and str(bad.name) in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()  # nothing written for a run that could not start
