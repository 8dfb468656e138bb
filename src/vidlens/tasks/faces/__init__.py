"""Faces in images and video: detection (`detect`), tracking (`track`), expression (`expression`, `train`).

Frames are `uint8 (H,W,3)` RGB as `vidlens.io` decodes them; boxes are `FaceBox(x, y, w, h, score)`
in pixels. See docs/emotion.md ("Faces").
"""

from vidlens.tasks.faces.detect import FaceBox, FaceDetector, HaarFaceDetector, iou, nms

__all__ = ["FaceBox", "FaceDetector", "HaarFaceDetector", "iou", "nms"]
