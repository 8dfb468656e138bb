"""The SumMe/TVSum keyshot evaluation protocol, as in K. Zhang et al. (ECCV 2016) and
K. Zhou et al.'s pytorch-vsumm-reinforce `vsum_tools.py` (AAAI 2018), plus the standard
HDF5 layout and split files.

Layouts: `scores` `(n_picks,)` per subsampled step; `picks` `(n_picks,)` frame index of each
step; `change_points` `(S, 2)` inclusive `[first, last]` frame of each segment (shot);
`n_frame_per_seg` `(S,)`; summaries `(n_frames,)` 0/1; `user_summary` `(U, n_frames)`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vidlens.errors import ConfigError, DatasetError
from vidlens.tasks.summarize.knapsack import knapsack

Metric = Literal["avg", "max"]
REQUIRED_FIELDS = ("features", "gtscore", "user_summary", "change_points", "n_frame_per_seg", "n_frames", "picks")


@dataclass
class VideoRecord:
    """One video of a SumMe/TVSum-style HDF5 file (all arrays in memory)."""

    key: str
    features: np.ndarray  # (n_picks, D) float32, one row per subsampled frame
    gtscore: np.ndarray  # (n_picks,) float32, mean user importance per step
    user_summary: np.ndarray  # (U, n_frames) 0/1, one keyshot summary per annotator
    change_points: np.ndarray  # (S, 2) int, inclusive [first, last] frame of each segment
    n_frame_per_seg: np.ndarray  # (S,) int
    n_frames: int
    picks: np.ndarray  # (n_picks,) int, frame index of each step
    gtsummary: np.ndarray | None = None  # (n_picks,) 0/1 when the file has it
    video_name: str | None = None


def frame_scores_from_picks(scores: np.ndarray, picks: np.ndarray, n_frames: int) -> np.ndarray:
    """Upsample step scores `(n_picks,)` to frame scores `(n_frames,)`: frame f gets the score of the
    last pick at or before it (the frames before the first pick get that first score, as in vsum_tools
    when `picks[0] == 0`); frames after the last scored step get 0."""
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    positions = np.asarray(picks).astype(np.int64).reshape(-1)
    frame_scores = np.zeros(int(n_frames), dtype=np.float32)
    if positions.size == 0:
        return frame_scores
    if positions[-1] != n_frames:
        positions = np.concatenate([positions, [n_frames]])
    for i in range(len(positions) - 1):
        left, right = positions[i], positions[i + 1]
        frame_scores[left:right] = scores[i] if i < len(scores) else 0.0
    return frame_scores


def generate_summary(
    scores: np.ndarray,
    change_points: np.ndarray,
    n_frames: int,
    n_frame_per_seg: np.ndarray,
    picks: np.ndarray,
    ratio: float = 0.15,
) -> np.ndarray:
    """Keyshot summary `(n_frames,)` of 0/1 from step scores `(n_picks,)`.

    Segment score = mean frame score over `[first, last]` (inclusive); segments are chosen by 0/1
    knapsack (value = segment score, weight = `n_frame_per_seg`) with capacity
    `floor(n_frames * ratio)`. As in vsum_tools the summary is the concatenation of each segment's
    `n_frame_per_seg` ones or zeros; it is then cropped/zero-padded to `n_frames` (a no-op when the
    segments tile the video, as they do in the public files).
    """
    if not 0 < ratio <= 1:
        raise ConfigError(None, f"summary ratio must be in (0, 1], got {ratio}")
    cps = np.asarray(change_points).astype(np.int64).reshape(-1, 2)
    nfps = np.asarray(n_frame_per_seg).astype(np.int64).reshape(-1)
    frame_scores = frame_scores_from_picks(scores, picks, n_frames)
    seg_scores = []
    for start, end in cps:
        chunk = frame_scores[start : end + 1]
        seg_scores.append(float(chunk.mean()) if chunk.size else 0.0)
    chosen = set(knapsack(seg_scores, nfps.tolist(), int(math.floor(n_frames * ratio))))
    parts = [np.full(int(nf), 1.0 if i in chosen else 0.0, dtype=np.float32) for i, nf in enumerate(nfps)]
    summary = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return _fit_length(summary, int(n_frames))


def _fit_length(summary: np.ndarray, n_frames: int) -> np.ndarray:
    if len(summary) >= n_frames:
        return summary[:n_frames]
    return np.concatenate([summary, np.zeros(n_frames - len(summary), dtype=summary.dtype)])


def evaluate_summary(machine_summary: np.ndarray, user_summary: np.ndarray, metric: Metric = "avg") -> tuple[float, float, float]:
    """`(f_score, precision, recall)` of a machine summary `(n,)` against user summaries `(U, n_frames)`.

    Both are binarised (> 0); the machine summary is cropped/zero-padded to `n_frames`. Per user:
    precision = overlap / |machine|, recall = overlap / |user| (each with a 1e-8 guard), F = 2PR/(P+R)
    (0 when both are 0). `avg` (TVSum) averages F, P and R over users; `max` (SumMe) takes the best
    user's F and that user's P and R.
    """
    if metric not in ("avg", "max"):
        raise ConfigError(None, f"metric must be 'avg' or 'max', got {metric!r}")
    users = np.atleast_2d(np.asarray(user_summary, dtype=np.float32)) > 0
    machine = _fit_length((np.asarray(machine_summary, dtype=np.float32).reshape(-1) > 0).astype(np.float32), users.shape[1])
    f_scores, precisions, recalls = [], [], []
    for gt in users.astype(np.float32):
        overlap = float((machine * gt).sum())
        precision = overlap / (float(machine.sum()) + 1e-8)
        recall = overlap / (float(gt.sum()) + 1e-8)
        f = 0.0 if precision == 0 and recall == 0 else 2 * precision * recall / (precision + recall)
        f_scores.append(f)
        precisions.append(precision)
        recalls.append(recall)
    if metric == "avg":
        return float(np.mean(f_scores)), float(np.mean(precisions)), float(np.mean(recalls))
    best = int(np.argmax(f_scores))
    return float(f_scores[best]), float(precisions[best]), float(recalls[best])


def resolve_metric(metric: str, h5_path: str | os.PathLike[str]) -> Metric:
    """`auto` -> `max` when the file name contains "summe", `avg` otherwise (TVSum and unknown files)."""
    if metric in ("avg", "max"):
        return metric  # type: ignore[return-value]
    if metric != "auto":
        raise ConfigError(None, f"--metric must be auto, avg or max, got {metric!r}")
    return "max" if "summe" in Path(h5_path).name.lower() else "avg"


def load_h5(path: str | os.PathLike[str]) -> dict[str, VideoRecord]:
    """Read every video group of a SumMe/TVSum-style HDF5 file into `VideoRecord`s, keyed by group name.

    Raises `DatasetError(path, reason)` when the file is missing/unreadable, has no video groups, or a
    video lacks one of `REQUIRED_FIELDS` (the reason names the video and the field) or has
    inconsistent lengths.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "HDF5 file does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(path, f"not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    records: dict[str, VideoRecord] = {}
    with handle:
        for key in handle.keys():
            group = handle[key]
            if not isinstance(group, h5py.Group):
                continue
            missing = [name for name in REQUIRED_FIELDS if name not in group]
            if missing:
                raise DatasetError(path, f"video '{key}' lacks the field '{missing[0]}' (required: {', '.join(REQUIRED_FIELDS)})")
            name = group["video_name"][()] if "video_name" in group else None
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            record = VideoRecord(
                key=key,
                features=np.asarray(group["features"][...], dtype=np.float32),
                gtscore=np.asarray(group["gtscore"][...], dtype=np.float32).reshape(-1),
                user_summary=np.atleast_2d(np.asarray(group["user_summary"][...], dtype=np.float32)),
                change_points=np.asarray(group["change_points"][...]).astype(np.int64).reshape(-1, 2),
                n_frame_per_seg=np.asarray(group["n_frame_per_seg"][...]).astype(np.int64).reshape(-1),
                n_frames=int(np.asarray(group["n_frames"][()]).reshape(-1)[0]),
                picks=np.asarray(group["picks"][...]).astype(np.int64).reshape(-1),
                gtsummary=np.asarray(group["gtsummary"][...], dtype=np.float32).reshape(-1) if "gtsummary" in group else None,
                video_name=None if name is None else str(name),
            )
            _check_record(path, record)
            records[key] = record
    if not records:
        raise DatasetError(path, "no video groups in the HDF5 file")
    return records


