"""The three built-in anomaly methods on real fixed-camera footage (OpenCV's vtest.avi, pedestrians on a campus
road): each learns normal from the first part of the video and must score the held-out part higher where a
real-looking anomaly was inserted at known frames and places: a patch of another real video (Megamind.avi)
moving across the scene, walkers copied onto the usually still lawn, the scene played 4x fast, and (real) people
walking on the lawn where nobody walked before. Plus the protocol: T - context rows, determinism, save/load round trip
through AnomalyModel, heat peaking where the anomaly is."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vidlens.io import iter_frames
from vidlens.tasks.anomaly.base import AnomalyConfig, AnomalyModel, Calibration, FrameScores, build_method
from vidlens.testing.real import opencv_sample

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = (96, 128)
TRAIN = 450  # frames [0, 450) of vtest.avi are the normal footage
CLEAN = 705  # frames [531, 692) have people walking on the lawn (a real anomaly); [705, 795) are normal again


@lru_cache(maxsize=4)
def real_frames(name: str, size: tuple[int, int] = SIZE) -> np.ndarray:
    frames = np.stack([f.image for f in iter_frames(opencv_sample(name), size=size, keep_aspect=False)])
    frames.setflags(write=False)
    return frames


def paste_object(clip: np.ndarray, patch_video: np.ndarray, start: int, stop: int, *, row: float = 0.35,
                 side: float = 0.3, speed: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`clip` with a square crop of another real video (its moving centre) pasted on frames [start, stop), crossing the
    road left to right (`speed` = frame widths per frame). Returns (frames, labels (T,), boxes (T,4) y0,x0,y1,x1; -1 = none)."""
    out = clip.copy()
    t_len, h, w, _ = clip.shape
    s = int(round(side * h))
    ph, pw = patch_video.shape[1:3]
    y0 = int(row * h)
    labels, boxes = np.zeros(t_len, int), -np.ones((t_len, 4), int)
    for i, t in enumerate(range(start, stop)):
        src = patch_video[(i * 2) % len(patch_video)]
        crop = src[ph // 2 - ph // 4: ph // 2 + ph // 4, pw // 2 - pw // 4: pw // 2 + pw // 4]
        crop = cv2.resize(crop, (s, s), interpolation=cv2.INTER_AREA)
        x0 = int(0.05 * w + i * speed * w)
        if x0 + s > w:
            break
        out[t, y0:y0 + s, x0:x0 + s] = crop
        labels[t], boxes[t] = 1, (y0, x0, y0 + s, x0 + s)
    return out, labels, boxes


def road_on_lawn(clip: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`clip` with a piece of the road (people walking on it, at the same moments) copied onto the usually still lawn on
    frames [start, stop): sudden motion where there never is any. Returns (frames, labels, boxes) as `paste_object`."""
    out = clip.copy()
    h, w = clip.shape[1:3]
    bh, bw = int(0.25 * h), int(0.35 * w)
    ry, rx, ly, lx = int(0.33 * h), int(0.3 * w), int(0.72 * h), int(0.05 * w)
    out[start:stop, ly:ly + bh, lx:lx + bw] = clip[start:stop, ry:ry + bh, rx:rx + bw]
    labels, boxes = np.zeros(len(clip), int), -np.ones((len(clip), 4), int)
    labels[start:stop], boxes[start:stop] = 1, (ly, lx, ly + bh, lx + bw)
    return out, labels, boxes


def fast_forward(normal: np.ndarray, later: np.ndarray, factor: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """`normal` frames at their own speed, then `later` played `factor` x fast (every `factor`-th frame)."""
    fast = later[::factor]
    labels = np.r_[np.zeros(len(normal), int), np.ones(len(fast), int)]
    return np.concatenate([normal, fast]), labels


def lawn_walker_labels(frames: np.ndarray) -> np.ndarray:
    """1 where someone walks on the lawn (bottom-left, where nobody walks in frames [0, 500) of vtest.avi): more than 1 %
    of the lawn's pixels differ from the median frame by > 30 grey levels. Real people on the grass: a real anomaly."""
    gray = frames.astype(np.float32).mean(-1)
    h, w = gray.shape[1:]
    lawn = np.abs(gray - np.median(gray[::5], 0))[:, int(0.65 * h):, : int(0.47 * w)]
    return ((lawn > 30).mean((1, 2)) > 0.01).astype(int)


def auc(scores: FrameScores, labels: np.ndarray, context: int) -> float:
    return float(roc_auc_score(labels[context:], scores.scores))


@lru_cache(maxsize=4)
def fitted(method: str, **args) -> AnomalyModel:
    config = AnomalyConfig(method=method, size=SIZE, method_args=dict(args))
    model = build_method(config)
    facts = model.fit([real_frames("vtest.avi")[:TRAIN]])
    assert facts["frames"] == TRAIN and facts["seconds"] >= 0 and len(facts) >= 3
    return AnomalyModel(config, model, Calibration(), facts)


METHOD_ARGS = {
    "prediction": {"epochs": 3, "train_size": (48, 64), "max_windows": 400, "width": 8},
    "features": {},
    "flow": {},
}


def _fit(name: str) -> AnomalyModel:
    return fitted(name, **{k: tuple(v) if isinstance(v, list) else v for k, v in METHOD_ARGS[name].items()})


@pytest.mark.parametrize("name", ["prediction", "features", "flow"])
def test_method_protocol_rows_determinism_and_round_trip(name, tmp_path):
    model = _fit(name)
    method = model.method
    clip = real_frames("vtest.avi")[TRAIN:TRAIN + 40]
    first = method.score(clip)
    assert first.scores.shape == (40 - method.context,) and first.scores.dtype == np.float64
    assert first.heat.ndim == 3 and len(first.heat) == 40 - method.context and first.heat.dtype == np.float32
    assert np.isfinite(first.scores).all() and np.isfinite(first.heat).all()
    again = method.score(clip)
    np.testing.assert_array_equal(first.scores, again.scores)
    np.testing.assert_array_equal(first.heat, again.heat)
    # the last frames scored alone (with their context) give the same scores as inside the longer run
    tail = method.score(clip[-(10 + method.context):])
    np.testing.assert_allclose(tail.scores, first.scores[-10:], rtol=1e-5, atol=1e-6)
    loaded = AnomalyModel.load(model.save(tmp_path / f"{name}.pt"))
    assert loaded.config.method == name and loaded.method.context == method.context
    reloaded = loaded.method.score(clip)
    np.testing.assert_array_equal(first.scores, reloaded.scores)
    np.testing.assert_array_equal(first.heat, reloaded.heat)


def heat_hits(result: FrameScores, labels: np.ndarray, boxes: np.ndarray, context: int) -> float:
    """The share of anomalous frames whose hottest heat cell lies on (or within 10 % of the height of) the inserted box."""
    hits = []
    for t in np.flatnonzero(labels[context:]) + context:
        heat = result.heat[t - context]
        gy, gx = np.unravel_index(np.argmax(heat), heat.shape)
        cy, cx = (gy + 0.5) * SIZE[0] / heat.shape[0], (gx + 0.5) * SIZE[1] / heat.shape[1]
        y0, x0, y1, x1 = boxes[t]
        margin = 0.1 * SIZE[0]
        hits.append(y0 - margin <= cy <= y1 + margin and x0 - margin <= cx <= x1 + margin)
    return float(np.mean(hits))


@pytest.mark.parametrize("name", ["features", "prediction"])
def test_pasted_object_scores_higher_and_heat_finds_it(name):
    """Megamind's moving face crossing the campus road: something that looks wrong (moving at a walker's speed,
    along the road, so not a motion anomaly: the flow method is not asked)."""
    model = _fit(name)
    context = model.method.context
    clip, labels, boxes = paste_object(real_frames("vtest.avi")[CLEAN:], real_frames("Megamind.avi"), 30, 75)
    result = model.method.score(clip)
    value = auc(result, labels, context)
    assert value > 0.8, f"{name}: AUC {value:.3f} on the pasted object"
    hits = heat_hits(result, labels, boxes, context)
    assert hits > 0.7, f"{name}: heat peak on the patch in {hits:.0%} of its frames"


@pytest.mark.parametrize("name", ["features", "flow"])
def test_motion_on_the_still_lawn_scores_higher_and_heat_finds_it(name):
    """Walkers copied from the road onto the lawn, where nothing ever moves in the normal footage."""
    model = _fit(name)
    context = model.method.context
    clip, labels, boxes = road_on_lawn(real_frames("vtest.avi")[CLEAN:], 30, 75)
    result = model.method.score(clip)
    value = auc(result, labels, context)
    assert value > 0.8, f"{name}: AUC {value:.3f} on motion on the lawn"
    hits = heat_hits(result, labels, boxes, context)
    assert hits > 0.7, f"{name}: heat peak on the lawn box in {hits:.0%} of its frames"


@pytest.mark.parametrize("name", ["flow", "prediction"])
def test_fast_motion_scores_higher(name):
    """The held-out footage played 4x fast: everyone moves 4x faster (motion methods only; appearance is unchanged)."""
    model = _fit(name)
    frames = real_frames("vtest.avi")
    clip, labels = fast_forward(frames[TRAIN:525], frames[CLEAN:])
    value = auc(model.method.score(clip), labels, model.method.context)
    assert value > 0.8, f"{name}: AUC {value:.3f} on 4x fast motion"


def test_real_people_on_the_lawn_score_higher_with_flow():
    """Real footage, real anomaly: after 450 frames where people keep to the road, some cross the lawn."""
    model = _fit("flow")
    frames = real_frames("vtest.avi")
    labels = lawn_walker_labels(frames)[TRAIN:]
    assert 100 < labels.sum() < 200
    value = auc(model.method.score(frames[TRAIN:]), labels, 1)
    assert value > 0.75, f"flow: AUC {value:.3f} on people walking on the lawn"


def test_bad_input_is_refused():
    from vidlens.errors import ConfigError

    method = _fit("flow").method
    with pytest.raises(ConfigError):
        method.score(real_frames("vtest.avi")[:1])  # nothing after the context
    with pytest.raises(ConfigError):
        method.score(real_frames("vtest.avi")[:5].astype(np.float32))
    with pytest.raises(ConfigError):
        build_method(AnomalyConfig(method="prediction", method_args={"train_size": (50, 64)}))
