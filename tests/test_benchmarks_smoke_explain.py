"""`--quick` run of the explanation benchmark: writes its own RESULTS.md section and leaves others alone."""

import pytest

from tests.test_benchmarks_smoke import run_quick

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


def test_bench_explain_quick_writes_its_section(tmp_path):
    _, text = run_quick("bench_explain", tmp_path / "RESULTS.md")
    section = text.split("## Explanations (bench_explain.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_explain.py --quick" in section
    from vidlens.tasks.explain.base import EXPLAINERS, load_builtin_explainers

    load_builtin_explainers()
    for name in ("forward pass (baseline)", "gradcam", "gradcam++", "attention", "C3D", "MobileNetV2+GRU", "explain_video",
                 "write_explanation", *(m for m in ("occlusion", "integrated-gradients") if m in EXPLAINERS)):
        assert name in section
