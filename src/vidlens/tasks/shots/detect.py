"""Shot boundaries from per-frame scores: hard cuts, flashes rejected, fades and dissolves.

All positions here are positions in the analysed frame sequence (0..N-1); `detect_shots`
maps them to source frame indices. Steps (docs/shots.md has the details):

1. Cuts: `cut[t]` must exceed `max(min_score, threshold * level[t])`, `level` being the
   median of the score over the `window` frames on each side of t (t itself left out), and
   be the largest score within +-1 frame.
2. Flashes: a candidate at t is dropped when frame t-1 looks like one of frames t+1..t+F
   (the burst starts at t) or frame t like one of frames t-2..t-F-1 (the burst ends at t):
   the picture came back, so nothing was cut.
3. Fades: runs of black frames (mean luma < `black_level`) inside the video, with a clearly
   brighter frame on at least one side; the transition spans the dimming before and the
   brightening after; the boundary is the first frame of the second half of the black run
   (the first fade-in frame for a one-frame black). Cuts inside a fade are dropped.
4. Dissolves: `long_hist[t]` (frame t vs t-k) rises above `gradual_threshold` for a sustained
   stretch away from any cut or fade; the stretch at half its peak spans `[start + k/2, end + k/2)`.
5. Minimum shot length: boundaries closer than `min_shot_s` keep the stronger one.

Each boundary's `confidence` is `score / (score + threshold)` (0.5 at the rule's threshold):
cuts against their adaptive threshold, fades against `black_level` (their luma dip must be at
least about that), dissolves against `gradual_threshold`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from vidlens.errors import VideoDecodeError
from vidlens.tasks.shots.config import ShotConfig
from vidlens.tasks.shots.result import Boundary, ShotResult, confidence_from_margin, scenes_from_boundaries
from vidlens.tasks.shots.scores import FrameScores, compute_scores, default_read_ahead

_EPS = 1e-3
_LEVEL_CHUNK = 1 << 15  # frames per chunk of the local level
# A dissolve needs one quiet side: over the 2k positions of long-range distance just before its start
# or just after its end + k (frames of one shot only), at most QUIET_SPIKES of them reach QUIET_FRACTION
# of its peak.
QUIET_FRACTION = 0.4
QUIET_SPIKES = 0.25


def local_level(x: np.ndarray, window: int) -> np.ndarray:
    """`float32 (N,)`: median of `x` over `[t-window, t+window]` without `x[t]` (edges use what exists)."""
    n = x.size
    if n <= 1:
        return np.zeros(n, np.float32)
    if n > _LEVEL_CHUNK:  # in chunks: the (n, 2 * window) temporaries would otherwise grow with the video
        out = np.empty(n, np.float32)
        for a in range(0, n, _LEVEL_CHUNK):
            lo, hi = max(0, a - window), min(n, a + _LEVEL_CHUNK + window)
            part = _local_level(x[lo:hi], window)
            out[a : min(n, a + _LEVEL_CHUNK)] = part[a - lo : a - lo + min(_LEVEL_CHUNK, n - a)]
        return out
    return _local_level(x, window)


def _local_level(x: np.ndarray, window: int) -> np.ndarray:
    padded = np.pad(x.astype(np.float32), window, mode="constant", constant_values=np.nan)
    view = np.lib.stride_tricks.sliding_window_view(padded, 2 * window + 1)
    neighbours = np.delete(view, window, axis=1)
    level = np.nanmedian(np.where(np.isnan(neighbours).all(axis=1, keepdims=True), 0.0, neighbours), axis=1)
    return level.astype(np.float32)


def cut_threshold(cut: np.ndarray, config: ShotConfig) -> np.ndarray:
    """`float32 (N,)`: the adaptive threshold each frame's cut score is compared with."""
    return np.maximum(config.min_score, config.threshold * local_level(cut, config.window)).astype(np.float32)


def find_cuts(scores: dict[str, np.ndarray], threshold: np.ndarray, config: ShotConfig) -> list[tuple[int, float]]:
    """(position, score) of hard cuts: above threshold, a local peak, and not a flash."""
    cut = scores["cut"]
    n = cut.size
    out = []
    for t in np.flatnonzero(cut > threshold):
        t = int(t)
        if t == 0 or cut[t] < cut[max(t - 1, 0) : t + 2].max():
            continue
        if not is_flash(scores, t, config):
            out.append((t, float(cut[t])))
    return out


def is_flash(scores: dict[str, np.ndarray], t: int, config: ShotConfig) -> bool:
    """True when the change at t is the start or the end of a burst of at most `flash_frames` frames.

    Start: frame t-1 is like frame t+j-1 (score `skip{j}[t+j-1]`); end: frame t is like frame t-j
    (`skip{j}[t]`), j = 2..flash_frames+1; "like" = below `flash_similarity * cut[t]`.
    """
    n = scores["cut"].size
    limit = config.flash_similarity * scores["cut"][t]
    for j in range(2, config.flash_frames + 2):
        skip = scores[f"skip{j}"]
        if t + j - 1 < n and skip[t + j - 1] < limit:
            return True
        if t - j >= 0 and skip[t] < limit:
            return True
    return False


