"""`--quick` run of the sync benchmark: writes its own RESULTS.md section and leaves others alone."""

import pytest

from tests.test_benchmarks_smoke import run_quick

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


def test_bench_sync_quick_writes_its_section(tmp_path):
    _, text = run_quick("bench_sync", tmp_path / "RESULTS.md")
    section = text.split("## Audio-video sync (bench_sync.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_sync.py --quick" in section
    for name in ("speech", "events", "baseline", "within 1 frame", "cannot tell", "s / min of video", "guangfan.avi",
                 "x baseline time", "### Per source"):
        assert name in section, name
