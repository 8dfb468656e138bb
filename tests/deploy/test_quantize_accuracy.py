"""Int8 quantisation keeps a trained model's accuracy: the top-1 drop on the validation split is reported
and stays under 2 points (issue 6).

Unlike test_export.py (random weights: it checks that the deployed file computes what PyTorch
computes), the model here has really learned: a small C3D (the demo's model, at the demo's width)
trained with the real engine on the synthetic action set, four classes in two time-reversed pairs
(no single frame tells them apart). 60% train, 40% val, so the figure rests on 128 validation
videos (one flipped prediction is 0.78 points).

Measured on 2 CPU cores (~30 s for the file): over ten weight-init seeds the fp32 val top-1 was
0.87-0.95, and where quantised, int8 changed at most one of the 128 predictions. With the seed
used here: fp32 0.9297, int8 0.9219 (a drop of 0.78 points: one clip whose two best fp32 logits
were 0.004 apart).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from vidlens.data.synthetic import make_action_dataset  # noqa: E402
from vidlens.deploy import compression_report, onnx_metadata  # noqa: E402
from vidlens.deploy.compress import write_report  # noqa: E402
from vidlens.engine.config import TrainConfig  # noqa: E402
from vidlens.testing import single_thread  # noqa: E402
from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig  # noqa: E402
from vidlens.workflows.recognition import train_recognizer  # noqa: E402

pytestmark = pytest.mark.slow

CLASSES = ("move_left", "move_right", "grow", "shrink")
PER_CLASS, FRAMES, SIZE, FPS = 80, 8, 32, 8
SPLITS = (0.6, 0.4, 0.0)  # train / val / test: a large val split, so 2 points is more than one video
NUM_VAL = round(PER_CLASS * SPLITS[1]) * len(CLASSES)
CHANCE = 1 / len(CLASSES)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors on 2 shared cores: one intra-op thread is faster and steadier (and deterministic)."""
    with single_thread():
        yield


@pytest.fixture(scope="module")
def actions(tmp_path_factory) -> Path:
    """Lossless H.264 (crf 0): this build's libx264 does not always give the same bitstream for the same
    frames at crf 20 (measured: 2 of 240 clips decoded to other pixels between two generations in one
    process), and the trained model is sensitive to that; lossless decodes to the same pixels every time."""
    root = tmp_path_factory.mktemp("quant_data") / "actions"
    make_action_dataset(root, PER_CLASS, FRAMES, SIZE, FPS, seed=0, workers=0, classes=CLASSES, splits=SPLITS,
                        crf=0, overwrite=True)
    return root


@pytest.fixture(scope="module")
def trained(actions, tmp_path_factory) -> Path:
    """The demo's recipe scaled down (C3D width 0.25, AdamW 3e-3, cosine), trained on the manifest's
    train split; `best.pt` is the best val top-1 of epochs 4, 8 and 12. Dropout off: on 192 training
    videos it only slows fitting. The run's seed fixes the initial weights too."""
    cfg = RecognitionConfig(
        out=str(tmp_path_factory.mktemp("quant_run") / "c3d"),
        data=DataConfig(manifest=str(actions / "manifest.csv"), layout="manifest"),
        clip=ClipConfig(sampler="clip", clip_len=FRAMES, stride=1, size=SIZE, decode_size=SIZE, crop="center"),
        model=ModelConfig(name="c3d", args={"width": 0.25, "dropout": 0.0}),
        train=TrainConfig(epochs=12, batch_size=8, workers=0, seed=0, device="cpu", optimizer="adamw", lr=3e-3,
                          weight_decay=1e-4, scheduler="cosine", warmup_epochs=1, eval_every=4),
        test_split="none",
    )
    outcome = train_recognizer(cfg, progress=False)
    assert outcome.best_checkpoint is not None and outcome.monitor != "train_loss"  # selected on the val split
    return outcome.best_checkpoint


@pytest.fixture(scope="module")
def report(trained, actions, tmp_path_factory):
    out = tmp_path_factory.mktemp("quant_report")
    rows = compression_report(trained, actions, out_dir=out, quantize="int8", prune=(), repeats=2, threads=1)
    return out, rows


def test_int8_top1_drop_on_the_val_split_is_under_two_points(report, actions):
    out, rows = report
    splits = [line.rsplit(",", 1)[1] for line in (actions / "manifest.csv").read_text().splitlines()[1:]]
    assert splits.count("val") == NUM_VAL and "test" not in splits  # the report's top-1 is on these videos
    assert [r.variant for r in rows] == ["fp32 PyTorch", "ONNX fp32", "ONNX int8", "ONNX int8 static"]
    fp32, onnx32, int8, static = rows

    # The model really learned, so the comparison means something.
    assert fp32.top1 >= max(0.8, 3 * CHANCE), fp32
    assert onnx32.top1 == fp32.top1 and onnx32.top1_drop == 0

    # The int8 file is the quantised graph, not a copy of the fp32 one.
    assert onnx_metadata(int8.file)["quantization"] == "int8-dynamic"
    assert {"ConvInteger", "MatMulInteger"} <= {n.op_type for n in onnx.load(int8.file).graph.node}
    assert int8.size_mb < onnx32.size_mb / 2

    # Both numbers are reported, and the drop is under 2 points.
    assert int8.top1 is not None and int8.top1_drop is not None
    assert int8.top1_drop == pytest.approx(fp32.top1 - int8.top1, abs=1e-4)
    assert int8.top1_drop < 0.02, (fp32.top1, int8.top1)
    # Static QDQ int8, calibrated on the validation clips: also under 2 points.
    assert onnx_metadata(static.file)["quantization"] == "int8-static" and "validation clips" in static.note
    assert static.top1_drop is not None and static.top1_drop < 0.02, (fp32.top1, static.top1)
    print(f"\nfp32 {fp32.top1} ({onnx32.latency_ms} ms ONNX), int8 dynamic {int8.top1} ({int8.latency_ms} ms), "
          f"int8 static {static.top1} ({static.latency_ms} ms)")


def test_report_files_carry_top1_and_drop(report, actions):
    out, rows = report
    write_report(rows, out, extra={"val_data": str(actions)})
    saved = {r["variant"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert saved["ONNX int8"]["top1"] == rows[2].top1 and saved["ONNX int8"]["top1_drop"] == rows[2].top1_drop
    assert saved["fp32 PyTorch"]["top1"] == rows[0].top1 and saved["fp32 PyTorch"]["top1_drop"] == 0
    header, *lines = (out / "report.csv").read_text().splitlines()
    assert "top1" in header.split(",") and "top1_drop" in header.split(",") and len(lines) == 4
    assert json.loads((out / "report.json").read_text())["recommendation"]["variant"] in {r.variant for r in rows[1:]}
