"""Self-supervised training of the `learned` sync network on a user's own videos with audio.

Every usable frame `t` (a tracked mouth on it and its 4 neighbours) is an anchor: its picture window
against the sound window at `t` is the positive; `negatives` sound windows taken `min_shift_ms` to
`max_shift_ms` away from `t` (either side) are the negatives. Loss: cross-entropy over the cosine
similarities / `temperature` (the positive must win; SyncNet's "multi-way matching"). The videos are
assumed to be in sync: training on out-of-sync footage teaches its offset.

Check blocks: time is cut into `block_s` blocks and every third block (the second, fifth, ...) of
each video is the check set; with `holdout` (default) it is kept out of training (frames within
`guard_s` of a training block are dropped too). On those windows we measure, before and after
training, the *ranking accuracy* (share of (window, shift) pairs where the aligned sound is closer
than the shifted one: 0.5 = chance) and the offset found on 1.5 s stretches, which gives a
fallback calibration for clips too short for `learned_offset`'s wrong pairings: `calibration_raw` is
the smallest raw confidence (median - min of the distance curve) above which the stretches' offsets
were right (within one frame) at least 80% of the time; `confidence = raw / (2 * calibration_raw)`,
so 0.5 means "as sure as the check stretches that were right". With none right, it is set above
anything seen (nothing similar gets trusted). With `holdout=False` everything is trained on and the
check is on memorised windows: its ranking accuracy says nothing about new footage (the deep
memorised dips make the fallback calibration strict, not lax); `metrics["check_windows_trained"]`.

The checkpoint is one file written atomically (temp + rename), plain types beside the state dict,
read back with `torch.load(weights_only=True)`: `{"format": 1, "model": "syncnet-tiny", "model_args":
SyncNetConfig, "state_dict", "preprocess", "config", "metrics", "videos", "vidlens_version"}`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vidlens.errors import ConfigError, DatasetError
from vidlens.tasks.sync.learned_net import (SyncFeatures, SyncNet, SyncNetConfig, audio_starts, audio_windows,
                                            embed_all_audio, embed_all_video, video_windows)

CHECKPOINT_FORMAT = 1
MODEL_NAME = "syncnet-tiny"


@dataclass
class SyncTrainConfig:
    """Training options (plain types: saved in the checkpoint)."""

    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    negatives: int = 8
    min_shift_ms: float = 200.0
    max_shift_ms: float = 1000.0
    temperature: float = 0.1
    block_s: float = 2.0
    guard_s: float = 0.3
    holdout: bool = True       # keep every third block out of training (for the check and the calibration)
    seed: int = 0


def split_centres(features: SyncFeatures, net: SyncNetConfig, train: SyncTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """`(train, held_out)` frame indices that can centre a window (held out: every third `block_s` block from the 2nd)."""
    centres = features.centres(net)
    t = features.times[centres]
    block = np.floor(t / train.block_s).astype(np.int64)
    held = block % 3 == 1
    if not train.holdout:
        return centres, centres[held]
    pos = t - block * train.block_s
    near_edge = (pos < train.guard_s) | (pos > train.block_s - train.guard_s)
    return centres[~held & ~near_edge], centres[held & ~near_edge]


def _in_range(features: SyncFeatures, centres: np.ndarray, net: SyncNetConfig, shift_frames: int = 0) -> np.ndarray:
    starts = audio_starts(features.times[centres], net) + shift_frames
    return (starts >= 0) & (starts <= features.mel.shape[1] - net.audio_frames)


def ranking_accuracy(model: SyncNet, features: Sequence[SyncFeatures], centres: Sequence[np.ndarray],
                     train: SyncTrainConfig) -> dict[str, float]:
    """On the given windows: share of (window, shift) pairs with aligned distance < shifted distance (shifts every
    100 ms from `min_shift_ms` to `max_shift_ms`, both signs), and the mean aligned and shifted distances."""
    net = model.config
    hop = net.hop_ms
    shifts = [int(round(s / hop)) * sign for s in np.arange(train.min_shift_ms, train.max_shift_ms + 1, 100.0)
              for sign in (1, -1)]
    wins = total = 0
    aligned_d: list[float] = []
    shifted_d: list[float] = []
    model.eval()
    for feats, idx in zip(features, centres, strict=True):
        idx = idx[_in_range(feats, idx, net)]
        if len(idx) == 0:
            continue
        v = embed_all_video(model, feats, idx)
        a = embed_all_audio(model, feats.mel)
        st = audio_starts(feats.times[idx], net)
        d0 = 1.0 - (v * a[st]).sum(1)
        aligned_d += d0.tolist()
        for s in shifts:
            j = st + s
            ok = torch.from_numpy((j >= 0) & (j < len(a)))
            if not bool(ok.any()):
                continue
            ds = 1.0 - (v[ok] * a[j[ok.numpy()]]).sum(1)
            wins += int((d0[ok] < ds).sum())
            total += int(ok.sum())
            shifted_d += ds.tolist()
    return {"ranking_accuracy": wins / total if total else float("nan"), "pairs": total,
            "aligned_distance": float(np.mean(aligned_d)) if aligned_d else float("nan"),
            "shifted_distance": float(np.mean(shifted_d)) if shifted_d else float("nan")}


def _held_out_offsets(model: SyncNet, features: Sequence[SyncFeatures], centres: Sequence[np.ndarray],
                      max_offset_ms: float, span_s: float = 1.5) -> list[tuple[float, float]]:
    """(offset_ms found, raw confidence) on each held-out stretch of `span_s` (hop span_s/3); the truth is 0."""
    from vidlens.tasks.sync.learned import distance_matrix, offset_from_curve

    lags = np.arange(-max_offset_ms, max_offset_ms + 0.5, model.config.hop_ms)
    out = []
    for feats, idx in zip(features, centres, strict=True):
        if len(idx) == 0:
            continue
        dist = distance_matrix(model, feats, idx, lags)
        t = feats.times[idx]
        start = float(t[0])
        while start + span_s <= float(t[-1]) + 1e-6:
            sel = (t >= start) & (t < start + span_s)
            if sel.sum() >= 0.6 * span_s * feats.fps:
                with np.errstate(all="ignore"):
                    curve = np.nanmean(dist[sel], axis=0)
                off, raw = offset_from_curve(lags, curve)
                if off is not None:
                    out.append((off, raw))
            start += span_s / 3.0
    return out


def calibrate(found: list[tuple[float, float]], frame_ms: float, target: float = 0.8) -> float:
    """The raw confidence at and above which at least `target` of the held-out offsets were within one frame of 0."""
    if not found:
        return 1.0
    raw = np.array([r for _, r in found])
    right = np.array([abs(o) <= frame_ms + 1e-6 for o, _ in found])
    for c in np.sort(raw):
        sel = raw >= c
        if sel.sum() >= 2 and right[sel].mean() >= target:
            return float(max(c, 1e-3))
    return float(max(raw.max() * 1.5, 1e-3))  # nothing held out was reliably right: trust nothing like it


def train_on_features(features: Sequence[SyncFeatures], net: SyncNetConfig | None = None,
                      train: SyncTrainConfig | None = None,
                      progress: Callable[[int, int], None] | None = None) -> tuple[SyncNet, dict]:
    """Train a `SyncNet` on decoded videos -> `(model in eval mode, metrics)`. `progress(epoch, epochs)` per epoch."""
    net = net or SyncNetConfig()
    train = train or SyncTrainConfig()
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    splits = [split_centres(f, net, train) for f in features]
    train_idx = [tr[_in_range(f, tr, net)] for f, (tr, _) in zip(features, splits, strict=True)]
    held_idx = [va for _, va in splits]
    anchors = np.array([(k, i) for k, idx in enumerate(train_idx) for i in idx], dtype=np.int64).reshape(-1, 2)
    if len(anchors) < 8:
        raise DatasetError(None, f"only {len(anchors)} usable training windows (a tracked mouth on 5 consecutive frames "
                                 "with sound around them); give longer videos of a visible speaker")
    lo, hi = int(round(train.min_shift_ms / net.hop_ms)), int(round(train.max_shift_ms / net.hop_ms))
    if not 0 < lo <= hi:
        raise ConfigError(None, f"need 0 < min_shift_ms <= max_shift_ms, got {train.min_shift_ms}, {train.max_shift_ms}")
    shifts = np.concatenate([np.arange(lo, hi + 1), -np.arange(lo, hi + 1)])
    model = SyncNet(net)
    before = ranking_accuracy(model, features, held_idx, train)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train.lr, total_steps=train.epochs * (
        (len(anchors) + train.batch_size - 1) // train.batch_size))
    t0 = time.perf_counter()
    losses = []
    for epoch in range(train.epochs):
        model.train()
        order = rng.permutation(len(anchors))
        total = 0.0
        for b in range(0, len(order), train.batch_size):
            batch = anchors[order[b:b + train.batch_size]]
            v_parts, a_parts = [], []
            for k in np.unique(batch[:, 0]):
                f, idx = features[k], batch[batch[:, 0] == k, 1]
                st = audio_starts(f.times[idx], net)
                cand = np.concatenate([np.zeros((len(idx), 1), np.int64),
                                       rng.choice(shifts, size=(len(idx), train.negatives))], axis=1)
                j = np.clip(st[:, None] + cand, 0, f.mel.shape[1] - net.audio_frames)
                v_parts.append(video_windows(f, idx, net, rng))
                aw = audio_windows(f.mel, j.ravel(), net)
                a_parts.append(aw + 0.3 * torch.from_numpy(rng.standard_normal(aw.shape).astype(np.float32)))
            v = model.embed_video(torch.cat(v_parts))
            a = model.embed_audio(torch.cat(a_parts)).view(len(v), train.negatives + 1, -1)
            logits = (v[:, None] * a).sum(-1) / train.temperature
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(v), dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(v)
        losses.append(total / len(anchors))
        if progress is not None:
            progress(epoch + 1, train.epochs)
    model.eval()
    after = ranking_accuracy(model, features, held_idx, train)
    frame_ms = 1000.0 / float(np.median([f.fps for f in features]))
    found = _held_out_offsets(model, features, held_idx, max_offset_ms=min(train.max_shift_ms, 500.0))
    metrics = {
        "train_windows": int(len(anchors)), "check_windows": int(sum(len(i) for i in held_idx)),
        "check_windows_trained": not train.holdout,  # holdout off: the check blocks were trained on (memorised)
        "seconds": round(time.perf_counter() - t0, 2), "final_loss": round(losses[-1], 4) if losses else None,
        "check_before": before, "check_after": after,
        "check_offsets_ms": [round(o, 1) for o, _ in found],
        "check_within_frame": float(np.mean([abs(o) <= frame_ms + 1e-6 for o, _ in found])) if found else None,
        "calibration_raw": calibrate(found, frame_ms),
    }
    return model, metrics


def save_checkpoint(model: SyncNet, metrics: dict, out: str | os.PathLike[str], *, train: SyncTrainConfig,
                    videos: Sequence[str] = ()) -> Path:
    """Write the checkpoint atomically (a `.partial` temp file, then `os.replace`) -> its path."""
    from vidlens import __version__

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    c = model.config
    data = {
        "format": CHECKPOINT_FORMAT, "model": MODEL_NAME, "model_args": c.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "preprocess": {"n_frames": c.n_frames, "crop": [c.crop_h, c.crop_w], "sample_rate": c.sample_rate,
                       "n_mels": c.n_mels, "hop_ms": c.hop_ms, "window_s": c.window_s},
        "config": asdict(train), "metrics": _plain(metrics), "videos": [str(v) for v in videos],
        "vidlens_version": str(__version__),
    }
    tmp = out.with_name(out.name + ".partial")
    try:
        torch.save(data, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def _plain(value):
    """Metrics as plain Python types (weights_only loading accepts nothing else)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
