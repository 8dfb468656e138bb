"""Export to ONNX / TorchScript, ONNX Runtime inference, int8 quantisation, pruning and `vidlens export`.

Checkpoints are randomly initialised registered models saved in the checkpoint format (what is
checked is that the deployed file computes what PyTorch computes, not what was learned); videos
come from the tiny synthetic action set.
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

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.synthetic import make_action_dataset  # noqa: E402
from vidlens.data.transforms import TransformConfig  # noqa: E402
from vidlens.deploy import (  # noqa: E402
    OnnxClassifier,
    compression_report,
    export_onnx,
    export_torchscript,
    load_torchscript,
    max_abs_diff,
    onnx_metadata,
    prune_checkpoint,
    VariantRow,
    quantize_int8,
    recommend_variant,
    sparsity,
)
from vidlens.deploy.export import example_input, load_model  # noqa: E402
from vidlens.engine import save_checkpoint  # noqa: E402
from vidlens.errors import ConfigError  # noqa: E402
from vidlens.models import build_model  # noqa: E402
from vidlens.tasks.classify import preprocess_fields  # noqa: E402
from vidlens.tasks.predictor import VideoClassifier  # noqa: E402

CLASSES = ("move_left", "grow")
VIDLENS = Path(sys.executable).parent / "vidlens"


def make_checkpoint(path: Path, model: str, *, frames: int = 8, size: int = 32, labels=CLASSES, **args) -> Path:
    torch.manual_seed(0)
    net = build_model(model, len(labels), load_weights=False, **args)
    sampler = SamplerConfig(mode="clip", clip_len=frames, stride=1)
    transform = TransformConfig(size=size, resize=size, crop="center", hflip=False)
    return save_checkpoint(path, {"model": model, "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": list(labels), "preprocess": preprocess_fields(sampler, transform, size),
                                  "config": {}, "metrics": {"val_top1": 0.5}})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("deploy_data") / "actions"
    make_action_dataset(root, 4, 8, 32, 8, seed=0, workers=0, classes=CLASSES, overwrite=True)
    return root


@pytest.fixture(scope="module")
def c3d(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, its ONNX export)."""
    folder = tmp_path_factory.mktemp("deploy_c3d")
    ckpt = make_checkpoint(folder / "c3d.pt", "c3d", width=0.25)
    return ckpt, export_onnx(ckpt, folder / "c3d.onnx")


def test_onnx_matches_pytorch_with_dynamic_batch(c3d):
    ckpt, onnx_path = c3d
    model, meta = load_model(ckpt)
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["video"] and [o.name for o in sess.get_outputs()] == ["logits"]
    for batch in (1, 3):
        x = example_input(meta["preprocess"], batch=batch, seed=batch)
        with torch.no_grad():
            ref = model(x).numpy()
        out = sess.run(["logits"], {"video": x.numpy()})[0]
        assert out.shape == (batch, len(CLASSES))
        assert np.abs(out - ref).max() < 1e-4
    assert max_abs_diff(ckpt, onnx_path) < 1e-4


def test_metadata_round_trips(c3d):
    ckpt, onnx_path = c3d
    _, raw = load_model(ckpt)
    meta = onnx_metadata(onnx_path)
    assert meta["labels"] == list(CLASSES) and meta["model"] == "c3d"
    assert meta["preprocess"] == json.loads(json.dumps(raw["preprocess"]))
    assert meta["model_args"]["width"] == 0.25 and meta["multi_label"] is False
    keys = {p.key for p in onnx.load(str(onnx_path)).metadata_props}
    assert {"labels", "preprocess", "model", "model_args", "vidlens_version"} <= keys


