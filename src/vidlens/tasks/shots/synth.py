"""Training windows for `ShotNet`, synthesised on the fly from real single-shot footage.

`synth_window(rng, clips, length)` draws segments of real shots (`SourceClip.spans`) and joins them
the way ffmpeg 5.1's `xfade` does (`vidlens.data.transitions` builds the evaluation set with the real
filter): hard cuts, dissolves, fades through black or white, wipes and slides, 2-50 frames long,
plus fade-out / black hold / fade-in. Between transitions the segments get the in-shot changes
that fool simple detectors: camera pans and zooms (a drifting crop), fast motion (frames skipped),
flashes, brightness drift and noise. Labels follow `vidlens.data.transitions`' ground truth: a
transition of `k` frames at offset `o` occupies frames `[o + 1, o + k)`, its boundary is the
middle frame, a cut's boundary is the first frame of the new shot.

Frames: clips hold `uint8 (T, 2H, 2W, 3)` (twice the network's size, so crops stay sharp); windows
are `uint8 (length, H, W, 3)` at `FRAME_SIZE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidlens.tasks.shots.net import FRAME_SIZE, GRADUAL_KINDS

KINDS = ("cut", "dissolve", "fade_black", "fade_white", "wipe", "slide", "dip")
KIND_P = np.array([0.25, 0.30, 0.09, 0.07, 0.09, 0.07, 0.13])
KIND_LABEL = {"dissolve": 0, "fade_black": 1, "fade_white": 1, "dip": 1, "wipe": 2, "slide": 2}
assert GRADUAL_KINDS == ("dissolve", "fade", "wipe")
CACHE_SIZE = (2 * FRAME_SIZE[0], 2 * FRAME_SIZE[1])  # (H, W) clips are kept at


@dataclass
class SourceClip:
    """One real video's frames at `CACHE_SIZE` and its single-shot stretches `[start, end)`."""

    name: str
    frames: np.ndarray  # uint8 (T, 2H, 2W, 3)
    spans: list[tuple[int, int]]


@dataclass
class Window:
    """One training example: frames and per-frame targets (see `vidlens.tasks.shots.net.OUTPUTS`)."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    transition: np.ndarray  # float32 (T,): 1 at boundary frames
    gradual: np.ndarray  # float32 (T,): 1 inside transitions (and on a cut's frame)
    kind: np.ndarray  # int64 (T,): index into GRADUAL_KINDS inside gradual transitions, -1 elsewhere


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def blend(kind: str, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`float32 (k, H, W, 3)` in [0, 1]: frames of A (`a`) turning into B (`b`) over k frames, as xfade
    does (frame j mixes A and B at progress `p = 1 - j / k`; j = 0 is pure A)."""
    k = len(a)
    p = (1.0 - np.arange(k, dtype=np.float32) / k)[:, None, None, None]
    if kind == "dissolve":
        return a * p + b * (1 - p)
    if kind in ("fade_black", "fade_white"):  # vf_xfade.c fadeblack/fadewhite, phase 0.2
        bg = 0.0 if kind == "fade_black" else 1.0
        s1, s2 = _smoothstep(0.8, 1.0, p), _smoothstep(0.2, 1.0, p)
        return (a * s1 + bg * (1 - s1)) * p + (bg * s2 + b * (1 - s2)) * (1 - p)
    h, w = a.shape[1:3]
    horizontal = rng.random() < 0.6
    forward = rng.random() < 0.5
    size = w if horizontal else h
    out = np.empty_like(a)
    for j in range(k):
        edge = int(round((1 - p[j, 0, 0, 0]) * size))  # pixels of B shown
        if kind == "wipe":
            mask = np.zeros(size, bool)
            if forward:
                mask[size - edge:] = True
            else:
                mask[:edge] = True
            m = mask[None, :, None] if horizontal else mask[:, None, None]
            out[j] = np.where(m, b[j], a[j])
        else:  # slide: A moves out while B moves in
            axis = 1 if horizontal else 0
            shift = edge if forward else -edge
            out[j] = np.roll(a[j], -shift, axis=axis)
            bb = np.roll(b[j], size - shift if forward else -size - shift, axis=axis)
            idx = np.arange(size)
            show_b = idx >= size - edge if forward else idx < edge
            m = show_b[None, :, None] if horizontal else show_b[:, None, None]
            out[j] = np.where(m, bb, out[j])
    return out


def _segment(rng: np.random.Generator, clips: list[SourceClip], n: int, avoid: int | None) -> tuple[int, np.ndarray]:
    """`n` consecutive frames `float32 (n, H, W, 3)` of one real shot (not from clip `avoid` most of the
    time), with in-shot augmentation: fast motion, a moving crop (pan/zoom), flip, brightness."""
    step = int(rng.choice([1, 1, 1, 2, 3]))
    need = (n - 1) * step + 1
    options = [(i, s) for i, c in enumerate(clips) for s in c.spans if s[1] - s[0] >= need]
    if avoid is not None and rng.random() < 0.85:
        options = [o for o in options if o[0] != avoid] or options
    if not options:  # no stretch long enough: play the longest one forward and back
        step = 1
        options = [max(((i, s) for i, c in enumerate(clips) for s in c.spans), key=lambda o: o[1][1] - o[1][0])]
    ci, (lo, hi) = options[int(rng.integers(len(options)))]
    frames = clips[ci].frames
    if hi - lo >= need:
        start = int(rng.integers(lo, hi - need + 1))
        idx = np.arange(start, start + need, step)
    else:
        cycle = np.concatenate([np.arange(lo, hi), np.arange(hi - 2, lo, -1)]) if hi - lo > 2 else np.arange(lo, hi)
        idx = np.resize(cycle, n)
    seq = frames[idx]
    return ci, _camera(rng, seq)


