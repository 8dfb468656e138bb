"""The published video-anomaly benchmarks, read in the layouts they are distributed in.

- **UCSD Ped2** (and Ped1): `UCSD_Anomaly_Dataset.v1p2/UCSDped2/Train/Train001/001.tif ...`,
  `Test/Test001/*.tif`; frame labels from the MATLAB script `Test/UCSDped2.m`
  (`TestVideoFile{end+1}.gt_frame = [61:180];`, 1-based inclusive ranges, one line per test video in
  order), or, without it, from the per-frame masks in `Test/Test001_gt/*.bmp`.
- **CUHK Avenue**: `training_videos/01.avi ...`, `testing_videos/01.avi ...`, labels in
  `ground_truth_demo/testing_label_mask/1_label.mat` (`volLabel`: a 1xN cell of HxW masks; a frame is
  anomalous when its mask has any nonzero pixel). MATLAB v5 files are read with scipy, v7.3 (HDF5) with h5py.
- **ShanghaiTech Campus**: `training/videos/01_001.avi ...` (or `training/frames/01_001/`),
  `testing/frames/01_0014/000.jpg ...`, labels `testing/test_frame_mask/01_0014.npy` (0/1 per frame),
  pixel masks in `testing/test_pixel_mask/01_0014.npy` when present.

ROOT may be the dataset folder itself or any folder above it. A test video whose label count differs
from its frame count is not truncated: it is left out with a warning and listed in `AnomalyDataset.skipped`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

from vidlens.errors import DatasetError

log = logging.getLogger(__name__)

__all__ = ["AnomalyDataset", "TestVideo", "FORMATS", "load_anomaly_dataset", "read_ped_gt_script", "read_avenue_labels"]

Source = Union[Path, list[Path]]  # a video file, or the sorted frame images of one video
IMAGE_EXTS = {".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp"}
FORMATS = ("ped2", "ped1", "avenue", "shanghaitech")
_SEARCH_DEPTH = 4


@dataclass
class TestVideo:
    """One test video: `source` (a video path or its sorted frame images), `labels (T,)` uint8, 1 = anomalous
    frame, one per frame of the source; `pixel_masks` where the per-pixel ground truth is, when the set has it."""

    name: str
    source: Source
    labels: np.ndarray
    pixel_masks: Path | list[Path] | None = None

    @property
    def num_frames(self) -> int:
        return int(len(self.labels))


@dataclass
class AnomalyDataset:
    """A benchmark's normal training videos (`train`, each a `Source`) and labelled test videos. `skipped`
    lists test videos left out, each `{"name", "reason"}`."""

    name: str
    root: Path
    train: list[Source]
    test: list[TestVideo]
    train_names: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict:
        return {"name": self.name, "root": str(self.root), "train_videos": len(self.train), "test_videos": len(self.test),
                "test_frames": int(sum(v.num_frames for v in self.test)),
                "anomalous_frames": int(sum(int(v.labels.sum()) for v in self.test)), "skipped": list(self.skipped)}


def load_anomaly_dataset(root: str | os.PathLike[str], format: str, *, scene: str | None = None) -> AnomalyDataset:
    """Read a published anomaly benchmark at `root` (its folder or any folder above it). `format`: "ped2",
    "ped1", "avenue" or "shanghaitech". `scene` keeps only one ShanghaiTech camera (e.g. "01")."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset root is not a folder")
    fmt = format.lower().replace("-", "").replace("_", "")
    if fmt in ("ped2", "ped1", "ucsdped2", "ucsdped1"):
        return _load_ped(root, "ped1" if fmt.endswith("1") else "ped2")
    if fmt in ("avenue", "cuhkavenue"):
        return _load_avenue(root)
    if fmt in ("shanghaitech", "sht", "shanghaitechcampus"):
        return _load_shanghaitech(root, scene)
    raise DatasetError(root, f"unknown anomaly dataset format {format!r}: use one of {', '.join(FORMATS)}")


# ---------------------------------------------------------------- helpers


