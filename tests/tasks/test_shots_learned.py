"""The learned shot detector (ShotNet): the packaged model on real joined footage, chunked inference, training
that learns, `vidlens shots train` end to end, and clear errors for missing or untrusted models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidlens.data.transitions import build_transition_set
from vidlens.io.reader import iter_frames
from vidlens.tasks.shots import ShotConfig, detect_shots, match_boundaries
from vidlens.tasks.shots.learned import DEFAULT_MODEL, FRAME_SIZE, RECEPTIVE_FIELD, chunked_probs, learned_boundaries, open_session
from vidlens.tasks.shots.net import ShotNet
from vidlens.tasks.shots.synth import SourceClip, synth_window
from vidlens.tasks.shots.train import (
    TrainConfig,
    _batch,
    export_onnx,
    load_clips,
    load_shot_net,
    shot_loss,
    train_shot_net,
)
from vidlens.testing import sample_media
from vidlens.testing.real import opencv_sample, realdata

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def run_cli(capsys):
    """Run the CLI in-process: (exit code, stdout + stderr)."""
    from vidlens.cli.main import main

    def run(args):
        with pytest.raises(SystemExit) as exc:
            main(["--quiet", *map(str, args)])
        out = capsys.readouterr()
        return exc.value.code, out.out + out.err

    return run


def _real_or_skip(finder, ref):
    try:
        return finder(ref)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """Real EVAL-split footage (never seen in training) joined by the ffmpeg CLI: cuts, dissolves, fades, wipes."""
    root = tmp_path_factory.mktemp("transitions")
    tset = build_transition_set(root, "eval", num_videos=1, segments_per_video=9, seed=5, size=(180, 320),
                                negatives=False, only=["vtest.avi", "carphone_pristine.mp4", "guangfan.avi", "normal5.avi"])
    return tset.videos[0]


def test_packaged_model_finds_real_transitions(joined):
    truth = json.loads(joined.with_suffix(".json").read_text())
    assert len(truth["transitions"]) == 8 and len({t["type"] for t in truth["transitions"]}) >= 3
    result = detect_shots(joined)  # the default: the packaged learned model
    from vidlens.data.synthetic.shots import ShotGroundTruth

    scores = match_boundaries([b.frame for b in result.boundaries], ShotGroundTruth.load(joined))
    assert scores.recall >= 0.75 and scores.fp <= 1, scores
    assert {b.kind for b in result.boundaries} <= {"cut", "dissolve", "fade", "wipe"}
    assert all(0.5 < b.confidence <= 1.0 for b in result.boundaries)
    assert set(result.scores) >= {"learned", "gradual", "diff"} and len(result.scores["learned"]) == len(result.times)


def test_packaged_model_quiet_inside_a_long_real_shot():
    """vtest.avi: 80 s of pedestrians walking close to a fixed camera, no shot change at all."""
    path = _real_or_skip(opencv_sample, "vtest.avi")
    result = detect_shots(path)
    assert len(result.boundaries) <= 1, [(b.frame, b.kind, b.confidence) for b in result.boundaries]


def test_chunked_inference_equals_one_pass(tmp_path):
    torch.manual_seed(0)
    model = ShotNet().eval()
    assert model.receptive_field() <= RECEPTIVE_FIELD
    export_onnx(model, tmp_path / "shotnet.onnx")
    frames = [f.image for f in iter_frames(sample_media("bikes.mp4"), size=FRAME_SIZE, keep_aspect=False)]
    session = open_session(tmp_path)
    whole = np.concatenate(list(chunked_probs(session, iter(frames), chunk=10_000)))
    chunked = np.concatenate(list(chunked_probs(session, iter(frames), chunk=60)))
    assert whole.shape == (len(frames), 5) == chunked.shape
    np.testing.assert_allclose(chunked, whole, atol=2e-4)
    with torch.no_grad():  # and the ONNX graph computes what the torch model does
        ref = torch.sigmoid(model(torch.from_numpy(np.stack(frames))[None])[0, :, 0]).numpy()
    np.testing.assert_allclose(whole[:, 0], ref, atol=2e-4)


def test_boundaries_from_probabilities():
    probs = np.zeros((90, 5), np.float32)
    probs[:, 2] = 1.0
    probs[10, :2] = (0.9, 0.9)  # a cut: one frame inside a transition
    probs[30:42, 1] = 0.8  # a 12-frame transition, wipe-like, with two peaks
    probs[30:42, 2:] = (0.1, 0.1, 0.8)
    probs[35, 0], probs[39, 0] = 0.7, 0.6
    probs[60:80, 1] = 0.7  # a long dissolve: its boundary probability spread thin, every frame clearly inside
    probs[60:80, 0] = np.linspace(0.05, 0.3, 20)
    probs[84:86, 1] = 0.9  # two frames "inside" with no boundary evidence: too short for a gradual transition
    found = learned_boundaries(probs)
    assert [(b.frame, b.kind, b.start_frame, b.end_frame) for b in found] == [
        (10, "cut", 10, 10), (35, "wipe", 30, 42), (79, "dissolve", 60, 80)]
    assert found[0].confidence == pytest.approx(0.9) and found[2].confidence == pytest.approx(0.7)


def test_training_on_real_footage_learns(tmp_path):
    """A few dozen steps on two real videos: the loss on held-out synthesised windows falls clearly."""
    clips, skipped = load_clips([_real_or_skip(realdata, "scenes/big_buck_bunny_0_30.webm"), sample_media("bigbuckbunny.mp4"),
                                 _real_or_skip(realdata, "faces/short_hamilton_clip.mp4")])
    assert not skipped and len(clips) == 3
    config = TrainConfig(steps=60, batch=4, window=48, lr=3e-3, seed=1)
    held_out = _batch(np.random.default_rng(123), clips, TrainConfig(batch=16, window=48))
    torch.manual_seed(1)
    init = ShotNet()

    def loss_of(model):
        with torch.no_grad():
            return float(shot_loss(model.eval()(held_out["frames"]), held_out, config.transition_weight))

    before = loss_of(init)
    model, history = train_shot_net(clips, config, init=init.train())
    after = loss_of(model)
    assert after < 0.6 * before, (before, after, history)


def test_synthesised_window_labels_follow_xfade():
    rng = np.random.default_rng(0)
    frames = np.zeros((200, 54, 96, 3), np.uint8)
    frames[100:] = 255  # two flat "shots": black then white
    clips = [SourceClip("a", frames, [(0, 100), (100, 200)])]
    for _ in range(20):
        w = synth_window(rng, clips, 64)
        assert w.frames.shape == (64, *FRAME_SIZE, 3) and w.transition.shape == (64,)
        for t in np.flatnonzero(w.transition):
            assert w.gradual[t] == 1  # every boundary frame is inside its transition
        assert ((w.kind >= 0) <= (w.gradual > 0)).all()


def test_cli_train_then_detect_with_the_model(tmp_path, run_cli):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "bunny.mp4").write_bytes(sample_media("bigbuckbunny.mp4").read_bytes())
    (folder / "bikes.mp4").write_bytes(sample_media("bikes.mp4").read_bytes())
    out = tmp_path / "model"
    code, output = run_cli(["shots", "train", folder, "-o", out, "--steps", "3", "--batch", "2", "--window", "32"])
    assert code == 0, output
    assert "broken.mp4" in output  # reported, and training went on without it
    assert {p.name for p in out.iterdir()} >= {"shotnet.pt", "shotnet.onnx", "shotnet.json", "loss.png"}
    info = json.loads((out / "shotnet.json").read_text())
    assert sorted(info["videos"]) == ["bikes.mp4", "bunny.mp4"] and info["train"]["steps"] == 3
    scenes = tmp_path / "scenes"
    code, output = run_cli(["shots", folder / "bikes.mp4", "-o", scenes, "--model", out, "--method", "both"])
    assert code == 0, output
    data = json.loads((scenes / "scenes.json").read_text())
    assert all({"kind", "confidence"} <= set(b) for b in data["boundaries"])


def test_missing_model_is_a_clear_error(tmp_path, run_cli):
    code, output = run_cli(["shots", sample_media("bikes.mp4"), "-o", tmp_path / "o", "--model", tmp_path / "nowhere"])
    assert code != 0
    assert "shotnet.onnx" in output and "vidlens shots train" in output
    assert not (tmp_path / "o").exists()


def test_untrusted_checkpoint_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"state_dict": {}, "info": {"config": {}}, "x": Payload()}, tmp_path / "shotnet.pt")
    with pytest.raises(Exception, match="[Ww]eights only|weights_only|Unsupported"):
        load_shot_net(tmp_path)


def test_packaged_model_is_small_and_present():
    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size < 5_000_000
    assert (DEFAULT_MODEL.parent / "shotnet.pt").is_file()
    assert isinstance(load_shot_net(DEFAULT_MODEL.parent), ShotNet)
