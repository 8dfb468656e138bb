"""Export a trained checkpoint to ONNX or TorchScript, with everything inference needs inside the file.

ONNX: input `video` float `(B,T,C,H,W)` (normalised clips, as the checkpoint's eval transform
makes them), output `logits` `(B,K)`; the batch axis is dynamic. The checkpoint's labels,
preprocessing, model name/args and version go into the model's `metadata_props` (JSON strings,
see `METADATA_KEYS`), so `OnnxClassifier` / `vidlens predict --checkpoint model.onnx` need
nothing else. The TorchScript-based exporter (`dynamo=False`) is used first: it exports every
registered model; the dynamo exporter (needs onnxscript) is the fallback.

TorchScript: a traced module (fixed T/H/W, any batch) with the same JSON in the extra file
`vidlens.json`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlens import __version__
from vidlens.engine.checkpoint import load_checkpoint
from vidlens.errors import CheckpointError, ConfigError
from vidlens.models import build_model
from vidlens.tasks.backends import METADATA_KEYS, ort_session, read_metadata
from vidlens.tasks.backends import need as _need

__all__ = ["DEFAULT_OPSET", "METADATA_KEYS", "TORCHSCRIPT_EXTRA", "example_input", "export_onnx", "export_torchscript",
           "input_shape", "load_model", "load_torchscript", "max_abs_diff", "metadata", "read_metadata"]

DEFAULT_OPSET = 17
TORCHSCRIPT_EXTRA = "vidlens.json"


def load_model(checkpoint: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on the CPU, the checkpoint dict) of a vidlens checkpoint."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    try:
        model = build_model(ckpt["model"], len(ckpt["labels"]), load_weights=False, **dict(ckpt["model_args"]))
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, ConfigError) as exc:
        raise CheckpointError(checkpoint, f"weights do not fit model {ckpt['model']} ({str(exc).splitlines()[0]})") from None
    return model.eval(), ckpt


def input_shape(preprocess: dict[str, Any]) -> tuple[int, int, int, int]:
    """`(T, C, H, W)` of one clip as the checkpoint's eval transform makes it."""
    try:
        return int(preprocess["sampler"]["clip_len"]), 3, int(preprocess["transform"]["size"]), int(preprocess["transform"]["size"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(None, f"checkpoint preprocess section is incomplete ({exc})") from None


def example_input(preprocess: dict[str, Any], batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A fixed random `(B,T,C,H,W)` float batch shaped like the checkpoint's clips."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, *input_shape(preprocess), generator=gen)


def metadata(ckpt: dict[str, Any]) -> dict[str, str]:
    """The `metadata_props` an exported file carries: each value a JSON string."""
    args = dict(ckpt["model_args"])
    values = {
        "vidlens_format": 1,
        "model": ckpt["model"],
        "model_args": args,
        "labels": list(ckpt["labels"]),
        "preprocess": ckpt["preprocess"],
        "multi_label": bool(args.get("multi_label", False)),
        "metrics": ckpt.get("metrics") or {},
        "vidlens_version": __version__,
    }
    return {key: json.dumps(value, default=_json_default) for key, value in values.items()}


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor | np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _export_error(name: str, exc: BaseException) -> ConfigError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return ConfigError(None, f"model {name} cannot be exported to ONNX: {type(exc).__name__}: {reason}")


def _torch_onnx_export(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamo: bool) -> None:
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        if dynamo:
            _need("onnxscript")
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(model, (x,), str(path), input_names=["video"], output_names=["logits"],
                              dynamic_shapes={"x": {0: batch}}, opset_version=opset, dynamo=True)
        else:
            torch.onnx.export(model, (x,), str(path), input_names=["video"], output_names=["logits"],
                              dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=opset, dynamo=False)


def export_onnx(checkpoint: str | os.PathLike[str], out_path: str | os.PathLike[str], *, opset: int | None = None) -> Path:
    """Export `checkpoint` to an ONNX file at `out_path` (folders created; written atomically).

    Input `video` `(B,T,C,H,W)` float with a dynamic batch axis, output `logits`; labels and
    preprocessing in `metadata_props`. A model the exporters cannot handle raises `ConfigError`
    naming it.
    """
    onnx = _need("onnx")
    model, ckpt = load_model(checkpoint)
    name = ckpt["model"]
    opset = int(opset or DEFAULT_OPSET)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    x = example_input(ckpt["preprocess"], batch=2)
    errors: list[BaseException] = []
    try:
        for dynamo in (False, True):
            try:
                with torch.no_grad():
                    _torch_onnx_export(model, x, tmp, opset, dynamo)
                break
            except ConfigError:
                raise
            except Exception as exc:  # exporter limitations surface as many exception types
                errors.append(exc)
        else:
            raise _export_error(name, errors[0])
        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in metadata(ckpt).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        proto.doc_string = f"vidlens {name}: video (B,T,C,H,W) float -> logits (B,{len(ckpt['labels'])})"
        onnx.save(proto, str(tmp))
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def export_torchscript(checkpoint: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> Path:
    """Trace `checkpoint` into a TorchScript file (any batch; T/H/W as the checkpoint's clips).

    The same metadata JSON as the ONNX export is stored in the extra file `vidlens.json`
    (`torch.jit.load(path, _extra_files={"vidlens.json": ""})`).
    """
    model, ckpt = load_model(checkpoint)
    x = example_input(ckpt["preprocess"], batch=2)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, (x,), check_trace=False)
    except Exception as exc:
        raise ConfigError(None, f"model {ckpt['model']} cannot be traced to TorchScript: {type(exc).__name__}: "
                                f"{(str(exc).splitlines() or [''])[0][:300]}") from None
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            torch.jit.save(traced, str(tmp), _extra_files={TORCHSCRIPT_EXTRA: json.dumps({k: json.loads(v) for k, v in metadata(ckpt).items()})})
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_path


def load_torchscript(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(module in eval mode, metadata dict) of a file written by `export_torchscript`."""
    extra = {TORCHSCRIPT_EXTRA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise CheckpointError(path, f"not a readable TorchScript file ({(str(exc).splitlines() or [''])[0]})") from None
    raw = extra[TORCHSCRIPT_EXTRA]
    meta = json.loads(raw) if raw else {}
    return module.eval(), meta


def max_abs_diff(checkpoint: str | os.PathLike[str], onnx_path: str | os.PathLike[str], batch_sizes: tuple[int, ...] = (1, 3)) -> float:
    """Largest |ONNX Runtime - PyTorch| logit difference over fixed random inputs of each batch size."""
    model, ckpt = load_model(checkpoint)
    session = ort_session(onnx_path)
    worst = 0.0
    for i, batch in enumerate(batch_sizes):
        x = example_input(ckpt["preprocess"], batch=batch, seed=100 + i)
        with torch.no_grad():
            ref = model(x).numpy()
        out = session.run(["logits"], {"video": x.numpy()})[0]
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst
