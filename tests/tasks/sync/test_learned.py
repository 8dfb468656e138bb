"""The `learned` sync method (SyncNet-style, trained self-supervised) on real talking-face footage.

What this data can show, and what it cannot: a 6 s cut of one speaker (guangfan) is all there is to train on, so
the network memorises it. The tests check what truly holds: after training it ranks the true alignment of a
re-encoded, shifted copy of that footage far above shifted pairings (the untrained network does not), and it finds
the ffmpeg-made shift of such copies within one frame; on a different person (hamilton) it must not claim
confidence. Plus checkpoint round-trip, atomic write, weights_only loading and clear errors for bad inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from vidlens.errors import CheckpointError, ConfigError, DatasetError, VideoDecodeError
from vidlens.tasks.sync import CONFIDENT, estimate_sync
from vidlens.tasks.sync.learned import learned_offset, load_features, load_learned, train_sync
from vidlens.tasks.sync.learned_net import SyncNet, SyncNetConfig
from vidlens.tasks.sync.learned_train import SyncTrainConfig, ranking_accuracy, save_checkpoint
from vidlens.testing import sample_media
from vidlens.testing.real import realdata
from vidlens.testing.sync_media import cut_clip, shift_audio

pytestmark = pytest.mark.usefixtures("one_thread")
FRAME_MS = 1000.0 / 30.0
EPOCHS = 60


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """An in-sync 6 s cut of the SyncNet talking-face sample, copies with the audio 200 ms late and 120 ms early,
    a 6.5 s cut of hamilton (another person, on stage) and a 1 s cut (too short)."""
    folder = tmp_path_factory.mktemp("sync_learned")
    face = cut_clip(realdata("faces/guangfan.avi"), folder / "face.mp4", 0.0, 6.0)
    return {
        "face": face,
        "late": shift_audio(face, folder / "face_late200.mp4", 200),
        "early": shift_audio(face, folder / "face_early120.mp4", -120),
        "other": cut_clip(realdata("faces/short_hamilton_clip.mp4"), folder / "hamilton.mp4", 1.0, 6.5),
        "short": cut_clip(realdata("faces/guangfan.avi"), folder / "short.mp4", 0.0, 1.0),
    }


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory) -> Path:
    """A checkpoint trained on the in-sync cut (every window trained on: the same footage is checked below)."""
    out = tmp_path_factory.mktemp("sync_ckpt") / "sync.pt"
    return train_sync([clips["face"]], out, epochs=EPOCHS, holdout=False, seed=0)


def test_training_learns_the_alignment(clips, trained):
    """Ranking accuracy (aligned sound closer than sound shifted by 200..1000 ms) on the 200 ms late copy, its
    windows paired by the known truth: chance before training, far above after."""
    learned = load_learned(trained)
    feats = load_features(clips["late"], learned.model.config)
    truth = dataclasses.replace(feats, times=feats.times + 0.2)  # picture at t <-> sound at t + 200 ms
    centres = [truth.centres(learned.model.config)]
    torch.manual_seed(0)
    before = ranking_accuracy(SyncNet(learned.model.config), [truth], centres, SyncTrainConfig())
    after = ranking_accuracy(learned.model, [truth], centres, SyncTrainConfig())
    assert before["pairs"] > 1000
    assert abs(before["ranking_accuracy"] - 0.5) < 0.2
    assert after["ranking_accuracy"] > 0.85
    assert after["aligned_distance"] < after["shifted_distance"] - 0.2


@pytest.mark.parametrize(("key", "truth"), [("late", 200.0), ("early", -120.0), ("face", 0.0)])
def test_learned_method_finds_the_ffmpeg_shift_within_one_frame(clips, trained, key, truth):
    result = estimate_sync(clips[key], "learned", checkpoint=trained)
    assert result.method == "learned"
    assert result.confidence >= CONFIDENT, result.reason
    assert abs(result.offset_ms - truth) <= FRAME_MS
    assert result.verdict == ("in sync" if truth == 0 else "audio late" if truth > 0 else "audio early")
    assert result.lags_ms[0] == -1000 and result.lags_ms[-1] == 1000 and result.correlation.shape == result.lags_ms.shape
    assert abs(float(result.lags_ms[int(np.argmax(result.correlation))]) - truth) <= FRAME_MS
    told = [w for w in result.windows if w.offset_ms is not None]
    assert told and all(abs(w.offset_ms - truth) <= FRAME_MS for w in told)


def test_another_person_is_not_given_a_confident_offset(clips, trained):
    """Trained on one face for seconds, the network knows nothing about a stage singer: it must say so (its best
    match is no deeper than those of deliberately wrong pairings of picture and sound)."""
    result = estimate_sync(clips["other"], "learned", checkpoint=trained)
    assert result.confidence < CONFIDENT and result.offset_ms is None and result.verdict == "cannot tell"
    assert "wrong moments" in result.reason
    learned = load_learned(trained)
    estimate = learned_offset(learned, load_features(clips["other"], learned.model.config))
    assert estimate.null_raw > 0  # the clip is long enough for wrong pairings: the null, not the fallback, decided


def test_checkpoint_round_trip_is_plain_and_exact(clips, trained):
    data = torch.load(trained, map_location="cpu", weights_only=True)
    assert data["format"] == 1 and data["model"] == "syncnet-tiny"
    assert SyncNetConfig(**data["model_args"]) == SyncNetConfig()
    assert data["config"]["epochs"] == EPOCHS and data["videos"] == [str(clips["face"])]
    assert data["metrics"]["check_windows_trained"] is True and data["metrics"]["calibration_raw"] > 0
    learned = load_learned(trained)
    again = SyncNet(learned.model.config)
    again.load_state_dict(data["state_dict"])
    again.eval()
    feats = load_features(clips["face"], learned.model.config)
    a = learned_offset(learned, feats, max_offset_ms=300)
    b = learned_offset(dataclasses.replace(learned, model=again), feats, max_offset_ms=300)
    assert a.offset_ms == b.offset_ms and np.array_equal(a.similarity, b.similarity)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "sync.pt"
    out.write_bytes(b"previous checkpoint")
    model = SyncNet()
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):  # a crash half-way through writing (disk full, kill)
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(model, {"calibration_raw": 0.1}, out, train=SyncTrainConfig())
    assert out.read_bytes() == b"previous checkpoint" and sorted(tmp_path.iterdir()) == [out]
    monkeypatch.setattr(torch, "save", real_save)
    assert save_checkpoint(model, {"calibration_raw": 0.1}, out, train=SyncTrainConfig()) == out
    assert sorted(tmp_path.iterdir()) == [out] and load_learned(out).calibration_raw == pytest.approx(0.1)


def test_bad_inputs_give_clear_errors(clips, tmp_path):
    with pytest.raises(VideoDecodeError, match="no audio stream"):
        train_sync([realdata("expressions/W011_front_angry_level3_001.mp4")], tmp_path / "a.pt", epochs=1)
    bunny = cut_clip(sample_media("bigbuckbunny.mp4"), tmp_path / "bunny.mp4", 0.0, 2.0, height=180)
    with pytest.raises(DatasetError, match="no face"):
        train_sync([bunny], tmp_path / "b.pt", epochs=1)
    with pytest.raises(DatasetError, match="too short"):
        train_sync([clips["short"]], tmp_path / "c.pt", epochs=1)
    with pytest.raises(ConfigError, match="no videos"):
        train_sync([], tmp_path / "d.pt")
    with pytest.raises(VideoDecodeError, match="no such file"):
        train_sync([tmp_path / "missing.mp4"], tmp_path / "e.pt")
    assert not any(p.suffix == ".pt" or p.name.endswith(".partial") for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match="checkpoint"):
        estimate_sync(clips["face"], "learned")
    text = tmp_path / "not_a_model.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        estimate_sync(clips["face"], "learned", checkpoint=text)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": 1, "model": "something-else", "state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a learned-sync checkpoint"):
        load_learned(foreign)
