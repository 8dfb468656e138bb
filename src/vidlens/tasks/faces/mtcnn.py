"""MTCNN face detection (Zhang et al. 2016, "Joint face detection and alignment using multi-task
cascaded convolutional networks") with the P/R/O-Net weights that ship in the `facenet-pytorch` wheel.

Why: Haar's frontal cascade misses heads turned or tilted past ~15 degrees and gives no landmarks;
MTCNN finds them and gives 5 points per face (eyes, nose, mouth corners) for alignment.

The wheel is installed with `pip install --no-deps facenet-pytorch==2.6.0` (it pins an old torch).
Only its three state dicts are used (`facenet_pytorch/data/{pnet,rnet,onet}.pt`, found without
importing the package, which would pull `requests`, PIL and tqdm, and loaded with
`torch.load(weights_only=True)`); the three networks are re-declared here with facenet-pytorch's
layer names, and the cascade is written here with OpenCV resizes and torchvision NMS. It follows
facenet-pytorch's `detect_face` (same pyramid, box arithmetic and NMS thresholds, so its boxes
match: final boxes are not square, about 1.3 x taller than wide) except that crops reaching past
the image border are zero-padded, as in the original MTCNN, instead of clipped and stretched.

Speed: the image is shrunk to at most `max_width` pixels wide before the pyramid is built, and the
pyramid stops at `min_face_size` (original pixels). Tensors: each stage takes `float32 (N,3,S,S)`
RGB scaled to [-1, 1) by `(x - 127.5) / 128`.

False faces: a candidate is kept only when the O-Net score passes `thresholds[2]` and its landmarks
have a face's geometry (`plausible_landmarks`), which removes the O-Net's confident hits on textures
(brick walls, foliage) whose 5 points land in impossible places.
"""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from vidlens.errors import ConfigError
from vidlens.tasks.faces.detect import FaceBox

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"
_WEIGHTS = ("pnet.pt", "rnet.pt", "onet.pt")
_MEAN, _SCALE = 127.5, 0.0078125


def weights_dir() -> Path:
    """The folder holding facenet-pytorch's `pnet.pt`, `rnet.pt`, `onet.pt`; `ConfigError` when absent."""
    spec = importlib.util.find_spec("facenet_pytorch")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(None, "the MTCNN face detector needs the weights in the facenet-pytorch wheel, which is "
                                f"not installed: {INSTALL_HINT} (or use the Haar detector)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    missing = [name for name in _WEIGHTS if not (folder / name).is_file()]
    if missing:
        raise ConfigError(folder, f"facenet-pytorch is installed without its MTCNN weights ({', '.join(missing)}): "
                                  f"reinstall it with {INSTALL_HINT}")
    return folder


def _nets():
    import torch
    from torch import nn

    class PNet(nn.Module):
        """12x12 proposal net, fully convolutional: `(N,3,H,W)` -> box offsets `(N,4,h,w)`, face prob `(N,2,h,w)`."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
            self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
            self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
            self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
            return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)

    class RNet(nn.Module):
        """24x24 refine net: `(N,3,24,24)` -> box offsets `(N,4)`, face prob `(N,2)`."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
            self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
            self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()  # the converted weights expect (W,H)
            x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
            return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)

    class ONet(nn.Module):
        """48x48 output net: `(N,3,48,48)` -> box offsets `(N,4)`, landmarks `(N,10)` (5 x then 5 y, box
        fractions), face prob `(N,2)`."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
            self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
            self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
            self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
            self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
            self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
            self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

        def forward(self, x):
            x = self.pool1(self.prelu1(self.conv1(x)))
            x = self.pool2(self.prelu2(self.conv2(x)))
            x = self.pool3(self.prelu3(self.conv3(x)))
            x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
            x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
            return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)

    return PNet, RNet, ONet


@lru_cache(maxsize=1)
def load_mtcnn_nets():
    """`(pnet, rnet, onet)` in eval mode with facenet-pytorch's weights; loaded once per process."""
    import torch

    folder = weights_dir()
    nets = []
    for cls, name in zip(_nets(), _WEIGHTS):
        net = cls()
        net.load_state_dict(torch.load(folder / name, map_location="cpu", weights_only=True))
        # channels_last: max-pooling and the small convolutions run ~4x faster on CPU (measured, 1 thread)
        nets.append(net.eval().requires_grad_(False).to(memory_format=torch.channels_last))
    return tuple(nets)


