"""Drawing helpers shared by the synthetic generators: palettes, textures, sprites, compositing.

Everything here is a pure function of its arguments and a `numpy.random.Generator`,
so a clip rendered from the same generator state is the same clip. Images are
`float32 (H,W,3)` RGB in [0, 255] while being composed and `uint8 (H,W,3)` when done;
sprites are premultiplied RGBA `float32 (S,S,4)` (RGB already multiplied by alpha).
"""

from __future__ import annotations

import colorsys
import math

import cv2
import numpy as np

SHAPES = ("ellipse", "rect", "triangle", "pentagon", "hexagon", "star")


def hsv_color(h: float, s: float, v: float) -> np.ndarray:
    """One RGB colour `float32 (3,)` in [0, 255] from hue/saturation/value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def palette(rng: np.random.Generator, n: int, hue: float | None = None, spread: float = 0.25,
            value: tuple[float, float] = (0.25, 0.95)) -> np.ndarray:
    """`n` colours `float32 (n,3)` around a base hue (random when None) within +-`spread`."""
    base = rng.random() if hue is None else hue
    return np.stack([
        hsv_color(base + rng.uniform(-spread, spread), rng.uniform(0.35, 0.95), rng.uniform(*value))
        for _ in range(n)
    ])


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Low-frequency noise `float32 (h,w)` in [0, 1]: a random grid of about `cells` cells, upsampled."""
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    grid = rng.random((gh, gw), dtype=np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _ramp(t: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Map `t (h,w)` in [0,1] through a piecewise-linear colour ramp -> `(h,w,3)`."""
    k = len(colors) - 1
    pos = np.clip(t, 0.0, 1.0) * k
    idx = np.minimum(pos.astype(np.int32), k - 1)
    frac = (pos - idx)[..., None]
    return colors[idx] * (1.0 - frac) + colors[idx + 1] * frac


def texture(rng: np.random.Generator, h: int, w: int, colors: np.ndarray, kind: str | None = None,
            detail: float = 1.0) -> np.ndarray:
    """A random texture `float32 (h,w,3)`: blobs, stripes, checker or gradient in the given colours."""
    kind = kind or str(rng.choice(["blobs", "stripes", "checker", "gradient"]))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "blobs":
        t = smooth_noise(rng, h, w, rng.uniform(3, 8) * detail)
    elif kind == "stripes":
        phi = rng.uniform(0, math.pi)
        period = rng.uniform(0.12, 0.35) * max(h, w) / detail
        t = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / period + rng.uniform(0, 6.3))
        t = 0.8 * t + 0.2 * smooth_noise(rng, h, w, 4)
    elif kind == "checker":
        cell = rng.uniform(0.08, 0.25) * max(h, w) / detail
        phi = rng.uniform(0, math.pi / 2)
        u = xx * math.cos(phi) + yy * math.sin(phi)
        v = -xx * math.sin(phi) + yy * math.cos(phi)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.8) * 0.7 + 0.3 * smooth_noise(rng, h, w, 4)
    elif kind == "gradient":
        phi = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(phi) + yy * math.sin(phi))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        t = 0.75 * t + 0.25 * smooth_noise(rng, h, w, 6 * detail)
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    return _ramp(t.astype(np.float32), colors).astype(np.float32)


def shape_mask(rng: np.random.Generator, size: int, kind: str | None = None) -> np.ndarray:
    """An antialiased shape filling a `size` x `size` square: `float32 (size,size)` alpha in [0, 1]."""
    kind = kind or str(rng.choice(SHAPES))
    ss = 4  # supersampling factor
    big = np.zeros((size * ss, size * ss), np.uint8)
    c = size * ss / 2.0
    r = size * ss / 2.0 * 0.96
    if kind == "ellipse":
        axes = (int(r), int(r * rng.uniform(0.6, 0.95)))
        cv2.ellipse(big, (int(c), int(c)), axes, 0, 0, 360, 255, -1)
    else:
        if kind == "rect":
            aspect = rng.uniform(0.55, 0.9)
            pts = [(-1, -aspect), (1, -aspect), (1, aspect), (-1, aspect)]
            pts = [(x * 0.92, y * 0.92) for x, y in pts]
        elif kind == "star":
            inner = rng.uniform(0.45, 0.6)
            n = int(rng.integers(5, 7))
            pts = [((1 if i % 2 == 0 else inner) * math.cos(math.pi * i / n - math.pi / 2),
                    (1 if i % 2 == 0 else inner) * math.sin(math.pi * i / n - math.pi / 2)) for i in range(2 * n)]
        else:
            n = {"triangle": 3, "pentagon": 5, "hexagon": 6}[kind]
            pts = [(math.cos(2 * math.pi * i / n - math.pi / 2), math.sin(2 * math.pi * i / n - math.pi / 2))
                   for i in range(n)]
        poly = np.array([[c + x * r, c + y * r] for x, y in pts], np.int32)
        cv2.fillPoly(big, [poly], 255)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def make_sprite(rng: np.random.Generator, size: int, *, marker: bool = True, colors: np.ndarray | None = None,
                shape: str | None = None) -> np.ndarray:
    """A textured shape as premultiplied RGBA `float32 (size,size,4)`, centred in its square.

    `marker=True` makes it asymmetric under rotation and reflection: the right half is tinted
    with a contrasting colour and a bright dot sits near the rim at "three o'clock", so the
    angle is visible whatever the shape.
    """
    alpha = shape_mask(rng, size, shape)
    if colors is None:
        colors = palette(rng, 3, spread=0.3, value=(0.35, 1.0))
    rgb = texture(rng, size, size, colors, detail=0.6)
    c = (size - 1) / 2.0
    if marker:
        tint = hsv_color(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
        xx = np.arange(size, dtype=np.float32)[None, :, None]
        half = (xx > c).astype(np.float32)
        rgb = rgb * (1 - 0.55 * half) + tint * 0.55 * half
        dot = np.zeros((size, size), np.uint8)
        cv2.circle(dot, (int(round(c + 0.5 * size / 2)), int(round(c - 0.1 * size / 2))),
                   max(1, int(size * 0.1)), 255, -1, cv2.LINE_AA)
        d = (dot.astype(np.float32) / 255.0)[..., None]
        dot_color = np.float32(255.0) if rng.random() < 0.5 else np.float32(15.0)
        rgb = rgb * (1 - d) + dot_color * d
    # A dark rim so the object separates from any background.
    eroded = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=max(1, size // 32))
    rim = np.clip(alpha - eroded, 0, 1)[..., None]
    rgb = rgb * (1 - 0.7 * rim)
    return np.concatenate([rgb * alpha[..., None], alpha[..., None]], axis=-1).astype(np.float32)


def paste_sprite(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float, angle_deg: float, scale: float) -> None:
    """Composite premultiplied RGBA `sprite` onto `frame (H,W,3) float32` in place.

    The sprite's centre lands at (cx, cy) pixels; `angle_deg` rotates it counter-clockwise
    as displayed; `scale` multiplies its size. Only the covered region is warped.
    """
    h, w = frame.shape[:2]
    s = sprite.shape[0]
    c = (s - 1) / 2.0
    half = scale * s * 0.7072 + 2
    x0, y0 = max(0, int(math.floor(cx - half))), max(0, int(math.floor(cy - half)))
    x1, y1 = min(w, int(math.ceil(cx + half)) + 1), min(h, int(math.ceil(cy + half)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    m = cv2.getRotationMatrix2D((c, c), angle_deg, scale)
    m[0, 2] += cx - c - x0
    m[1, 2] += cy - c - y0
    warped = cv2.warpAffine(sprite, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    roi = frame[y0:y1, x0:x1]
    roi *= 1.0 - warped[..., 3:4]
    roi += warped[..., :3]


def add_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add zero-mean pixel noise of std `sigma` (grey levels) to a float frame, in place; returns it.

    Uniform rather than Gaussian: the same std at a third of the cost of drawing normals.
    """
    if sigma > 0:
        noise = rng.random(frame.shape, dtype=np.float32)
        noise -= np.float32(0.5)
        noise *= np.float32(sigma * math.sqrt(12.0))
        frame += noise
    return frame


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Round and clip a float frame to `uint8`."""
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def bounce(start: float, velocity: float, lo: float, hi: float, t: np.ndarray) -> np.ndarray:
    """Positions at times `t` of a point moving at `velocity` that reflects off the walls `lo` and `hi`."""
    span = max(hi - lo, 1e-6)
    p = (start - lo + velocity * t) % (2 * span)
    return lo + np.where(p > span, 2 * span - p, p)
