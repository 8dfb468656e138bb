"""Compression: int8 quantisation of an exported ONNX model, magnitude pruning of a checkpoint, and the
report that compares the variants (file size, CPU latency per clip, top-1 on a validation set).

- `quantize_int8`: ONNX Runtime dynamic quantisation (int8 weights, activations quantised on the
  fly): it covers Conv3d (ConvInteger), Linear/MatMul and LSTM/GRU. `method="static"` instead
  calibrates activation ranges on a few clips (QDQ format, per-channel weights), which ONNX
  Runtime fuses into QLinearConv / QGemm.
- `recommend_variant`: which file to deploy. int8 is kept only where it is faster than ONNX fp32,
  or much smaller on a large model at little cost in speed; measured on 2 CPU cores, both int8
  kinds were slower than fp32 for the small demo C3D (3-D int8 kernels do not pay off on thin
  layers) and static int8 was faster for R(2+1)D-18 (see docs/deploy.md).
- `prune_checkpoint`: global L1 unstructured pruning of every Conv/Linear weight at a sparsity,
  made permanent (`prune.remove`), saved as an ordinary checkpoint. Dense storage: the file is
  no smaller and no faster; the zeros only pay off compressed (the report's `zipped_mb`) or on
  sparse kernels.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlens.deploy.export import _need, example_input, export_onnx, load_model
from vidlens.tasks.backends import OnnxModule, ort_session
from vidlens.engine.checkpoint import save_checkpoint
from vidlens.errors import ConfigError, DatasetError, VidlensError
from vidlens.tasks.classify import view_probabilities

log = logging.getLogger(__name__)


def quantize_int8(
    onnx_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    method: str = "dynamic",
    calibration: list[np.ndarray] | None = None,
) -> Path:
    """Write an int8 copy of an fp32 ONNX export (metadata kept). `calibration`: `(1,T,C,H,W)` arrays for static."""
    _need("onnxruntime")
    from onnxruntime import quantization as Q

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quiet = logging.getLogger()  # onnxruntime's quantiser warns on the root logger
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if method == "dynamic":
            Q.quantize_dynamic(os.fspath(onnx_path), os.fspath(out_path), weight_type=Q.QuantType.QInt8)
        elif method == "static":
            if not calibration:
                raise ConfigError(None, "static int8 quantisation needs calibration clips")

            class _Reader(Q.CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter(calibration)

                def get_next(self) -> dict[str, np.ndarray] | None:
                    item = next(self._it, None)
                    return None if item is None else {"video": np.asarray(item, dtype=np.float32)}

            Q.quantize_static(os.fspath(onnx_path), os.fspath(out_path), _Reader(), quant_format=Q.QuantFormat.QDQ,
                              weight_type=Q.QuantType.QInt8, activation_type=Q.QuantType.QUInt8, per_channel=True)
        else:
            raise ConfigError(None, f"int8 method must be dynamic or static, got {method!r}")
    finally:
        quiet.setLevel(level)
    _copy_metadata(onnx_path, out_path, {"quantization": f'"int8-{method}"'})
    return out_path


def _copy_metadata(src: str | os.PathLike[str], dst: Path, extra: dict[str, str]) -> None:
    onnx = _need("onnx")
    props = {p.key: p.value for p in onnx.load(os.fspath(src), load_external_data=False).metadata_props}
    proto = onnx.load(os.fspath(dst))
    have = {p.key for p in proto.metadata_props}
    for key, value in {**props, **extra}.items():
        if key not in have:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(proto, os.fspath(dst))


def _prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    return [(m, "weight") for m in model.modules() if isinstance(m, kinds) and getattr(m, "weight", None) is not None]


def sparsity(model: nn.Module) -> float:
    """Share of zeros among the Conv/Linear weights."""
    params = [m.weight for m, _ in _prunable(model)]
    total = sum(p.numel() for p in params)
    return float(sum((p == 0).sum().item() for p in params) / total) if total else 0.0


def prune_model(model: nn.Module, amount: float) -> nn.Module:
    """Global L1 unstructured pruning of all Conv/Linear weights at `amount` (0-1), made permanent. In place."""
    from torch.nn.utils import prune

    if not 0.0 <= float(amount) < 1.0:
        raise ConfigError(None, f"prune amount must be in [0, 1), got {amount}")
    targets = _prunable(model)
    if not targets:
        raise ConfigError(None, f"model {getattr(model, 'model_name', '?')} has no Conv/Linear weights to prune")
    prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(amount))
    for module, name in targets:
        prune.remove(module, name)
    return model


def prune_checkpoint(checkpoint: str | os.PathLike[str], out_path: str | os.PathLike[str], amount: float) -> Path:
    """A copy of `checkpoint` with its Conv/Linear weights pruned to `amount` sparsity (global L1)."""
    model, ckpt = load_model(checkpoint)
    prune_model(model, amount)
    payload = {k: v for k, v in ckpt.items() if k not in ("format", "vidlens_version", "train_state")}
    payload["state_dict"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    payload["config"] = {**(ckpt.get("config") or {}), "pruned": {"method": "global_l1_unstructured", "amount": float(amount),
                                                                  "sparsity": round(sparsity(model), 4)}}
    return save_checkpoint(out_path, payload)


# ----------------------------------------------------------------------------- report


@dataclass
class VariantRow:
    """One row of the compression report."""

    variant: str
    format: str
    file: str
    size_mb: float
    zipped_mb: float
    sparsity: float
    latency_ms: float  # median CPU time per clip, batch 1, model forward only
    top1: float | None
    top1_drop: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _zipped_mb(path: Path) -> float:
    comp = zlib.compressobj(6)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            size += len(comp.compress(chunk))
    return (size + len(comp.flush())) / 1e6


def load_val_clips(checkpoint_labels: list[str], preprocess: dict[str, Any], val_data: str | os.PathLike[str],
                   max_videos: int | None = None, *, exclude: str | os.PathLike[str] | None = None,
                   bad: dict[str, str] | None = None) -> tuple[torch.Tensor, list[int]]:
    """Decode a validation set once, through the checkpoint's own preprocessing.

    `val_data`: any dataset layout `load_spec` reads (class folders, manifest, ...); its "val"
    split is used when it has one, else "test", else every video. Returns clips
    `(N,V,T,C,H,W)` and targets (indices into `checkpoint_labels`); videos whose class the model
    does not know are skipped, and so are the files of `exclude` (a scan's bad_files.csv) and
    unreadable ones (path -> reason added to `bad`).
    """
    from vidlens.data.cache import cache_key
    from vidlens.data.datasets import VideoClipDataset
    from vidlens.data.scan import load_bad_files
    from vidlens.data.sources import load_spec
    from vidlens.data.transforms import build_eval_transform
    from vidlens.tasks.backends import clip_configs

    spec = load_spec(val_data, val_frac=0.0, test_frac=0.0)
    skip = load_bad_files(exclude)
    split = next((s for s in ("val", "test") if spec.records_by_split.get(s)), None)
    records = spec.records_by_split[split] if split else [r for _, r in spec.all_records()]
    records = [r for r in records if isinstance(r.label, int) and spec.labels[r.label] in checkpoint_labels
               and cache_key(r.path) not in skip]
    if max_videos:
        records = records[: int(max_videos)]
    if not records:
        raise DatasetError(val_data, "no validation videos with a class the model knows")
    sampler, transform = clip_configs(val_data, preprocess)
    dataset = VideoClipDataset(records, spec.labels, sampler, build_eval_transform(transform), train=False,
                               decode_size=preprocess.get("decode_size"), max_retries=0)
    bad = {} if bad is None else bad
    clips, targets = [], []
    for i, rec in enumerate(records):
        try:
            clips.append(dataset[i]["video"])
        except VidlensError as exc:  # skipped and reported, as training does
            bad[rec.path] = exc.reason
            continue
        targets.append(checkpoint_labels.index(spec.labels[rec.label]))
    if not clips:
        raise DatasetError(val_data, f"none of the {len(records)} validation videos could be read")
    return torch.stack(clips), targets


def _top1(model: nn.Module, clips: torch.Tensor, targets: list[int], multi_label: bool, batch: int = 8) -> float:
    hits = 0
    with torch.inference_mode():
        for i in range(0, len(clips), batch):
            probs = view_probabilities(model, clips[i : i + batch], multi_label)
            hits += int((probs.argmax(dim=1) == torch.tensor(targets[i : i + batch])).sum())
    return hits / len(targets)


def _latency_ms(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int = 2) -> float:
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def compression_report(
    checkpoint: str | os.PathLike[str],
    val_data: str | os.PathLike[str] | None,
    *,
    out_dir: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str] | None = None,
    quantize: str | None = "int8",
    prune: tuple[float, ...] | list[float] = (0.3, 0.5),
    repeats: int = 10,
    threads: int | None = None,
    max_videos: int | None = None,
    exclude: str | os.PathLike[str] | None = None,
    bad: dict[str, str] | None = None,
) -> list[VariantRow]:
    """Compare fp32 PyTorch, ONNX fp32, ONNX int8 and pruned checkpoints: one `VariantRow` each.

    Files are written to `out_dir` (`model.onnx` unless `onnx_path` is given, `model.int8.onnx`,
    `model.pruned30.pt`, ...). Latency: median of `repeats` batch-1 forwards of one clip on the
    CPU, `threads` intra-op threads for both PyTorch and ONNX Runtime (default: torch's count).
    Top-1 (None without `val_data`) on the validation clips, decoded once for all variants.
    """
    if quantize not in (None, "int8"):
        raise ConfigError(None, f"--quantize supports int8 only, got {quantize!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, ckpt = load_model(checkpoint)
    labels, pre = list(ckpt["labels"]), ckpt["preprocess"]
    multi_label = bool(ckpt["model_args"].get("multi_label", False))
    threads = int(threads or torch.get_num_threads())
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        clips, targets = (load_val_clips(labels, pre, val_data, max_videos, exclude=exclude, bad=bad)
                          if val_data is not None else (None, []))
        x = example_input(pre, batch=1, seed=7)

        variants: list[tuple[str, str, Path, nn.Module]] = [("fp32 PyTorch", "pytorch", Path(checkpoint), model)]
        onnx_file = Path(onnx_path) if onnx_path else export_onnx(checkpoint, out_dir / "model.onnx")
        variants.append(("ONNX fp32", "onnx", onnx_file, OnnxModule(ort_session(onnx_file, threads=threads))))
        notes: dict[str, str] = {"ONNX int8": "dynamic: int8 weights, activations quantised per call"}
        if quantize == "int8":
            int8 = quantize_int8(onnx_file, out_dir / "model.int8.onnx")
            variants.append(("ONNX int8", "onnx", int8, OnnxModule(ort_session(int8, threads=threads))))
            calibration, source = calibration_clips(clips, pre)
            static = quantize_int8(onnx_file, out_dir / "model.int8-static.onnx", method="static", calibration=calibration)
            variants.append(("ONNX int8 static", "onnx", static, OnnxModule(ort_session(static, threads=threads))))
            notes["ONNX int8 static"] = f"static QDQ, per-channel weights, calibrated on {len(calibration)} {source}"
        for amount in prune:
            path = prune_checkpoint(checkpoint, out_dir / f"model.pruned{int(round(amount * 100))}.pt", amount)
            pruned, _ = load_model(path)
            variants.append((f"pruned {int(round(amount * 100))}%", "pytorch", path, pruned))

        rows = []
        for name, fmt, path, module in variants:
            top1 = _top1(module, clips, targets, multi_label) if clips is not None else None
            sp = sparsity(module) if isinstance(module, nn.Module) and not isinstance(module, OnnxModule) else 0.0
            rows.append(VariantRow(name, fmt, str(path), round(path.stat().st_size / 1e6, 3), round(_zipped_mb(path), 3),
                                   round(sp, 3), round(_latency_ms(module, x, repeats), 2),
                                   None if top1 is None else round(top1, 4), note=notes.get(name, "")))
        base = rows[0].top1
        for row in rows:
            row.top1_drop = None if base is None or row.top1 is None else round(base - row.top1, 4)
        return rows
    finally:
        torch.set_num_threads(old_threads)


def calibration_clips(clips: torch.Tensor | None, preprocess: dict[str, Any], count: int = 16) -> tuple[list[np.ndarray], str]:
    """(`(1,T,C,H,W)` float arrays for static int8 calibration, where they come from).

    The validation clips' views when there are some, else fixed random clips shaped like the
    checkpoint's (normalised clips are roughly zero-mean, unit-variance; give --val-data for real ranges).
    """
    if clips is not None and len(clips):
        views = clips.flatten(0, 1)[:count]  # (n,T,C,H,W)
        return [v[None].numpy().astype(np.float32) for v in views], "validation clips"
    return [example_input(preprocess, batch=1, seed=1000 + i).numpy() for i in range(8)], "random clips (no --val-data)"


def recommend_variant(rows: list[VariantRow], *, max_drop: float = 0.01, faster: float = 0.9,
                      large_mb: float = 50.0) -> dict[str, Any]:
    """Which ONNX file to deploy on this CPU: `{"variant", "file", "reason"}`.

    An int8 variant is chosen only when its top-1 drop is at most `max_drop` (when measured) and it is
    faster than ONNX fp32 (latency <= `faster` x fp32's), or, for a model of at least `large_mb`, at
    least 3x smaller and at most 1.5x slower. Otherwise ONNX fp32, saying what int8 would cost.
    """
    by_name = {r.variant: r for r in rows}
    fp32 = by_name.get("ONNX fp32")
    if fp32 is None:
        return {}
    int8 = [r for r in rows if r.variant.startswith("ONNX int8") and (r.top1_drop is None or r.top1_drop <= max_drop)]
    best = min(int8, key=lambda r: r.latency_ms, default=None)
    choice = {"variant": fp32.variant, "file": fp32.file}
    if best is None:
        dropped = [r for r in rows if r.variant.startswith("ONNX int8")]
        reason = "no int8 variant was measured" if not dropped else \
            f"int8 loses more than {max_drop:.0%} top-1 (" + ", ".join(f"{r.variant} {r.top1_drop:+.3f}" for r in dropped) + ")"
        return {**choice, "reason": reason}
    speed = fp32.latency_ms / max(best.latency_ms, 1e-9)
    smaller = fp32.size_mb / max(best.size_mb, 1e-9)
    if best.latency_ms <= faster * fp32.latency_ms:
        return {"variant": best.variant, "file": best.file,
                "reason": f"{speed:.2f}x faster and {smaller:.1f}x smaller than ONNX fp32" + _drop_text(best)}
    if fp32.size_mb >= large_mb and smaller >= 3 and speed >= 1 / 1.5:
        return {"variant": best.variant, "file": best.file,
                "reason": f"{smaller:.1f}x smaller than ONNX fp32 ({fp32.size_mb:.0f} MB) at {1 / speed:.2f}x its latency"
                          + _drop_text(best)}
    return {**choice, "reason": f"int8 is {1 / speed:.2f}x slower here (best: {best.variant}); it is {smaller:.1f}x smaller, "
                                "so use it only where file size matters more than speed"}


def _drop_text(row: VariantRow) -> str:
    return "" if row.top1_drop is None else f", top-1 drop {row.top1_drop:+.3f}"


REPORT_COLUMNS = ("variant", "format", "size_mb", "zipped_mb", "sparsity", "latency_ms", "top1", "top1_drop", "file", "note")


def write_report(rows: list[VariantRow], out_dir: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """`report.json` (`{"rows": [...], "recommendation": {...}, ...extra}`), `report.csv` and `report.png` in `out_dir`."""
    import csv
    import json

    from vidlens.report.compression import plot_compression

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "report.json", "csv": out_dir / "report.csv", "png": out_dir / "report.png"}
    recommendation = recommend_variant(rows)
    payload = {**(extra or {}), **({"recommendation": recommendation} if recommendation else {}),
               "rows": [r.to_dict() for r in rows]}
    files["json"].write_text(json.dumps(payload, indent=2) + "\n",
                             encoding="utf-8")
    with open(files["csv"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(REPORT_COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.to_dict().items()})
    plot_compression([r.to_dict() for r in rows], files["png"])
    return files
