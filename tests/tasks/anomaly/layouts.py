"""Tiny copies of the published anomaly benchmarks' layouts, cut from real footage (opencv-doc's vtest.avi:
a fixed camera over a pedestrian street, like the benchmarks' cameras) with the ffmpeg CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidlens.testing.real import ffmpeg_available, opencv_sample

H, W = 120, 160  # small frames (Ped2 is 240x360, Avenue 360x640, ShanghaiTech 480x856)


def vtest() -> Path:
    if not ffmpeg_available():
        pytest.skip("the ffmpeg CLI is needed to cut real footage into the benchmark layouts")
    try:
        return opencv_sample("vtest.avi")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def real_frames(start: int, count: int, gray: bool = False, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """`count` consecutive frames of vtest.avi (10 fps) from frame `start`, decoded by the ffmpeg CLI:
    uint8 (T,H,W) gray or (T,H,W,3) RGB."""
    h, w = size
    fmt, ch = ("gray", 1) if gray else ("rgb24", 3)
    vf = f"select=gte(n\\,{start}),scale={w}:{h},setpts=N/(10*TB)"
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(vtest()), "-vf", vf, "-frames:v", str(count),
                          "-f", "rawvideo", "-pix_fmt", fmt, "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(out, np.uint8).reshape(-1, h, w, ch)
    assert len(frames) == count
    return frames[..., 0] if gray else frames


def write_images(folder: Path, frames: np.ndarray, ext: str, start_number: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, f in enumerate(frames):
        p = folder / f"{i + start_number:03d}{ext}"
        img = f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        assert cv2.imwrite(str(p), img)
        paths.append(p)
    return paths


def write_avi(path: Path, start: int, count: int) -> Path:
    """A real cut re-encoded as MPEG-4 Part 2 in AVI (XVID tag), as the Avenue/ShanghaiTech videos are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vf = f"select=gte(n\\,{start}),scale={W}:{H},setpts=N/(10*TB)"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(vtest()), "-vf", vf,
                    "-frames:v", str(count), "-r", "10", "-c:v", "mpeg4", "-vtag", "XVID", "-q:v", "3", str(path)],
                   capture_output=True, check=True)
    return path


def paste_fast_patch(frames: np.ndarray, first: int, last: int, speed: int = 14, size: int = 28) -> np.ndarray:
    """Frames [first, last] (0-based, inclusive) get a patch of the scene itself (cut from the first frame's
    lower left) crossing the frame at `speed` px/frame: an object moving far faster than the pedestrians."""
    out = frames.copy()
    src = frames[0, -size - 4:-4, 4:4 + size].copy()
    h, w = frames.shape[1:3]
    y = h // 2 - size // 2
    for k, t in enumerate(range(first, last + 1)):
        x = (k * speed) % (w - size)
        out[t, y:y + size, x:x + size] = 255 - src  # inverted so it stands out as an object would
    return out


PED2_TRAIN = [(0, 30), (100, 30)]          # (first vtest frame, frames) per Train00N
PED2_TEST = [(300, 36), (400, 30)]          # per Test00N
PED2_RANGES = ["[12:20, 30:34]", "[1:5]"]   # 1-based inclusive, the first line with two ranges


def make_ped2(root: Path, *, gt_masks: bool = True, script: bool = True, anomaly: bool = False) -> Path:
    """`root/UCSD_Anomaly_Dataset.v1p2/UCSDped2/{Train/Train00N,Test/Test00N}/NNN.tif` (grayscale) with
    `Test/UCSDped2.m` and `Test/Test00N_gt/NNN.bmp` masks. With `anomaly`, a fast patch is pasted over the
    frames the script labels anomalous. Returns the UCSDped2 folder."""
    ped = root / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2"
    for i, (start, n) in enumerate(PED2_TRAIN, 1):
        write_images(ped / "Train" / f"Train{i:03d}", real_frames(start, n, gray=True), ".tif")
    lines = ["TestVideoFile = {};", ""]
    for i, ((start, n), ranges) in enumerate(zip(PED2_TEST, PED2_RANGES), 1):
        labels = ped2_labels(ranges, n)
        frames = real_frames(start, n, gray=True)
        if anomaly:
            for first, last in _runs(labels):
                frames = paste_fast_patch(frames, first, last)
        write_images(ped / "Test" / f"Test{i:03d}", frames, ".tif")
        if gt_masks:
            masks = np.zeros((n, H, W), np.uint8)
            masks[labels.astype(bool), 40:60, 50:80] = 255
            write_images(ped / "Test" / f"Test{i:03d}_gt", masks, ".bmp")
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = {ranges};")
    if script:
        (ped / "Test" / "UCSDped2.m").write_text("\n".join(lines) + "\n")
    (ped / "Test" / "._Test001").mkdir()  # macOS resource-fork debris, as in real archives
    return ped


def ped2_labels(ranges: str, n: int) -> np.ndarray:
    labels = np.zeros(n, np.uint8)
    for part in ranges.strip("[]").split(","):
        a, b = part.split(":")
        labels[int(a) - 1:int(b)] = 1
    return labels


