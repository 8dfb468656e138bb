"""Train or fine-tune the facial-expression model on an image folder in FER2013 layout, with `engine.fit`.

Layout: `ROOT/train/<label>/*.png` and (optional, the validation set) `ROOT/test/<label>/*.png`,
gray (or colour, turned gray) face crops, 48x48 in FER2013 (any size is resized to 64x64).
Labels: when every folder name is one of `EMOTIONS`, the labels are `EMOTIONS` (all 7, in the
pretrained head's order, so the FER2013 head is kept even if some folders are absent); otherwise
the sorted folder names with a new head. Unreadable images are skipped and counted, never fatal.

Batches: `{"image": (B,1,64,64) float in [-1,1], "label": (B,) int64, "meta": {"path": [...]}}`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vidlens.engine.config import TrainConfig
from vidlens.engine.fit import FitResult, fit
from vidlens.errors import ConfigError, DatasetError
from vidlens.models.face import build_image_model
from vidlens.tasks.base import StepOutput
from vidlens.tasks.classify import ClassificationTask, view_probabilities
from vidlens.tasks.faces.expression import EMOTIONS, INPUT_SIZE, default_preprocess, to_model_input

logger = logging.getLogger("vidlens.faces")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def folder_labels(root: str | os.PathLike[str], split: str = "train") -> list[str]:
    """The label set of `ROOT/split`: `EMOTIONS` when every folder is an emotion name, else sorted folder names."""
    base = Path(root) / split
    if not base.is_dir():
        raise DatasetError(base, "no such folder (expected ROOT/train/<label>/*.png, FER2013 layout)")
    names = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not names:
        raise DatasetError(base, "has no class folders (expected ROOT/train/<label>/*.png)")
    lowered = [n.lower() for n in names]
    return list(EMOTIONS) if set(lowered) <= set(EMOTIONS) else names


class FerFolder(Dataset):
    """The images of `ROOT/split/<label>/`, decoded once into memory as `uint8 (N,64,64)` gray.

    `skipped`: `[(path, reason)]` of files that could not be read (skipped, counted, warned about).
    `augment`: random horizontal flip, shift up to 4 px and brightness/contrast jitter (training).
    Items: `{"image": (1,64,64) float in [-1,1], "label": int64, "meta": {"path": str}}`.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", labels: Sequence[str] | None = None,
                 augment: bool = False) -> None:
        import cv2

        self.root, self.split, self.augment = Path(root), split, augment
        self.labels = list(labels) if labels is not None else folder_labels(root, split)
        base = self.root / split
        if not base.is_dir():
            raise DatasetError(base, "no such folder (expected ROOT/<split>/<label>/*.png, FER2013 layout)")
        index = {name.lower(): i for i, name in enumerate(self.labels)}
        unknown = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name.lower() not in index)
        if unknown:
            raise DatasetError(base, f"class folder(s) {unknown} are not among the labels {self.labels}")
        images, targets, self.paths, self.skipped = [], [], [], []
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                    continue
                try:
                    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                except cv2.error as exc:  # some codecs raise instead of returning None
                    image, reason = None, str(exc).splitlines()[0]
                else:
                    reason = "unreadable or not an image"
                if image is None or image.size == 0:
                    self.skipped.append((str(path), reason))
                    continue
                if image.shape != (INPUT_SIZE, INPUT_SIZE):
                    image = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
                images.append(image)
                targets.append(index[folder.name.lower()])
                self.paths.append(str(path))
        if self.skipped:
            logger.warning("%s: skipped %d unreadable image(s), e.g. %s", base, len(self.skipped), self.skipped[0][0])
        if not images:
            raise DatasetError(base, f"no readable images ({len(self.skipped)} unreadable)")
        self.images = np.stack(images)
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.targets)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.targets, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts)}

    def _augment(self, image: np.ndarray) -> np.ndarray:
        # Torch's RNG: the engine seeds it per (seed, epoch, worker).
        if torch.rand(()) < 0.5:
            image = image[:, ::-1]
        dx, dy = (int(v) for v in torch.randint(-4, 5, (2,)))
        image = np.roll(np.pad(image, 4, mode="edge"), (dy, dx), axis=(0, 1))[4:-4, 4:-4]
        gain, bias = 1.0 + 0.2 * (float(torch.rand(())) - 0.5), 20.0 * (float(torch.rand(())) - 0.5)
        return np.clip(image.astype(np.float32) * gain + bias, 0, 255)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = self.images[i]
        if self.augment:
            image = self._augment(image)
        return {"image": to_model_input(np.ascontiguousarray(image))[0], "label": torch.tensor(self.targets[i]),
                "meta": {"path": self.paths[i]}}


