"""`vidlens emotion VIDEO --av-model RUN/best.pt`: an audio-visual model from `emotion train-av` on a user's video.

The model (`vidlens.tasks.audiovisual`, early / late / attention fusion, or a video- or audio-only
baseline) was trained on clips of `spec.seconds` with `spec.num_frames` frames spread over each clip
(`AudioVisualDataset`). Here every face track of an `EmotionResult` is cut into windows of that
length (one window centred on a shorter track; a longer one tiled by ceil(span / length) windows
spread evenly from its first to its last detection). A window's input is built as in training:
`num_frames` frames evenly over the window, each the track's face (its nearest detection's box,
squared with a margin) resized to `size x size` RGB in [0, 1] -> `(T,C,H,W)`; and the log-mel
`(1,n_mels,frames)` of the window's first `seconds` of voice (16 kHz mono, zero-padded; silence when
the video has no audio). A track's `probs` are the mean of its windows' softmax probabilities.

A video without face tracks is read as training clips are: whole frames (shorter side `size`), in
windows over the whole video (`scope = "frames"`), so a model trained on whole-frame clips such as
`vidlens data synth audiovisual` still answers. Labels are the checkpoint's own (e.g. negative /
neutral / positive), reported as they are. All torch work runs on one thread.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidlens.tasks.audiovisual import AVModel, read_window_audio, window_frames, window_mel, window_starts
from vidlens.tasks.audiovisual import load_av  # noqa: F401 - part of this module's API (emotion.folder, tests)
from vidlens.threads import one_torch_thread

READ_CHUNK = 32  # frames decoded per read_clip call (full-size frames are cropped right away)
BATCH = 16  # windows per forward pass
CHUNK_WINDOWS = 128  # windows whose frames are decoded and held at once
MARGIN = 0.2  # added to each side of a face box (of its larger side) before the square crop


@dataclass
class AVWindow:
    start_s: float
    end_s: float
    probs: np.ndarray  # (K,)


@dataclass
class AVTrack:
    """The model's answer for one face track (`track_id`) or for the whole frames (`track_id` None)."""

    track_id: int | None
    windows: list[AVWindow]

    @property
    def probs(self) -> np.ndarray:
        """`(K,)` mean of the windows' probabilities."""
        return np.mean([w.probs for w in self.windows], axis=0)


@dataclass
class AVResult:
    labels: list[str]
    fusion: str
    scope: str  # "faces" (per face track) | "frames" (no face track: whole frames)
    clip_s: float
    checkpoint: str
    tracks: dict[int, AVTrack] = field(default_factory=dict)
    frames: AVTrack | None = None  # scope "frames" only
    notes: list[str] = field(default_factory=list)

    @property
    def video_probs(self) -> np.ndarray:
        """`(K,)` the whole video: every window of every track (or of the frames) alike."""
        windows = [w.probs for t in self.tracks.values() for w in t.windows] if self.scope == "faces" else \
            [w.probs for w in self.frames.windows] if self.frames else []
        return np.mean(windows, axis=0) if windows else np.zeros(len(self.labels), np.float32)


