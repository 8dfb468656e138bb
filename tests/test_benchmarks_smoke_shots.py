"""`benchmarks/bench_shots.py --quick` still runs end to end and writes its section (see test_benchmarks_smoke.py).

A file of its own (split from test_benchmarks_smoke.py): the longest bench smoke test, so that
`pytest -n N --dist loadfile` runs it on another worker than the rest.
"""

from __future__ import annotations

import pytest

from tests.test_benchmarks_smoke import run_quick

pytestmark = pytest.mark.slow  # `make test-slow`


def test_bench_shots_quick_writes_its_section(tmp_path, capsys):
    pytest.importorskip("scenedetect")
    results = tmp_path / "RESULTS.md"
    bench, text = run_quick("bench_shots", results, "--work", str(tmp_path / "work"))
    assert text.count("## Shot detection (bench_shots.py)") == 1
    section = text.split("## Shot detection (bench_shots.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_shots.py --quick" in section
    assert "- Versions: " in section and "scenedetect 0.7" in section
    for heading in ("### Summary", "### Inputs", "### Accuracy", "### Speed", "### Long video", "### Notes"):
        assert heading in section
    for header in ("| input", "| detector", "| F1", "| cut R", "vidlens / PySD best", "| peak RSS MB", "| realtime x"):
        assert header.lstrip("| ") in section
    for detector in ("vidlens", "PySD Content", "PySD Adaptive", "PySD Threshold"):
        assert f"| {detector}" in section
    assert "bikes.mp4" in section and "F1, all inputs pooled" in section
    # Real footage first: the real rows (bikes.mp4, real clips joined by ffmpeg) come before the synthetic ones.
    accuracy = section.split("### Accuracy", 1)[1].split("###", 1)[0]
    inputs = [line.split("|")[1].strip() for line in accuracy.splitlines() if line.startswith("| ")][1:]
    assert inputs[0] == "real: bikes.mp4" and "real: 3 clips joined by ffmpeg" in inputs
    last_real = max(i for i, name in enumerate(inputs) if name.startswith("real:"))
    first_synthetic = min(i for i, name in enumerate(inputs) if name.startswith("synthetic:"))
    assert last_real < first_synthetic
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in accuracy.splitlines() if line.startswith("| ")]
    joined = next(r for r in rows if r[:2] == ["real: 3 clips joined by ffmpeg", "vidlens"])
    assert int(joined[5]) + int(joined[7]) == 2  # TP + FN = the 2 cuts where the 3 pieces meet
    assert "PASS" in section or "MISS" in section
    assert "Shot detection: summary" in capsys.readouterr().out

    # Running again replaces the section rather than adding a second one.
    bench.common.write_section(results, bench.SECTION, "replaced\n")
    text = results.read_text(encoding="utf-8")
    assert text.count("## Shot detection (bench_shots.py)") == 1
    assert "replaced" in text and "keep me" in text and "### Accuracy" not in text
