"""`vidlens demo`: every step runs and writes what the report links (quick settings: no learning asserted here;
the full demo's accuracy is measured by `make demo` and recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import torch

from vidlens.workflows.demo import DEMO_CLASSES, DemoSettings, run_demo


def test_quick_demo_writes_the_whole_output_folder(tmp_path):
    torch.set_num_threads(1)
    messages: list[str] = []
    outcome = run_demo(tmp_path / "demo", DemoSettings.quick(), progress=False, log=messages.append)
    root = tmp_path / "demo"
    assert outcome.report == root / "index.html" and outcome.report.is_file()
    for rel in ("temporal/best.pt", "temporal/last.pt", "temporal/config.yaml", "temporal/curves.png",
                "temporal/eval/metrics.json", "temporal/eval/confusion.png", "frame_average/best.pt",
                "frame_average/eval/metrics.json", "predictions/predictions.jsonl", "predictions/predictions.csv",
                "predictions/actions_in_a_row_timeline.png", "predictions/actions_in_a_row_timeline.json",
                "summary.json", "data/manifest.csv"):
        assert (root / rel).is_file(), rel
    summary = json.loads((root / "summary.json").read_text())
    assert summary["temporal_model"]["test"]["top1"] == outcome.temporal_top1
    assert summary["frame_average_model"]["test"]["top1"] == outcome.baseline_top1
    assert 0.0 <= outcome.temporal_top1 <= 1.0 and outcome.chance == 1 / len(DEMO_CLASSES)
    rows = [json.loads(line) for line in (root / "predictions/predictions.jsonl").read_text().splitlines()]
    assert sorted(r["true_label"] for r in rows) == sorted(DEMO_CLASSES)
    assert all(r["top"][0]["label"] in DEMO_CLASSES for r in rows)
    assert outcome.heldout_correct == sum(r["top"][0]["label"] == r["true_label"] for r in rows)
    timeline = json.loads((root / "predictions/actions_in_a_row_timeline.json").read_text())
    assert timeline["segments"][0]["start_s"] == 0.0
    assert abs(timeline["segments"][-1]["end_s"] - timeline["truth"][-1]["end_s"]) < 0.2
    # every file the HTML links or shows exists
    html = outcome.report.read_text()
    targets = re.findall(r"(?:href|src)='([^']+)'", html)
    assert len(targets) > 10
    assert all((root / t).exists() for t in targets), [t for t in targets if not (root / t).exists()]
    assert any("training the temporal model" in m for m in messages)


def test_demo_command_prints_both_figures_and_the_folder(tmp_path):
    out = tmp_path / "d"
    proc = subprocess.run([sys.executable, "-m", "vidlens.cli.main", "--quiet", "demo", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"temporal model .* test top-1 \d\.\d{3}", proc.stdout)
    assert re.search(r"frame-averaging model .* test top-1 \d\.\d{3}", proc.stdout)
    assert f"output folder: {out.resolve()}" in proc.stdout.replace("\n", "")