def find_fades(luma: np.ndarray, config: ShotConfig, max_len: int) -> list[Boundary]:
    """Fades through black (positions; `time_s` filled in later): one boundary per black run inside the video."""
    black = luma < config.black_level
    out: list[Boundary] = []
    n = luma.size
    t = 0
    while t < n:
        if not black[t]:
            t += 1
            continue
        a = t
        while t < n and black[t]:
            t += 1
        b = t - 1
        if a == 0 or b == n - 1:
            continue  # starts or ends the video: not between two shots
        start = a
        while start > 0 and a - start < max_len and luma[start - 1] > luma[start] + 0.002:
            start -= 1
        end = b + 1
        while end < n and end - b <= max_len and luma[end] > luma[end - 1] + 0.002:
            end += 1
        around = max(luma[start], luma[min(end, n - 1)])  # one side at least must be clearly brighter
        if around < 2 * config.black_level:
            continue
        frame = a + (b - a + 2) // 2
        dip = float(around - luma[a : b + 1].min())
        out.append(Boundary(frame, 0.0, "fade", dip, start, end, confidence_from_margin(dip, config.black_level)))
    return out


def find_dissolves(long_hist: np.ndarray, cut: np.ndarray, blocked: np.ndarray, config: ShotConfig) -> list[Boundary]:
    """Gradual transitions from sustained long-range histogram change outside `blocked` positions."""
    k = config.long_range
    d = np.where(blocked, 0.0, long_hist)
    above = d > config.gradual_threshold
    out: list[Boundary] = []
    n = d.size
    t = 0
    while t < n:
        if not above[t]:
            t += 1
            continue
        r0 = t
        while t < n and above[t]:
            t += 1
        r1 = t  # exclusive
        if r1 - r0 < max(2, k // 2):
            continue
        peak = float(d[r0:r1].max())
        half = np.flatnonzero(d[r0:r1] >= peak / 2) + r0
        h0, h1 = int(half[0]), int(half[-1]) + 1
        start, end = max(0, h0 - k // 2), max(h0 - k // 2 + 1, h1 - k // 2)
        end = min(end, n)
        if end <= start or start == 0:
            continue
        if not (_quiet(d, start - 2 * k, start + 1, peak, k) or _quiet(d, end + k, end + 3 * k + 1, peak, k)):
            continue  # the picture keeps changing on both sides: camera/object motion, not a transition
        seg = cut[start : max(end, start + 1)]
        # One frame carrying most of the change is a cut the cut detector missed, not a dissolve.
        if seg.size and seg.max() > 0.5 * peak and seg.max() > 3 * (np.median(seg) + _EPS):
            p = start + int(seg.argmax())
            out.append(Boundary(p, 0.0, "cut", float(cut[p]), p, p, confidence_from_margin(cut[p], 0.5 * peak)))
            continue
        out.append(Boundary(start + (end - start) // 2, 0.0, "dissolve", peak, start, end,
                            confidence_from_margin(peak, config.gradual_threshold)))
    return out


def _quiet(d: np.ndarray, a: int, b: int, peak: float, min_len: int) -> bool:
    """True when the long-range distance stays low over positions `[a, b)` (clipped to the video; fewer
    than `min_len` positions left: not known to be quiet).

    Beside a real gradual transition the picture is one shot's, so frame t vs t-k changes little
    there; a sustained pan across differently coloured content makes the same distance rise and
    fall again and again, so no stretch of 2k frames beside one of its bumps is quiet."""
    seg = d[max(a, 0) : max(min(b, d.size), 0)]
    # A few high positions are allowed: a flash or a fast object gives short spikes (at t and t+k).
    return seg.size >= min_len and float(np.mean(seg >= QUIET_FRACTION * peak)) <= QUIET_SPIKES


def enforce_min_length(boundaries: list[Boundary], min_frames: int) -> list[Boundary]:
    """Keep the strongest boundaries at least `min_frames` apart (strength: score; gradual first on ties)."""
    if min_frames <= 1:
        return sorted(boundaries, key=lambda b: b.frame)
    kept: list[Boundary] = []
    for b in sorted(boundaries, key=lambda b: -b.score):
        if all(abs(b.frame - other.frame) >= min_frames for other in kept):
            kept.append(b)
    return sorted(kept, key=lambda b: b.frame)


def find_boundaries(fs: FrameScores, fps: float, config: ShotConfig) -> tuple[list[Boundary], np.ndarray]:
    """All boundaries (positions in the analysed sequence, `time_s` unset) and the cut threshold curve."""
    s = fs.scores
    n = fs.num_frames
    threshold = cut_threshold(s["cut"], config) if n else np.zeros(0, np.float32)
    if n < 2:
        return [], threshold
    cuts = find_cuts(s, threshold, config)
    gradual: list[Boundary] = []
    blocked = np.zeros(n, bool)
    if config.gradual:
        gradual = find_fades(s["luma"], config, max_len=max(4, int(round(2 * fps))))
        for g in gradual:
            blocked[max(0, g.start_frame - 1) : g.end_frame + config.long_range + 1] = True
        fade_free = [(t, v) for t, v in cuts if not blocked[t]]
        cuts = fade_free
        for t, _ in cuts:
            blocked[max(0, t - 1) : t + config.long_range + 1] = True
        gradual += find_dissolves(s["long_hist"], s["cut"], blocked, config)
    boundaries = [Boundary(t, 0.0, "cut", v, t, t, confidence_from_margin(v, threshold[t])) for t, v in cuts] + gradual
    min_frames = int(round(config.min_shot_s * fps))
    return enforce_min_length(boundaries, min_frames), threshold


def detect_shots(
    path: str | os.PathLike[str],
    config: ShotConfig | None = None,
    *,
    progress: Callable[[int], None] | None = None,
) -> ShotResult:
    """Detect shot boundaries of the video at `path` (cuts, fades, dissolves) and its scenes.

    Probes first, so unusable files raise `VideoDecodeError` before any decoding.
    `progress(frames_done)` is called every 100 frames and at the end.
    """
    from vidlens.io import probe

    config = config or ShotConfig()
    t0 = time.perf_counter()
    path = os.fspath(path)
    info = probe(path)
    scores: dict[str, np.ndarray] = {}
    found: list[Boundary] = []
    threshold = np.zeros(0, np.float32)
    times = indices = None
    if config.method in ("classic", "both"):
        fs = compute_scores(path, config, progress if config.method == "classic" else None,
                            short_side=min(info.width, info.height), read_ahead=default_read_ahead(info.width, info.height))
        if fs.num_frames == 0:
            raise VideoDecodeError(path, "no frame could be decoded")
        fps = _fps(info, fs.num_frames)
        found, threshold = find_boundaries(fs, fps, config)
        scores, times, indices = dict(fs.scores), fs.times, fs.indices
    if config.method in ("learned", "both"):
        from vidlens.tasks.shots.learned import drop_same_scene, learned_boundaries, learned_scores

        ls = learned_scores(path, config.model, progress=progress, threads=config.threads, fast_decode=config.fast_decode)
        if ls.probs.shape[0] == 0:
            raise VideoDecodeError(path, "no frame could be decoded")
        if times is not None and len(times) != len(ls.times):
            raise VideoDecodeError(path, f"two decoding passes gave {len(times)} and {len(ls.times)} frames")
        fps = _fps(info, len(ls.times))
        learned = drop_same_scene(learned_boundaries(ls.probs, config.learned_threshold), ls.hists, ls.diff)
        min_frames = int(round(config.min_shot_s * fps))
        found = enforce_min_length(merge_boundaries(learned, found, min_frames), min_frames)
        scores.update(learned=ls.probs[:, 0], gradual=ls.probs[:, 1], diff=ls.diff)
        times, indices = ls.times, ls.indices
    assert times is not None and indices is not None
    n = len(times)
    boundaries = []
    for b in found:
        frame = int(indices[b.frame])
        end = int(indices[b.end_frame]) if b.end_frame < n else int(indices[-1]) + 1
        boundaries.append(Boundary(frame, float(times[b.frame]), b.kind, b.score, int(indices[b.start_frame]), end,
                                   b.confidence))
    total = max(info.num_frames, int(indices[-1]) + 1)
    scenes = scenes_from_boundaries([b.frame for b in boundaries], total, fps)
    return ShotResult(
        path=path, fps=fps, num_frames=total, duration_s=info.duration_s, boundaries=boundaries, scenes=scenes,
        times=times, scores=scores, threshold=threshold, config=config.to_dict(),
        seconds=time.perf_counter() - t0,
    )


def _fps(info, num_frames: int) -> float:
    return info.fps if info.fps > 0 else (num_frames / info.duration_s if info.duration_s > 0 else 25.0)


def merge_boundaries(learned: list[Boundary], classic: list[Boundary], min_frames: int) -> list[Boundary]:
    """Every learned boundary, plus the classic ones farther than `min_frames` from each learned one's span."""
    extra = [c for c in classic
             if all(c.frame < b.start_frame - min_frames or c.frame > max(b.end_frame, b.frame) + min_frames for b in learned)]
    return sorted(learned + extra, key=lambda b: b.frame)
