"""`vidlens train`, `vidlens eval` and `vidlens predict` through the real console script.

One tiny synthetic dataset (two classes, 6 videos each, 8 frames of 32 px) and one 1-epoch
C3D run are shared by the module. The subprocesses run with one intra-op thread
(OMP_NUM_THREADS=1): tiny tensors on 2 shared cores train faster and steadier that way.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vidlens.data.synthetic import make_action_dataset
from vidlens.engine import load_checkpoint
from vidlens.workflows.config import RecognitionConfig

VIDLENS = Path(sys.executable).parent / "vidlens"
CLASSES = ("move_left", "grow")
PER_CLASS = 6
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ["--model", "c3d", "--model-arg", "width=0.25", "--size", "32", "--clip-len", "8", "--stride", "1",
        "--workers", "0", "--batch-size", "4"]


def cli_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(VIDLENS), "--quiet", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=cli_env())


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """A user error: exit 2, and stderr is one line `error: ...` (no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def log_epochs(run: Path) -> list[int]:
    with open(run / "log.csv", newline="") as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """As `vidlens data synth` writes it: class folders + manifest.csv with a train/val/test split."""
    root = tmp_path_factory.mktemp("cli_data") / "actions"
    make_action_dataset(root, PER_CLASS, 8, 32, 8, seed=0, workers=0, classes=CLASSES, overwrite=True)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli_runs") / "run"
    result = run_cli("train", "--data", dataset, *TINY, "--epochs", "1", "--out", run)
    return run, result


def test_train_writes_the_run_folder(trained, dataset):
    run, result = trained
    assert result.returncode == 0, result.stderr
    for name in ("best.pt", "last.pt", "config.yaml", "log.csv", "curves.png", "eval/metrics.json"):
        assert (run / name).is_file(), name
    # manifest.csv has a val split, a tiny one: best.pt by validation loss, and the summary says why
    assert "trained c3d for 1 epochs (2 steps); best val loss" in result.stdout
    assert "note: the validation split has only" in result.stdout
    assert f"run folder: {run}" in result.stdout
    cfg = RecognitionConfig.load_yaml(run / "config.yaml")
    assert (cfg.data.root, cfg.model.name, cfg.model.args, cfg.clip.size, cfg.clip.clip_len, cfg.train.epochs) == (
        str(dataset), "c3d", {"width": 0.25}, 32, 8, 1)
    assert log_epochs(run) == [1]
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0 <= metrics["top1"] <= 1


def test_eval_an_ensemble_of_best_and_last(trained, dataset, tmp_path):
    run, _ = trained
    out = tmp_path / "eval"
    result = run_cli("eval", "--checkpoint", run / "best.pt", "--checkpoint", run / "last.pt", "--out", out)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("top1", "top5", "mean_class_acc", "macro_f1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    with open(dataset / "manifest.csv", newline="") as handle:  # the data the checkpoint was trained on
        assert metrics["num_videos"] == sum(row["split"] == "test" for row in csv.DictReader(handle))
    assert metrics["weights"] == [0.5, 0.5]
    assert metrics["checkpoints"] == [str(run / "best.pt"), str(run / "last.pt")]
    assert "top1" in result.stdout and "num_videos" in result.stdout
    assert (out / "per_class.csv").is_file() and (out / "confusion.png").read_bytes()[:8] == PNG_SIGNATURE


def test_predict_a_folder_with_timelines(trained, dataset, tmp_path):
    run, _ = trained
    videos = tmp_path / "videos"
    (videos / "a").mkdir(parents=True)
    (videos / "b").mkdir()
    shutil.copy(sorted((dataset / "move_left").glob("*.mp4"))[0], videos / "a" / "clip.mp4")
    shutil.copy(sorted((dataset / "grow").glob("*.mp4"))[0], videos / "b" / "clip.mp4")  # same name, other folder
    (videos / "notes.mp4").write_text("not a video\n")
    out = tmp_path / "pred"
    result = run_cli("predict", "--checkpoint", run / "best.pt", videos, "--timeline", "--out", out)
    assert result.returncode == 2, result.stderr  # every file done, the unreadable one reported: exit 2 at the end

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [row["path"] for row in rows] == [str(videos / "a" / "clip.mp4"), str(videos / "b" / "clip.mp4"),
                                              str(videos / "notes.mp4")]
    good, bad = rows[:2], rows[2]
    assert set(bad) == {"path", "error", "status"} and bad["error"] and bad["status"] == "error"  # reported, not fatal
    assert all(row["status"] == "ok" for row in good)
    pngs = set()
    for row in good:
        assert [set(item) for item in row["top"]] == [{"label", "score"}] * 2
        assert {item["label"] for item in row["top"]} == set(CLASSES)
        assert row["top"][0]["score"] >= row["top"][1]["score"]
        segments = row["segments"]
        assert segments and segments[0]["start_s"] == 0.0 and segments[-1]["end_s"] == pytest.approx(1.0, abs=1e-3)
        for segment in segments:
            assert {"start_s", "end_s", "label", "score"} <= set(segment) and segment["label"] in CLASSES
        png = Path(row["timeline_png"])
        assert png.parent == out and png.read_bytes()[:8] == PNG_SIGNATURE
        pngs.add(png)
    assert len(pngs) == 2  # one timeline per video, even with equal file names
    with open(out / "predictions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 * 2 + 1


def test_train_from_a_saved_config_reproduces_the_recipe(trained, tmp_path):
    run, _ = trained
    run2 = tmp_path / "run2"
    result = run_cli("train", "--config", run / "config.yaml", "--epochs", "2", "--out", run2)
    assert result.returncode == 0, result.stderr
    assert log_epochs(run2) == [1, 2]
    first, second = (RecognitionConfig.load_yaml(p / "config.yaml").to_dict() for p in (run, run2))
    assert (second["out"], second["train"]["epochs"]) == (str(run2), 2)
    second["out"], second["train"]["epochs"] = first["out"], first["train"]["epochs"]
    assert second == first
    assert load_checkpoint(run2 / "best.pt")["recipe"]["model"] == first["model"]


def test_resume_in_an_empty_folder_starts_a_new_run(dataset, tmp_path):
    run = tmp_path / "fresh"
    result = run_cli("train", "--data", dataset, *TINY, "--epochs", "1", "--out", run, "--resume", "--test-split", "none")
    assert result.returncode == 0, result.stderr
    assert log_epochs(run) == [1] and (run / "best.pt").is_file()
    assert not (run / "eval").exists()  # --test-split none


def test_resume_a_killed_run_from_its_config_yaml(dataset, tmp_path):
    """While a run trains, OUT/config.yaml already holds the whole recipe, so `--config OUT/config.yaml
    --resume` continues a killed run (it used to hold only the engine's settings, and failed)."""
    run = tmp_path / "killed"
    proc = subprocess.Popen([str(VIDLENS), "--quiet", "train", "--data", str(dataset), *TINY, "--epochs", "40",
                             "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    try:
        deadline = time.monotonic() + 240
        while not (run / "last.pt").is_file():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the training subprocess never finished an epoch"
            time.sleep(0.05)
        mid_run = RecognitionConfig.load_yaml(run / "config.yaml")
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert (mid_run.model.name, mid_run.data.root, mid_run.train.epochs) == ("c3d", str(dataset), 40)
    done = load_checkpoint(run / "last.pt")["train_state"]["epoch"]
    assert 1 <= done < 40

    result = run_cli("train", "--config", run / "config.yaml", "--resume", "--epochs", done + 1, "--test-split", "none")
    assert result.returncode == 0, result.stderr
    assert log_epochs(run) == list(range(1, done + 2))
    assert load_checkpoint(run / "last.pt")["train_state"]["epoch"] == done + 1


# --------------------------------------------------------------------------- user errors: exit 2, one line


def test_unknown_model_is_a_one_line_error(dataset, tmp_path):
    line = one_line_error(run_cli("train", "--data", dataset, "--model", "nope", "--out", tmp_path / "run"))
    assert "unknown model 'nope'" in line and "c3d" in line  # names the valid ones
    assert not (tmp_path / "run" / "best.pt").exists()


def test_train_needs_data_or_manifest(tmp_path):
    line = one_line_error(run_cli("train", "--model", "c3d", "--out", tmp_path / "run"))
    assert "--data" in line and "--manifest" in line


# The console script is `vidlens.cli.main:main`; these two call it in this process (no new
# interpreter, no 5 s of imports) and read what it writes to stderr.


def main_error(capsys, *args: str) -> str:
    from vidlens.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return one_line_error(subprocess.CompletedProcess(args, exc.value.code, captured.out, captured.err))


def test_resume_without_the_recipe_is_a_one_line_error(trained, capsys):
    run, _ = trained
    line = main_error(capsys, "train", "--resume", "--out", run)
    assert "--config" in line
    assert log_epochs(run) == [1]  # untouched


def test_eval_of_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    line = main_error(capsys, "eval", "--checkpoint", tmp_path / "nope.pt", "--out", tmp_path / "eval")
    assert "nope.pt" in line and "does not exist" in line


def test_config_without_out_refuses_to_overwrite_the_trained_run(trained, capsys):
    run, _ = trained
    before = (run / "best.pt").read_bytes()
    line = main_error(capsys, "train", "--config", run / "config.yaml")
    assert "--out" in line and str(run) in line
    assert (run / "best.pt").read_bytes() == before and log_epochs(run) == [1]
