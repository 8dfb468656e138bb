"""`--quick` runs of the retrieval benchmarks: each writes its own RESULTS.md section and leaves others alone."""

import pytest

from tests.test_benchmarks_smoke import run_quick

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.slow]  # `make test-slow`


def test_bench_vector_store_quick_writes_its_section(tmp_path):
    _, text = run_quick("bench_vector_store", tmp_path / "RESULTS.md")
    assert "bench_vector_store.py --quick" in text
    assert "faiss" in text


def test_bench_retrieval_quick_writes_its_section(tmp_path):
    _, text = run_quick("bench_retrieval", tmp_path / "RESULTS.md")
    assert "bench_retrieval.py --quick" in text
    assert "phash" in text.lower()
