"""Deployment: export checkpoints to ONNX/TorchScript, run them with ONNX Runtime, compress them.

Needs the `export` extra (onnx, onnxruntime, onnxscript): `pip install 'vidlens[export]'`.
"""

from vidlens.deploy.compress import (
    VariantRow,
    compression_report,
    prune_checkpoint,
    prune_model,
    quantize_int8,
    recommend_variant,
    sparsity,
    write_report,
)
from vidlens.deploy.export import (
    export_onnx,
    export_torchscript,
    load_torchscript,
    max_abs_diff,
)
from vidlens.deploy.runtime import OnnxClassifier, OnnxModule, load_onnx_classifier, onnx_metadata, ort_session

__all__ = [
    "OnnxClassifier", "OnnxModule", "VariantRow", "compression_report", "export_onnx", "export_torchscript",
    "load_onnx_classifier", "load_torchscript", "max_abs_diff", "onnx_metadata", "ort_session", "prune_checkpoint",
    "prune_model", "quantize_int8", "recommend_variant", "sparsity", "write_report",
]
