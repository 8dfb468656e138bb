"""Explanations of video classifiers: where (heat) and when (temporal curve) a model looked.

`explain_clip(model, clip, method=...)` -> `ClipExplanation` for one clip of any model family.
Modules: `base` (the result type, the registry, `explain_clip`), `gradcam` ("gradcam", "gradcam++"),
`attention` ("attention"), `attribution` ("occlusion", "integrated-gradients"), `fusion` (which
modality carried a fusion model's decision). See docs/explain.md.
"""

from vidlens.tasks.explain.base import (
    EXPLAIN_METHODS,
    EXPLAINERS,
    ClipExplanation,
    applicable_methods,
    explain_clip,
    model_family,
    register_explainer,
)

__all__ = [
    "EXPLAIN_METHODS",
    "EXPLAINERS",
    "ClipExplanation",
    "applicable_methods",
    "explain_clip",
    "model_family",
    "register_explainer",
]
