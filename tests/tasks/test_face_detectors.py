"""Face detectors on real footage: MTCNN (facenet-pytorch weights) finds faces with 5 landmarks, upright and
rolled 30 degrees, and no face track on a faceless street (vtest.avi); `make_face_detector`; `FaceBox.landmarks`."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vidlens.errors import ConfigError
from vidlens.io import iter_frames
from vidlens.tasks.faces import DETECTORS, FaceBox, HaarFaceDetector, make_face_detector
from vidlens.testing.real import opencv_sample, realdata_dir

pytest.importorskip("facenet_pytorch")  # installed with --no-deps by the Makefile (weights only)
from vidlens.tasks.faces.mtcnn import MTCNNFaceDetector  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mtcnn():
    return MTCNNFaceDetector()


def _frames(path, fps: float, end: float) -> list[np.ndarray]:
    return [frame.image for frame in iter_frames(path, fps=fps, end=end)]


def _rotate(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """`image` rotated `angle` degrees counter-clockwise about its centre onto a canvas holding all of it
    (black fill), and the 2x3 matrix mapping original pixels to the rotated canvas."""
    h, w = image.shape[:2]
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = int(round(w * c + h * s)), int(round(w * s + h * c))
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    matrix[0, 2] += (nw - w) / 2.0
    matrix[1, 2] += (nh - h) / 2.0
    return cv2.warpAffine(image, matrix, (nw, nh), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)), matrix


def _check_landmarks(face: FaceBox) -> None:
    assert face.landmarks is not None and len(face.landmarks) == 5
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    x1, y1, x2, y2 = face.xyxy()
    for px, py in face.landmarks:  # every point inside the face box
        assert x1 - 2 <= px <= x2 + 2 and y1 - 2 <= py <= y2 + 2, (face, px, py)
    assert lx < rx and mlx < mrx  # left as seen in the image
    assert max(ly, ry) < ny < min(mly, mry)  # eyes above the nose, nose above the mouth
    assert (rx - lx) > 0.25 * face.w  # a frontal face's eyes are well apart


@pytest.mark.parametrize("path,end", [("expressions/W011_front_happy_level3_001.mp4", 4.0),
                                      ("faces/guangfan.avi", 4.0)])
def test_mtcnn_finds_the_face_with_five_landmarks(mtcnn, path, end):
    frames = _frames(realdata_dir() / path, fps=2.0, end=end)
    assert len(frames) >= 7
    found = 0
    for image in frames:
        faces = mtcnn.detect(image)
        assert len(faces) <= 1  # one person on screen: no extra boxes
        if faces:
            found += 1
            face = faces[0]
            _check_landmarks(face)
            assert face.score > 0.9 and face.angle == 0.0
            assert face.w > 0.25 * image.shape[1]  # the speaker's face, not a texture
    assert found >= 0.9 * len(frames)
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)  # gray input is taken as 3 equal channels
    assert len(mtcnn.detect(gray)) == 1


@pytest.mark.parametrize("path", ["expressions/W011_front_neutral_level1_001.mp4", "faces/guangfan.avi"])
@pytest.mark.parametrize("angle", [30.0, -30.0])
def test_mtcnn_finds_a_face_rolled_30_degrees_where_it_is(mtcnn, path, angle):
    image = _frames(realdata_dir() / path, fps=1.0, end=1.5)[1]
    upright = mtcnn.detect(image)
    assert len(upright) == 1
    rotated, matrix = _rotate(image, angle)
    faces = mtcnn.detect(rotated)
    assert len(faces) == 1
    expected = matrix @ np.array([*upright[0].center, 1.0])  # the upright face's centre, rotated with the frame
    assert math.dist(faces[0].center, expected) < 0.25 * upright[0].w
    (lx, ly), (rx, ry) = faces[0].landmarks[:2]
    roll = math.degrees(math.atan2(ry - ly, rx - lx))  # the eye line tells the roll: image rotated +30 -> -30
    upright_roll = math.degrees(math.atan2(upright[0].landmarks[1][1] - upright[0].landmarks[0][1],
                                           upright[0].landmarks[1][0] - upright[0].landmarks[0][0]))
    assert abs(roll - (upright_roll - angle)) < 8.0


def test_no_face_track_on_a_faceless_street():
    """OpenCV's vtest.avi: people seen from above, no face visible; Haar tracked a brick wall and a red door."""
    from vidlens.tasks.emotion import analyse_emotions

    result = analyse_emotions(opencv_sample("vtest.avi"), detector=MTCNNFaceDetector())
    assert result.frames_analysed > 300
    assert result.tracks == [] and not result.has_faces


def test_detect_batch_matches_detect_and_keeps_the_thread_count(mtcnn):
    frames = _frames(realdata_dir() / "faces/guangfan.avi", fps=2.0, end=1.5)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batched = mtcnn.detect_batch(frames + [frames[0][:200, :300]])  # two sizes in one call
        assert torch.get_num_threads() == 2  # detection ran on one thread and put the count back
    finally:
        torch.set_num_threads(before)
    single = [mtcnn.detect(image) for image in frames]
    assert len(batched) == len(frames) + 1
    for got, want in zip(batched, single):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            assert np.allclose(a.xyxy(), b.xyxy(), atol=0.5) and abs(a.score - b.score) < 1e-4


def test_make_face_detector_by_name():
    assert DETECTORS == ("auto", "mtcnn", "haar")
    assert isinstance(make_face_detector("haar"), HaarFaceDetector)
    assert isinstance(make_face_detector("MTCNN", min_face_size=30), MTCNNFaceDetector)
    assert isinstance(make_face_detector(), MTCNNFaceDetector)  # facenet-pytorch is installed here
    with pytest.raises(ConfigError, match="unknown face detector 'nonsense'.*auto, mtcnn, haar"):
        make_face_detector("nonsense")
    with pytest.raises(ValueError):
        MTCNNFaceDetector(thresholds=(0.6, 0.7))


def test_facebox_landmarks_round_trip():
    old = FaceBox(10, 20, 30, 40, 0.9, 15.0)  # positional, as before landmarks existed
    assert old.landmarks is None and "landmarks" not in old.to_dict()
    assert old.scaled(2.0) == FaceBox(20, 40, 60, 80, 0.9, 15.0)
    points = ((15.0, 30.0), (30.0, 30.5), (22.5, 40.0), (17.0, 50.0), (28.0, 50.0))
    box = FaceBox(10, 20, 30, 40, 0.9877, 0.0, points)
    as_dict = box.to_dict()
    assert as_dict["landmarks"] == [[15.0, 30.0], [30.0, 30.5], [22.5, 40.0], [17.0, 50.0], [28.0, 50.0]]
    assert list(as_dict)[:6] == ["x", "y", "w", "h", "score", "angle"] and as_dict["score"] == 0.9877
    rebuilt = FaceBox(**{**as_dict, "landmarks": tuple(map(tuple, as_dict["landmarks"]))})
    assert rebuilt == box
    half = box.scaled(0.5)
    assert half.landmarks == tuple((x / 2, y / 2) for x, y in points) and half.w == 15.0
    assert half.scaled(2.0) == box
