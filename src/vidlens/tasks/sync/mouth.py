"""Mouth tracking for the speech and learned sync methods: per-frame grey mouth crops of the main face, the frame
timestamps, a face-found mask and a mouth-motion signal with head motion taken out.

How: MTCNN (vidlens.tasks.faces) runs on every `every`-th frame (default 3: ~3x faster than every frame); the
main face is the largest one, followed by nearest centre; its 5 landmarks are interpolated linearly over the frames
between detections (gaps up to 2 detection steps; longer gaps = no face) and smoothed over time. Each frame is
warped with the similarity that maps the eyes and the mouth centre onto a fixed template, so a crop is the lower
face (nose tip to chin, mouth in the middle), upright and at one scale whatever the head does.

Two decoding passes (detect, then crop), so memory stays at one crop per frame. Layouts: crops `(T,H,W)` uint8
grey; `times` `(T,)` float64 seconds on the file's clock (the same clock as `signals.decode_audio`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

MOUTH_SIZE = (64, 64)  # (H, W) of a crop
# template, in units of the inter-ocular distance, relative to the crop: eyes above the crop, mouth centre inside
_TEMPLATE = np.array([[0.2, -0.25], [0.8, -0.25], [0.5, 0.45]], np.float32)  # left eye, right eye, mouth centre
_MOUTH_ROWS = (0.2, 0.85)  # the part of the crop whose change is "mouth motion" (fractions of H)
_MOUTH_COLS = (0.15, 0.85)
_CHEEK_ROWS = (0.0, 0.2)  # nose / upper-cheek band: moves with the head, not with the lips


@dataclass
class MouthTrack:
    """The main face's mouth over a video."""

    times: np.ndarray  # (T,) float64 seconds, file clock, one per decoded frame
    found: np.ndarray  # (T,) bool: a face (detected or interpolated) is there
    crops: np.ndarray | None  # (T,H,W) uint8 grey lower-face crops (zeros where not found); None unless kept
    motion: np.ndarray  # (T,) float32 mouth motion: mean |crop diff| in the mouth area, head motion regressed out;
    #                     NaN where no face
    landmarks: np.ndarray  # (T,5,2) float32 image pixels, NaN where no face
    fps: float
    detections: int  # frames MTCNN ran on


def _pick(faces, previous: np.ndarray | None):
    """The main face: the largest; with a previous position, the largest among those near it."""
    faces = [f for f in faces if f.landmarks is not None]
    if not faces:
        return None
    if previous is not None:
        centre = previous.mean(axis=0)
        near = [f for f in faces if np.hypot(*(np.array(f.center) - centre)) < max(f.w, f.h)]
        if near:
            faces = near
    return max(faces, key=lambda f: f.area)


def _interpolate(det_frames: list[int], det_points: list[np.ndarray | None], total: int, max_gap: int) -> np.ndarray:
    """(T,5,2) landmarks at every frame from those at the detection frames (NaN = not found), linear between two
    detections at most `max_gap` frames apart, then smoothed over ~3 frames."""
    out = np.full((total, 5, 2), np.nan, np.float32)
    known = [(f, p) for f, p in zip(det_frames, det_points) if p is not None]
    for (f0, p0), (f1, p1) in zip(known[:-1], known[1:]):
        if f1 - f0 > max_gap:
            continue
        w = (np.arange(f0, f1 + 1) - f0)[:, None, None] / max(f1 - f0, 1)
        out[f0:f1 + 1] = (1 - w) * p0 + w * p1
    for f, p in known:
        out[f] = p
    if known and det_frames:
        step = max_gap // 2 if max_gap > 1 else 1
        last = known[-1][0]
        out[last:min(total, last + step)] = known[-1][1]  # the tail after the last detection
    ok = np.isfinite(out[:, 0, 0])
    if ok.sum() > 3:
        from scipy.ndimage import gaussian_filter1d

        filled = out.copy()
        idx = np.arange(total)
        for j in range(5):
            for c in range(2):
                filled[:, j, c] = np.interp(idx, idx[ok], out[ok, j, c])
        smooth = gaussian_filter1d(filled, sigma=1.0, axis=0, mode="nearest")
        out[ok] = smooth[ok]
    return out