def _camera(rng: np.random.Generator, seq: np.ndarray) -> np.ndarray:
    """Crop each frame of `uint8 (n, 2H, 2W, 3)` to the network size; half the time a crop that drifts
    linearly over the segment (pan, tilt, zoom: scale 0.5-1 of the frame)."""
    n, H, W = seq.shape[:3]
    h, w = FRAME_SIZE
    if rng.random() < 0.5:
        s0, s1 = rng.uniform(0.5, 1.0, 2)
        c0, c1 = rng.uniform(0, 1, (2, 2))
        # Two draws that no longer shape anything: kept so a given seed yields the windows the packaged model
        # was trained on (`make shot-model` reproduces it).
        span = int(rng.integers(4, max(5, n + 1)))
        rng.integers(0, max(1, n - span + 1))
    else:
        s0 = s1 = 1.0
        c0 = c1 = np.zeros(2)
    flip = rng.random() < 0.5
    out = np.empty((n, h, w, 3), np.float32)
    for j in range(n):
        f = j / max(n - 1, 1)
        s = s0 + (s1 - s0) * f
        ch, cw = max(int(H * s), h), max(int(W * s), w)
        y = int((H - ch) * (c0[0] + (c1[0] - c0[0]) * f))
        x = int((W - cw) * (c0[1] + (c1[1] - c0[1]) * f))
        crop = seq[j, y : y + ch, x : x + cw]
        out[j] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    if flip:
        out = out[:, :, ::-1]
    if rng.random() < 0.25:  # other colours: channels swapped
        out = out[..., rng.permutation(3)]
    if rng.random() < 0.12:  # black-and-white footage
        out = np.repeat(out.mean(axis=3, keepdims=True), 3, axis=3)
    gain = rng.uniform(0.75, 1.25) * (1 + rng.uniform(-0.15, 0.15) * np.linspace(0, 1, n))[:, None, None, None]
    return np.clip(out / 255.0 * gain, 0, 1).astype(np.float32)


def synth_window(rng: np.random.Generator, clips: list[SourceClip], length: int = 100,
                 single_shot_p: float = 0.2) -> Window:
    """One window of `length` frames: real shots joined by random transitions (or one shot alone)."""
    h, w = FRAME_SIZE
    transition = np.zeros(length + 200, np.float32)
    gradual = np.zeros_like(transition)
    kind_t = np.full(transition.shape, -1, np.int64)
    offset = int(rng.integers(0, 40))  # frames of the first segment dropped at the start
    first = length + offset + 1 if rng.random() < single_shot_p else int(rng.integers(offset + 4, offset + 90))
    clip, cur = _segment(rng, clips, first, None)
    total = first
    last_end = 0  # first frame after the previous transition
    while total < length + offset:
        kind = str(rng.choice(KINDS, p=KIND_P / KIND_P.sum()))
        k = 0 if kind == "cut" else min(int(rng.integers(2, 51)), total - last_end - 2)
        if k < 2:
            kind, k = "cut", 0
        pure = int(rng.integers(6, 90))
        clip, nxt = _segment(rng, clips, k + pure, clip)
        if kind == "cut":
            transition[total] = gradual[total] = 1
            cur = np.concatenate([cur, nxt])
        elif kind == "dip":  # fade out to black, hold, fade in
            k1, k2, hold = max(1, k // 2), max(1, k - k // 2), int(rng.integers(0, 12))
            bg = np.zeros((1, h, w, 3), np.float32) + (rng.random() < 0.15)
            out = blend("dissolve", cur[-k1:], np.repeat(bg, k1, 0), rng)
            inn = blend("dissolve", np.repeat(bg, k2, 0), nxt[:k2], rng)
            o = total - k1
            cur = np.concatenate([cur[:-k1], out, np.repeat(bg, hold, 0), inn, nxt[k2:]])
            _label(transition, gradual, kind_t, o + 1, total + hold + k2, KIND_LABEL[kind])
        else:
            o = total - k
            mixed = blend(kind, cur[o:], nxt[:k], rng)
            cur = np.concatenate([cur[:o], mixed, nxt[k:]])
            _label(transition, gradual, kind_t, o + 1, o + k, KIND_LABEL[kind])
        last_end = len(cur) - len(nxt) + k if kind != "dip" else len(cur) - len(nxt) + k2
        total = len(cur)
    parts = cur[offset : offset + length]
    if rng.random() < 0.15:  # a flash: a few overexposed frames inside a shot
        t, n = int(rng.integers(0, length - 3)), int(rng.integers(1, 4))
        parts = parts.copy()
        parts[t : t + n] = np.clip(parts[t : t + n] * rng.uniform(1.5, 3.0) + rng.uniform(0.1, 0.4), 0, 1)
    if rng.random() < 0.3:
        parts = np.clip(parts + rng.normal(0, rng.uniform(0.005, 0.03), parts.shape).astype(np.float32), 0, 1)
    frames = np.round(parts * 255).astype(np.uint8)
    sl = slice(offset, offset + length)
    return Window(frames, transition[sl].copy(), gradual[sl].copy(), kind_t[sl].copy())


def _label(transition: np.ndarray, gradual: np.ndarray, kind: np.ndarray, start: int, end: int, label: int) -> None:
    """Mark a gradual transition over frames `[start, end)` (boundary: its middle frame)."""
    end = max(end, start + 1)
    transition[start + (end - start) // 2] = 1
    gradual[start:end] = 1
    kind[start:end] = label
