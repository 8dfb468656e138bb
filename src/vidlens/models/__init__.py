"""Video models sharing one surface: `(B,T,C,H,W)` -> logits `(B,num_classes)`, `features` -> `(B,feature_dim)`.

`build_model(name, num_classes, **model_args)` builds any registered model; `model_names()` lists them;
`resolved_args(name, **model_args)` gives the complete, JSON-able argument dict a checkpoint stores.
"""

from vidlens.models.base import VideoModel
from vidlens.models.registry import (
    MODELS,
    ModelEntry,
    build_model,
    count_parameters,
    input_normalization,
    model_names,
    resolved_args,
)

__all__ = [
    "MODELS",
    "ModelEntry",
    "VideoModel",
    "build_model",
    "count_parameters",
    "input_normalization",
    "model_names",
    "resolved_args",
]
