"""Which segments a summary keeps: segment length for the budget, the content-diverse ranking, the budget fill.

- `segment_seconds`: sub-shots short enough that the length budget holds several of them (a 15 %
  summary of a 35 s film is 5 s: with 4 s sub-shots it could show one place of the film only).
- `diverse_ranking`: the default scorer. Greedy facility location over segments: each step keeps the
  segment whose mean embedding most raises `sum_i max(0, max_{kept j} cos(x_i, m_j))` over every sampled
  frame `i` (representativeness: each frame near something kept). The gain of a segment is a function
  of the features only, never of where a segment sits in the video, so reordering the shots reorders the
  importance with them; the gains fall as the kept set covers more of the video, so a second view of
  content already kept ranks below a first view of content not yet kept (coverage, diversity).
- `fill_budget`: after whole segments are chosen, the best unchosen one is cut shorter to the leftover
  budget, so the ratio is met within +-2.5 % of the video even when every segment is longer than the budget.

Layouts: `features` `(N, D)` one row per sampled frame; `frames` `(N,)` their source frame indices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

TARGET_SEGMENTS = 6  # segments a budget should hold, at least
MIN_SEGMENT_S = 0.5  # shortest sub-shot the splitting makes (a shorter shot stays whole)
RATIO_TOLERANCE = 0.05  # of the video's length (or one shot, whichever is larger)


def segment_seconds(duration_s: float, ratio: float, max_segment_s: float) -> float:
    """Longest sub-shot in seconds: `max_segment_s`, shortened so the budget holds `TARGET_SEGMENTS` (not below 0.5 s)."""
    budget = max(duration_s * ratio, 1e-3)
    return float(min(max_segment_s, max(min(MIN_SEGMENT_S, budget), budget / TARGET_SEGMENTS)))


def segment_members(segments: Sequence[Any], frames: np.ndarray) -> list[np.ndarray]:
    """Indices of the sampled frames inside each segment (the nearest sample when none is inside)."""
    out = []
    for seg in segments:
        inside = np.nonzero((frames >= seg.start_frame) & (frames < seg.end_frame))[0]
        if len(inside) == 0 and len(frames):
            inside = np.array([int(np.argmin(np.abs(frames - (seg.start_frame + seg.end_frame) / 2)))])
        out.append(inside)
    return out


def diverse_ranking(prepared: np.ndarray, members: Sequence[np.ndarray]) -> tuple[list[int], np.ndarray]:
    """Greedy facility-location order of all segments and each segment's gain `(S,)` in [0, 1].

    `prepared` `(N, D)`: unit rows centred on the video's mean (`centred_unit_rows`). A segment's
    gain is its marginal coverage when the greedy reached it, divided by the first (largest) gain.
    Ties are broken by the segment's own content (its centrality), not its position.
    """
    n_seg = len(members)
    if n_seg == 0 or len(prepared) == 0:
        return [], np.zeros(n_seg, np.float32)
    means = np.stack([prepared[m].mean(0) for m in members])
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-8)
    sim = np.maximum(prepared @ means.T, 0.0)  # (N, S)
    centrality = sim.mean(0)
    covered = np.zeros(len(prepared))
    left = np.ones(n_seg, bool)
    order: list[int] = []
    gains = np.zeros(n_seg)
    while left.any():
        gain = np.maximum(sim - covered[:, None], 0.0).sum(0)
        key = np.where(left, gain + 1e-9 * centrality, -np.inf)
        best = int(np.argmax(key))
        order.append(best)
        gains[best] = gain[best]
        left[best] = False
        covered = np.maximum(covered, sim[:, best])
    top = gains.max()
    return order, (gains / top if top > 0 else gains).astype(np.float32)


def take_in_order(segments: Sequence[Any], order: Sequence[int], capacity: int) -> None:
    """Mark segments in `order` (best first) as selected while their total length stays <= `capacity` frames."""
    used = 0
    for i in order:
        if used + segments[i].num_frames <= capacity:
            segments[i].selected = True
            used += segments[i].num_frames


def fill_budget(segments: list[Any], capacity: int, order: Sequence[int], fps: float, slack: int) -> list[Any]:
    """Cut the first unselected segment of `order` to the leftover budget when more than `slack` frames are left.

    The cut piece is centred in its segment and becomes a segment of its own (the rest stay unselected
    segments), so the segments still tile the video. Returns the new list.
    """
    used = sum(s.num_frames for s in segments if s.selected)
    left = capacity - used
    if left <= max(slack, 1):
        return segments
    for i in order:
        seg = segments[i]
        if seg.selected or seg.num_frames <= left:
            continue
        a = seg.start_frame + (seg.num_frames - left) // 2
        pieces = [(seg.start_frame, a, False), (a, a + left, True), (a + left, seg.end_frame, False)]
        new = [type(seg)(p, q, p / fps, q / fps, seg.shot, seg.score, chosen) for p, q, chosen in pieces if q > p]
        return [*segments[:i], *new, *segments[i + 1:]]
    return segments


def ratio_check(chosen: int, num_frames: int, ratio: float, longest_shot: int) -> tuple[bool, str | None]:
    """`(honoured, note)`: kept frames within `max(5 % of the video, one shot)` of `ratio x frames`."""
    want = ratio * num_frames
    tolerance = max(RATIO_TOLERANCE * num_frames, float(longest_shot))
    if abs(chosen - want) <= tolerance:
        return True, None
    return False, (f"the summary keeps {chosen} frames, not the {math.floor(want)} (+-{tolerance:.0f}) that ratio "
                   f"{ratio:g} of {num_frames} frames asks for")
