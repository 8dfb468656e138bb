"""Faces in images and video: detection (`detect`, `mtcnn`), tracking (`track`), expression (`expression`, `train`).

Frames are `uint8 (H,W,3)` RGB as `vidlens.io` decodes them; boxes are `FaceBox(x, y, w, h, score)`
in pixels, with 5 `landmarks` when the detector gives them (MTCNN). `make_face_detector("auto")`
picks MTCNN when facenet-pytorch's weights are installed, else Haar. See docs/emotion.md ("Faces").
"""

from vidlens.tasks.faces.detect import (DETECTORS, FaceBox, FaceDetector, HaarFaceDetector, iou,
                                        make_face_detector, mtcnn_available, nms)

__all__ = ["DETECTORS", "FaceBox", "FaceDetector", "HaarFaceDetector", "MTCNNFaceDetector", "iou",
           "make_face_detector", "mtcnn_available", "nms"]


def __getattr__(name: str):
    # MTCNNFaceDetector imports torch: load it only when asked for.
    if name == "MTCNNFaceDetector":
        from vidlens.tasks.faces.mtcnn import MTCNNFaceDetector

        return MTCNNFaceDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
