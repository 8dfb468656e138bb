"""Shot boundary detection benchmark: vidlens against PySceneDetect on the same files, in the same run.

    python benchmarks/bench_shots.py [--quick] [--sections real,synthetic,long] [--model PATH]
                                     [--results PATH] [--work DIR] [--seed N] [--no-write]

Sections (default: all, in this order; each writes its own part of benchmarks/RESULTS.md):
- `real` (`_shots_real.py`): the EVAL split of real transitions (`vidlens.data.transitions`: real
  single-shot segments joined by the ffmpeg CLI with cuts, dissolves, fades through black and white,
  wipes; hard-negative single shots). F1 per kind, pooled P/R/F1 and false boundaries per 5 minutes
  for vidlens learned (the default), classic and both, and PySceneDetect's Content, Adaptive,
  Threshold and Hash detectors; whole-process speed (start-up included) of `vidlens shots` and
  `scenedetect detect-content` at 640x360 and 1280x720. -> "Shot detection on real transitions (bench_shots.py)".
- `synthetic` (`_shots_synthetic.py`): bikes.mp4 and a file of real clips joined by cuts, then
  synthetic sets with flashes, fast objects and pans, and a 720p synthetic video; vidlens' default
  detector against four PySceneDetect set-ups, in-process frames/s.
- `long`: a 30-minute 720p synthetic file, vidlens' memory staying flat and its speed, in child processes.
  `synthetic` and `long` -> "Shot detection (bench_shots.py)".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
from _shots_real import SECTION as REAL_SECTION  # noqa: E402,F401  (the section titles, for callers and tests)
from _shots_synthetic_report import SECTION  # noqa: E402,F401

SECTIONS = ("real", "synthetic", "long")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few small files (2 joined videos, no negatives; 2 tiny synthetic videos; a 1-minute 360p "
                             "long video): checks it runs, figures not meaningful")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, of: %(default)s")
    parser.add_argument("--model", default=None, help="a shotnet.onnx (or its folder) for vidlens' learned detector "
                                                      "(default: the packaged model)")
    parser.add_argument("--results", type=Path, default=common.DEFAULT_RESULTS, help="markdown file (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=common.WORK_DIR, help="generated media, cached (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the real EVAL split (default %(default)s)")
    parser.add_argument("--synthetic-seed", type=int, default=7, help="seed of the synthetic media (default %(default)s)")
    parser.add_argument("--videos", type=int, default=None, help="synthetic set size (default 12; quick 2)")
    parser.add_argument("--long-minutes", type=float, default=None, help="long video length (default 30; quick 1)")
    parser.add_argument("--no-long-pyscenedetect", action="store_true", help="skip PySceneDetect on the long video")
    parser.add_argument("--regenerate", action="store_true", help="remake the generated synthetic media even if cached")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the results file")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        parser.error(f"--sections: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    args.videos = args.videos or (2 if args.quick else 12)
    args.long_minutes = args.long_minutes or (1.0 if args.quick else 30.0)
    if args.videos < 1 or args.long_minutes <= 0:
        parser.error("--videos and --long-minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    if "real" in args.sections:  # real footage first
        import _shots_real

        t0 = time.perf_counter()
        _shots_real.run(args, argv, __file__, log)
        log(f"section real: {time.perf_counter() - t0:.0f} s")
    if "synthetic" in args.sections or "long" in args.sections:
        import _shots_synthetic

        t0 = time.perf_counter()
        _shots_synthetic.run(args, argv, __file__, log)
        log(f"sections {', '.join(s for s in args.sections if s != 'real')}: {time.perf_counter() - t0:.0f} s")
    log(f"bench_shots: {time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
