"""`benchmarks/bench_serve.py --quick` still runs end to end and writes its section (see test_benchmarks_smoke.py).

A file of its own (split from test_benchmarks_smoke.py): the longest bench smoke test, so that
`pytest -n N --dist loadfile` runs it on another worker than the rest.
"""

from __future__ import annotations

import pytest

from tests.test_benchmarks_smoke import run_quick

pytestmark = pytest.mark.slow  # `make test-slow`


def test_bench_serve_quick_writes_its_section(tmp_path, capsys):
    pytest.importorskip("fastapi")
    _, text = run_quick("bench_serve", tmp_path / "RESULTS.md")
    section = text.split("## HTTP service (bench_serve.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_serve.py --quick" in section and "fastapi " in section
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith(("| real:", "| synthetic:"))]
    # Real uploads first (baseline, then the service), then synthetic ones.
    assert [r[0].split(":")[0] for r in rows] == ["real", "real", "synthetic", "synthetic"]
    assert [(r[1], r[2]) for r in rows[:2]] == [("PyTorch", "in-process predict (baseline)"), ("PyTorch", "vidlens serve, 3 clients")]
    assert all(r[-1] == "0" for r in rows)  # no failed job, no failed health check
    assert "end-to-end p50/p90/p99" in section