def plausible_landmarks(box: FaceBox, max_roll: float = 60.0) -> bool:
    """True when the 5 points have a face's geometry, whatever the roll up to `max_roll` degrees.

    In the frame of the eye line: the left eye is left of the right eye; the eyes are 0.2-0.75 box
    widths apart; the mouth is below the eyes by 0.25-0.9 box widths; the nose lies between the eye
    line and the mouth line (with slack); the mouth is 0.12-0.8 box widths wide. Profile faces pass
    (their eyes are close together but still ordered); textures that fool the O-Net rarely do.
    """
    if box.landmarks is None:
        return True
    pts = np.asarray(box.landmarks, dtype=np.float64)
    le, re_, nose, ml, mr = pts
    width = max(box.w, 1e-6)
    eye = re_ - le
    roll = math.degrees(math.atan2(eye[1], eye[0]))
    if abs(roll) > max_roll:
        return False
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    rot = np.array([[c, -s], [s, c]])
    local = (pts - (le + re_) / 2.0) @ rot.T / width  # eye midpoint at 0, eye line along +x, in box widths
    le, re_, nose, ml, mr = local
    eye_dist = re_[0] - le[0]
    mouth_y = (ml[1] + mr[1]) / 2.0
    mouth_w = mr[0] - ml[0]
    return bool(0.2 <= eye_dist <= 0.75 and 0.25 <= mouth_y <= 0.9 and -0.05 <= nose[1] <= mouth_y + 0.05
                and 0.12 <= mouth_w <= 0.8)


