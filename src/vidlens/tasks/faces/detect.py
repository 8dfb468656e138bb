"""Face detection behind a one-method interface: `FaceDetector.detect(image) -> list[FaceBox]`.

`image` is `uint8 (H,W,3)` RGB (as `vidlens.io` decodes frames) or `(H,W)` gray; boxes are in
that image's pixels. Two detectors:
- `MTCNNFaceDetector` (`vidlens.tasks.faces.mtcnn`): MTCNN with the weights shipped in the
  `facenet-pytorch` wheel; finds tilted and turned faces and gives 5 landmarks per face.
- `HaarFaceDetector`: OpenCV's frontal-face Haar cascade (fast, CPU, frontal faces only, no
  landmarks), the fallback when facenet-pytorch is not installed.
`make_face_detector(name)` builds one by name (`DETECTORS`); anything with the same `detect`
method can replace them in the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """A face: top-left `x, y`, size `w, h` in pixels, detector `score` (higher = surer, detector-specific).

    `angle`: degrees (OpenCV convention, counter-clockwise) the image must be rotated about the box
    centre for the face to stand upright; 0 for upright faces. The box itself is the upright face's box.
    `landmarks`: None, or 5 `(x, y)` points in image pixels: left eye, right eye, nose, left mouth
    corner, right mouth corner, "left"/"right" as seen in the image (the left eye has the smaller x
    on an upright face). MTCNN gives them (with `angle` 0: the roll is told by the eye line).
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    angle: float = 0.0
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    @property
    def area(self) -> float:
        return max(self.w, 0.0) * max(self.h, 0.0)

    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.w, self.y + self.h

    def scaled(self, factor: float) -> FaceBox:
        """The same box (and landmarks) in an image `factor` times larger."""
        points = None if self.landmarks is None else tuple((px * factor, py * factor) for px, py in self.landmarks)
        return replace(self, x=self.x * factor, y=self.y * factor, w=self.w * factor, h=self.h * factor,
                       landmarks=points)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; `landmarks` (`[[x, y], ...]`, 2 decimals) only when the box has them."""
        out: dict[str, Any] = {"x": round(self.x, 2), "y": round(self.y, 2), "w": round(self.w, 2),
                               "h": round(self.h, 2), "score": round(float(self.score), 4), "angle": self.angle}
        if self.landmarks is not None:
            out["landmarks"] = [[round(float(px), 2), round(float(py), 2)] for px, py in self.landmarks]
        return out


@runtime_checkable
class FaceDetector(Protocol):
    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """`uint8 (H,W,3)` RGB (or `(H,W)` gray) -> faces, best first."""
        ...


def iou(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    ax1, ay1, ax2, ay2 = a.xyxy()
    bx1, by1, bx2, by2 = b.xyxy()
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def nms(boxes: Sequence[FaceBox], iou_threshold: float = 0.3, containment: float | None = 0.8) -> list[FaceBox]:
    """Greedy non-maximum suppression: keep the best-scored box, drop those overlapping it, repeat.

    A box is dropped when its IoU with a kept box exceeds `iou_threshold`, or (`containment` not None)
    when more than that fraction of the smaller box lies inside the kept one (nested detections).
    Returns the kept boxes, best score first.
    """
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        drop = False
        for k in kept:
            if iou(box, k) > iou_threshold:
                drop = True
            elif containment is not None:
                kx1, ky1, kx2, ky2 = k.xyxy()
                bx1, by1, bx2, by2 = box.xyxy()
                inter = max(0.0, min(kx2, bx2) - max(kx1, bx1)) * max(0.0, min(ky2, by2) - max(ky1, by1))
                smaller = min(box.area, k.area)
                drop = smaller > 0 and inter / smaller > containment
            if drop:
                break
        if not drop:
            kept.append(box)
    return kept


def _gray(image: np.ndarray) -> np.ndarray:
    import cv2

    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    raise ValueError(f"expected a (H,W,3) RGB or (H,W) gray image, got shape {image.shape}")


class HaarFaceDetector:
    """OpenCV's `haarcascade_frontalface_default.xml` with NMS and optional tilted passes.

    The image is turned gray, shrunk so its width is at most `max_width` (speed; None = never),
    histogram-equalised, and scanned (`scale_factor`, `min_neighbors`); faces smaller than
    `min_size` pixels (in the original image) are ignored. `angles`: extra passes on the image
    rotated by these degrees catch tilted heads (frontal cascades miss heads tilted past ~15
    degrees); each costs one more scan, so by default (`tilted_only_if_empty`) they run only
    when the upright pass finds nothing. Scores are the cascade's last-stage weights
    (`detectMultiScale3(outputRejectLevels=True)`), about 0-10. Not thread-safe: one per thread.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 max_width: int | None = 480, angles: Sequence[float] = (20.0, -20.0),
                 tilted_only_if_empty: bool = True, iou_threshold: float = 0.3, cascade: str | None = None) -> None:
        import cv2

        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1 (got {scale_factor})")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size
        self.max_width, self.iou_threshold = max_width, iou_threshold
        self.angles = tuple(float(a) for a in angles if a != 0)
        self.tilted_only_if_empty = tilted_only_if_empty
        self.cascade_path = cascade or cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(self.cascade_path)
        if self._cascade.empty():
            raise ValueError(f"cannot load the Haar cascade {self.cascade_path}")

    def _scan(self, gray: np.ndarray, min_px: int) -> list[tuple[list[int], float]]:
        found = self._cascade.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px),
            outputRejectLevels=True)
        rects, _, weights = found
        if len(rects) == 0:
            return []
        weights = np.ravel(weights)
        if len(weights) != len(rects):  # no usable level weights: fall back to a constant
            weights = np.full(len(rects), float(self.min_neighbors))
        return [(list(map(int, r)), float(s)) for r, s in zip(rects, weights)]

    def detect(self, image: np.ndarray, *, tilted: bool = True) -> list[FaceBox]:
        """`uint8 (H,W,3)` RGB or `(H,W)` gray -> faces in the image's pixels, best score first.

        `tilted=False` skips the tilted passes for this image (a caller that knows no face is
        expected, e.g. no face track is live, saves two scans)."""
        import cv2

        gray = _gray(np.asarray(image))
        height, width = gray.shape
        scale = 1.0
        if self.max_width and width > self.max_width:
            scale = self.max_width / width
            gray = cv2.resize(gray, (self.max_width, max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(np.ascontiguousarray(gray))
        min_px = max(1, round(self.min_size * scale))
        h, w = gray.shape
        boxes = [FaceBox(x / scale, y / scale, bw / scale, bh / scale, score, 0.0)
                 for (x, y, bw, bh), score in self._scan(gray, min_px)]
        if (boxes and self.tilted_only_if_empty) or not tilted:
            return nms(boxes, self.iou_threshold)
        for angle in self.angles:
            matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
            rotated = cv2.warpAffine(gray, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            back = cv2.invertAffineTransform(matrix)
            for (x, y, bw, bh), score in self._scan(rotated, min_px):
                cx, cy = (float(v) for v in back @ np.array([x + bw / 2.0, y + bh / 2.0, 1.0]))
                if not (0 <= cx < w and 0 <= cy < h):
                    continue
                boxes.append(FaceBox((cx - bw / 2.0) / scale, (cy - bh / 2.0) / scale, bw / scale, bh / scale,
                                     score, angle))
        return nms(boxes, self.iou_threshold)


DETECTORS = ("auto", "mtcnn", "haar")


def mtcnn_available() -> bool:
    """True when the MTCNN weights of the `facenet-pytorch` wheel are installed."""
    from vidlens.tasks.faces.mtcnn import weights_dir

    try:
        weights_dir()
    except Exception:
        return False
    return True


def make_face_detector(name: str = "auto", **kwargs: Any) -> FaceDetector:
    """A face detector by name (`DETECTORS`): "mtcnn", "haar", or "auto" (MTCNN when facenet-pytorch's
    weights are installed, else Haar). `kwargs` go to the detector's constructor.

    Raises `ConfigError` for an unknown name, or "mtcnn" without facenet-pytorch installed.
    """
    from vidlens.errors import ConfigError

    key = str(name).strip().lower()
    if key not in DETECTORS:
        raise ConfigError(None, f"unknown face detector {name!r}: choose one of {', '.join(DETECTORS)}")
    if key == "auto":
        key = "mtcnn" if mtcnn_available() else "haar"
    if key == "haar":
        return HaarFaceDetector(**kwargs)
    from vidlens.tasks.faces.mtcnn import MTCNNFaceDetector

    return MTCNNFaceDetector(**kwargs)
