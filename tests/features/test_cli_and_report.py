"""`vidlens features` end to end through the console script, and the PNG report."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

from vidlens.features import FeatureTable, extract_features
from vidlens.report.features import plot_feature_curves
from vidlens.testing import make_bad_files, write_pattern_video

VIDLENS = Path(sys.executable).parent / "vidlens"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VIDLENS), *args], capture_output=True, text=True, timeout=120)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot_feature_curves_writes_a_png(tmp_path):
    video = write_pattern_video(tmp_path / "p.mp4", 12, size=(48, 64))
    table = extract_features(video, size=None, which="diff,edges")
    width, height = png_size(plot_feature_curves(table, tmp_path / "out" / "curves.png"))
    assert width >= 600 and height >= 200
    one = FeatureTable(table.times[:1], table.frame_indices[:1], {k: v[:1] for k, v in table.features.items()})
    assert png_size(plot_feature_curves(one, tmp_path / "one.png"))[0] > 0


def test_cli_writes_npz_csv_png(tmp_path):
    video = write_pattern_video(tmp_path / "clip.mp4", 30, fps=25, size=(72, 96))
    out = tmp_path / "features"
    result = run_cli("features", str(video), "--out", str(out), "--fps", "10", "--size", "64")
    assert result.returncode == 0, result.stderr
    summary = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(summary) == 1 and summary[0].startswith("features: 12 frames")
    table = FeatureTable.from_npz(out / "features.npz")
    assert len(table) == 12 and table.meta["frame_size"] == [64, 85] and table.meta["fps"] == 10.0
    np.testing.assert_allclose(table.times, np.arange(12) / 10, atol=1e-6)
    with open(out / "features.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:3] == ["time_s", "frame", "hsv_dist"] and len(rows) == 13
    assert png_size(out / "features.png")[0] > 0


def test_cli_reports_a_bad_file_in_one_line(tmp_path):
    video = write_pattern_video(tmp_path / "clip.mp4", 5, size=(48, 64))
    text = make_bad_files(tmp_path / "bad", video)["text"]
    result = run_cli("features", str(text), "--out", str(tmp_path / "never"))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and text.name in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "never").exists()
    bad_group = run_cli("features", str(video), "--out", str(tmp_path / "x"), "--which", "hsv,colour")
    assert bad_group.returncode == 2 and "unknown feature group" in bad_group.stderr