class MTCNNFaceDetector:
    """MTCNN face detector: `detect(image) -> list[FaceBox]` with score = O-Net probability and 5 landmarks.

    `min_face_size`: smallest face searched, in pixels of the original image (the pyramid stops
    there; faces below 12 px after the `max_width` shrink are never found). `max_width`: the image
    is shrunk to at most this width first (None = never). `scale_factor`: pyramid step.
    `thresholds`: P/R/O-Net probability cut-offs. The defaults (0.7, 0.8, 0.9) are stricter than
    facenet-pytorch's (0.6, 0.7, 0.7): on real faceless footage (vtest.avi's red door, Big Buck
    Bunny's foliage) the O-Net scored false faces up to 0.875, real faces (upright and rolled
    +-35 degrees) 0.95-1.0; and the stricter first two stages pass ~half the candidates on to the
    costly later ones (~20% faster) for 2-3 more misses in ~1300 upright and rotated face frames.
    `check_landmarks`: drop candidates whose landmarks
    are not a face's (`plausible_landmarks`). `num_threads`: torch intra-op threads while detecting
    (set only when different, restored after; None leaves torch alone: torch's thread count is
    process-wide, so a server detecting from several Python threads should set it once and pass
    None). Stateless between calls; the networks are shared by every instance in the process.

    Speed (benchmarks/bench_faces.py, one thread, 2-core machine): ~11 ms for a 256x256 frame, ~20 ms
    for 640x360 and 512x512. `min_face_size` is the main knob (the pyramid's largest level is
    `12 / min_face_size` of the image): 48 px saves ~15%, 60 px ~25%. `detect_batch` on 5 frames
    of one size saves ~10% more (shared network calls).
    """

    def __init__(self, min_face_size: float = 40.0, max_width: int | None = 480, scale_factor: float = 0.709,
                 thresholds: Sequence[float] = (0.7, 0.8, 0.9), check_landmarks: bool = True,
                 num_threads: int | None = 1) -> None:
        if not 0.0 < scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in (0, 1) (got {scale_factor})")
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be three probabilities (got {thresholds})")
        if min_face_size <= 0:
            raise ValueError(f"min_face_size must be > 0 (got {min_face_size})")
        self.min_face_size, self.max_width, self.scale_factor = float(min_face_size), max_width, scale_factor
        self.thresholds = tuple(float(t) for t in thresholds)
        self.check_landmarks, self.num_threads = check_landmarks, num_threads
        self.pnet, self.rnet, self.onet = load_mtcnn_nets()

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """`uint8 (H,W,3)` RGB or `(H,W)` gray -> faces in the image's pixels, best score first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[FaceBox]]:
        """Several images (`uint8 (H,W,3)` RGB or `(H,W)` gray) -> one face list per image.

        Images of one size share each network call (frames of one video); others run on their own."""
        import torch

        prepared = [_rgb(np.asarray(img)) for img in images]
        results: list[list[FaceBox]] = [[] for _ in prepared]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(prepared):
            groups.setdefault(img.shape[:2], []).append(i)
        before = torch.get_num_threads()
        change = self.num_threads is not None and before != self.num_threads
        if change:
            torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                for indices in groups.values():
                    for i, faces in zip(indices, self._detect_same_size([prepared[i] for i in indices])):
                        results[i] = faces
        finally:
            if change:
                torch.set_num_threads(before)
        return results

    # -- the cascade -------------------------------------------------------------------------------
    def _detect_same_size(self, images: list[np.ndarray]) -> list[list[FaceBox]]:
        import cv2

        height, width = images[0].shape[:2]
        shrink = 1.0
        if self.max_width and width > self.max_width:
            shrink = self.max_width / width
            size = (self.max_width, max(1, round(height * shrink)))
            images = [cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in images]
        stack = np.stack(images)  # (B,h,w,3) uint8
        boxes, owners = self._propose(stack, max(12.0, self.min_face_size * shrink))
        if len(boxes):
            boxes, owners = self._refine(stack, boxes, owners)
        points = np.zeros((0, 5, 2))
        if len(boxes):
            boxes, owners, points = self._output(stack, boxes, owners)
        out: list[list[FaceBox]] = [[] for _ in images]
        for (x1, y1, x2, y2, score), owner, pts in zip(boxes, owners, points):
            landmarks = tuple((float(px) / shrink, float(py) / shrink) for px, py in pts)
            face = FaceBox(float(x1) / shrink, float(y1) / shrink, float(x2 - x1) / shrink, float(y2 - y1) / shrink,
                           float(score), 0.0, landmarks)
            if face.w > 0 and face.h > 0 and (not self.check_landmarks or plausible_landmarks(face)):
                out[int(owner)].append(face)
        return [sorted(faces, key=lambda f: -f.score) for faces in out]

    def _propose(self, stack: np.ndarray, min_face: float) -> tuple[np.ndarray, np.ndarray]:
        """P-Net over the pyramid -> square candidate boxes `(K,5)` (x1,y1,x2,y2,score) and their image index."""
        import cv2
        import torch
        from torchvision.ops import batched_nms

        height, width = stack.shape[1:3]
        scale = 12.0 / min_face
        side = min(height, width) * scale
        found, owners = [], []
        level = stack
        while side >= 12:
            size = (int(width * scale + 1), int(height * scale + 1))
            # each level shrunk from the one before (area averaging): ~1.5 image reads instead of one per level
            level = np.stack([cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in level])
            reg, prob = self.pnet(_to_input(level))
            prob = prob[:, 1]
            mask = prob >= self.thresholds[0]
            if bool(mask.any()):
                where = mask.nonzero()  # (K,3): image, row, column
                score = prob[mask]
                offsets = reg.permute(0, 2, 3, 1)[mask]
                xy = where[:, [2, 1]].float()
                q1 = torch.floor((2 * xy + 1) / scale)
                q2 = torch.floor((2 * xy + 12) / scale)
                cand = torch.cat([q1, q2, score[:, None], offsets], dim=1)
                keep = batched_nms(cand[:, :4], cand[:, 4], where[:, 0], 0.5)
                found.append(cand[keep])
                owners.append(where[keep, 0])
            scale *= self.scale_factor
            side *= self.scale_factor
        if not found:
            return np.zeros((0, 5), np.float32), np.zeros(0, np.int64)
        cand, owner = torch.cat(found), torch.cat(owners)
        keep = batched_nms(cand[:, :4], cand[:, 4], owner, 0.7)
        cand, owner = cand[keep], owner[keep]
        w = cand[:, 2] - cand[:, 0]
        h = cand[:, 3] - cand[:, 1]
        boxes = torch.stack([cand[:, 0] + cand[:, 5] * w, cand[:, 1] + cand[:, 6] * h,
                             cand[:, 2] + cand[:, 7] * w, cand[:, 3] + cand[:, 8] * h, cand[:, 4]], dim=1)
        return _square(boxes.numpy()), owner.numpy()

    def _refine(self, stack: np.ndarray, boxes: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """R-Net on 24x24 crops: keep, regress and re-square the candidates."""
        import torch
        from torchvision.ops import batched_nms

        reg, prob = self.rnet(_to_input(_crops(stack, boxes, owners, 24)))
        score = prob[:, 1].numpy()
        keep = score > self.thresholds[1]
        boxes, owners, reg = boxes[keep].copy(), owners[keep], reg.numpy()[keep]
        boxes[:, 4] = score[keep]
        if not len(boxes):
            return boxes, owners
        pick = batched_nms(torch.from_numpy(boxes[:, :4]), torch.from_numpy(boxes[:, 4]),
                           torch.from_numpy(owners), 0.7).numpy()
        return _square(_regress(boxes[pick], reg[pick])), owners[pick]

    def _output(self, stack: np.ndarray, boxes: np.ndarray,
                owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net on 48x48 crops: final boxes `(K,5)`, image index `(K,)`, landmarks `(K,5,2)` in work pixels."""
        reg, marks, prob = self.onet(_to_input(_crops(stack, boxes, owners, 48)))
        score = prob[:, 1].numpy()
        keep = score > self.thresholds[2]
        boxes, owners, reg, marks = boxes[keep].copy(), owners[keep], reg.numpy()[keep], marks.numpy()[keep]
        boxes[:, 4] = score[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = np.stack([w * marks[:, :5] + boxes[:, :1] - 1, h * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        pick = _nms_min(boxes, owners, 0.7)
        return boxes[pick], owners[pick], points[pick]


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"expected a (H,W,3) RGB or (H,W) gray image, got shape {image.shape}")


def _to_input(batch: np.ndarray):
    """`uint8 (N,H,W,3)` RGB -> `float32 (N,3,H,W)` in [-1, 1)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)  # a channels_last view of NHWC
    return x.float().contiguous(memory_format=torch.channels_last).sub_(_MEAN).mul_(_SCALE)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes `(K,>=4)` grown to squares of their longer side about the same centre."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0] += reg[:, 0] * w
    boxes[:, 1] += reg[:, 1] * h
    boxes[:, 2] += reg[:, 2] * w
    boxes[:, 3] += reg[:, 3] * h
    return boxes


def _crops(stack: np.ndarray, boxes: np.ndarray, owners: np.ndarray, size: int) -> np.ndarray:
    """`uint8 (K,size,size,3)` crops of `boxes` (1-based inclusive corners, as MTCNN's arithmetic has them),
    zero-padded where a box leaves its image."""
    import cv2

    height, width = stack.shape[1:3]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for k, (box, owner) in enumerate(zip(boxes, owners)):
        x1, y1, x2, y2 = (int(v) for v in box[:4])  # truncation, as facenet-pytorch's pad()
        cw, ch = x2 - x1 + 1, y2 - y1 + 1
        if cw <= 0 or ch <= 0:
            continue
        sx1, sy1, sx2, sy2 = max(x1 - 1, 0), max(y1 - 1, 0), min(x2, width), min(y2, height)
        if sx2 <= sx1 or sy2 <= sy1:
            continue
        patch = stack[owner, sy1:sy2, sx1:sx2]
        if (sx2 - sx1, sy2 - sy1) != (cw, ch):
            canvas = np.zeros((ch, cw, 3), np.uint8)
            ox, oy = sx1 - (x1 - 1), sy1 - (y1 - 1)
            canvas[oy:oy + patch.shape[0], ox:ox + patch.shape[1]] = patch
            patch = canvas
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return out


def _nms_min(boxes: np.ndarray, owners: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS per image where overlap = intersection / the smaller box (MTCNN's last-stage "Min")."""
    order = np.argsort(-boxes[:, 4], kind="stable")
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    kept: list[int] = []
    for i in order:
        ok = True
        for j in kept:
            if owners[j] != owners[i]:
                continue
            iw = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]) + 1
            ih = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]) + 1
            inter = max(0.0, iw) * max(0.0, ih)
            if inter / max(min(area[i], area[j]), 1e-9) > threshold:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)
