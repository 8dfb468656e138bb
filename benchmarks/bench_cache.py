"""Pre-decoded cache benchmark: `VideoClipDataset` epochs read from video files vs from the frame cache.

    python benchmarks/bench_cache.py [--quick] [--clips 60] [--frames 64] [--results PATH] [--no-write]

A synthetic action dataset (``vidlens.data.synthetic.make_action_dataset`` when present,
else pattern videos from ``vidlens.testing.write_pattern_video``), 320x240 H.264 at 25 fps,
is read for one training epoch by the same `VideoClipDataset` (same sampler: 8 frames at
8 fps, same training transform: random resized crop 112, flip, normalise; batch 8):

- from video: `read_clip(..., size=128)` seeks and decodes each clip;
- from the cache: `vidlens data cache`'s format (JPEG q90, 8 fps, 128 px), frames read
  with `os.pread` + `cv2.imdecode`.

with ``num_workers`` 0 and 2 (persistent workers). Figures are clips/s over a whole epoch
(median of the timed epochs, after one warm-up epoch that also starts the workers and
fills their frame-index caches), plus the one-off cost of building the cache and its size.
Results go to the "## Pre-decoded cache (bench_cache.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from vidlens.data.cache import CacheReader, build_cache  # noqa: E402
from vidlens.data.datasets import VideoClipDataset  # noqa: E402
from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.sources import parse_folder  # noqa: E402
from vidlens.data.transforms import TransformConfig, build_train_transform  # noqa: E402

SECTION = "Pre-decoded cache (bench_cache.py)"
GEN_VERSION = 1


def make_media(work: Path, clips: int, frames: int, regenerate: bool) -> tuple[Path, str]:
    """A class-per-folder dataset of `clips` 320x240 videos; reused between runs."""
    root = work / f"cache_bench_{clips}c_{frames}f_v{GEN_VERSION}"
    done = root / ".complete"
    if done.exists() and not regenerate:
        return root, (root / ".source").read_text()
    shutil.rmtree(root, ignore_errors=True)
    try:
        from vidlens.data.synthetic import make_action_dataset

        classes = 6
        make_action_dataset(root, num_per_class=max(1, clips // classes), num_frames=frames, size=(240, 320), fps=25,
                            workers=2, classes=("move_left", "move_right", "move_up", "move_down", "grow", "shrink"))
        source = "vidlens.data.synthetic.make_action_dataset (textured sprites, x264 veryfast crf 20)"
    except ImportError:
        from vidlens.testing import write_pattern_video

        for i in range(clips):
            write_pattern_video(root / f"class{i % 6}" / f"clip{i:03d}.mp4", frames, fps=25, size=(240, 320))
        source = "vidlens.testing.write_pattern_video (block patterns, x264 veryfast crf 23)"
    (root / ".source").write_text(source)
    done.write_text("ok")
    return root, source


def make_loader(dataset: VideoClipDataset, workers: int) -> DataLoader:
    """Persistent workers, as in a training run: epochs after the first pay no worker start-up."""
    return DataLoader(dataset, batch_size=8, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(0))


def epoch(loader: DataLoader) -> int:
    n = 0
    for batch in loader:
        n += batch["video"].shape[0]
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12 clips, 1 repeat: checks that the benchmark runs")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per configuration")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    parser.add_argument("--work", type=Path, default=common.WORK_DIR)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--results", type=Path, default=common.DEFAULT_RESULTS)
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.repeats = 12, 1
    torch.set_num_threads(1)

    root, source = make_media(args.work, args.clips, args.frames, args.regenerate)
    records = parse_folder(root, val_frac=0, test_frac=0)
    train_records, labels = records.records_by_split["train"], records.labels
    video_bytes = sum(Path(r.path).stat().st_size for r in train_records)

    cache_dir = args.work / f"{root.name}_cache_jpeg"
    shutil.rmtree(cache_dir, ignore_errors=True)
    start = time.perf_counter()
    report = build_cache(train_records, cache_dir, fps=8, size=128, image_format="jpeg", quality=90, workers=2)
    build_s = time.perf_counter() - start
    cache = CacheReader(cache_dir)
    cache_bytes = sum(p.stat().st_size for p in cache_dir.glob("shard-*.bin"))

    sampler = SamplerConfig(mode="clip", clip_len=8, stride=1, fps=8)
    transform = build_train_transform(TransformConfig(size=112))
    rows, rates = [], {}
    for workers in args.workers:
        for name, use_cache in (("video", None), ("cache", cache)):
            ds = VideoClipDataset(train_records, labels, sampler, transform, train=True, decode_size=128, cache=use_cache)
            loader = make_loader(ds, workers)
            timing = common.measure(lambda loader=loader: epoch(loader), repeats=args.repeats, warmup=1)
            del loader
            rate = timing.result / timing.median
            rates[(name, workers)] = rate
            rows.append([f"from {name}", workers, timing.result, common.fmt_ms(timing.median), common.fmt_rate(rate),
                         f"{100 * timing.spread:.0f}%"])
            print(f"  {name:5s} workers={workers}: {rate:.1f} clips/s", flush=True)
    speedups = [[f"num_workers={w}", f"{rates[('cache', w)] / rates[('video', w)]:.1f}x"] for w in args.workers]

    headers = ["source", "num_workers", "clips/epoch", "epoch ms (median)", "clips/s", "spread"]
    common.print_table("One training epoch", headers, rows)
    common.print_table("Speed-up of the cache", ["setting", "cache / video"], speedups)
    build = (f"cache build: {report.cached} videos, {report.frames_written} frames in {build_s:.1f} s "
             f"(2 processes); {cache_bytes / 1e6:.1f} MB of JPEG shards vs {video_bytes / 1e6:.1f} MB of H.264")
    print(build)
    if not args.no_write:
        body = common.section_preamble(
            common.command_line(argv), common.library_versions(["torch", "torchvision", "av", "opencv-python-headless"]),
            [f"Data: {len(train_records)} clips, 320x240, {args.frames} frames at 25 fps, from {source}",
             "Sampler: clip mode, 8 frames at 8 fps; transform: random resized crop 112 + flip + normalise; "
             "decode_size 128; batch 8, shuffled; persistent workers; torch threads 1",
             "Cache: `vidlens data cache --fps 8 --size 128 --format jpeg --quality 90`"],
        )
        body += "\n" + common.markdown_table(headers, rows) + "\n" + common.markdown_table(["setting", "cache / video"], speedups)
        body += f"\n- {build}\n"
        common.write_section(args.results, SECTION, body)
        print(f"wrote section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