def _check_record(path: Path, r: VideoRecord) -> None:
    if r.features.ndim != 2 or len(r.features) == 0:
        raise DatasetError(path, f"video '{r.key}': 'features' must be a non-empty (n_picks, D) array, got shape {r.features.shape}")
    n = len(r.features)
    for name, arr in (("gtscore", r.gtscore), ("picks", r.picks)):
        if len(arr) != n:
            raise DatasetError(path, f"video '{r.key}': '{name}' has {len(arr)} entries but 'features' has {n} rows")
    if len(r.change_points) != len(r.n_frame_per_seg):
        raise DatasetError(path, f"video '{r.key}': {len(r.change_points)} change points but {len(r.n_frame_per_seg)} n_frame_per_seg")
    if r.n_frames <= 0 or r.picks.max() >= r.n_frames:
        raise DatasetError(path, f"video '{r.key}': picks go up to {r.picks.max()} but n_frames is {r.n_frames}")


def load_splits(path: str | os.PathLike[str]) -> list[dict[str, list[str]]]:
    """Read a splits JSON: a list of `{"train_keys": [...], "test_keys": [...]}` (Zhou et al.'s format)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "splits file does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"splits file is not valid JSON ({exc})") from None
    if isinstance(data, dict):  # a single split written as an object
        data = [data]
    if not isinstance(data, list) or not data:
        raise DatasetError(path, "splits file must be a non-empty list of {train_keys, test_keys}")
    splits = []
    for i, split in enumerate(data):
        if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train_keys", "test_keys")):
            raise DatasetError(path, f"split {i} needs 'train_keys' and 'test_keys' lists")
        if not split["test_keys"]:
            raise DatasetError(path, f"split {i} has no test_keys")
        splits.append({"train_keys": [str(k) for k in split["train_keys"]], "test_keys": [str(k) for k in split["test_keys"]]})
    return splits


def make_splits(keys: list[str], folds: int = 5, seed: int = 0) -> list[dict[str, list[str]]]:
    """K-fold splits in the standard format: keys shuffled with `seed`, each fold's test keys disjoint,
    every key tested exactly once; train keys keep the input order."""
    keys = list(keys)
    if folds < 2:
        raise ConfigError(None, f"folds must be >= 2, got {folds}")
    if folds > len(keys):
        raise ConfigError(None, f"cannot make {folds} folds from {len(keys)} videos")
    order = np.random.default_rng(seed).permutation(len(keys))
    splits = []
    for chunk in np.array_split(order, folds):
        test = {keys[i] for i in chunk}
        splits.append({"train_keys": [k for k in keys if k not in test], "test_keys": [keys[i] for i in sorted(chunk)]})
    return splits


def resolve_split_keys(keys: list[str], records: dict[str, VideoRecord], source: str | os.PathLike[str] | None) -> list[str]:
    """Map split keys to record keys; accepts 'dataset/video_1'-style keys by their last component."""
    out = []
    for key in keys:
        if key in records:
            out.append(key)
        elif key.rsplit("/", 1)[-1] in records:
            out.append(key.rsplit("/", 1)[-1])
        else:
            raise DatasetError(source, f"split key '{key}' is not a video in the HDF5 file")
    return out
