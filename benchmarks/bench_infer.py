"""Inference benchmark: PyTorch vs ONNX Runtime fp32 vs ONNX Runtime int8 (dynamic, and static QDQ), CPU.

    python benchmarks/bench_infer.py [--quick] [--results PATH] [--no-write] [--threads N]

Two models in one run, random weights (latency does not depend on what was learned):
1. the demo model: C3D width 0.25, 16 frames at 64 px, 8 classes;
2. torchvision R(2+1)D-18 (width 1.0), 16 frames at 112 px, 8 classes.
Each is saved as a vidlens checkpoint, exported with `vidlens.deploy.export_onnx` and quantised
with `quantize_int8` twice: dynamic (int8 weights, activations quantised per call) and static
(QDQ, per-channel weights, activation ranges calibrated on 8 clips); the four variants run batch-1
forwards of one clip, interleaved in rounds (`measure_interleaved`), with the same intra-op thread
count. Figures: median ms per clip, ratio to PyTorch, file size, the largest |ONNX - PyTorch| logit
difference, and which file `recommend_variant` (the export report's choice) picks.

Results go to the "## Inference (bench_infer.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.transforms import TransformConfig  # noqa: E402
from vidlens.deploy import OnnxModule, VariantRow, export_onnx, max_abs_diff, ort_session, quantize_int8, recommend_variant  # noqa: E402
from vidlens.deploy.export import example_input, load_model  # noqa: E402
from vidlens.engine import save_checkpoint  # noqa: E402
from vidlens.models import build_model  # noqa: E402
from vidlens.tasks.classify import preprocess_fields  # noqa: E402

SECTION = "Inference (bench_infer.py)"
DYNAMIC, STATIC = "ONNX Runtime int8", "ONNX Runtime QDQ int8 (static)"


def make_checkpoint(path: Path, model: str, frames: int, size: int, classes: int = 8, **args) -> Path:
    torch.manual_seed(0)
    net = build_model(model, classes, load_weights=False, **args)
    pre = preprocess_fields(SamplerConfig(clip_len=frames), TransformConfig(size=size, crop="center"), size)
    return save_checkpoint(path, {"model": model, "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": [f"c{i}" for i in range(classes)], "preprocess": pre})


def bench_model(work: Path, label: str, model: str, frames: int, size: int, repeats: int, threads: int, **args) -> dict:
    ckpt = make_checkpoint(work / f"{model}.pt", model, frames, size, **args)
    onnx_path = export_onnx(ckpt, work / f"{model}.onnx")
    int8_path = quantize_int8(onnx_path, work / f"{model}.int8.onnx")
    net, raw = load_model(ckpt)
    calibration = [example_input(raw["preprocess"], batch=1, seed=1000 + i).numpy() for i in range(8)]
    static_path = quantize_int8(onnx_path, work / f"{model}.int8-static.onnx", method="static", calibration=calibration)
    x = example_input(raw["preprocess"], batch=1)
    fp32 = OnnxModule(ort_session(onnx_path, threads=threads))
    int8 = OnnxModule(ort_session(int8_path, threads=threads))
    static = OnnxModule(ort_session(static_path, threads=threads))
    with torch.inference_mode():
        ref = net(x).numpy()
        diffs = {name: float(np.abs(m(x).numpy() - ref).max()) for name, m in ((DYNAMIC, int8), (STATIC, static))}
        agree = {name: bool(m(x).argmax().item() == int(ref.argmax())) for name, m in ((DYNAMIC, int8), (STATIC, static))}

        def run(m):
            return lambda: m(x)

        timings = common.measure_interleaved({"PyTorch fp32": run(net), "ONNX Runtime fp32": run(fp32),
                                              DYNAMIC: run(int8), STATIC: run(static)}, repeats=repeats, warmup=2)
    paths = {"PyTorch fp32": ckpt, "ONNX Runtime fp32": onnx_path, DYNAMIC: int8_path, STATIC: static_path}
    sizes = {name: path.stat().st_size for name, path in paths.items()}
    report_names = {"ONNX Runtime fp32": "ONNX fp32", DYNAMIC: "ONNX int8", STATIC: "ONNX int8 static"}
    choice = recommend_variant([VariantRow(report_names[n], "onnx", str(paths[n]), sizes[n] / 1e6, 0.0, 0.0,
                                           timings[n].median * 1000, None) for n in report_names])
    return {"label": label, "timings": timings, "sizes": sizes, "onnx_diff": max_abs_diff(ckpt, onnx_path),
            "int8_diff": diffs, "int8_agree": agree, "choice": choice}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, figures meaningless")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    args = parser.parse_args(argv)
    started, machine = common.now(), common.machine_info()
    threads = args.threads or common.usable_cores()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    if args.quick:
        cases = [("demo C3D w0.25, 8x32x32 (quick)", "c3d", 8, 32, {"width": 0.25}),
                 ("R(2+1)D-18 w0.125, 8x32x32 (quick)", "r2plus1d_18", 8, 32, {"width": 0.125})]
        repeats = 2
    else:
        cases = [("demo C3D w0.25, 16x64x64", "c3d", 16, 64, {"width": 0.25}),
                 ("R(2+1)D-18, 16x112x112", "r2plus1d_18", 16, 112, {})]
        repeats = 15
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
            for label, model, frames, size, extra in cases:
                print(f"{label} ...", flush=True)
                results.append(bench_model(Path(tmp), label, model, frames, size, repeats, threads, **extra))
    finally:
        torch.set_num_threads(old_threads)

    headers = ["model", "runtime", "ms / clip (median)", "x PyTorch speed", "spread", "file MB"]
    rows = []
    for r in results:
        base = r["timings"]["PyTorch fp32"].median
        for name, t in r["timings"].items():
            rows.append([r["label"], name, common.fmt_ms(t.median), f"{base / t.median:.2f}", f"{t.spread:.0%}",
                         f"{r['sizes'][name] / 1e6:.2f}"])
    common.print_table("Inference latency, batch 1, CPU", headers, rows)
    notes = common.Notes()
    for r in results:
        notes.add(f"{r['label']}: max |ONNX fp32 - PyTorch| logit difference {r['onnx_diff']:.1e} (batch 1 and 3); "
                  + "; ".join(f"{name} {r['int8_diff'][name]:.1e} on one random clip, same top class: "
                              f"{'yes' if r['int8_agree'][name] else 'no'}" for name in (DYNAMIC, STATIC)))
        notes.add(f"{r['label']}: the export report would deploy {r['choice']['variant']} ({r['choice']['reason']})")
    notes.add(f"{threads} intra-op thread(s) for PyTorch and ONNX Runtime alike; {repeats} timed rounds per variant, "
              "interleaved; model forward only (decoding and preprocessing excluded); random weights")
    notes.add("int8 = onnxruntime.quantization.quantize_dynamic (int8 weights, activations quantised per call: "
              "ConvInteger / MatMulInteger); QDQ int8 (static) = quantize_static, QDQ format, per-channel int8 weights, "
              "uint8 activations calibrated on 8 random clips (fused into QLinearConv / QGemm); accuracy effect on a "
              "trained model: see docs/deploy.md")
    common.publish_table_section(args.results, SECTION, argv, __file__, ["torch", "onnx", "onnxruntime", "onnxscript", "numpy"],
                                 headers, rows, "llrrrr", notes, started=started, machine=machine, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
