"""Face detection benchmark: MTCNN (facenet-pytorch weights) against OpenCV's Haar cascade on real footage.

    python benchmarks/bench_faces.py [--quick] [--results PATH] [--no-write]

Both detectors see the same frames in the same run, each with its defaults (`MTCNNFaceDetector()`,
`HaarFaceDetector()` with its +-20 degree passes when the upright pass finds nothing), on one
torch thread. Frames are sampled at 5 fps (`--quick`: 2 fps, fewer and shorter clips).

Recall, on real clips where every sampled frame shows exactly one face, upright and rotated by
+-20 and +-35 degrees (cv2 rotation about the frame centre onto a canvas large enough to keep the
whole frame, black fill): a frame counts as found when the detector returns a box whose centre
lies within a clip-specific radius of the frame centre (the face's zone; rotation about the centre
keeps it there) and whose side is at least a clip-specific size (no tiny texture hits). The zone
is wide enough for the face's own motion and was checked by eye on the clips. Other boxes are
counted as "extra boxes" (false detections: no second face is on screen in these clips).
- expressions/*.mp4: MEAD actor W011, 8 clips, 256x256 face crops: radius 0.3 x 256, side >= 64 px.
- faces/guangfan.avi: one frontal speaker, 512x512: radius 0.3 x 512, side >= 80 px.
- faces/short_hamilton_clip.mp4 from 3.0 to 7.0 s: the performer alone on stage (the shot cuts to the
  audience at 7.1 s), 640x360, moving
  across the frame: radius 0.75 x 360, side >= 40 px.
- faces/short_hamilton_clip.mp4 from 0.8 to 1.8 s: the performer's face in profile, close up (~190 px):
  radius 0.75 x 360, side >= 120 px. Blurred audience faces behind him are real faces, so other boxes
  are not counted on this clip (only 5 frames: a small sample, shown as its own row).

False detections, on real footage without faces (every box is false): OpenCV's vtest.avi (a street
seen from above; no face visible), tree.avi, and the first 30 s of Big Buck Bunny (animation: no
human face; its animals are the nearest thing to a face in it). Not used: bikes.mp4 and
scenes/chaplin.mp4, which show real faces (a cyclist, a man in a suit; Chaplin), without boxes to
score against.

Speed: ms per frame at the frame's own size, detection only (decoding excluded), timed frame by frame
alternating the two detectors: wall clock, and CPU time of this process (all its threads: what the
detection costs, less disturbed by other load on the shared machine; OpenCV's Haar scan runs on
several threads, so its CPU time exceeds its wall time).

Results go to the "## Face detection (bench_faces.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidlens.io import iter_frames  # noqa: E402
from vidlens.tasks.faces.detect import FaceBox, HaarFaceDetector  # noqa: E402
from vidlens.tasks.faces.mtcnn import MTCNNFaceDetector  # noqa: E402
from vidlens.testing.real import opencv_sample, realdata_dir  # noqa: E402

SECTION = "Face detection (bench_faces.py)"
ANGLES = (0.0, 20.0, -20.0, 35.0, -35.0)


@dataclass(frozen=True)
class FaceClip:
    """A real clip with one face in every frame of [start, end): hit = box centre within `radius` px of the
    frame centre and box side >= `min_side` px."""

    label: str
    path: Path
    radius: float
    min_side: float
    start: float | None = None
    end: float | None = None
    extras: bool = True  # count boxes outside the zone as false detections


def face_clips(quick: bool) -> list[FaceClip]:
    REALDATA = realdata_dir()
    expressions = sorted((REALDATA / "expressions").glob("*.mp4"))
    if quick:
        expressions = [p for p in expressions if "happy" in p.name][:1]
    clips = [FaceClip("expressions/*.mp4 (MEAD W011, 8 clips)" if not quick else f"expressions/{p.stem}", p,
                      0.3 * 256, 64) for p in expressions]
    guangfan = REALDATA / "faces" / "guangfan.avi"
    clips.append(FaceClip("faces/guangfan.avi", guangfan, 0.3 * 512, 80, None, 2.0 if quick else None))
    if not quick:
        clips.append(FaceClip("faces/short_hamilton_clip.mp4 3.0-7.0 s", REALDATA / "faces" / "short_hamilton_clip.mp4",
                              0.75 * 360, 40, 3.0, 7.0))
        clips.append(FaceClip("faces/short_hamilton_clip.mp4 0.8-1.8 s (profile)",
                              REALDATA / "faces" / "short_hamilton_clip.mp4", 0.75 * 360, 120, 0.8, 1.8, extras=False))
    return [c for c in clips if c.path.exists()]


def faceless_clips(quick: bool) -> list[tuple[str, Path, float | None]]:
    """(label, path, end seconds) of real footage without faces."""
    REALDATA = realdata_dir()
    out = [("vtest.avi (opencv)", Path(opencv_sample("vtest.avi")), 6.0 if quick else None)]
    if not quick:
        out.append(("tree.avi (opencv)", Path(opencv_sample("tree.avi")), None))
        bbb = REALDATA / "scenes" / "big_buck_bunny_0_30.webm"
        if bbb.exists():
            out.append(("scenes/big_buck_bunny_0_30.webm (animation)", bbb, None))
    return out


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """`uint8 (H,W,3)` rotated by `angle` degrees (counter-clockwise) about its centre onto a canvas that holds
    the whole frame (black fill); the frame centre stays the canvas centre."""
    if angle == 0:
        return image
    h, w = image.shape[:2]
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    nw, nh = int(round(w * c + h * s)), int(round(w * s + h * c))
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    matrix[0, 2] += (nw - w) / 2.0
    matrix[1, 2] += (nh - h) / 2.0
    return cv2.warpAffine(image, matrix, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def is_hit(box: FaceBox, image: np.ndarray, clip: FaceClip) -> bool:
    cx, cy = box.center
    h, w = image.shape[:2]
    return math.hypot(cx - w / 2.0, cy - h / 2.0) <= clip.radius and min(box.w, box.h) >= clip.min_side


@dataclass
class Tally:
    frames: int = 0
    found: int = 0
    extra: int = 0
    uncounted: int = 0  # frames whose other boxes are not scored (real faces in the background)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    sizes: set = field(default_factory=set)


def run_detectors(detectors: dict, image: np.ndarray, tallies: dict, clip: FaceClip | None) -> None:
    for name, det in detectors.items():
        t0, c0 = time.perf_counter(), time.process_time()
        boxes = det.detect(image)
        tally = tallies[name]
        tally.seconds += time.perf_counter() - t0
        tally.cpu_seconds += time.process_time() - c0
        tally.frames += 1
        tally.sizes.add(f"{image.shape[1]}x{image.shape[0]}")
        if clip is None:
            tally.extra += len(boxes)
            continue
        hits = [b for b in boxes if is_hit(b, image, clip)]
        tally.found += bool(hits)
        if clip.extras:
            tally.extra += len(boxes) - min(1, len(hits))
        else:
            tally.uncounted += 1


def frames(path: Path, fps: float, start: float | None, end: float | None) -> Iterator[np.ndarray]:
    for frame in iter_frames(path, fps=fps, start=start, end=end):
        yield frame.image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds of work: checks the script runs")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started, machine = common.now(), common.machine_info()
    fps = 2.0 if args.quick else 5.0
    angles = (0.0, 35.0) if args.quick else ANGLES
    detectors = {"mtcnn": MTCNNFaceDetector(), "haar": HaarFaceDetector()}
    warm = np.zeros((64, 64, 3), np.uint8)
    for det in detectors.values():
        det.detect(warm)

    rows, per_angle = [], {a: {n: Tally() for n in detectors} for a in angles}
    groups: dict[str, list[FaceClip]] = {}
    for clip in face_clips(args.quick):
        groups.setdefault(clip.label, []).append(clip)
    for label, clips in groups.items():
        decoded = [(clip, list(frames(clip.path, fps, clip.start, clip.end))) for clip in clips]
        for angle in angles:
            tallies = {n: Tally() for n in detectors}
            for clip, images in decoded:
                for image in images:
                    run_detectors(detectors, rotate(image, angle), tallies, clip)
            for n, t in tallies.items():
                agg = per_angle[angle][n]
                agg.frames, agg.found, agg.extra, agg.uncounted = (agg.frames + t.frames, agg.found + t.found,
                                                                   agg.extra + t.extra, agg.uncounted + t.uncounted)
            rows.append(_row(common.real_label(label), f"{angle:+g}", tallies))
    faceless = {n: Tally() for n in detectors}
    for label, path, end in faceless_clips(args.quick):
        tallies = {n: Tally() for n in detectors}
        for image in frames(path, fps, None, end):
            run_detectors(detectors, image, tallies, None)
        for n, t in tallies.items():
            faceless[n].frames += t.frames
            faceless[n].extra += t.extra
        rows.append(_row(common.real_label(label) + " (no faces)", "0", tallies))

    headers = ["input", "rotation", "size", "frames", "MTCNN recall", "Haar recall", "MTCNN false /100 f",
               "Haar false /100 f", "MTCNN ms/f wall / CPU", "Haar ms/f wall / CPU", "Haar/MTCNN time"]
    common.print_table("Face detection: MTCNN vs Haar", headers, rows)
    notes = common.Notes()
    for angle in angles:
        m, h = per_angle[angle]["mtcnn"], per_angle[angle]["haar"]
        if m.frames:
            notes.add(f"Rotation {angle:+g} deg, all face clips ({m.frames} frames): recall MTCNN {m.found / m.frames:.3f}, "
                      f"Haar {h.found / h.frames:.3f}; extra boxes per 100 frames MTCNN "
                      f"{100 * m.extra / (m.frames - m.uncounted):.1f}, Haar {100 * h.extra / (h.frames - h.uncounted):.1f}")
    m, h = faceless["mtcnn"], faceless["haar"]
    if m.frames:
        notes.add(f"Faceless real footage ({m.frames} frames): false detections per 100 frames MTCNN "
                  f"{100 * m.extra / m.frames:.2f} ({m.extra} boxes), Haar {100 * h.extra / h.frames:.2f} "
                  f"({h.extra} boxes): {common.verdict(m.extra == 0)} (target: none for MTCNN)")
    tilted = [a for a in angles if a]
    if tilted:
        rec = {n: sum(per_angle[a][n].found for a in tilted) / max(1, sum(per_angle[a][n].frames for a in tilted))
               for n in detectors}
        notes.add(f"Tilted faces (+-20, +-35 deg pooled): recall MTCNN {rec['mtcnn']:.3f} vs Haar {rec['haar']:.3f}: "
                  f"{common.verdict(rec['mtcnn'] >= rec['haar'])} (target: MTCNN >= Haar)")
    notes.add("Recall = share of sampled frames where a box lies in the face's zone (see bench_faces.py); "
              "false /100 f = boxes outside it (face clips) or any box (faceless footage) per 100 frames; "
              "ms/f = detection time per frame (wall / CPU) at the frame's size, one torch thread, decoding excluded; "
              "Haar/MTCNN = ratio of wall times")
    common.publish_table_section(args.results, SECTION, argv, __file__,
                                 ("torch", "torchvision", "opencv-python-headless", "facenet-pytorch"),
                                 headers, rows, "llrrrrrrrrr", notes, started=started, machine=machine,
                                 write=not args.no_write)
    return 0


def _row(label: str, angle: str, tallies: dict) -> list:
    m, h = tallies["mtcnn"], tallies["haar"]
    faceless = "no faces" in label
    ms_m, ms_h = 1000 * m.seconds / max(1, m.frames), 1000 * h.seconds / max(1, h.frames)
    cpu_m, cpu_h = 1000 * m.cpu_seconds / max(1, m.frames), 1000 * h.cpu_seconds / max(1, h.frames)
    return [label, angle, ", ".join(sorted(m.sizes)), m.frames,
            "-" if faceless else f"{m.found / max(1, m.frames):.3f}", "-" if faceless else f"{h.found / max(1, h.frames):.3f}",
            *(("-", "-") if m.uncounted else (f"{100 * m.extra / max(1, m.frames):.1f}",
                                              f"{100 * h.extra / max(1, h.frames):.1f}")),
            f"{ms_m:.1f} / {cpu_m:.1f}", f"{ms_h:.1f} / {cpu_h:.1f}", f"{ms_h / ms_m:.2f}" if ms_m > 0 else "-"]


if __name__ == "__main__":
    raise SystemExit(main())
