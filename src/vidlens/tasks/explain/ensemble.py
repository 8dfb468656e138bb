"""An ensemble's explanation: each member explained for the ensemble's target, averaged with the ensemble's weights.

An ensemble decides by the weighted mean of its members' probabilities (`VideoClassifier.fuse`), so where and
when it looked is the same weighted mean of where and when each member looked:

- importance per second and per frame: `sum_m w_m * importance_m` (each sums to 1, so the mean does too);
  frames only some members saw keep the importance those members gave them.
- heat: per source frame, the weighted mean over the members that saw the frame, after putting each member's
  map on the first member's crop (members may crop or size the frame differently: a map is resampled through
  frame coordinates, and places outside a member's crop take no part from it).
- the clips of every member are listed in turn, each with its member's index.

`members` in the result names each member with its weight, probability of the target and decisive seconds,
so a member that disagrees is visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidlens.tasks.explain.video import VideoExplanation


def heat_on_box(heat: np.ndarray, source_box: tuple[float, ...], target_box: tuple[float, ...],
                size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample maps `(N,s,s)` covering `source_box` (frame fractions x0,y0,x1,y1) onto a `size` x `size` grid
    covering `target_box`: `(N,size,size)` maps and a `(size,size)` mask of the places inside the source box."""
    sx0, sy0, sx1, sy1 = source_box
    tx0, ty0, tx1, ty1 = target_box
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    u = (tx0 + centres * (tx1 - tx0) - sx0) / max(sx1 - sx0, 1e-9)  # target pixel -> source crop fraction
    v = (ty0 + centres * (ty1 - ty0) - sy0) / max(sy1 - sy0, 1e-9)
    grid = torch.stack(torch.meshgrid(2 * v - 1, 2 * u - 1, indexing="ij")[::-1], dim=-1).float()  # (size,size,2): x,y
    maps = torch.from_numpy(np.asarray(heat, dtype=np.float32))[:, None]
    out = F.grid_sample(maps, grid.expand(len(maps), -1, -1, -1), mode="bilinear", padding_mode="border",
                        align_corners=False)[:, 0]
    inside = ((u >= 0) & (u <= 1))[None, :] & ((v >= 0) & (v <= 1))[:, None]
    return out.numpy(), inside.numpy()


def combine_members(parts: list[VideoExplanation], weights: list[float], labels: list[str],
                    probs: np.ndarray) -> VideoExplanation:
    """One explanation from the members' (`parts`, each for the same target label, in the members' own label
    order) with the ensemble's `weights` (summing to 1), `labels` and fused probabilities `probs` `(K,)`."""
    lead = parts[0]
    label = lead.label
    w = np.asarray(weights, dtype=np.float64)
    frames = np.unique(np.concatenate([p.frame_indices for p in parts]))
    times = np.zeros(len(frames), dtype=np.float64)
    importance = np.zeros(len(frames), dtype=np.float64)
    has_heat = all(p.heat is not None for p in parts)
    size = lead.heat.shape[-1] if has_heat else 0
    heat = np.zeros((len(frames), size, size), dtype=np.float64) if has_heat else None
    mass = np.zeros((len(frames), size, size), dtype=np.float64) if has_heat else None
    for wm, p in zip(w, parts, strict=True):
        at = np.searchsorted(frames, p.frame_indices)
        times[at] = p.frame_times
        importance[at] += wm * p.frame_importance
        if heat is not None:
            maps, inside = heat_on_box(p.heat, p.crop_box, lead.crop_box, size)
            heat[at] += wm * maps * inside
            mass[at] += wm * inside
    if heat is not None:
        heat = (heat / np.maximum(mass, 1e-12)).astype(np.float32)
    importance = importance / importance.sum() if importance.sum() > 0 else np.full(len(frames), 1.0 / len(frames))
    length = max(len(p.temporal) for p in parts)  # the same video: the same seconds, unless a clock rounds apart
    temporal = sum(wm * np.pad(p.temporal.astype(np.float64), (0, length - len(p.temporal))) for wm, p in zip(w, parts))
    covered = np.any([np.pad(p.covered, (0, length - len(p.covered))) for p in parts], axis=0)
    same_t = len({p.clip_frames.shape[1] for p in parts}) == 1
    clip_frames = np.concatenate([p.clip_frames for p in parts]) if same_t else [f for p in parts for f in p.clip_frames]
    for m, p in enumerate(parts):
        for clip in p.clips:
            clip.notes = [f"member {m + 1} ({p.model_name})", *clip.notes]
    k = labels.index(label)
    members = [{"checkpoint": p.checkpoint, "model": p.model_name, "weight": round(float(wm), 6),
                "probability": round(float(p.probability), 6), "top_seconds": p.top_seconds(), "crop_box":
                [round(v, 4) for v in p.crop_box], "notes": p.notes} for wm, p in zip(w, parts, strict=True)]
    names = ", ".join(f"{Path(p.checkpoint).name} ({p.model_name}, weight {wm:.2f})" for wm, p in zip(w, parts))
    return VideoExplanation(
        path=lead.path, method=lead.method, labels=list(labels), target=k, probability=float(probs[k]),
        probs=np.asarray(probs, dtype=np.float64), fps=lead.fps, duration_s=lead.duration_s, frame_size=lead.frame_size,
        frame_indices=frames.astype(np.int64), frame_times=times, heat=heat,
        frame_importance=importance.astype(np.float32), seconds=np.arange(length, dtype=np.float64),
        temporal=temporal.astype(np.float32), covered=covered, crop_box=lead.crop_box,
        clips=[c for p in parts for c in p.clips], clip_frames=clip_frames,
        clip_starts_s=np.concatenate([p.clip_starts_s for p in parts]),
        clip_ends_s=np.concatenate([p.clip_ends_s for p in parts]),
        clip_probs=np.concatenate([p.clip_probs for p in parts]),
        notes=[f"an ensemble of {len(parts)} models: {names}; heat, importance and the curve are the weighted mean of "
               f"each member's explanation of {label!r} (each member's own notes: 'members')"],
        model_name=f"ensemble of {len(parts)}: " + " + ".join(p.model_name for p in parts),
        checkpoint=lead.checkpoint, members=members,
    )
