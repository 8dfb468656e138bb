"""Files of a video explanation, written all-or-nothing (`vidlens.outputs.staged_output`).

`write_explanation(result, out_dir)` writes:

- `overlay.mp4`: the whole video (640 px wide) with the heat blended over the frames the clips saw
  (each frame shows its nearest explained frame's heat), the model's crop outlined, a time stamp and a bar
  of the frame's importance;
- `overlay.gif`: the same over the seconds the clips saw, at most 8 frames/s, 320 px wide (for web pages);
- `frames.png`: the most important frames (spread over the video) with their heat, time codes and shares;
- `temporal.png` + `temporal.csv`: importance per second (which seconds drove the decision);
- `heat.npz`: the heat maps `(N,S,S)` float16 with their frame indices, times and the crop box;
- `explanation.json`: `VideoExplanation.to_json()` plus the file names.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import numpy as np

from vidlens.outputs import staged_output
from vidlens.report.heat import overlay_heat
from vidlens.tasks.explain.video import VideoExplanation

__all__ = ["FILES", "draw_overlay", "pick_frames", "write_explanation"]

FILES = ("overlay.mp4", "overlay.gif", "frames.png", "temporal.png", "temporal.csv", "heat.npz", "explanation.json")
MP4_WIDTH, GIF_WIDTH, GIF_FPS, GIF_MAX_FRAMES = 640, 320, 8.0, 120


def _display_size(h: int, w: int, max_w: int) -> tuple[int, int]:
    """Even (height, width) at most `max_w` wide; small videos are scaled up to it (readable time stamps)."""
    scale = max_w / w
    return max(2, int(round(h * scale)) // 2 * 2), max(2, int(round(w * scale)) // 2 * 2)


def draw_overlay(image: np.ndarray, heat: np.ndarray | None, box: tuple[float, float, float, float], *,
                 label: str = "", importance: float | None = None) -> np.ndarray:
    """One frame `uint8 (H,W,3)` RGB with `heat (S,S)` in [0,1] blended inside `box` (fractions x0,y0,x1,y1),
    the box outlined when it is not the whole frame, `label` written top left and `importance` (0-1,
    relative to the video's most important frame) as a bar along the bottom."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    x0, y0, x1, y1 = int(round(box[0] * w)), int(round(box[1] * h)), int(round(box[2] * w)), int(round(box[3] * h))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    if heat is not None:
        out[y0:y1, x0:x1] = overlay_heat(out[y0:y1, x0:x1], heat, alpha=0.5)
    if (x0, y0, x1, y1) != (0, 0, w, h):
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), 1)
    scale = max(0.35, min(0.6, w / 900))
    if label:
        cv2.putText(out, label, (6, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, label, (6, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    if importance is not None:
        bar = max(3, h // 60)
        cv2.rectangle(out, (0, h - bar), (w - 1, h - 1), (40, 40, 40), -1)
        cv2.rectangle(out, (0, h - bar), (int(round(np.clip(importance, 0, 1) * (w - 1))), h - 1), (255, 200, 0), -1)
    return out


def _nearest(result: VideoExplanation, t: float) -> int | None:
    """The explained frame nearest to time `t`, when a clip covered `t`; else None."""
    inside = np.any((result.clip_starts_s <= t + 1e-6) & (result.clip_ends_s > t))
    if not inside or result.frame_times.size == 0:
        return None
    pos = int(np.clip(np.searchsorted(result.frame_times, t), 0, result.frame_times.size - 1))
    if pos > 0 and abs(result.frame_times[pos - 1] - t) <= abs(result.frame_times[pos] - t):
        pos -= 1
    return pos


def _frame_label(result: VideoExplanation, t: float, i: int | None) -> str:
    text = f"{t:.3f} s  {result.label} {result.probability:.2f}"
    return text + ("" if i is not None else "  (not in a clip)")


def _write_mp4(result: VideoExplanation, path: Path) -> int:
    """overlay.mp4 over every frame of the video; returns the number of frames written."""
    from vidlens.io import VideoWriter, iter_frames

    h, w = _display_size(*result.frame_size, MP4_WIDTH)
    peak = float(result.frame_importance.max()) or 1.0
    count = 0
    with VideoWriter(path, fps=result.fps or 25.0, crf=23) as writer:
        for frame in iter_frames(result.path, size=(h, w), keep_aspect=False):
            i = _nearest(result, frame.time_s)
            heat = None if i is None or result.heat is None else result.heat[i]
            imp = None if i is None else float(result.frame_importance[i]) / peak
            writer.write(draw_overlay(frame.image, heat, result.crop_box, label=_frame_label(result, frame.time_s, i),
                                      importance=imp))
            count += 1
    return count


def _write_gif(result: VideoExplanation, path: Path) -> int:
    """overlay.gif over the seconds the clips covered (adaptive palette per frame); returns its frame count."""
    from PIL import Image

    from vidlens.io import iter_frames

    start, end = float(result.clip_starts_s.min()), float(result.clip_ends_s.max())
    fps = min(GIF_FPS, result.fps or GIF_FPS, GIF_MAX_FRAMES / max(end - start, 1e-3))
    h, w = _display_size(*result.frame_size, GIF_WIDTH)
    peak = float(result.frame_importance.max()) or 1.0
    images = []
    for frame in iter_frames(result.path, fps=fps, size=(h, w), keep_aspect=False):
        if frame.time_s < start - 1e-6 or frame.time_s >= end:
            continue
        i = _nearest(result, frame.time_s)
        heat = None if i is None or result.heat is None else result.heat[i]
        imp = None if i is None else float(result.frame_importance[i]) / peak
        image = draw_overlay(frame.image, heat, result.crop_box, label=f"{frame.time_s:.2f} s", importance=imp)
        images.append(Image.fromarray(image).quantize(colors=128, method=Image.Quantize.MEDIANCUT))
        if len(images) >= GIF_MAX_FRAMES:
            break
    if not images:  # a clip shorter than one GIF tick: its first frame
        i = 0
        image = _read_frames(result, [int(result.frame_indices[0])], (h, w))[0]
        images.append(Image.fromarray(draw_overlay(image, None if result.heat is None else result.heat[i],
                                                   result.crop_box)).quantize(colors=128))
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0, optimize=False)
    return len(images)


def _read_frames(result: VideoExplanation, indices: list[int], size: tuple[int, int]) -> np.ndarray:
    from vidlens.io import read_clip

    return read_clip(result.path, indices, size=size, keep_aspect=False)


def pick_frames(result: VideoExplanation, k: int = 6) -> list[int]:
    """Positions (into `result.frame_indices`) of the `k` most important frames, at least a `k`-th of the
    explained span apart where possible (so the strip spreads over the moments that mattered), in time order."""
    order = np.argsort(-result.frame_importance, kind="stable")
    times = result.frame_times
    gap = (float(times.max()) - float(times.min())) / (2 * k) if times.size else 0.0
    chosen: list[int] = []
    for i in order:
        if all(abs(times[i] - times[j]) >= gap for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    for i in order:  # too few far apart: fill with the next most important ones
        if len(chosen) == min(k, len(order)):
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    return sorted(chosen, key=lambda i: times[i])


def _write_strip(result: VideoExplanation, path: Path, k: int = 6) -> list[int]:
    """frames.png: the most important frames with their heat, time codes and importance shares."""
    from matplotlib.figure import Figure

    chosen = pick_frames(result, k)
    h, w = _display_size(*result.frame_size, 360)
    images = _read_frames(result, [int(result.frame_indices[i]) for i in chosen], (h, w))
    cols = len(chosen)
    fig = Figure(figsize=(2.6 * cols * w / max(h, w) + 0.4, 2.6 * h / max(h, w) + 0.9))
    axes = np.atleast_1d(fig.subplots(1, cols))
    for ax, i, image in zip(axes, chosen, images):
        heat = None if result.heat is None else result.heat[i]
        ax.imshow(draw_overlay(image, heat, result.crop_box))
        ax.set_title(f"{result.frame_times[i]:.3f} s (frame {int(result.frame_indices[i])})\n"
                     f"{100 * float(result.frame_importance[i]):.1f} % of the decision", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{Path(result.path).name}: where the model saw {result.label!r} (p={result.probability:.2f}, "
                 f"{result.method})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return chosen


def _write_temporal(result: VideoExplanation, png: Path, csv_path: Path) -> None:
    """temporal.png (a bar per second, seconds no clip saw in grey) and temporal.csv."""
    from matplotlib.figure import Figure

    with open(csv_path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["second", "start_s", "end_s", "importance", "covered"])
        for s, v, c in zip(result.seconds, result.temporal, result.covered):
            out.writerow([int(s), f"{s:.3f}", f"{min(s + 1.0, max(result.duration_s, s)):.3f}", f"{float(v):.6f}", int(c)])
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    colours = ["tab:orange" if c else "0.8" for c in result.covered]
    ax.bar(result.seconds + 0.5, result.temporal, width=0.9, color=colours, label="importance per second")
    if result.frame_times.size:
        peak = float(result.frame_importance.max()) or 1.0
        ax.plot(result.frame_times, result.frame_importance / peak * float(result.temporal.max() or 1.0), ".",
                color="tab:blue", ms=3, label="explained frames (scaled)")
    ax.set_xlim(0, max(float(result.duration_s), float(len(result.seconds))))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("share of the decision")
    ax.set_title(f"{Path(result.path).name}: which seconds drove {result.label!r} (p={result.probability:.2f}, "
                 f"{result.method})", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def write_explanation(result: VideoExplanation, out_dir: str | os.PathLike[str], *, video: bool = True,
                      strip_frames: int = 6) -> dict[str, Path]:
    """Write the explanation's files into `out_dir` (all or nothing); returns `{file name: final path}`.

    `video=False` skips overlay.mp4 and overlay.gif (the slowest part on long videos)."""
    with staged_output(out_dir) as stage:
        d = stage.path
        files = {name: d / name for name in FILES if video or not name.startswith("overlay")}
        doc = result.to_json()
        if video:
            doc["overlay_frames"] = {"mp4": _write_mp4(result, files["overlay.mp4"]),
                                     "gif": _write_gif(result, files["overlay.gif"])}
        chosen = _write_strip(result, files["frames.png"], strip_frames)
        doc["strip"] = [{"frame": int(result.frame_indices[i]), "time_s": round(float(result.frame_times[i]), 3)}
                        for i in chosen]
        _write_temporal(result, files["temporal.png"], files["temporal.csv"])
        heat = np.zeros((0,), np.float16) if result.heat is None else result.heat.astype(np.float16)
        np.savez_compressed(files["heat.npz"], heat=heat, frame=result.frame_indices, time_s=result.frame_times,
                            crop_box=np.asarray(result.crop_box, dtype=np.float32))
        doc["files"] = sorted(files)
        files["explanation.json"].write_text(json.dumps(doc, indent=2) + "\n")
        return {name: stage.final(p) for name, p in files.items()}
