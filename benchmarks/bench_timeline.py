"""Timeline benchmark: `vidlens predict --timeline` on a long real 720p file, in x real time.

    python benchmarks/bench_timeline.py [--quick] [--minutes 15] [--results PATH] [--no-write] [--work DIR]

The long file is real footage: the first 30 s of Big Buck Bunny (../shared/realdata/scenes,
VP8 1280x720, 24 fps) looped with the ffmpeg CLI (`-stream_loop`, stream copy) into
benchmarks/_work/ (made once, kept). Two demo-size models, random weights (speed does not depend
on what was learned), one torch thread as for every small model:
1. the demo's C3D (width 0.25): 16-frame windows at the native rate, 64 px;
2. the demo's frame-averaging baseline (TSN over small_cnn): 8 frames per window, 64 px;
3. the same C3D from a checkpoint that records no `decode_size` (before: full 720p frames decoded and every
   window resized again; now: decoded at the eval transform's resize).

Per model, three ways over the same file, interleaved:
- plain decode: `iter_frames` at the model's size and rate, nothing else (the ceiling);
- before issue 12: a whole-video `predict` pass, then the timeline as it was (every window re-transformed
  from its raw frames, batches of 8, decoding and inference in turn on one thread);
- now: `VideoClassifier.predict_timeline` (one pass: frames transformed once, read ahead in a thread
  while the model runs, batches of 16; the whole-video scores average the windows).
Figures: x real time (video seconds / wall seconds) and CPU seconds per video minute.

Results go to the "## Timeline (bench_timeline.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.transforms import TransformConfig, build_eval_transform  # noqa: E402
from vidlens.engine import save_checkpoint  # noqa: E402
from vidlens.io import iter_frames, probe  # noqa: E402
from vidlens.models import build_model  # noqa: E402
from vidlens.tasks.classify import preprocess_fields, view_probabilities  # noqa: E402
from vidlens.tasks.predictor import VideoClassifier  # noqa: E402

SECTION = "Timeline (bench_timeline.py)"
SOURCE = "scenes/big_buck_bunny_0_30.webm"
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"  # ../shared/realdata beside the checkout


def long_video(work: Path, minutes: float) -> Path:
    """The 30 s real clip looped to about `minutes` minutes (stream copy: no re-encoding, 720p VP8 kept)."""
    src = REALDATA / SOURCE
    if not src.is_file():
        raise SystemExit(f"the real-footage corpus file {src} is missing")
    loops = max(1, round(minutes * 2))
    out = work / f"bbb_720p_{loops * 30 // 60}min{loops * 30 % 60:02d}s.webm"
    if not out.exists():
        work.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp.webm")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(src), "-an", "-c", "copy",
                        str(tmp)], check=True)
        tmp.replace(out)
    return out


def make_checkpoint(path: Path, model: str, sampler: SamplerConfig, size: int, decode_size: int | None, classes: int = 8,
                    **args) -> Path:
    torch.manual_seed(0)
    net = build_model(model, classes, load_weights=False, **args)
    pre = preprocess_fields(sampler, TransformConfig(size=size, crop="center"), decode_size)
    return save_checkpoint(path, {"model": model, "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": [f"c{i}" for i in range(classes)], "preprocess": pre})


def old_timeline(classifier: VideoClassifier, path: str, batch_size: int = 8) -> int:
    """The timeline before issue 12 (kept here as the baseline): a whole-video predict, then windows
    re-transformed from raw frames, decoding and inference in turn. Returns the window count."""
    classifier.predict_proba(path)
    member = classifier.members[0]
    info = probe(path)
    s = member.sampler
    fps = s.fps or info.fps
    stride = s.stride if s.mode == "clip" else 1
    span = (s.clip_len - 1) * stride + 1 if s.mode == "clip" else s.clip_len
    hop = max(1, int(round(span / fps / 2 * fps)))
    transform = build_eval_transform(TransformConfig.from_dict({**member.transform.to_dict(), "test_crop": "center"}))
    ring: deque[np.ndarray] = deque(maxlen=span)
    pending: list[torch.Tensor] = []
    windows = count = 0
    for frame in iter_frames(path, fps=fps, size=member.decode_size):
        ring.append(frame.image)
        count += 1
        if len(ring) == span and (count - span) % hop == 0:
            frames = list(ring)
            picks = frames[::stride][: s.clip_len] if s.mode == "clip" else \
                [frames[int(i)] for i in np.linspace(0, len(frames) - 1, s.clip_len).round()]
            pending.append(transform(torch.from_numpy(np.stack(picks)).permute(0, 3, 1, 2)))
            windows += 1
            if len(pending) >= batch_size:
                with torch.inference_mode():
                    view_probabilities(member.model, torch.stack(pending), False)
                pending.clear()
    if pending:
        with torch.inference_mode():
            view_probabilities(member.model, torch.stack(pending), False)
    return windows


def plain_decode(classifier: VideoClassifier, path: str) -> int:
    member = classifier.members[0]
    size = member.decode_size or member.transform.eval_resize  # the model's size, as the timeline decodes
    return sum(1 for _ in iter_frames(path, fps=member.sampler.fps, size=size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the 30 s file itself, one round: checks the script runs")
    parser.add_argument("--minutes", type=float, default=15.0, help="length of the long file (default 15)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per way (default 2, quick 1)")
    parser.add_argument("--work", default=str(common.WORK_DIR), help="where the long file is made (kept)")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    started, machine = common.now(), common.machine_info()
    minutes = 0.5 if args.quick else args.minutes
    repeats = args.repeats or (1 if args.quick else 2)
    video = long_video(Path(args.work), minutes)
    info = probe(video)
    print(f"{video.name}: {info.duration_s:.0f} s, {info.width}x{info.height} {info.codec} at {info.fps:.0f} fps", flush=True)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows, notes = [], common.Notes()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_timeline_") as tmp:
            cases = [("demo C3D w0.25, 16 frames at 64 px", "c3d", SamplerConfig(mode="clip", clip_len=16), 64, {"width": 0.25}),
                     ("demo TSN small_cnn, 8 frames at 64 px", "tsn", SamplerConfig(mode="tsn", clip_len=8), 64,
                      {"encoder": "small_cnn"}),
                     ("demo C3D, checkpoint without decode_size", "c3d", SamplerConfig(mode="clip", clip_len=16), None,
                      {"width": 0.25})]
            for i, (label, name, sampler, decode_size, extra) in enumerate(cases):
                ckpt = make_checkpoint(Path(tmp) / f"{name}{i}.pt", name, sampler, 64, decode_size, **extra)
                classifier = VideoClassifier.from_checkpoints([ckpt])
                print(f"{label} ...", flush=True)
                timings = common.measure_interleaved({
                    "plain decode (ceiling)": lambda c=classifier: plain_decode(c, str(video)),
                    "before: predict + timeline": lambda c=classifier: old_timeline(c, str(video)),
                    "now: predict --timeline": lambda c=classifier: c.predict_timeline(str(video))[0]["num_clips"],
                }, repeats=repeats, warmup=0)
                old = timings["before: predict + timeline"].median
                for way, t in timings.items():
                    rows.append([label, way, f"{info.duration_s / t.median:.1f}x", f"{t.median:.1f}",
                                 f"{t.cpu_median / (info.duration_s / 60):.2f}", f"{old / t.median:.2f}", f"{t.spread:.0%}"])
                notes.add(f"{label}: {timings['now: predict --timeline'].result} windows")
    finally:
        torch.set_num_threads(old_threads)
    headers = ["model", "way", "x real time", "wall s", "CPU s / video min", "x before", "spread"]
    common.print_table(f"Timeline of {info.duration_s / 60:.1f} min of 720p real video", headers, rows)
    notes.add(f"file: {SOURCE} looped to {info.duration_s:.0f} s with `ffmpeg -stream_loop N -c copy` "
              f"({info.width}x{info.height} {info.codec}, {info.fps:.0f} fps): real footage")
    notes.add(f"one torch thread; the read-ahead decoder thread is the second core's work; {repeats} timed round(s) per "
              "way, interleaved, median; random weights")
    notes.add("x before = wall time of the pre-issue-12 way / this way (same run); plain decode = iter_frames at the "
              "model's size and rate with no model: the fastest a timeline can go on this machine")
    common.publish_table_section(args.results, SECTION, argv, __file__, ["torch", "av", "numpy"], headers, rows,
                                 "llrrrrr", notes, started=started, machine=machine, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