def track_windows(start_s: float, end_s: float, clip_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Windows of `clip_s` covering `[start_s, end_s]`: one centred on a shorter span (kept inside the
    video when it can be), else ceil(span / clip_s) spread evenly from `start_s` to `end_s - clip_s`."""
    span = max(0.0, end_s - start_s)
    if span <= clip_s:
        centre = 0.5 * (start_s + end_s)
        lo = min(max(0.0, centre - clip_s / 2), max(0.0, duration_s - clip_s))
        return [(lo, lo + clip_s)]
    n = math.ceil(span / clip_s - 1e-9)
    return [(float(s), float(s) + clip_s) for s in np.linspace(start_s, end_s - clip_s, n)]


def _square(box: Any, sx: float, sy: float, margin: float) -> tuple[float, float, float]:
    """A face box (analysis coordinates) -> (centre x, centre y, side) in video pixels, `margin` added per side."""
    cx, cy = (box.x + box.w / 2) * sx, (box.y + box.h / 2) * sy
    side = max(box.w * sx, box.h * sy) * (1 + 2 * margin)
    return cx, cy, side


def crop_square(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """`uint8 (H,W,3)` -> `uint8 (size,size,3)`: the square around (cx, cy), edges replicated outside the frame."""
    half = side / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    s = max(2, int(round(side)))
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    patch = image[y0:y0 + s, x0:x0 + s]
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


def _decode(video: str, frames: np.ndarray, size: int | None, each: Any) -> None:
    """Decode `frames` (sorted unique indices) in chunks and hand each `uint8 (H,W,3)` image to
    `each(index, image)` at once, so full-size frames are never all held together."""
    from vidlens.io import read_clip

    for i in range(0, len(frames), READ_CHUNK):
        chunk = frames[i:i + READ_CHUNK]
        for j, image in zip(chunk, read_clip(video, chunk, size=size)):
            each(int(j), image)


def apply_av_model(result: Any, av: AVModel, progress: Callable[[str, float], None] | None = None) -> AVResult:
    """The model's class probabilities per face track of `result` (an `EmotionResult`) and per window
    of each track; whole frames when `result` has no face track. Decodes only the frames it needs,
    `CHUNK_WINDOWS` windows at a time (bounded memory on long videos); `progress("audio-visual", s)`."""
    from vidlens.io import frame_index

    spec, video, info = av.spec, result.path, result.info
    out = AVResult(list(av.labels), spec.fusion, "faces" if result.tracks else "frames", av.clip_s,
                   Path(av.path).name)
    audio = None
    if spec.fusion != "video":
        audio, note = read_window_audio(video, info.has_audio)
        out.notes += [note] if note else []
    index = frame_index(video)
    duration = max(info.duration_s, 1e-3)
    # (owner, window, frame numbers); owner = a track id, or None for whole frames.
    jobs: list[tuple[int | None, tuple[float, float], np.ndarray]] = []
    tracks = {t.id: t for t in result.tracks}
    if tracks:
        for t in result.tracks:
            for win in track_windows(t.times[0], t.times[-1], av.clip_s, duration):
                jobs.append((t.id, win, window_frames(index, *win, spec.num_frames)))
    else:
        starts = window_starts(duration, av.clip_s)
        jobs = [(None, (float(s), float(s) + av.clip_s), window_frames(index, float(s), float(s) + av.clip_s, spec.num_frames))
                for s in starts]
    jobs.sort(key=lambda job: job[1][0])  # in time order: each chunk decodes one stretch of the video
    probs = np.zeros((len(jobs), len(av.labels)), np.float32)
    for first in range(0, len(jobs), CHUNK_WINDOWS):
        chunk = jobs[first:first + CHUNK_WINDOWS]
        if progress is not None:
            progress("audio-visual", chunk[0][1][0])
        probs[first:first + len(chunk)] = _run_windows(chunk, result, tracks, index, audio, av)
    for (owner, (start, end), _), row in zip(jobs, probs):
        window = AVWindow(round(start, 3), round(min(end, duration), 3), row)
        if owner is None:
            out.frames = out.frames or AVTrack(None, [])
            out.frames.windows.append(window)
        else:
            out.tracks.setdefault(owner, AVTrack(owner, [])).windows.append(window)
    return out


def _run_windows(jobs: list[tuple[int | None, tuple[float, float], np.ndarray]], result: Any, tracks: dict[int, Any],
                 index: Any, audio: np.ndarray | None, av: AVModel) -> np.ndarray:
    """`(len(jobs), K)` softmax probabilities of these windows: their frames decoded and cropped, their log-mels."""
    import torch

    spec, video, info = av.spec, result.path, result.info
    wanted = np.unique(np.concatenate([frames for _, _, frames in jobs]))
    crops: dict[tuple[int, int | None], np.ndarray] = {}  # (frame, track) -> uint8 (H,W,3)
    if tracks:
        fh, fw = result.frame_size or (info.height, info.width)
        sx, sy = info.width / max(fw, 1), info.height / max(fh, 1)
        needs: dict[int, list[tuple[int, Any]]] = {}
        for owner, _, frames in jobs:
            t = tracks[owner]
            det_times = np.asarray(t.times)
            for j in frames:  # the track's detection nearest in time gives the box
                box = t.boxes[int(np.argmin(np.abs(det_times - index.times[j])))]
                needs.setdefault(int(j), []).append((owner, box))

        def keep(j: int, image: np.ndarray) -> None:
            for owner, box in needs.get(j, []):
                crops.setdefault((j, owner), crop_square(image, *_square(box, sx, sy, MARGIN), spec.size))

        _decode(video, wanted, None, keep)
    else:  # whole frames, shorter side `size`, as AudioVisualDataset reads its clips
        _decode(video, wanted, spec.size, lambda j, image: crops.__setitem__((j, None), image))
    probs = []
    with one_torch_thread(), torch.inference_mode():
        for i in range(0, len(jobs), BATCH):
            batch = jobs[i:i + BATCH]
            clips = np.stack([np.stack([crops[(int(j), owner)] for j in frames]) for owner, _, frames in batch])  # (B,T,H,W,C)
            video_x = torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255.0  # (B,T,C,H,W)
            mels = [window_mel(audio, start, spec) for _, (start, _), _ in batch]
            audio_x = torch.from_numpy(np.stack(mels))  # (B,1,n_mels,frames)
            x: Any = {"video": video_x, "audio": audio_x}
            if isinstance(spec.inputs, str):
                x = x[spec.inputs]
            probs.append(torch.softmax(av.model(x).float(), dim=-1).numpy())
    return np.concatenate(probs)


def _probs(p: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    return {label: round(float(v), 4) for label, v in zip(labels, p)}


def _entry(track: AVTrack, labels: list[str]) -> dict[str, Any]:
    probs = _probs(track.probs, labels)  # the dominant label is the largest *written* probability (first of ties)
    return {"av_labels": list(labels), "av_probs": probs, "av_dominant": max(probs, key=probs.get),
            "av_windows": [{"start_s": w.start_s, "end_s": w.end_s, "probs": _probs(w.probs, labels)} for w in track.windows]}


def add_av_to_document(doc: dict[str, Any], av: AVResult) -> dict[str, Any]:
    """Put the model's answers into an emotion.json document: per track `av_labels`, `av_probs`,
    `av_dominant`, `av_windows`; top level `av` (model, fusion, scope, clip length, labels, the
    whole video's probabilities and, for scope "frames", its windows)."""
    for entry in doc.get("tracks", []):
        track = av.tracks.get(entry["id"])
        if track is not None:
            entry.update(_entry(track, av.labels))
    whole = av.video_probs
    block: dict[str, Any] = {"checkpoint": av.checkpoint, "fusion": av.fusion, "scope": av.scope, "clip_s": av.clip_s,
                             "labels": list(av.labels), "probs": _probs(whole, av.labels),
                             "dominant": av.labels[int(np.argmax(whole))], "notes": list(av.notes)}
    if av.frames is not None:
        block["windows"] = _entry(av.frames, av.labels)["av_windows"]
    doc["av"] = block
    return doc


def write_av_outputs(av: AVResult, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Add the answers to `out_dir/emotion.json` (written first by `write_emotion_outputs`) and write
    `av.csv`: one row per window (scope `track<id>` or `frames`) with `p_<label>` columns."""
    out = Path(out_dir)
    doc_path = out / "emotion.json"
    doc = json.loads(doc_path.read_text())
    doc_path.write_text(json.dumps(add_av_to_document(doc, av), indent=2) + "\n")
    rows = [(f"track{tid}", w) for tid, t in sorted(av.tracks.items()) for w in t.windows]
    if av.frames is not None:
        rows += [("frames", w) for w in av.frames.windows]
    path = out / "av.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "start_s", "end_s", "dominant", *[f"p_{label}" for label in av.labels]])
        for scope, w in rows:
            writer.writerow([scope, f"{w.start_s:.3f}", f"{w.end_s:.3f}", av.labels[int(np.argmax(w.probs))],
                             *[f"{float(v):.4f}" for v in w.probs]])
    return {"emotion.json": doc_path, "av.csv": path}