class ExpressionTask(ClassificationTask):
    """`ClassificationTask` on face images: batches `{"image": (B,1,64,64), "label": (B,)}`.

    Loss, metrics (`top1` monitored) and checkpoint fields are the video classifier's."""

    def train_step(self, batch: dict[str, Any]) -> StepOutput:
        return super().train_step({**batch, "video": batch["image"]})

    def eval_step(self, batch: dict[str, Any]) -> StepOutput:
        targets = batch["label"]
        probs = view_probabilities(self.model, batch["image"], False, clip_ndim=3)
        loss = torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), targets.long())
        return StepOutput(loss=loss, scores=probs, targets=targets)


def expression_task(labels: Sequence[str], init: str = "fer2013", weights_file: str | None = None,
                    label_smoothing: float = 0.0) -> ExpressionTask:
    """An `ExpressionTask` around a `mini_xception` for `labels`, from the FER2013 weights or from scratch."""
    if init not in ("fer2013", "scratch"):
        raise ConfigError(None, f"init must be 'fer2013' or 'scratch' (got {init!r})")
    model = build_image_model("mini_xception", len(labels), weights=None if init == "scratch" else "fer2013",
                              weights_file=weights_file)
    # The checkpoint rebuilds the architecture only; its state_dict carries the weights.
    model_args = {**model.model_args, "weights": None, "weights_file": None}
    return ExpressionTask(model=model, labels=list(labels), model_name="mini_xception", model_args=model_args,
                          preprocess=default_preprocess(), label_smoothing=label_smoothing, clip_ndim=3)


def train_expression(root: str | os.PathLike[str], run_dir: str | os.PathLike[str], cfg: TrainConfig | None = None,
                     *, init: str = "fer2013", weights_file: str | None = None, labels: Sequence[str] | None = None,
                     augment: bool = True, resume: bool | str = False, progress: bool | None = None) -> FitResult:
    """Fine-tune (`init="fer2013"`) or train from scratch (`"scratch"`) on `ROOT/train`, validating on `ROOT/test`.

    Checkpoints (`run_dir/best.pt`, `last.pt`) are in the DESIGN format, loadable with
    `expression.load_expression_model(path)`. `result.extras`: `labels`, `train_images`, `test_images`,
    `skipped` (count) and `skipped_files` (`[(path, reason)]`).
    """
    cfg = cfg or TrainConfig(epochs=10, batch_size=64, lr=1e-3)
    labels = list(labels) if labels is not None else folder_labels(root, "train")
    train_set = FerFolder(root, "train", labels, augment=augment)
    val_set = FerFolder(root, "test", labels) if (Path(root) / "test").is_dir() else None
    from vidlens.engine.state import seed_everything

    seed_everything(cfg.seed)  # a new head (or a scratch model) starts from the seed's weights
    task = expression_task(labels, init, weights_file, cfg.label_smoothing)
    skipped = train_set.skipped + (val_set.skipped if val_set is not None else [])
    data = {"root": str(root), "train_images": len(train_set), "test_images": len(val_set) if val_set else 0,
            "skipped": len(skipped), "init": init}
    result = fit(task, train_set, val_set, cfg, run_dir, resume=resume, progress=progress,
                 extra_checkpoint={"data": data})
    result.extras.update({"labels": labels, "train_images": len(train_set),
                          "test_images": len(val_set) if val_set else 0, "skipped": len(skipped),
                          "skipped_files": skipped})
    return result
