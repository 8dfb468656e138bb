"""The benchmarks still run: `bench_decode.py --quick` end to end on tiny files, writing its section.

Nothing here asserts speed (timings on a shared test machine mean nothing); only that every
method runs, agrees on what it decoded, and that the results file is written correctly.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # `make test-slow`

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def common():
    return _load("_common")


OTHER_SECTION = "## Other (other.py)\n\nkeep me\n"


def run_quick(name: str, results, *args: str):
    """Run `benchmarks/<name>.py --quick` into a RESULTS.md that already holds another section;
    check it succeeded and left that section alone. Returns (module, RESULTS.md text)."""
    bench = _load(name)
    results.write_text("# Benchmark results\n\n" + OTHER_SECTION, encoding="utf-8")
    assert bench.main(["--quick", "--results", str(results), *args]) == 0
    text = results.read_text(encoding="utf-8")
    assert OTHER_SECTION in text  # other sections untouched
    return bench, text


def test_bench_decode_quick_writes_its_section(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    bench, text = run_quick("bench_decode", results, "--work", str(tmp_path / "work"))
    assert text.count("## Decoding (bench_decode.py)") == 1
    section = text.split("## Decoding (bench_decode.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_decode.py --quick" in section
    assert "- Machine: " in section and "- Versions: " in section and "av " in section
    headings = ("### Summary", "### Sequential decode", "### Decode + resize", "### Random clips: 8 frames, stride 4")
    for heading in headings:
        assert heading in section
    assert "vidlens iter_frames" in section and "PyAV naive seek" in section
    assert "MISMATCH" not in section  # the PyAV baseline decoded the same frames as vidlens
    assert "sequential decode, full-size RGB" in capsys.readouterr().out

    # Running again replaces the section rather than adding a second one.
    bench.common.write_section(results, bench.SECTION, "replaced\n")
    text = results.read_text(encoding="utf-8")
    assert text.count("## Decoding (bench_decode.py)") == 1
    assert "replaced" in text and "keep me" in text and "vidlens iter_frames" not in text


def test_write_section_replaces_only_its_own(tmp_path, common):
    path = tmp_path / "R.md"
    common.write_section(path, "A (a.py)", "first A\n")
    common.write_section(path, "B (b.py)", "only B\n```\n## not a heading inside a fence\n```\n")
    common.write_section(path, "A (a.py)", "second A\n")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results")
    assert "first A" not in text and "second A" in text
    assert "## not a heading inside a fence" in text and "only B" in text
    assert text.index("## A (a.py)") < text.index("## B (b.py)")
    assert [name for name, _, _ in common._section_spans(text)] == ["A (a.py)", "B (b.py)"]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_measure_takes_the_median_after_warmup(common):
    calls = []
    timing = common.measure(lambda: calls.append(1) or len(calls), repeats=3, warmup=2)
    assert len(calls) == 5 and len(timing.times) == 3 and timing.result == 5
    assert min(timing.times) <= timing.median <= max(timing.times)


def test_measure_interleaved_rotates_the_order(common):
    order = []
    fns = {name: (lambda name=name: order.append(name) or name) for name in "abc"}
    timings = common.measure_interleaved(fns, repeats=3, warmup=1)
    assert order == list("abc") + list("abc") + list("bca") + list("cab")
    assert {name: t.result for name, t in timings.items()} == {"a": "a", "b": "b", "c": "c"}
    assert all(len(t.times) == 3 and len(t.cpu_times) == 3 for t in timings.values())


def test_bench_train_quick_writes_its_section(tmp_path, capsys):
    _, text = run_quick("bench_train", tmp_path / "RESULTS.md")
    section = text.split("## Training loop (bench_train.py)", 1)[1]
    assert "vidlens / plain" in section and "per-epoch speed-up" in section
    # Real footage first: in both tables (loop overhead, precompute) the real rows come before the synthetic ones.
    kinds = [line.split("|")[1].strip().split(":")[0] for line in section.splitlines()
             if line.startswith(("| real:", "| synthetic:"))]
    assert kinds == ["real", "real", "synthetic", "synthetic"] * 2
    assert section.index("**real:") < section.index("**synthetic:")
    assert "clips of 2 s cut with the ffmpeg CLI from 3 real files" in section


def test_bench_emotion_quick_writes_its_section(tmp_path, capsys):
    _, text = run_quick("bench_emotion", tmp_path / "RESULTS.md")
    section = text.split("## Emotion pipeline (bench_emotion.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_emotion.py --quick" in section
    load, inputs = section.split("### Every kind of input", 1)

    def table_rows(table: str) -> list[list[str]]:
        return [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith("| ")][1:]

    # 640x360 idle and under a competing process: one thread both ways, the old 2 threads too.
    assert {(r[3], r[4]) for r in table_rows(load)} == {("1", "none"), ("2", "none"), ("1", "2-thread matmul loop"),
                                                  ("2", "2-thread matmul loop")}
    assert all(r[0].startswith("real: faces/guangfan.avi -> 640x360") for r in table_rows(load))
    assert "One thread, idle:" in load and "One thread, loaded:" in load
    names = [r[0] for r in table_rows(inputs)]
    # Real footage first, then synthetic, each row labelled.
    assert names[:2] == ["real: expressions/happy (MEAD W011)", "real: carphone_pristine.mp4"]
    assert len(names) == 3 and names[2].startswith("synthetic: astronaut_720p.mp4")
    assert "x real time at 5 fps" in section and ("PASS" in section or "MISS" in section)
    assert "Slowest real input" in section and "Slowest synthetic input" in section
    rows = [line for line in section.splitlines() if line.startswith("| real: carphone")]
    assert rows and rows[0].split("|")[5].strip() == "1"  # one face track in carphone
    assert "dominant expression is the acted one in" in section


def test_bench_infer_quick_writes_its_section(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    _, text = run_quick("bench_infer", tmp_path / "RESULTS.md", "--threads", "1")
    section = text.split("## Inference (bench_infer.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_infer.py --quick" in section and "onnxruntime " in section
    for runtime in ("PyTorch fp32", "ONNX Runtime fp32", "ONNX Runtime int8"):
        assert section.count(f"| {runtime}") == 2  # both models
    assert "x PyTorch speed" in section and "max |ONNX fp32 - PyTorch|" in section


def test_bench_expressions_quick_writes_its_section(tmp_path, capsys):
    from vidlens.tasks.faces.detect import mtcnn_available

    if not mtcnn_available():
        pytest.skip("facenet-pytorch (MTCNN weights) not installed")
    _, text = run_quick("bench_expressions", tmp_path / "RESULTS.md")
    assert text.count("## Expressions on real faces (bench_expressions.py)") == 1
    section = text.split("## Expressions on real faces (bench_expressions.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_expressions.py --quick" in section
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| ")]
    assert rows[0][:3] == ["pipeline", "happy", "surprised"]
    names = [r[0] for r in rows[1:]]
    assert names[0].startswith("old pipeline") and any(n.startswith("+ peak aggregation = final default") for n in names)
    assert all(r[3] in ("0/2", "1/2", "2/2") for r in rows[1:])
    assert "leave-one-clip-out" in section and "End-to-end check" in section


def test_bench_faces_quick_writes_its_section(tmp_path, capsys):
    pytest.importorskip("facenet_pytorch")
    _, text = run_quick("bench_faces", tmp_path / "RESULTS.md")
    section = text.split("## Face detection (bench_faces.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_faces.py --quick" in section
    names = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ")][1:]
    assert names and all(name.startswith("real: ") for name in names)  # real footage only
    assert any("(no faces)" in name for name in names)
    assert "MTCNN recall" in section and "Haar recall" in section and "Faceless real footage" in section


def test_bench_batch_quick_writes_its_section(tmp_path, capsys):
    _, text = run_quick("bench_batch", tmp_path / "RESULTS.md")
    assert text.count("## Batch processing (bench_batch.py)") == 1
    section = text.split("## Batch processing (bench_batch.py)", 1)[1]
    assert "- Command: `python benchmarks/bench_batch.py --quick" in section
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| ")]
    assert rows[0][:3] == ["task", "method", "videos"]
    methods = [r[1] for r in rows[1:]]
    assert "loop of single-video commands" in methods and any(m.startswith("vidlens batch, local engine") for m in methods)
    assert all(r[5].endswith("x") for r in rows[1:])  # a ratio against the loop, in the same run
    assert "1 M videos" in section
