"""The surface every vidlens video model shares.

A batch into any model is a float tensor `(B,T,C,H,W)`. Every model returns logits
`(B,num_classes)` from `forward` and an embedding `(B,feature_dim)` from `features`,
so tasks, ensembles, retrieval and export treat all architectures alike.
"""

from __future__ import annotations

from torch import Tensor, nn


class VideoModel(nn.Module):
    """Base class: subclasses set `num_classes` and `feature_dim` and implement `features` and `classify`."""

    num_classes: int
    feature_dim: int

    def features(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` float -> `(B,feature_dim)` clip embedding (before the classifier)."""
        raise NotImplementedError

    def classify(self, features: Tensor) -> Tensor:
        """`(B,feature_dim)` -> `(B,num_classes)` logits."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """`(B,T,C,H,W)` float -> `(B,num_classes)` logits."""
        return self.classify(self.features(x))
