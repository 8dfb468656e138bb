"""Summarization models (DSN, supervised regressor, baselines) and `vidlens summarize` end to end."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import torch

from vidlens.cli.main import main
from vidlens.errors import CheckpointError
from vidlens.tasks.summarize import (
    DSN, DSNConfig, RewardCache, SupervisedConfig, dsn_reward, dsn_scores, expected_reward, kmeans_scores, load_h5,
    load_summarizer, predict_scores, random_scores, save_summarizer, train_dsn, train_supervised, uniform_scores,
)

D = 16


def write_synthetic_h5(path, n_videos=10, seed=0):
    """Videos whose important segments (~13 % of frames) have feature 0 raised by 3; 3 users pick mostly those."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as handle:
        for v in range(n_videos):
            n_picks = int(rng.integers(40, 70))
            n_frames = n_picks * 15
            bounds = [0]
            while bounds[-1] < n_picks:
                bounds.append(min(n_picks, bounds[-1] + int(rng.integers(2, 6))))
            segs = [(a * 15, b * 15 - 1) for a, b in zip(bounds[:-1], bounds[1:])]
            order, important, used = rng.permutation(len(segs)), [], 0
            for i in order:
                length = segs[i][1] - segs[i][0] + 1
                if used + length <= 0.13 * n_frames:
                    important.append(int(i))
                    used += length
            step_important = np.zeros(n_picks, dtype=bool)
            for i in important:
                step_important[segs[i][0] // 15 : segs[i][1] // 15 + 1] = True
            features = rng.normal(0, 1, (n_picks, D)).astype(np.float32)
            features[step_important, 0] += 3.0
            gtscore = np.where(step_important, 0.8, 0.2) + rng.normal(0, 0.05, n_picks)
            users = np.zeros((3, n_frames), dtype=np.float32)
            for u in range(3):
                chosen = set(important)
                if len(chosen) > 1:
                    chosen.discard(important[u % len(important)])
                chosen.add(int(rng.integers(len(segs))))
                for i in chosen:
                    users[u, segs[i][0] : segs[i][1] + 1] = 1
            g = handle.create_group(f"video_{v + 1}")
            g["features"] = features
            g["gtscore"] = gtscore.astype(np.float32)
            g["user_summary"] = users
            g["change_points"] = np.array(segs, dtype=np.int64)
            g["n_frame_per_seg"] = np.array([b - a + 1 for a, b in segs], dtype=np.int64)
            g["n_frames"] = n_frames
            g["picks"] = np.arange(0, n_frames, 15)
            g["video_name"] = f"synthetic {v + 1}"
    return path


@pytest.fixture(scope="module")
def synthetic_h5(tmp_path_factory):
    return write_synthetic_h5(tmp_path_factory.mktemp("summ") / "synthetic_tvsum.h5")


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--quiet", *map(str, args)])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_dsn_reward_hand_checked_three_frames():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # picks {0, 2}: dissim 1 - 1/sqrt2 ; min squared distances (0, 1, 0) -> rep exp(-1/3)
    div, rep = 1 - 1 / math.sqrt(2), math.exp(-1 / 3)
    assert float(dsn_reward(x, torch.tensor([1, 0, 1]))) == pytest.approx(0.5 * (div + rep), abs=1e-6)  # 0.504712
    # the two picks are 2 steps apart: with a threshold of 1 their dissimilarity counts as 1
    assert float(dsn_reward(x, torch.tensor([1, 0, 1]), temp_dist_thre=1)) == pytest.approx(0.5 * (1 + rep), abs=1e-6)
    # one pick: no diversity; distances (2, 0, 1) -> exp(-1)
    assert float(dsn_reward(x, torch.tensor([0, 1, 0]))) == pytest.approx(0.5 * math.exp(-1), abs=1e-6)
    assert float(dsn_reward(x, torch.tensor([0, 0, 0]))) == 0.0
    cache = RewardCache(x)
    assert cache(torch.tensor([1, 0, 1])) == pytest.approx(0.5 * (div + rep), abs=1e-6)


def test_reward_cache_matches_reference():
    gen = torch.Generator().manual_seed(0)
    for n, far, thre in ((5, True, 2), (40, True, 20), (40, False, 20), (70, True, 3)):
        x = torch.randn(n, 8, generator=gen)
        for mode in ("raw", "l2"):
            cache = RewardCache(x, far, thre, mode)
            ref_x = x / x.norm(dim=1, keepdim=True) if mode == "l2" else x
            for _ in range(5):
                a = torch.bernoulli(torch.full((n,), 0.3), generator=gen)
                assert cache(a) == pytest.approx(float(dsn_reward(ref_x, a, far, thre)), abs=1e-5)


def test_dsn_training_raises_reward():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 8))
    seq = np.concatenate([centres[i % 4] + 0.3 * rng.normal(0, 1, (15, 8)) for i in range(4)]).astype(np.float32)
    config = DSNConfig(epochs=40, lr=1e-2, hidden=32, lr_step=0, seed=0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        initial = DSN(8, 32)
    before = expected_reward(seq, dsn_scores(initial, seq), samples=64)
    model, history = train_dsn([seq], config)
    after = expected_reward(seq, dsn_scores(model, seq), samples=64)
    assert len(history) == 40 and {"reward", "cost", "mean_prob", "lr"} <= set(history[0])
    assert after > before + 0.05, (before, after)  # measured 0.76 -> 0.89
    again, _ = train_dsn([seq], config)  # seeded
    np.testing.assert_allclose(dsn_scores(again, seq), dsn_scores(model, seq), atol=1e-6)


def test_supervised_learns_and_checkpoint_loads_weights_only(synthetic_h5, tmp_path):
    records = load_h5(synthetic_h5)
    keys = list(records)
    model = train_supervised(records, keys[:8], SupervisedConfig(epochs=30, lr=1e-3, hidden=32))
    test = records[keys[9]]
    scores = predict_scores(model, test.features)
    assert scores.shape == (len(test.features),)
    important = test.features[:, 0] > 1.5
    assert scores[important].mean() > scores[~important].mean() + 0.2
    path = save_summarizer(tmp_path / "m.pt", model, config={"epochs": 30})
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "vasnet" and raw["config"]["method"] == "supervised"
    loaded, data = load_summarizer(path)
    np.testing.assert_allclose(predict_scores(loaded, test.features), scores, atol=1e-6)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_summarizer(tmp_path / "bad.pt")


def test_baselines_shapes():
    assert random_scores(7, seed=1).shape == (7,) and np.array_equal(random_scores(7, 1), random_scores(7, 1))
    u = uniform_scores(100, ratio=0.15, n_windows=10)
    assert u.shape == (100,) and u.sum() == 20 and u[:4].sum() == 0 and u[4:6].sum() == 2  # 2 steps centred in each block of 10
    feats = np.concatenate([np.zeros((10, 3)), np.ones((10, 3))]) + np.random.default_rng(0).normal(0, 0.1, (20, 3))
    k = kmeans_scores(feats + 1.0, n_clusters=2)
    assert k.shape == (20,) and k.max() <= 1 and (k == 0).sum() == 2  # the farthest member of each cluster scores 0


def test_cli_eval_end_to_end(synthetic_h5, tmp_path, capsys):
    results = {}
    for method, extra in (("supervised", ["--epochs", 30, "--lr", 1e-3]), ("dsn", ["--epochs", 3, "--lr", 1e-3]),
                          ("uniform", []), ("kmeans", []), ("random", [])):
        out = tmp_path / method
        code, stdout, stderr = run_cli(["summarize", "eval", "--h5", synthetic_h5, "--method", method, *extra, "--out", out], capsys)
        assert code == 0, stderr
        assert "mean F-score" in stdout
        data = json.loads((out / "fscores.json").read_text())
        assert data["metric"] == "avg" and len(data["folds"]) == 5
        assert sum(f["n_videos"] for f in data["folds"]) == 10
        assert (out / "folds.png").stat().st_size > 1000
        rows = (out / "folds.csv").read_text().splitlines()
        assert rows[0] == "fold,f_score,n_videos" and rows[-1].startswith("mean,") and len(rows) == 7
        if method in ("supervised", "dsn"):
            model, _ = load_summarizer(out / "models" / "fold0.pt")
            assert sum(p.numel() for p in model.parameters()) > 0
        results[method] = data["mean_f_score"]
    assert results["supervised"] > 0.45  # the gtscore oracle reaches 0.535 here (users disagree); measured 0.535
    assert results["supervised"] > results["random"] + 0.2 and results["supervised"] > results["uniform"] + 0.2, results


def test_cli_train_and_errors(synthetic_h5, tmp_path, capsys):
    code, stdout, _ = run_cli(["summarize", "train", "--h5", synthetic_h5, "--method", "dsn", "--epochs", 2, "--out", tmp_path / "t"], capsys)
    assert code == 0 and (tmp_path / "t" / "model.pt").is_file()
    model, data = load_summarizer(tmp_path / "t" / "model.pt")
    assert isinstance(model, DSN) and len(data["config"]["train_keys"]) == 10
    bad = tmp_path / "bad.h5"
    with h5py.File(synthetic_h5) as src, h5py.File(bad, "w") as dst:
        src.copy("video_1", dst)
        del dst["video_1/change_points"]
    code, _, stderr = run_cli(["summarize", "eval", "--h5", bad, "--method", "uniform", "--out", tmp_path / "e"], capsys)
    assert code == 2 and "change_points" in stderr and "video_1" in stderr
    code, _, stderr = run_cli(["summarize", "eval", "--h5", synthetic_h5, "--method", "magic", "--out", tmp_path / "e"], capsys)
    assert code == 2 and "magic" in stderr


def test_summarize_group_dispatches_unknown_argument_to_video(monkeypatch, capsys):
    import typer

    from vidlens.cli.summarize_commands import summarize_app

    calls = []

    def video_stub(video: str = typer.Argument(...), ratio: float = typer.Option(0.15, "--ratio")) -> None:
        calls.append((video, ratio))

    info = typer.models.CommandInfo(name="video", callback=video_stub)
    monkeypatch.setattr(summarize_app, "registered_commands", [*summarize_app.registered_commands, info])
    code, _, _ = run_cli(["summarize", "clip.mp4", "--ratio", "0.2"], capsys)
    assert code == 0 and calls == [("clip.mp4", 0.2)]
    code, _, _ = run_cli(["summarize", "video", "other.mp4"], capsys)
    assert code == 0 and calls[-1] == ("other.mp4", 0.15)
    code, stdout, _ = run_cli(["summarize", "--help"], capsys)
    assert code == 0 and "eval" in stdout and "train" in stdout and "video" in stdout


def test_summarize_help_lists_subcommands(capsys):
    code, stdout, _ = run_cli(["summarize", "--help"], capsys)
    assert code == 0 and "eval" in stdout and "train" in stdout