def _images(folder: Path) -> list[Path]:
    """The frame images of a folder, sorted by name (hidden files such as macOS `._001.tif` left out)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file())


def _find_dir(root: Path, accept, what: str) -> Path:
    """`root` itself or the shallowest folder below it (breadth first, a few levels) for which `accept` holds."""
    level = [root]
    for _ in range(_SEARCH_DEPTH + 1):
        for folder in level:
            if accept(folder):
                return folder
        level = sorted(c for f in level for c in _subdirs(f))
    raise DatasetError(root, f"no {what} in this folder or the {_SEARCH_DEPTH} levels below it")


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
    except OSError:
        return []


def _child(folder: Path, name: str) -> Path | None:
    """A child of `folder` by name, ignoring case (archives differ: `Test` vs `test`)."""
    exact = folder / name
    if exact.exists():
        return exact
    for c in _subdirs(folder) + [p for p in folder.iterdir() if p.is_file()]:
        if c.name.lower() == name.lower():
            return c
    return None


def _check_count(name: str, labels: np.ndarray, frames: int, where: Path, skipped: list[dict[str, str]]) -> bool:
    if len(labels) == frames:
        return True
    reason = f"{len(labels)} frame labels but {frames} frames in {where}; left out (not truncated)"
    log.warning("anomaly dataset: test video %s: %s", name, reason)
    skipped.append({"name": name, "reason": reason})
    return False


def _video_frames(path: Path) -> int:
    from vidlens.io import probe

    return int(probe(path).num_frames)


# ---------------------------------------------------------------- UCSD Ped1 / Ped2

_GT_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def read_ped_gt_script(path: str | os.PathLike[str]) -> list[list[tuple[int, int]]]:
    """The anomalous frame ranges of each test video from UCSD's `UCSDped2.m` / `UCSDped1.m`: one list per
    `TestVideoFile{end+1}.gt_frame = [...]` line, in file order, of 1-based inclusive `(first, last)` ranges
    (`[61:180]`, `[1:5, 90:120]`, `[7]`, `[]`)."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise DatasetError(path, f"cannot read the ground-truth script: {exc.strerror or exc}") from None
    videos = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("%", 1)[0]  # MATLAB comment
        match = _GT_LINE.search(line)
        if not match:
            continue
        ranges = []
        for item in re.split(r"[,\s;]+", match.group(1).strip()):
            if not item:
                continue
            parts = item.split(":")
            try:
                nums = [int(float(p)) for p in parts]
            except ValueError:
                raise DatasetError(path, f"line {lineno}: cannot read the frame range {item!r}") from None
            if len(nums) == 1:
                ranges.append((nums[0], nums[0]))
            elif len(nums) == 2:
                ranges.append((nums[0], nums[1]))
            elif len(nums) == 3 and nums[1] == 1:  # first:1:last
                ranges.append((nums[0], nums[2]))
            else:
                raise DatasetError(path, f"line {lineno}: unsupported frame range {item!r} (expected a, a:b or a:1:b)")
        videos.append(ranges)
    if not videos:
        raise DatasetError(path, "no `TestVideoFile{end+1}.gt_frame = [...]` lines in the ground-truth script")
    return videos


def _ranges_to_labels(ranges: list[tuple[int, int]], frames: int, name: str, path: Path) -> np.ndarray:
    """Labels `(max(frames, last range end),)`: longer than `frames` when the script names frames the folder lacks."""
    if any(first < 1 or last < first for first, last in ranges):
        raise DatasetError(path, f"test video {name}: bad anomalous range in {ranges} (1-based, first <= last)")
    labels = np.zeros(max([frames] + [last for _, last in ranges]), dtype=np.uint8)
    for first, last in ranges:
        labels[first - 1:last] = 1
    return labels


def _is_ped(folder: Path) -> bool:
    return _child(folder, "Train") is not None and _child(folder, "Test") is not None \
        and (_child(folder, "Train").is_dir() and _child(folder, "Test").is_dir())


