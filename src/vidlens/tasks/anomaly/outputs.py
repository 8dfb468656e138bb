"""Files of `vidlens anomaly VIDEO`: anomaly.json (events, thresholds), anomaly.csv (every frame),
scores.png (score over time, events shaded), heat.npz (per-frame heat maps) and, asked for, annotated.mp4 (heat over the frames, score
and a red frame while an event is on)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidlens.report.anomaly import plot_anomaly_scores
from vidlens.report.heat import overlay_heat
from vidlens.tasks.anomaly.frames import Source, image_list, iter_frames_at
from vidlens.tasks.anomaly.score import AnomalyResult

CSV_HEADER = ["frame", "time_s", "raw", "absolute", "normalised", "anomalous", "event", "peak_x", "peak_y"]
ANNOTATE_WIDTH = 640


def _event_of_frame(result: AnomalyResult) -> np.ndarray:
    """`(T,)` 1-based event number of each frame (0 = none)."""
    marks = np.zeros(len(result.frame_indices), dtype=np.int64)
    for n, event in enumerate(result.events, 1):
        marks[(result.frame_indices >= event.start_frame) & (result.frame_indices <= event.end_frame)] = n
    return marks


def write_anomaly_csv(result: AnomalyResult, path: str | os.PathLike[str]) -> Path:
    marks = _event_of_frame(result)
    h, w = result.heat.shape[1:]
    flat = result.heat.reshape(len(result.heat), -1)
    peaks = np.nanargmax(np.nan_to_num(flat, nan=-np.inf), axis=1) if flat.size else np.zeros(0, dtype=np.int64)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for i in range(len(result.raw)):
            y, x = divmod(int(peaks[i]), w)
            writer.writerow([int(result.frame_indices[i]), f"{result.times[i]:.3f}", f"{result.raw[i]:.5f}",
                             f"{result.absolute[i]:.4f}", f"{result.normalised[i]:.4f}",
                             int(result.absolute[i] >= result.threshold), int(marks[i]),
                             f"{(x + 0.5) / w:.3f}", f"{(y + 0.5) / h:.3f}"])
    return Path(path)


def heat_scale(heat: np.ndarray) -> float:
    """The heat value drawn at full colour: the video's 99.9th percentile (robust to one hot pixel)."""
    finite = heat[np.isfinite(heat)]
    return float(np.quantile(finite, 0.999)) if finite.size else 1.0


def _display_size(source: Source) -> tuple[int, int]:
    """(H, W), even, at most ANNOTATE_WIDTH wide, with the source's own aspect."""
    images = image_list(source)
    if images is not None:
        shape = cv2.imread(os.fspath(images[0]), cv2.IMREAD_UNCHANGED).shape
        src_h, src_w = shape[:2]
    else:
        from vidlens.io import probe

        info = probe(source)
        src_h, src_w = info.height, info.width
    scale = min(1.0, ANNOTATE_WIDTH / src_w)
    return max(2, int(src_h * scale) // 2 * 2), max(2, int(src_w * scale) // 2 * 2)


def write_annotated(result: AnomalyResult, source: Source, path: str | os.PathLike[str], fps: float | None) -> Path:
    """annotated.mp4: the source at display size with the heat map blended in (scaled by the frame's absolute
    score, so normal frames stay clear), the score written, a red border during events."""
    from vidlens.io import VideoWriter

    size = _display_size(source)
    scale = heat_scale(result.heat) or 1.0
    marks = _event_of_frame(result)
    by_index = {int(f): i for i, f in enumerate(result.frame_indices)}
    with VideoWriter(path, fps=result.fps or 25.0, crf=23) as writer:
        for index, _, image in iter_frames_at(source, size, fps):
            i = by_index.get(int(index))
            if i is None:
                continue
            strength = float(np.clip(result.absolute[i] / max(result.threshold, 1e-6), 0.0, 1.0))
            frame = overlay_heat(image, result.heat[i] / scale * strength, alpha=0.5, floor=0.25)
            colour = (255, 40, 40) if marks[i] else (255, 255, 255)
            if marks[i]:
                cv2.rectangle(frame, (1, 1), (frame.shape[1] - 2, frame.shape[0] - 2), colour, 4)
            cv2.putText(frame, f"{result.times[i]:7.2f}s  score {result.absolute[i]:6.2f}", (8, 22),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
            writer.write(np.ascontiguousarray(frame))
    return Path(path)


def write_anomaly_outputs(result: AnomalyResult, out_dir: str | os.PathLike[str], *, source: Source | None = None,
                          fps: float | None = None, extra: dict[str, Any] | None = None,
                          truth: np.ndarray | None = None) -> dict[str, Path]:
    """Write the result's files into `out_dir`; `source` (+ the model's `fps`) for annotated.mp4."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"anomaly.json": out / "anomaly.json", "anomaly.csv": out / "anomaly.csv", "scores.png": out / "scores.png",
             "heat.npz": out / "heat.npz"}
    files["anomaly.json"].write_text(json.dumps({**result.to_json(), **(extra or {})}, indent=2) + "\n")
    write_anomaly_csv(result, files["anomaly.csv"])
    # Where, per frame: heat (T,h,w) on the method's grid (row 0 = top of the frame), with frame indices and times.
    np.savez_compressed(files["heat.npz"], heat=result.heat.astype(np.float16), frame=result.frame_indices, time_s=result.times)
    plot_anomaly_scores(result.times, result.absolute, [(e.start_s, e.end_s) for e in result.events], result.threshold,
                        files["scores.png"], low=result.low, truth=truth,
                        title=f"{Path(result.video).name}: {result.method} ({len(result.events)} events)")
    if source is not None:
        files["annotated.mp4"] = write_annotated(result, source, out / "annotated.mp4", fps)
    return files