@pytest.mark.parametrize("name,args", [
    ("tsn", {"encoder": "small_cnn", "width": 0.25}),
    ("lstm", {"width": 0.25, "hidden": 16}),
    ("gru", {"width": 0.25, "hidden": 16}),
    ("transformer", {"width": 0.25, "dim": 32, "layers": 1}),
    ("r2plus1d_18", {"width": 0.125}),
])
def test_representative_models_export(tmp_path, name, args):
    ckpt = make_checkpoint(tmp_path / f"{name}.pt", name, **args)
    onnx_path = export_onnx(ckpt, tmp_path / f"{name}.onnx")
    assert max_abs_diff(ckpt, onnx_path, batch_sizes=(1, 3)) < 1e-4


def test_unexportable_model_is_a_config_error_naming_it(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "gru.pt", "gru", width=0.25, hidden=16)

    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::something' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(ConfigError, match="model gru cannot be exported to ONNX.*aten::something"):
        export_onnx(ckpt, tmp_path / "gru.onnx")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*tmp"))


def test_torchscript_export_matches_and_carries_metadata(c3d, tmp_path):
    ckpt, _ = c3d
    path = export_torchscript(ckpt, tmp_path / "model.torchscript.pt")
    module, meta = load_torchscript(path)
    model, raw = load_model(ckpt)
    x = example_input(raw["preprocess"], batch=3)
    with torch.no_grad():
        assert torch.allclose(module(x), model(x), atol=1e-5)
    assert meta["labels"] == list(CLASSES) and meta["preprocess"]["transform"]["size"] == 32


def test_onnx_classifier_predicts_like_the_checkpoint(c3d, dataset):
    ckpt, onnx_path = c3d
    video = sorted((dataset / "grow").glob("*.mp4"))[0]
    ref = VideoClassifier.from_checkpoints([ckpt]).predict(video, top_k=2)
    got = OnnxClassifier(onnx_path).predict(video, top_k=2)
    assert got["path"] == ref["path"] and [t["label"] for t in got["top"]] == [t["label"] for t in ref["top"]]
    assert [t["score"] for t in got["top"]] == pytest.approx([t["score"] for t in ref["top"]], abs=1e-4)


