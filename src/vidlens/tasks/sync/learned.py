"""The `learned` sync method: a small SyncNet-style two-stream network trained on the user's own videos.

Inference (`learned_offset`): every usable frame centres a picture window (5 grey mouth crops from
`mouth.py`); for each candidate offset `o` in `-max_offset_ms..+max_offset_ms` (10 ms steps, the
log-mel hop) its embedding is compared with the sound window centred at `t + o` (`o > 0`: audio
late). The whole video's curve is the mean distance over its windows per offset; the offset is the
curve's minimum. Raw confidence is SyncNet's `median(curve) - min(curve)` (the depth of the dip);
it is measured against the dips of deliberately wrong pairings (the sound moved by seconds, so no
candidate offset can be right): >= 0.5 means the dip is NULL_MARGIN times deeper than the deepest
wrong one (`learned_offset`). Per-window offsets (`window_s`, hop `window_s / 2`) use the same
curve over each window's frames, against that window's wrong pairings.

What to expect: the network learns from a few seconds to minutes of footage; with little data it
memorises the training clips (it then finds offsets on those very clips, shifted or not, but says
little about new footage). Train it on a good amount of in-sync footage of the people you will check.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidlens.errors import CheckpointError, ConfigError, DatasetError, VideoDecodeError
from vidlens.tasks.sync.base import (CONFIDENT, Progress, SyncOptions, SyncResult, WindowOffset, make_result,
                                     register_sync_method)
from vidlens.tasks.sync.learned_net import (SyncFeatures, SyncNet, SyncNetConfig, audio_starts, embed_all_audio,
                                            embed_all_video, standardise_mel)
from vidlens.tasks.sync.learned_train import CHECKPOINT_FORMAT, MODEL_NAME
from vidlens.threads import one_torch_thread


@dataclass
class LearnedSync:
    """A trained network and its calibration, as loaded from a checkpoint."""

    model: SyncNet
    calibration_raw: float
    path: str
    metrics: dict


def load_learned(path: str | os.PathLike[str]) -> LearnedSync:
    """Load a `train_sync` checkpoint with `torch.load(weights_only=True)`; `CheckpointError` when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such checkpoint file (make one with `vidlens sync train`)")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors have many types
        raise CheckpointError(p, f"cannot read it as a vidlens sync checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("model") != MODEL_NAME or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(p, f"not a learned-sync checkpoint (expected model {MODEL_NAME!r}, format {CHECKPOINT_FORMAT})")
    try:
        model = SyncNet(SyncNetConfig(**data["model_args"]))
        model.load_state_dict(data["state_dict"])
        calibration = float(data["metrics"]["calibration_raw"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(p, f"checkpoint does not fit this version's network ({exc}); retrain it") from None
    return LearnedSync(model.eval(), calibration, str(p), dict(data["metrics"]))


def distance_matrix(model: SyncNet, features: SyncFeatures, centres: np.ndarray, lags_ms: np.ndarray) -> np.ndarray:
    """Distances `float32 (N, L)`: picture window at `centres[n]` vs sound window `lags_ms[l]` later (NaN: no sound
    there), from centred embeddings as `learned_offset` uses them. `lags_ms`: multiples of the log-mel hop (10 ms)."""
    steps = np.round(np.asarray(lags_ms, np.float64) / model.config.hop_ms).astype(np.int64)
    v, a = _centred_embeddings(model, features, centres)
    return _distances(v, a, audio_starts(features.times[centres], model.config), steps)


def _centred_embeddings(model: SyncNet, features: SyncFeatures, centres: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Picture `(N, D)` and sound `(F, D)` embeddings minus their means over the video: distance = 1 - (v - mean v).
    (a - mean a), the cosine with each window's average match removed (else loud passages or a few "hub" windows
    tilt the curve)."""
    v = embed_all_video(model, features, centres)
    a = embed_all_audio(model, features.mel)
    v = v - v.mean(dim=0, keepdim=True) if len(v) else v
    a = a - a.mean(dim=0, keepdim=True) if len(a) else a
    return v, a


def _distances(v: torch.Tensor, a: torch.Tensor, starts: np.ndarray, steps: np.ndarray, shift: int | None = None,
               chunk: int = 256) -> np.ndarray:
    """`(N, L)` 1 - cosine of picture embeddings `v (N, D)` and the sound embeddings `a (F, D)` at `starts + steps`;
    NaN out of range. `shift`: pair with sound `shift` log-mel frames away, wrapping around (a deliberately wrong
    pairing: the null the confidence is measured against)."""
    out = np.full((len(v), len(steps)), np.nan, np.float32)
    if len(a) == 0:
        return out
    for s in range(0, len(v), chunk):
        j = starts[s:s + chunk, None] + steps[None, :]
        if shift is None:
            ok = (j >= 0) & (j < len(a))
        else:
            j = (j + shift) % len(a)
            ok = np.ones(j.shape, bool)
        d = 1.0 - (v[s:s + chunk, None, :] * a[torch.from_numpy(np.clip(j, 0, len(a) - 1))]).sum(-1)
        block = d.numpy()
        block[~ok] = np.nan
        out[s:s + chunk] = block
    return out


def offset_from_curve(lags_ms: np.ndarray, curve: np.ndarray) -> tuple[float | None, float]:
    """`(offset_ms at the curve's minimum, raw confidence = median - min)`; `(None, 0.0)` for an empty curve."""
    ok = np.isfinite(curve)
    if ok.sum() < 3:
        return None, 0.0
    k = int(np.nanargmin(np.where(ok, curve, np.nan)))
    return float(lags_ms[k]), float(np.nanmedian(curve[ok]) - curve[k])


@dataclass
class LearnedEstimate:
    """What the network says about one video (before it becomes a `SyncResult`)."""

    offset_ms: float | None
    raw_confidence: float
    confidence: float
    null_raw: float                     # the largest raw confidence of the deliberately wrong pairings (0: none)
    lags_ms: np.ndarray                 # (L,) float32
    similarity: np.ndarray              # (L,) float32: 1 - mean distance per lag (higher = better match)
    windows: list[tuple[float, float, float | None, float]]  # (start_s, end_s, offset_ms, confidence)
    usable_windows: int


NULL_PAIRINGS = 16   # wrong pairings (sound moved by seconds, wrapping) per video
NULL_MARGIN = 1.5    # trusted: a dip this much deeper than the deepest wrong pairing's
NULL_GAP_S = 0.3     # wrong pairings stay at least this far beyond the candidate offsets (whatever the true one)
NULL_SPACING = 20    # log-mel frames (200 ms) between two wrong pairings
NULL_MIN = 4         # fewer distinct wrong pairings than this: fall back on the training-time calibration


def _curve(dist: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.nanmean(dist, axis=0) if len(dist) else np.full(dist.shape[1], np.nan)


def learned_offset(learned: LearnedSync, features: SyncFeatures, *, max_offset_ms: float = 1000.0,
                   window_s: float = 4.0) -> LearnedEstimate:
    """Offset search over `-max_offset_ms..+max_offset_ms` (10 ms steps) for one decoded video.

    Confidence: the dip of the curve (median - min, SyncNet's confidence) against the dips of `NULL_PAIRINGS`
    deliberately wrong pairings (the sound moved by seconds, wrapping around, so that no candidate offset can be right
    whatever the true one is; at least NULL_MIN of them, 200 ms apart: a clip longer than 4 x max_offset_ms + 1.2 s):
    `confidence = raw / (2 * NULL_MARGIN * max(null dips))`, so >= 0.5 means deeper than every wrong pairing's by
    NULL_MARGIN. Clips too short for wrong pairings fall back on the training-time calibration
    (`calibration_raw`). The same holds per window, with the window's own null dips."""
    from vidlens.tasks.sync.correlate import window_spans

    model = learned.model
    hop = model.config.hop_ms
    reach = np.floor(max_offset_ms / hop) * hop
    lags = np.arange(-reach, reach + hop / 2, hop, dtype=np.float64)
    steps = np.round(lags / hop).astype(np.int64)
    centres = features.centres(model.config)
    v, a = _centred_embeddings(model, features, centres)
    starts = audio_starts(features.times[centres], model.config)
    dist = _distances(v, a, starts, steps)
    # Windows that see sound at every lag (at least half of them when too few do), so edges do not tilt the curve.
    coverage = np.isfinite(dist).mean(axis=1) if len(centres) else np.zeros(0)
    seen = coverage >= 1.0 if (coverage >= 1.0).sum() >= 30 else coverage >= 0.5
    dist, centres, starts, v = dist[seen], centres[seen], starts[seen], v[torch.from_numpy(seen)]
    times = features.times[centres] + features.origin_s  # file clock, like the other methods' windows
    spans = window_spans(features.duration_s, window_s) if window_s > 0 else []
    selections = [(times >= s0) & (times < s1) for s0, s1 in spans]
    # Null dips: the whole video's and each window's, under wrong pairings (same windows, same gaps).
    # shift + lag must stay out of -reach..+reach (mod the track) for every lag: shift in (2 reach, len - 2 reach).
    gap = int(round((2.0 * reach + NULL_GAP_S * 1000.0) / hop))
    count = min(NULL_PAIRINGS, (len(a) - 2 * gap) // NULL_SPACING + 1) if len(a) > 2 * gap else 0
    shifts = np.linspace(gap, len(a) - gap, count).round().astype(np.int64) if count >= NULL_MIN else []
    missing = ~np.isfinite(dist)
    null_whole, null_windows = 0.0, np.zeros(len(spans))
    for shift in shifts:
        wrong = _distances(v, a, starts, steps, shift=int(shift))
        wrong[missing] = np.nan
        null_whole = max(null_whole, offset_from_curve(lags, _curve(wrong))[1])
        for k, sel in enumerate(selections):
            if sel.sum() >= 3:
                null_windows[k] = max(null_windows[k], offset_from_curve(lags, _curve(wrong[sel]))[1])

    def conf(raw: float, null: float) -> float:
        scale = NULL_MARGIN * null if len(shifts) else learned.calibration_raw
        return float(np.clip(raw / (2.0 * max(scale, 1e-6)), 0.0, 1.0))

    curve = _curve(dist)
    offset, raw = offset_from_curve(lags, curve)
    windows: list[tuple[float, float, float | None, float]] = []
    for k, ((start, end), sel) in enumerate(zip(spans, selections, strict=True)):
        w_off, w_raw = None, 0.0
        if sel.sum() >= max(3, 0.25 * (end - start) * features.fps):
            w_off, w_raw = offset_from_curve(lags, _curve(dist[sel]))
        windows.append((round(start, 3), round(end, 3), w_off, conf(w_raw, null_windows[k]) if w_off is not None else 0.0))
    similarity = (1.0 - curve).astype(np.float32)
    return LearnedEstimate(offset, raw, conf(raw, null_whole) if offset is not None else 0.0, null_whole,
                           lags.astype(np.float32), similarity, windows, int(len(centres)))


# ---------------------------------------------------------------- decoding (cached) ----

_FEATURE_CACHE: OrderedDict[tuple, SyncFeatures] = OrderedDict()
_CACHE_SIZE = 8


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _mouth_crops(mouth, config: SyncNetConfig) -> np.ndarray:
    """The tracker's lower-face crops -> the mouth area (`config.region`) resized to `uint8 (T, crop_h, crop_w)`."""
    import cv2

    crops = np.asarray(mouth.crops)
    if len(crops) == 0:
        return np.zeros((0, config.crop_h, config.crop_w), np.uint8)
    if crops.ndim == 4:  # (T, H, W, 3) RGB
        crops = crops.mean(axis=3)
    h, w = crops.shape[1:3]
    r0, r1, c0, c1 = config.region
    crops = crops[:, int(r0 * h):max(int(r1 * h), int(r0 * h) + 1), int(c0 * w):max(int(c1 * w), int(c0 * w) + 1)]
    crops = np.ascontiguousarray(crops.astype(np.uint8, copy=False))
    return np.stack([cv2.resize(c, (config.crop_w, config.crop_h), interpolation=cv2.INTER_AREA) for c in crops])


def load_features(video: str | os.PathLike[str], config: SyncNetConfig, cache: dict | None = None,
                  progress: Callable[[float], None] | None = None) -> SyncFeatures:
    """Decode `video` once for the network: mouth crops (`mouth.mouth_track`) and the standardised log-mel, with
    the frames' times moved onto the audio's clock. Cached per file (path, size, mtime) and network input config;
    `cache` (an `estimate_sync` call's shared dict) lends the decoded audio and mouth track to/from other methods.
    Raises `VideoDecodeError` when the file has no audio stream."""
    from vidlens.features.audio import log_mel
    from vidlens.tasks.sync.mouth import mouth_track
    from vidlens.tasks.sync.signals import decode_audio

    path = os.fspath(video)
    key = (*_file_key(path), config.crop_h, config.crop_w, tuple(config.region), config.sample_rate, config.n_mels,
           config.hop_ms)
    if key in _FEATURE_CACHE:
        _FEATURE_CACHE.move_to_end(key)
        return _FEATURE_CACHE[key]
    cache = {} if cache is None else cache
    track = cache.get("audio")
    if track is None or track.sample_rate != config.sample_rate:
        track = decode_audio(path, config.sample_rate)
        if config.sample_rate == 16000:
            cache["audio"] = track
    mouth = cache.get("mouth")
    if mouth is None or mouth.crops is None:  # the speech method's track keeps no crops
        mouth = cache["mouth"] = mouth_track(path, keep_crops=True, progress=progress)
    mel = log_mel(track.samples, config.sample_rate, n_mels=config.n_mels, hop_ms=config.hop_ms,
                  fmax=min(8000.0, config.sample_rate / 2.0))
    times = np.asarray(mouth.times, np.float64) - track.start_s
    duration = float(max(track.end_s, float(mouth.times[-1]) if len(mouth.times) else 0.0)
                     - min(track.start_s, float(mouth.times[0]) if len(mouth.times) else 0.0))
    feats = SyncFeatures(path=path, crops=_mouth_crops(mouth, config), times=times,
                         valid=np.asarray(mouth.found, bool), mel=standardise_mel(mel), fps=float(mouth.fps),
                         duration_s=duration, origin_s=float(track.start_s))
    _FEATURE_CACHE[key] = feats
    while len(_FEATURE_CACHE) > _CACHE_SIZE:
        _FEATURE_CACHE.popitem(last=False)
    return feats


# ---------------------------------------------------------------- training ----

MIN_TRAIN_WINDOWS = 30  # per video: about a second of visible mouth with sound
MIN_FACE_SHARE = 0.3    # per video: a mouth tracked in at least this share of the frames


def train_sync(videos: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, epochs: int = 60,
               batch_size: int = 32, lr: float = 3e-3, negatives: int = 8, min_shift_ms: float = 200.0,
               max_shift_ms: float = 1000.0, holdout: bool = True, seed: int = 0,
               network: SyncNetConfig | None = None, progress: Progress | None = None) -> Path:
    """Train the learned method on in-sync `videos` (a visible speaker and sound) and write the checkpoint `out`.

    Raises `ConfigError` (no videos, bad options), `VideoDecodeError` (unreadable / no audio stream) and
    `DatasetError` (no face in enough frames, or too short: fewer than MIN_TRAIN_WINDOWS usable windows).
    `progress(stage, fraction)` reports decoding per video, then the epochs. Returns the checkpoint path."""
    from vidlens.tasks.sync.learned_train import SyncTrainConfig, save_checkpoint, train_on_features

    if not videos:
        raise ConfigError(None, "no videos to train the learned sync method on")
    if epochs < 1:
        raise ConfigError(None, f"epochs must be at least 1, got {epochs}")
    net = network or SyncNetConfig()
    train = SyncTrainConfig(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), negatives=int(negatives),
                            min_shift_ms=float(min_shift_ms), max_shift_ms=float(max_shift_ms), holdout=bool(holdout),
                            seed=int(seed))
    features = []
    for k, video in enumerate(videos):
        path = os.fspath(video)
        if not os.path.isfile(path):
            raise VideoDecodeError(path, "no such file")
        stage = f"sync train: decode {k + 1}/{len(videos)}"
        feats = load_features(path, net, progress=None if progress is None else (lambda f, s=stage: progress(s, f)))
        usable = len(feats.centres(net))
        share = float(feats.valid.mean()) if len(feats.valid) else 0.0
        if share < MIN_FACE_SHARE:
            raise DatasetError(path, f"no face in enough frames to learn from (a mouth was tracked in {share:.0%} of "
                                     f"the frames, needs {MIN_FACE_SHARE:.0%})")
        if usable < MIN_TRAIN_WINDOWS:
            raise DatasetError(path, f"too short to learn from: {usable} usable windows (5 consecutive frames with a "
                                     f"tracked mouth), needs {MIN_TRAIN_WINDOWS}")
        features.append(feats)
    with one_torch_thread():  # a tiny network: a second thread only costs (DESIGN: threads)
        model, metrics = train_on_features(features, net, train, progress=None if progress is None else (
            lambda e, n: progress("sync train: epochs", e / n)))
    return save_checkpoint(model, metrics, out, train=train, videos=[os.fspath(v) for v in videos])


# ---------------------------------------------------------------- the method ----

_MODEL_CACHE: dict[tuple, LearnedSync] = {}


def _learned_for(checkpoint: str) -> LearnedSync:
    key = _file_key(checkpoint) if os.path.isfile(checkpoint) else (checkpoint,)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = load_learned(checkpoint)
    return _MODEL_CACHE[key]


@register_sync_method("learned")
def learned(video: str, options: SyncOptions) -> SyncResult:
    """The learned method (`fn(video, options) -> SyncResult`); needs `options.checkpoint` from `train_sync`."""
    if not options.checkpoint:
        raise ConfigError(None, "method 'learned' needs a checkpoint (train one with `vidlens sync train`)")
    model = _learned_for(options.checkpoint)
    progress = options.progress
    feats = load_features(video, model.model.config, options.cache,
                          progress=None if progress is None else (lambda f: progress("learned: faces", f)))
    share = float(feats.valid.mean()) if len(feats.valid) else 0.0
    notes = [f"mouth tracked in {share:.0%} of frames", f"checkpoint {model.path}"]
    with torch.no_grad(), one_torch_thread():
        est = learned_offset(model, feats, max_offset_ms=options.max_offset_ms, window_s=options.window_s)
    if est.usable_windows < 10:
        reason = f"no face in enough frames for the learned method (mouth tracked in {share:.0%} of frames)"
    elif est.offset_ms is None:
        reason = "no usable picture windows with sound around them"
    elif est.confidence >= CONFIDENT:
        reason = "the network's picture and sound embeddings match best at this offset"
    elif est.null_raw > 0:
        reason = (f"the network's best match is no clearer than when the sound is paired with the wrong moments "
                  f"(dip {est.raw_confidence:.3f} vs {est.null_raw:.3f}); train it on more footage of these people")
    else:
        reason = (f"the network's best match is not clear enough (dip {est.raw_confidence:.3f}, trusted from "
                  f"{model.calibration_raw:.3f} learned at training; the clip is too short to compare with wrong pairings)")
    windows = [WindowOffset(s, e, o, c) for s, e, o, c in est.windows]
    return make_result(video, "learned", offset_ms=est.offset_ms if est.usable_windows >= 10 else None,
                       confidence=est.confidence if est.usable_windows >= 10 else 0.0, reason=reason, fps=feats.fps,
                       duration_s=feats.duration_s, lags_ms=est.lags_ms, correlation=est.similarity, windows=windows,
                       notes=notes)
