"""Boundary precision / recall / F1 against ground truth, with one-to-one matching.

A detected boundary frame matches a true cut at frame `c` when it lies in
`[c - cut_tolerance, c + cut_tolerance]`, and a true fade/dissolve `[start, end)` when it
lies in `[start - gradual_tolerance, end - 1 + gradual_tolerance]` (inside the transition,
give or take the tolerance). Each truth and each detection is matched at most once; the
matching is maximal (truths sorted by the end of their window each take the earliest
free detection in it, which is optimal for points against intervals).

Conventions for empty sets: with no detections precision is 1.0; with no truth recall is 1.0;
F1 is 0 when precision + recall is 0.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from vidlens.data.synthetic.shots import ShotGroundTruth


@dataclass
class BoundaryScores:
    """Matching outcome. `per_kind`: truth kind -> {"tp", "fn", "recall"}; `fp_frames`: unmatched detections."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    per_kind: dict[str, dict] = field(default_factory=dict)
    fp_frames: list[int] = field(default_factory=list)
    fn_frames: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _match_windows(detected: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[int | None]:
    """For each inclusive window `(lo, hi)`, the index in `detected` matched to it (or None)."""
    order = sorted(range(len(detected)), key=lambda i: (int(detected[i]), i))
    frames = [int(detected[i]) for i in order]
    free = list(range(len(frames)))  # positions (into `frames`) not used yet, ascending
    matched: list[int | None] = [None] * len(windows)
    for w in sorted(range(len(windows)), key=lambda j: (windows[j][1], windows[j][0])):
        lo, hi = windows[w]
        k = bisect.bisect_left(free, bisect.bisect_left(frames, lo))
        if k < len(free) and frames[free[k]] <= hi:
            matched[w] = order[free.pop(k)]
    return matched


def _scores(detected: Sequence[int], windows: list[tuple[int, int]], kinds: list[str], refs: list[int]) -> BoundaryScores:
    matched = _match_windows(detected, windows)
    tp = sum(m is not None for m in matched)
    fn = len(windows) - tp
    fp = len(detected) - tp
    precision = tp / len(detected) if len(detected) else 1.0
    recall = tp / len(windows) if windows else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    per_kind: dict[str, dict] = {}
    for kind, m in zip(kinds, matched, strict=True):
        entry = per_kind.setdefault(kind, {"tp": 0, "fn": 0})
        entry["tp" if m is not None else "fn"] += 1
    for entry in per_kind.values():
        entry["recall"] = entry["tp"] / (entry["tp"] + entry["fn"])
    used = {m for m in matched if m is not None}
    return BoundaryScores(
        precision, recall, f1, tp, fp, fn, per_kind,
        fp_frames=sorted(int(d) for i, d in enumerate(detected) if i not in used),
        fn_frames=[r for r, m in zip(refs, matched, strict=True) if m is None],
    )


def match_boundaries(
    detected_frames: Sequence[int],
    truth: ShotGroundTruth,
    cut_tolerance: int = 1,
    gradual_tolerance: int = 2,
) -> BoundaryScores:
    """Score detected boundary frames against a synthetic video's transitions (see the module doc)."""
    if cut_tolerance < 0 or gradual_tolerance < 0:
        raise ValueError("tolerances must be >= 0")
    windows, kinds, refs = [], [], []
    for t in truth.transitions:
        if t.type == "cut" or t.end_frame <= t.start_frame:
            windows.append((t.start_frame - cut_tolerance, t.start_frame + cut_tolerance))
        else:
            windows.append((t.start_frame - gradual_tolerance, t.end_frame - 1 + gradual_tolerance))
        kinds.append(t.type)
        refs.append(t.start_frame + (t.end_frame - t.start_frame) // 2)
    return _scores(list(detected_frames), windows, kinds, refs)


def match_boundaries_to_frames(detected: Sequence[int], truth_frames: Sequence[int], tolerance: int = 1) -> BoundaryScores:
    """Score detected boundary frames against plain true boundary frames, each +- `tolerance`."""
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    windows = [(int(f) - tolerance, int(f) + tolerance) for f in truth_frames]
    return _scores(list(detected), windows, ["cut"] * len(windows), [int(f) for f in truth_frames])