def test_cli_predict_accepts_an_onnx_file(c3d, dataset, tmp_path):
    ckpt, onnx_path = c3d
    video = sorted((dataset / "move_left").glob("*.mp4"))[0]
    out = tmp_path / "pred"
    result = subprocess.run([str(VIDLENS), "--quiet", "predict", str(video), "--checkpoint", str(onnx_path), "--out", str(out)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows[0]["top"][0]["label"] == VideoClassifier.from_checkpoints([ckpt]).predict(video)["top"][0]["label"]


def test_int8_and_pruning(c3d, tmp_path):
    ckpt, onnx_path = c3d
    int8 = quantize_int8(onnx_path, tmp_path / "model.int8.onnx")
    assert int8.stat().st_size < onnx_path.stat().st_size / 2
    assert {"ConvInteger", "MatMulInteger"} & {n.op_type for n in onnx.load(str(int8)).graph.node}
    clf = OnnxClassifier(int8)
    assert clf.labels == list(CLASSES) and onnx_metadata(int8)["quantization"] == "int8-dynamic"
    model, raw = load_model(ckpt)
    x = example_input(raw["preprocess"], batch=1)
    out = clf.members[0].model(x)
    assert out.shape == (1, 2) and torch.isfinite(out).all()

    pruned = prune_checkpoint(ckpt, tmp_path / "p50.pt", 0.5)
    pmodel, pckpt = load_model(pruned)
    assert sparsity(pmodel) == pytest.approx(0.5, abs=0.01) and sparsity(model) < 0.01
    assert pckpt["config"]["pruned"]["amount"] == 0.5


def test_compression_report_rows(c3d, dataset, tmp_path):
    ckpt, onnx_path = c3d
    rows = compression_report(ckpt, dataset, out_dir=tmp_path, onnx_path=onnx_path, prune=(0.3, 0.5), repeats=2)
    assert [r.variant for r in rows] == ["fp32 PyTorch", "ONNX fp32", "ONNX int8", "ONNX int8 static", "pruned 30%",
                                         "pruned 50%"]
    assert all(r.latency_ms > 0 and r.size_mb > 0 and 0 <= r.top1 <= 1 for r in rows)
    assert rows[1].top1 == rows[0].top1 and rows[1].top1_drop == 0  # fp32 ONNX: same predictions
    assert rows[2].size_mb < rows[1].size_mb / 2 and rows[3].size_mb < rows[1].size_mb / 2
    # static int8: QDQ with per-channel weights, calibrated on the validation clips, fused by ONNX Runtime
    static = onnx.load(rows[3].file)
    ops = {n.op_type for n in static.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "ConvInteger" not in ops
    conv_scales = [i for i in static.graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] > 1]
    assert conv_scales  # one scale per output channel
    assert onnx_metadata(rows[3].file)["quantization"] == "int8-static" and "validation clips" in rows[3].note
    choice = recommend_variant(rows)
    assert choice["variant"] in {"ONNX fp32", "ONNX int8", "ONNX int8 static"} and choice["reason"]


def _row(variant: str, size: float, ms: float, drop: float | None = 0.0) -> VariantRow:
    return VariantRow(variant, "onnx", f"{variant}.onnx", size, size, 0.0, ms, None, drop)


def test_int8_is_recommended_only_where_faster_or_much_smaller_on_a_large_model():
    small_slow = [_row("ONNX fp32", 1.7, 2.2), _row("ONNX int8", 0.45, 18.5), _row("ONNX int8 static", 0.45, 9.0)]
    choice = recommend_variant(small_slow)  # the C3D: int8 8x slower
    assert choice["variant"] == "ONNX fp32" and "4.09x slower" in choice["reason"] and "3.8x smaller" in choice["reason"]
    fast = [_row("ONNX fp32", 125.0, 700.0), _row("ONNX int8", 31.0, 2700.0), _row("ONNX int8 static", 31.5, 600.0)]
    assert recommend_variant(fast)["variant"] == "ONNX int8 static"
    big_bit_slower = [_row("ONNX fp32", 125.0, 700.0), _row("ONNX int8 static", 31.5, 800.0)]
    assert recommend_variant(big_bit_slower)["variant"] == "ONNX int8 static"
    lossy = [_row("ONNX fp32", 125.0, 700.0), _row("ONNX int8 static", 31.5, 600.0, drop=0.05)]
    assert recommend_variant(lossy)["variant"] == "ONNX fp32" and "top-1" in recommend_variant(lossy)["reason"]


def test_cli_export_writes_files_and_report(c3d, dataset, tmp_path):
    ckpt, _ = c3d
    out = tmp_path / "export"
    result = subprocess.run([str(VIDLENS), "--quiet", "export", "--checkpoint", str(ckpt), "--out", str(out), "--format", "all",
                             "--quantize", "int8", "--prune", "0.5", "--val-data", str(dataset), "--repeats", "2"],
                            capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    for name in ("model.onnx", "model.int8.onnx", "model.torchscript.pt", "model.pruned50.pt", "report.json", "report.csv"):
        assert (out / name).is_file(), name
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    assert report["onnx_max_abs_diff"] < 1e-4
    assert [r["variant"] for r in report["rows"]] == ["fp32 PyTorch", "ONNX fp32", "ONNX int8", "ONNX int8 static",
                                                      "pruned 50%"]
    assert report["recommendation"]["variant"] in {"ONNX fp32", "ONNX int8", "ONNX int8 static"}
    assert (out / "model.int8-static.onnx").is_file()
    with open(out / "report.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 5
    assert "ONNX int8" in result.stdout and "export report" in result.stdout

    bad = subprocess.run([str(VIDLENS), "--quiet", "export", "--checkpoint", str(ckpt), "--out", str(out), "--format", "tflite"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--format must be one of" in bad.stderr
