"""What `vidlens emotion` writes: emotion.json, emotion.csv, emotion.png and optionally annotated.mp4."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidlens.io import VideoWriter, iter_frames
from vidlens.tasks.emotion.analyse import EmotionResult, FaceTrackResult, sentiment, valence


def _probs(p: np.ndarray, labels: list[str]) -> dict[str, float]:
    return {label: round(float(v), 4) for label, v in zip(labels, p)}


def _track_summary(track: FaceTrackResult, labels: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    clip = np.asarray(track.clip_probs)
    mood, confidence = sentiment(clip, labels)
    return {
        "id": track.id, "start_s": round(track.times[0], 3), "end_s": round(track.times[-1], 3),
        "start_frame": track.frames[0], "end_frame": track.frames[-1], "detections": len(track.frames),
        "probs": _probs(clip, labels), "mean_probs": _probs(track.mean_probs, labels),
        "dominant": labels[int(np.argmax(clip))], "valence": round(float(valence(clip, labels)), 4),
        "sentiment": mood, "confidence": round(confidence, 4),
        "boxes": [{"frame": f, "time_s": round(t, 3), **b.to_dict()} for f, t, b in zip(track.frames, track.times, track.boxes)],
        "timeline": rows,
    }


def emotion_document(result: EmotionResult) -> dict[str, Any]:
    """The JSON document (schema in docs/emotion.md)."""
    info = result.info
    whole: dict[str, Any] = {"probs": None, "dominant": None, "valence": None, "sentiment": None, "confidence": None}
    if result.video_probs is not None and result.dominant is not None:
        mood, confidence = sentiment(result.video_probs, result.labels)
        whole = {"probs": _probs(result.video_probs, result.labels), "dominant": result.dominant,
                 "valence": round(float(valence(result.video_probs, result.labels)), 4), "sentiment": mood,
                 "confidence": round(confidence, 4)}
    return {
        "video": result.path, "duration_s": round(info.duration_s, 3), "fps": info.fps,
        "labels": result.labels, "has_faces": result.has_faces, "has_audio": result.has_audio,
        "voice_used": result.voice_used, "frames_analysed": result.frames_analysed, "notes": result.notes,
        "voice_activity": [{"start_s": a, "end_s": b} for a, b in result.voice_active_s],
        "video_probs": whole["probs"], "dominant": whole["dominant"], "valence": whole["valence"],
        "sentiment": whole["sentiment"], "confidence": whole["confidence"],
        "timeline": result.seconds,
        "tracks": [_track_summary(t, result.labels, result.track_seconds[t.id]) for t in result.tracks],
    }


def write_emotion_outputs(result: EmotionResult, out_dir: str | os.PathLike[str], *, annotate: bool = False) -> dict[str, Path]:
    """Write `emotion.json`, `emotion.csv` (one row per second, for the video and each track), `emotion.png`."""
    from vidlens.report.emotion import plot_emotion_timeline

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"emotion.json": out / "emotion.json", "emotion.csv": out / "emotion.csv"}
    files["emotion.json"].write_text(json.dumps(emotion_document(result), indent=2) + "\n")
    with open(files["emotion.csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope", "second", "start_s", "end_s", "dominant", "valence", "sentiment", "confidence",
                         *[f"p_{label}" for label in result.labels]])
        scopes = [("video", result.seconds)] + [(f"track{t.id}", result.track_seconds[t.id]) for t in result.tracks]
        for scope, rows in scopes:
            for row in rows:
                writer.writerow([scope, row["second"], f"{row['start_s']:.3f}", f"{row['end_s']:.3f}", row["dominant"],
                                 row["valence"], row["sentiment"], row["confidence"],
                                 *[row["probs"][label] for label in result.labels]])
    files["emotion.png"] = plot_emotion_timeline(result, out / "emotion.png")
    if annotate:
        files["annotated.mp4"] = write_annotated_video(result, out / "annotated.mp4")
    return files


def write_annotated_video(result: EmotionResult, path: str | os.PathLike[str]) -> Path:
    """The analysed frames (at the analysis rate and size) with each face's box, track id and emotion."""
    by_frame = dict(result.detections)
    rate = result.analysis_fps
    with VideoWriter(path, fps=rate) as writer:
        for frame in iter_frames(result.path, fps=rate, size=result.frame_size, keep_aspect=False):
            image = np.ascontiguousarray(frame.image)
            for track_id, box, probs in by_frame.get(frame.index, []):
                label = result.labels[int(np.argmax(probs))]
                x, y, w, h = (int(round(v)) for v in (box.x, box.y, box.w, box.h))
                cv2.rectangle(image, (x, y), (x + w, y + h), (255, 200, 0), 2)
                cv2.putText(image, f"#{track_id} {label} {float(np.max(probs)):.2f}", (x, max(12, y - 4)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
            writer.write(image)
    return Path(path)