def _load_ped(root: Path, which: str) -> AnomalyDataset:
    name = f"UCSD{which}"
    def accept(f: Path) -> bool:
        return _is_ped(f) and (f.name.lower() == name.lower() or _child(_child(f, "Test"), f"{name}.m") is not None)

    folder = root if _is_ped(root) else _find_dir(root, accept, f"{name} folder with Train/ and Test/")
    train_dir, test_dir = _child(folder, "Train"), _child(folder, "Test")
    video_re = re.compile(r"^(Train|Test)\d+$", re.IGNORECASE)
    train_names = sorted(d.name for d in _subdirs(train_dir) if video_re.match(d.name))
    train = [_images(train_dir / n) for n in train_names]
    for n, frames in zip(train_names, train):
        if not frames:
            raise DatasetError(train_dir / n, "training video folder holds no frame images (.tif)")
    if not train:
        raise DatasetError(train_dir, "no Train001-style video folders")
    test_names = sorted(d.name for d in _subdirs(test_dir) if video_re.match(d.name))
    if not test_names:
        raise DatasetError(test_dir, "no Test001-style video folders")
    script = _child(test_dir, f"{name}.m")
    if script is None:  # any other .m script beside the videos
        scripts = sorted(p for p in test_dir.glob("*.m") if not p.name.startswith("."))
        script = scripts[0] if len(scripts) == 1 else None
    ranges = read_ped_gt_script(script) if script is not None else None
    if ranges is not None and len(ranges) != len(test_names):
        raise DatasetError(script, f"{len(ranges)} gt_frame lines for {len(test_names)} test video folders in {test_dir}")
    test, skipped = [], []
    for i, vname in enumerate(test_names):
        frames = _images(test_dir / vname)
        if not frames:
            raise DatasetError(test_dir / vname, "test video folder holds no frame images (.tif)")
        gt_dir = _child(test_dir, f"{vname}_gt")
        masks = _images(gt_dir) if gt_dir is not None and gt_dir.is_dir() else None
        if ranges is not None:
            labels = _ranges_to_labels(ranges[i], len(frames), vname, script)
            if not _check_count(vname, labels, len(frames), test_dir / vname, skipped):
                continue
        elif masks:
            labels = _mask_images_labels(masks)
            if not _check_count(vname, labels, len(frames), gt_dir, skipped):
                continue
        else:
            raise DatasetError(test_dir / f"{name}.m",
                               f"missing: neither the ground-truth script nor a {vname}_gt mask folder for test video {vname}")
        test.append(TestVideo(vname, frames, labels, masks or None))
    return AnomalyDataset(which, folder, train, test, train_names, skipped)


def _mask_images_labels(masks: list[Path]) -> np.ndarray:
    import cv2

    labels = np.zeros(len(masks), dtype=np.uint8)
    for i, p in enumerate(masks):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DatasetError(p, "cannot read this ground-truth mask image")
        labels[i] = 1 if np.any(img) else 0
    return labels


# ---------------------------------------------------------------- CUHK Avenue