def _warp(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """2x3 similarity mapping the image's (left eye, right eye, mouth centre) onto the crop template."""
    import cv2

    _, w = size
    src = np.array([points[0], points[1], (points[3] + points[4]) / 2.0], np.float32)
    dst = _TEMPLATE * np.float32(w)  # template units are crop widths: eye distance = 0.6 W
    matrix, _ = cv2.estimateAffinePartial2D(src, dst)
    if matrix is None:
        matrix = cv2.getAffineTransform(src, dst)
    return matrix


def mouth_track(path: str | os.PathLike[str], *, every: int = 3, size: tuple[int, int] = MOUTH_SIZE,
                keep_crops: bool = False, detector=None, max_gap_steps: int = 2,
                progress: Callable[[float], None] | None = None) -> MouthTrack:
    """Track the main face's mouth through `path` (see the module docstring).

    `every`: run MTCNN on every n-th frame; `keep_crops`: return the `(T,H,W)` uint8 crops (else None, to save
    memory); `detector`: a FaceDetector with landmarks (default MTCNN, 1 thread); `progress(fraction)`."""
    import cv2

    from vidlens.io import iter_frames
    from vidlens.io.probe import probe
    from vidlens.tasks.sync.signals import video_origin

    path = os.fspath(path)
    if detector is None:
        from vidlens.tasks.faces import make_face_detector

        detector = make_face_detector("mtcnn", min_face_size=40.0, max_width=480)
    total_hint = max(1, probe(path).num_frames)
    origin = video_origin(path)
    times: list[float] = []
    det_frames: list[int] = []
    det_points: list[np.ndarray | None] = []
    previous = None
    for frame in iter_frames(path, threads=1):
        i = len(times)
        times.append(origin + frame.time_s)
        if i % every == 0:
            face = _pick(detector.detect(frame.image), previous)
            pts = None if face is None else np.asarray(face.landmarks, np.float32)
            det_frames.append(i)
            det_points.append(pts)
            if pts is not None:
                previous = pts
            if progress is not None:
                progress(min(0.8, 0.8 * i / total_hint))
    total = len(times)
    landmarks = _interpolate(det_frames, det_points, total, max_gap_steps * every)
    found = np.isfinite(landmarks[:, 0, 0])
    h, w = size
    crops = np.zeros((total, h, w), np.uint8) if keep_crops else None
    mouth = np.full(total, np.nan, np.float32)
    cheek = np.full(total, np.nan, np.float32)
    r0, r1 = int(_MOUTH_ROWS[0] * h), int(_MOUTH_ROWS[1] * h)
    c0, c1 = int(_MOUTH_COLS[0] * w), int(_MOUTH_COLS[1] * w)
    k0, k1 = int(_CHEEK_ROWS[0] * h), max(int(_CHEEK_ROWS[1] * h), 2)
    prev: np.ndarray | None = None
    if found.any():
        for i, frame in enumerate(iter_frames(path, threads=1)):
            if i >= total:
                break
            if not found[i]:
                prev = None
                continue
            grey = cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)
            crop = cv2.warpAffine(grey, _warp(landmarks[i], size), (w, h), flags=cv2.INTER_AREA,
                                  borderMode=cv2.BORDER_REPLICATE)
            if crops is not None:
                crops[i] = crop
            cur = crop.astype(np.float32)
            if prev is not None:
                diff = np.abs(cur - prev)
                mouth[i] = diff[r0:r1, c0:c1].mean()
                cheek[i] = diff[k0:k1].mean()
            prev = cur
            if progress is not None and i % 25 == 0:
                progress(0.8 + 0.2 * i / max(total, 1))
    motion = _remove_head_motion(mouth, cheek)
    t = np.asarray(times, np.float64)
    fps = (t.size - 1) / max(float(t[-1] - t[0]), 1e-6) if t.size > 1 else 0.0
    if progress is not None:
        progress(1.0)
    return MouthTrack(t, found, crops, motion, landmarks, float(fps), len(det_frames))


def _remove_head_motion(mouth: np.ndarray, cheek: np.ndarray) -> np.ndarray:
    """Mouth-area change minus the part explained by the nose/cheek band's change (least squares)."""
    ok = np.isfinite(mouth) & np.isfinite(cheek)
    out = mouth.copy()
    if ok.sum() < 10 or float(np.var(cheek[ok])) < 1e-9:
        return out
    beta = float(np.cov(mouth[ok], cheek[ok])[0, 1] / np.var(cheek[ok]))
    out[ok] = mouth[ok] - max(beta, 0.0) * (cheek[ok] - cheek[ok].mean())
    return out.astype(np.float32)


def face_share(path: str | os.PathLike[str], samples: int = 10, detector=None) -> float:
    """Share of `samples` evenly spread frames in which MTCNN finds a face with landmarks (a cheap check before
    tracking a whole video)."""
    from vidlens.io import iter_frames
    from vidlens.io.probe import probe

    path = os.fspath(path)
    if detector is None:
        from vidlens.tasks.faces import make_face_detector

        detector = make_face_detector("mtcnn", min_face_size=40.0, max_width=480)
    info = probe(path)
    fps = samples / max(info.duration_s, 1e-3)
    hits = seen = 0
    for frame in iter_frames(path, fps=fps, threads=1):
        seen += 1
        hits += any(f.landmarks is not None for f in detector.detect(frame.image))
        if seen >= samples:
            break
    return hits / max(seen, 1)


def mouth_crops(path: str | os.PathLike[str], *, every: int = 3, size: tuple[int, int] = MOUTH_SIZE,
                progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(crops (T,H,W) uint8, times (T,) float64 s, found (T,) bool)` of the main face (for the learned method)."""
    track = mouth_track(path, every=every, size=size, keep_crops=True, progress=progress)
    assert track.crops is not None
    return track.crops, track.times, track.found