def _runs(labels: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(labels)
    runs, start = [], None
    for k, i in enumerate(idx):
        if start is None:
            start = i
        if k + 1 == len(idx) or idx[k + 1] != i + 1:
            runs.append((int(start), int(i)))
            start = None
    return runs


AVENUE_TRAIN = [(0, 25), (200, 25)]
AVENUE_TEST = [(300, 24), (500, 20), (600, 22)]
AVENUE_ANOMALOUS = [(5, 9), (0, 3), None]  # 0-based inclusive per test video (None: all normal)


def avenue_labels(n: int, run: tuple[int, int] | None) -> np.ndarray:
    labels = np.zeros(n, np.uint8)
    if run:
        labels[run[0]:run[1] + 1] = 1
    return labels


def vol_label(labels: np.ndarray, hw: tuple[int, int] = (36, 64)) -> np.ndarray:
    """Avenue's `volLabel`: a 1xN MATLAB cell (numpy object array) of HxW masks; a few pixels set on anomalous frames."""
    cell = np.empty((1, len(labels)), dtype=object)
    for i, y in enumerate(labels):
        m = np.zeros(hw, np.uint8)
        if y:
            m[10 + i % 5, 20:23] = 1
        cell[0, i] = m
    return cell


def make_avenue(root: Path, *, v73: bool = False) -> Path:
    """`root/Avenue Dataset/{training_videos,testing_videos}/NN.avi` and, beside it as the separate archive
    unpacks, `root/ground_truth_demo/testing_label_mask/N_label.mat`. Returns the `Avenue Dataset` folder."""
    import scipy.io

    ds = root / "Avenue Dataset"
    for i, (start, n) in enumerate(AVENUE_TRAIN, 1):
        write_avi(ds / "training_videos" / f"{i:02d}.avi", start, n)
    gt = root / "ground_truth_demo" / "testing_label_mask"
    gt.mkdir(parents=True)
    for i, ((start, n), run) in enumerate(zip(AVENUE_TEST, AVENUE_ANOMALOUS), 1):
        write_avi(ds / "testing_videos" / f"{i:02d}.avi", start, n)
        cell = vol_label(avenue_labels(n, run))
        if v73:
            write_mat_v73(gt / f"{i}_label.mat", cell)
        else:
            scipy.io.savemat(gt / f"{i}_label.mat", {"volLabel": cell})
    return ds


def write_mat_v73(path: Path, cell: np.ndarray) -> None:
    """A MATLAB v7.3 .mat as MATLAB writes it: HDF5 behind a 512-byte user block holding the MAT header,
    the cell as a dataset of object references into `#refs#`, each array stored transposed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        refs = np.empty(cell.T.shape, dtype=h5py.ref_dtype)
        for i, m in enumerate(cell.ravel()):
            d = refs_group.create_dataset(f"r{i}", data=np.ascontiguousarray(m.T))
            d.attrs["MATLAB_class"] = np.bytes_("logical")
            refs[i, 0] = d.ref
        v = f.create_dataset("volLabel", data=refs, dtype=h5py.ref_dtype)
        v.attrs["MATLAB_class"] = np.bytes_("cell")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Dec  5 12:00:00 2026 HDF5 schema 1.00 ."
    block = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as fh:
        fh.write(block)


SHT_TRAIN = ["01_001", "01_002", "02_001"]
SHT_TEST = {"01_0014": (300, 26, (10, 17)), "01_0015": (450, 20, (0, 4)), "02_0161": (600, 18, (12, 17))}


def make_shanghaitech(root: Path, *, pixel_masks: bool = True) -> Path:
    """`root/shanghaitech/training/videos/01_001.avi ...`, `testing/frames/01_0014/000.jpg ...`,
    `testing/test_frame_mask/01_0014.npy` and `testing/test_pixel_mask/01_0014.npy`. Returns the shanghaitech folder."""
    sht = root / "shanghaitech"
    for k, name in enumerate(SHT_TRAIN):
        write_avi(sht / "training" / "videos" / f"{name}.avi", 40 * k, 20)
    for name, (start, n, (a, b)) in SHT_TEST.items():
        write_images(sht / "testing" / "frames" / name, real_frames(start, n), ".jpg", start_number=0)
        labels = np.zeros(n, np.int64)
        labels[a:b + 1] = 1
        (sht / "testing" / "test_frame_mask").mkdir(parents=True, exist_ok=True)
        np.save(sht / "testing" / "test_frame_mask" / f"{name}.npy", labels)
        if pixel_masks:
            (sht / "testing" / "test_pixel_mask").mkdir(parents=True, exist_ok=True)
            masks = np.zeros((n, H, W), np.uint8)
            masks[labels.astype(bool), 30:50, 40:60] = 1
            np.save(sht / "testing" / "test_pixel_mask" / f"{name}.npy", masks)
    return sht