def read_avenue_labels(path: str | os.PathLike[str]) -> np.ndarray:
    """Frame labels `(N,)` uint8 from an Avenue `N_label.mat`: `volLabel`, a 1xN cell of HxW masks; 1 where the
    mask has any nonzero pixel. MATLAB v5/v7 via scipy, v7.3 (HDF5) via h5py."""
    path = Path(path)
    import scipy.io
    import scipy.io.matlab

    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3 is HDF5
        return _avenue_labels_h5(path)
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as exc:
        if _is_hdf5(path):  # HDF5 written without MATLAB's 128-byte header
            return _avenue_labels_h5(path)
        raise DatasetError(path, f"cannot read this .mat file: {exc}") from None
    if "volLabel" not in mat:
        raise DatasetError(path, f"no `volLabel` variable (it holds {', '.join(k for k in mat if not k.startswith('__'))})")
    cells = np.asarray(mat["volLabel"], dtype=object).ravel()
    return np.array([1 if np.any(np.asarray(c)) else 0 for c in cells], dtype=np.uint8)


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def _avenue_labels_h5(path: Path) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "volLabel" not in f:
                raise DatasetError(path, f"no `volLabel` variable (it holds {', '.join(f.keys())})")
            refs = np.asarray(f["volLabel"][()]).ravel()
            out = []
            for ref in refs:
                value = f[ref][()] if isinstance(ref, h5py.Reference) else ref
                out.append(1 if np.any(value) else 0)
            return np.array(out, dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(path, f"cannot read this .mat file (tried MATLAB v5 and v7.3/HDF5): {exc}") from None


def _is_avenue(folder: Path) -> bool:
    return (folder / "training_videos").is_dir() and (folder / "testing_videos").is_dir()


def _load_avenue(root: Path) -> AnomalyDataset:
    folder = _find_dir(root, _is_avenue, "Avenue folder with training_videos/ and testing_videos/")
    # the ground truth ships as a separate archive: inside the dataset folder, or beside it under ROOT
    gt = None
    for base in dict.fromkeys((folder, root)):
        try:
            gt = _find_dir(base, lambda f: f.name == "testing_label_mask", "ground_truth_demo/testing_label_mask folder")
            break
        except DatasetError:
            continue
    beside = folder.parent / "ground_truth_demo" / "testing_label_mask"
    if gt is None and beside.is_dir():
        gt = beside
    if gt is None:
        raise DatasetError(folder / "ground_truth_demo" / "testing_label_mask",
                           "missing: the Avenue ground truth (ground_truth_demo/testing_label_mask/1_label.mat ...)")
    train = sorted(p for p in (folder / "training_videos").iterdir() if p.suffix.lower() == ".avi" and not p.name.startswith("."))
    tests = sorted(p for p in (folder / "testing_videos").iterdir() if p.suffix.lower() == ".avi" and not p.name.startswith("."))
    if not train:
        raise DatasetError(folder / "training_videos", "no .avi training videos (01.avi ...)")
    if not tests:
        raise DatasetError(folder / "testing_videos", "no .avi test videos (01.avi ...)")
    test, skipped = [], []
    for video in tests:
        try:
            number = int(video.stem)
        except ValueError:
            raise DatasetError(video, "Avenue test videos are named by number (01.avi ...)") from None
        mat = gt / f"{number}_label.mat"
        if not mat.is_file():
            raise DatasetError(mat, f"missing: the label volume of test video {video.name}")
        labels = read_avenue_labels(mat)
        if _check_count(video.stem, labels, _video_frames(video), video, skipped):
            test.append(TestVideo(video.stem, video, labels, mat))
    return AnomalyDataset("avenue", folder, list(train), test, [p.stem for p in train], skipped)


# ---------------------------------------------------------------- ShanghaiTech Campus


def _is_shanghaitech(folder: Path) -> bool:
    return (folder / "training").is_dir() and (folder / "testing").is_dir()


def _load_shanghaitech(root: Path, scene: str | None) -> AnomalyDataset:
    folder = _find_dir(root, _is_shanghaitech, "ShanghaiTech folder with training/ and testing/")

    def keep(name: str) -> bool:
        return scene is None or name.split("_", 1)[0] == scene

    videos_dir, frames_dir = folder / "training" / "videos", folder / "training" / "frames"
    if videos_dir.is_dir():
        exts = {".avi", ".mp4", ".mkv", ".mov"}
        train_paths = sorted(p for p in videos_dir.iterdir()
                             if p.suffix.lower() in exts and not p.name.startswith(".") and keep(p.stem))
        train: list[Source] = list(train_paths)
        train_names = [p.stem for p in train_paths]
    elif frames_dir.is_dir():
        train_names = sorted(d.name for d in _subdirs(frames_dir) if keep(d.name))
        train = [_images(frames_dir / n) for n in train_names]
    else:
        raise DatasetError(videos_dir, "missing: the training videos (training/videos/01_001.avi ... or training/frames/01_001/)")
    if not train:
        raise DatasetError(videos_dir if videos_dir.is_dir() else frames_dir,
                           "no training videos" + (f" of scene {scene}" if scene else ""))
    test_frames = folder / "testing" / "frames"
    mask_dir = folder / "testing" / "test_frame_mask"
    pixel_dir = folder / "testing" / "test_pixel_mask"
    if not test_frames.is_dir():
        raise DatasetError(test_frames, "missing: the test frame folders (testing/frames/01_0014/000.jpg ...)")
    if not mask_dir.is_dir():
        raise DatasetError(mask_dir, "missing: the frame labels (testing/test_frame_mask/01_0014.npy ...)")
    test, skipped = [], []
    for vdir in sorted(d for d in _subdirs(test_frames) if keep(d.name)):
        npy = mask_dir / f"{vdir.name}.npy"
        if not npy.is_file():
            raise DatasetError(npy, f"missing: the frame labels of test video {vdir.name}")
        try:
            labels = (np.asarray(np.load(npy, allow_pickle=False)).ravel() != 0).astype(np.uint8)
        except (OSError, ValueError) as exc:
            raise DatasetError(npy, f"cannot read the frame labels: {exc}") from None
        frames = _images(vdir)
        if not frames:
            raise DatasetError(vdir, "test video folder holds no frame images (.jpg)")
        if _check_count(vdir.name, labels, len(frames), vdir, skipped):
            pixel = pixel_dir / f"{vdir.name}.npy"
            test.append(TestVideo(vdir.name, frames, labels, pixel if pixel.is_file() else None))
    if not test and not skipped:
        raise DatasetError(test_frames, "no test video folders" + (f" of scene {scene}" if scene else ""))
    return AnomalyDataset("shanghaitech", folder, train, test, train_names, skipped)
