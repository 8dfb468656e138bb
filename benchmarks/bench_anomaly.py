"""Anomaly detection on real fixed-camera footage with inserted anomalies: frame-level AUC per kind, localisation, speed.

    python benchmarks/bench_anomaly.py [--quick] [--methods prediction,features,flow] [--out DIR] [--data DIR]
                                       [--results PATH] [--no-write]

The set is `_anomaly_data.py`'s (cached under --data, default runs/bench_anomaly/data/<quick|full>): each fixed
camera's (opencv-doc vtest.avi; shared/realdata decode/normal5.avi) first part is its normal training footage,
its later part is cut into windows, each giving an unmodified normal clip and a twin with an anomaly inserted at
known frames (a person played backwards on its path, a person at 4x speed, a real object appearing and staying,
a patch of another real video's motion).
For each method, per camera: `train_anomaly_model([training file], AnomalyConfig(method=...))` (fits on the first
80 %, calibrates on the last 20 %), then `score_video` on every test clip. Scores: `normalised` (min-max per
video, as the papers) and `absolute` (calibrated on the camera's normal footage, comparable across videos).
- AUC per kind: frame-level ROC AUC (sklearn) over the frames of that kind's clips + every normal clip,
  normalised scores; "all": every test frame, normalised and absolute (micro AUC).
- Baseline (no learning, same run, same frames at the same working size): frame-difference energy, the mean
  absolute difference of consecutive grayscale frames; heat = |difference| on a 12x16 grid; its absolute score
  is calibrated the same way on the last 20 % of the camera's training footage.
- Localisation: share of anomalous frames where the heat map's peak (heat resized bilinearly to the frame)
  falls inside the inserted region's box; "chance" = the mean box area share (a uniformly random peak).
- Speed: training seconds (both cameras, reading included) and scoring frames/s of `score_video` (decoding
  included), one torch thread, on this machine.
--quick: vtest only, 200 training frames, one clip per kind + one normal, the methods' cheapest settings.
Every test window gives a normal clip and an anomalous twin (quick: the first window's normal clip only).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _anomaly_data as data  # noqa: E402
import _common as common  # noqa: E402

SECTION = "Anomaly detection (issue 17): bench_anomaly.py"
METHODS = ("prediction", "features", "flow")
BASELINE = "frame-diff energy"
QUICK_ARGS = {  # the cheapest settings, --quick only (keys a method does not take are dropped)
    "prediction": {"epochs": 1, "max_windows": 64},
    "features": {"memory_frames": 40},
    "flow": {},
}
DEFAULT_ROOT = common.BENCH_DIR.parent / "runs" / "bench_anomaly"


def method_args(name: str, quick: bool) -> dict:
    from vidlens.tasks.anomaly.base import METHODS as REGISTRY

    if not quick:
        return {}
    params = inspect.signature(REGISTRY[name]).parameters
    return {k: v for k, v in QUICK_ARGS.get(name, {}).items() if k in params}


# ---------------------------------------------------------------------------------------------- baseline
def diff_energy(frames: np.ndarray, grid: tuple[int, int] = (12, 16)) -> tuple[np.ndarray, np.ndarray]:
    """Frame-difference energy of `uint8 (T,H,W,3)` frames: scores `(T,)` (mean |gray_t - gray_t-1|; frame 0 takes
    frame 1's) and heat `(T, gh, gw)` (the |difference| averaged per cell)."""
    import cv2

    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float32)
    diff = np.abs(np.diff(gray, axis=0))
    if not len(diff):
        return np.zeros(len(frames)), np.zeros((len(frames), *grid), np.float32)
    diff = np.concatenate([diff[:1], diff])
    heat = np.stack([cv2.resize(d, (grid[1], grid[0]), interpolation=cv2.INTER_AREA) for d in diff])
    return diff.mean(axis=(1, 2)).astype(np.float64), heat


def baseline_run(manifest: dict, size: tuple[int, int]) -> dict:
    from vidlens.tasks.anomaly.base import Calibration
    from vidlens.tasks.anomaly.frames import read_frames

    out: dict = {"clips": {}, "train_s": 0.0, "score_s": 0.0, "frames": 0}
    for cam in manifest["cameras"]:
        t0 = time.perf_counter()
        normal, _, _ = read_frames(cam["train"], size)
        held = normal[int(len(normal) * 0.8) - 1:]
        calibration = Calibration.from_scores(diff_energy(held)[0][1:])
        out["train_s"] += time.perf_counter() - t0
        for clip in manifest["clips"]:
            if clip["camera"] != cam["name"]:
                continue
            t1 = time.perf_counter()
            frames, _, _ = read_frames(clip["path"], size)
            raw, heat = diff_energy(frames)
            out["score_s"] += time.perf_counter() - t1
            out["frames"] += len(raw)
            span = float(raw.max() - raw.min())
            out["clips"][clip["path"]] = {"raw": raw, "absolute": calibration.absolute(raw), "heat": heat,
                                          "normalised": (raw - raw.min()) / span if span > 0 else np.zeros_like(raw)}
    return out


def method_run(name: str, manifest: dict, quick: bool, work: Path) -> dict:
    from vidlens.tasks.anomaly.base import AnomalyConfig
    from vidlens.tasks.anomaly.score import score_video
    from vidlens.tasks.anomaly.train import train_anomaly_model

    out: dict = {"clips": {}, "train_s": 0.0, "score_s": 0.0, "frames": 0, "facts": {}}
    for cam in manifest["cameras"]:
        config = AnomalyConfig(method=name, method_args=method_args(name, quick))
        t0 = time.perf_counter()
        model = train_anomaly_model([cam["train"]], config)
        out["train_s"] += time.perf_counter() - t0
        model.save(work / f"{name}_{cam['name']}.pt")
        out["facts"][cam["name"]] = {k: v for k, v in model.facts.items() if isinstance(v, (int, float, str))}
        for clip in manifest["clips"]:
            if clip["camera"] != cam["name"]:
                continue
            t1 = time.perf_counter()
            res = score_video(model, clip["path"])
            out["score_s"] += time.perf_counter() - t1
            out["frames"] += len(res.raw)
            if len(res.raw) != clip["frames"]:
                raise RuntimeError(f"{name}: {len(res.raw)} scores for {clip['frames']} frames of {clip['path']}")
            out["clips"][clip["path"]] = {"raw": res.raw, "absolute": res.absolute, "normalised": res.normalised,
                                          "heat": res.heat}
    return out


# ---------------------------------------------------------------------------------------------- metrics
def frame_auc(clips: list[dict], scores: dict, key: str) -> float | None:
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([clip["labels"] for clip in clips])
    s = np.concatenate([scores[clip["path"]][key] for clip in clips])
    if y.min() == y.max():
        return None
    return float(roc_auc_score(y, s))


def peak_hits(clip: dict, heat: np.ndarray) -> list[bool]:
    """For each anomalous frame: does the peak of `heat (h,w)`, resized bilinearly to the clip, fall in its box?"""
    import cv2

    h, w = clip["size"]
    hits = []
    for t, box in enumerate(clip["boxes"]):
        if not clip["labels"][t] or box is None:
            continue
        up = cv2.resize(np.asarray(heat[t], np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        y, x = np.unravel_index(int(np.argmax(up)), up.shape)
        hits.append(bool(box[0] <= x < box[2] and box[1] <= y < box[3]))
    return hits


def evaluate(manifest: dict, run: dict) -> dict:
    clips = manifest["clips"]
    normal = [c for c in clips if c["kind"] == "normal"]
    kinds = [k for k in data.KINDS if any(c["kind"] == k for c in clips)]
    result = {"auc": {}, "auc_absolute": {}}
    for kind in kinds:
        sel = [c for c in clips if c["kind"] == kind] + normal
        result["auc"][kind] = frame_auc(sel, run["clips"], "normalised")
        result["auc_absolute"][kind] = frame_auc(sel, run["clips"], "absolute")
    result["auc"]["all"] = frame_auc(clips, run["clips"], "normalised")
    result["auc_camera"] = {cam: [frame_auc([c for c in clips if c["camera"] == cam], run["clips"], key)
                                  for key in ("normalised", "absolute")] for cam in dict.fromkeys(c["camera"] for c in clips)}
    result["auc_absolute"]["all"] = frame_auc(clips, run["clips"], "absolute")
    within = [frame_auc([c], run["clips"], "raw") for c in clips if c["kind"] != "normal"]
    result["auc_within_clip"] = float(np.mean([a for a in within if a is not None])) if within else None
    hits = [h for c in clips for h in peak_hits(c, run["clips"][c["path"]]["heat"])]
    result["localisation"] = float(np.mean(hits)) if hits else None
    result["train_s"] = run["train_s"]
    result["score_fps"] = run["frames"] / max(run["score_s"], 1e-9)
    result["frames"] = run["frames"]
    return result


def bootstrap_all(manifest: dict, run: dict, key: str, rounds: int = 200, seed: int = 0) -> list[float]:
    """5th and 95th percentiles of the 'all' AUC when the test clips are resampled with replacement (clip-level
    bootstrap: how much the figure rests on a few clips)."""
    rng = np.random.default_rng(seed)
    clips = manifest["clips"]
    values = []
    for _ in range(rounds):
        pick = [clips[i] for i in rng.integers(0, len(clips), len(clips))]
        value = frame_auc(pick, run["clips"], key)
        if value is not None:
            values.append(value)
    return [float(np.percentile(values, 5)), float(np.percentile(values, 95))] if values else [float("nan")] * 2


def chance_localisation(manifest: dict) -> float:
    shares = [(b[2] - b[0]) * (b[3] - b[1]) / (c["size"][0] * c["size"][1])
              for c in manifest["clips"] for b, lab in zip(c["boxes"], c["labels"]) if lab and b]
    return float(np.mean(shares)) if shares else 0.0


def figure(path: Path, manifest: dict, runs: dict, results: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    kinds = [k for k in [*data.KINDS, "all"] if k in next(iter(results.values()))["auc"]]
    examples = {k: next(c for c in manifest["clips"] if c["kind"] == k) for k in kinds if k != "all"}
    fig, axes = plt.subplots(1 + (len(examples) + 1) // 2, 2, figsize=(12, 3.2 * (1 + (len(examples) + 1) // 2)))
    axes = np.atleast_2d(axes)
    ax = axes[0, 0]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        vals = [results[name]["auc"][k] or 0 for k in kinds]
        ax.bar(np.arange(len(kinds)) + i * width, vals, width, label=name)
    ax.set_xticks(np.arange(len(kinds)) + width * (len(names) - 1) / 2, kinds)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("frame AUC (normalised)")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for name in names:
        ax.bar(name, results[name]["localisation"] or 0)
    ax.axhline(chance_localisation(manifest), color="grey", lw=0.8, ls="--", label="chance")
    ax.set_ylabel("peak inside inserted box")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    for j, (kind, clip) in enumerate(examples.items()):
        ax = axes[1 + j // 2, j % 2]
        labels = np.asarray(clip["labels"])
        ax.fill_between(np.arange(len(labels)), 0, labels, color="red", alpha=0.15, step="mid", label="inserted")
        for name in names:
            ax.plot(runs[name]["clips"][clip["path"]]["normalised"], label=name, lw=1)
        ax.set_title(f"{kind}: {Path(clip['path']).name}", fontsize=9)
        ax.set_xlabel("frame")
        ax.legend(fontsize=6)
    for j in range(len(examples), 2 * ((len(examples) + 1) // 2)):
        axes[1 + j // 2, j % 2].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="vtest only, 5 clips, cheapest settings (< ~60 s)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", default=str(DEFAULT_ROOT), help="folder for bench_anomaly.json/.png and the models")
    parser.add_argument("--data", default=None, help="cache of the built set (default: <out>/data/<quick|full>)")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import torch

    from vidlens.tasks.anomaly.base import AnomalyConfig, load_builtin_methods

    torch.set_num_threads(1)
    load_builtin_methods()
    started, machine = common.now(), common.machine_info()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest = data.build_set(Path(args.data) if args.data else out / "data" / ("quick" if args.quick else "full"),
                              quick=args.quick)
    build_s = time.perf_counter() - t0
    size = AnomalyConfig().size
    runs = {BASELINE: baseline_run(manifest, size)}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        runs[name] = method_run(name, manifest, args.quick, out)
    results = {name: evaluate(manifest, run) for name, run in runs.items()}
    for name, run in runs.items():
        results[name]["auc_all_90"] = {key: bootstrap_all(manifest, run, key) for key in ("normalised", "absolute")}

    kinds = [k for k in data.KINDS if k in results[BASELINE]["auc"]]
    headers = ["method", *[f"AUC {k}" for k in kinds], "AUC all", "AUC within clip", "peak in box", "train s",
               "score frames/s"]
    table = [[name, *[f"{fmt(r['auc'][k])} / {fmt(r['auc_absolute'][k])}" for k in [*kinds, "all"]],
              fmt(r["auc_within_clip"]), fmt(r["localisation"]), f"{r['train_s']:.1f}", common.fmt_rate(r["score_fps"])]
             for name, r in results.items()]
    base = results[BASELINE]
    losses = []
    for name, r in results.items():
        if name == BASELINE:
            continue
        lost = [k for k in [*kinds, "all"] if (r["auc"][k] or 0) < (base["auc"][k] or 0)]
        lost += [f"{k} (absolute)" for k in [*kinds, "all"] if (r["auc_absolute"][k] or 0) < (base["auc_absolute"][k] or 0)]
        lost += ["within clip"] if (r["auc_within_clip"] or 0) < (base["auc_within_clip"] or 0) else []
        lost += ["localisation"] if (r["localisation"] or 0) < (base["localisation"] or 0) else []
        losses.append(f"{name}: " + (", ".join(lost) if lost else "nothing"))
    clips = manifest["clips"]
    counts = {k: sum(c["kind"] == k for c in clips) for k in ["normal", *kinds]}
    frames = {k: sum(sum(c["labels"]) for c in clips if c["kind"] == k) for k in kinds}
    notes = common.Notes()
    cams = "; ".join(f"real: {c['source']} at {c['size'][1]}x{c['size'][0]}, {c['fps']:g} fps, training frames "
                     f"{c['train_frames'][0]}-{c['train_frames'][1] - 1}, test material {c['test_frames'][0]}-"
                     f"{c['test_frames'][1] - 1}" for c in manifest["cameras"])
    notes.add(f"cameras: {cams}")
    notes.add(f"test clips: {len(clips)} ({', '.join(f'{k} {n}' for k, n in counts.items())}), "
              f"{sum(c['frames'] for c in clips)} frames, anomalous frames per kind: "
              f"{', '.join(f'{k} {n}' for k, n in frames.items())}; set built/reused in {build_s:.0f} s")
    notes.add("AUC cells are 'normalised / absolute' frame-level ROC AUC: per kind over the frames of that kind's clips + "
              "all normal clips, 'all' over every test frame (micro); normalised = per-video min-max (the papers' "
              "protocol), absolute = calibrated on the camera's held-out normal footage, pooled across clips and cameras; "
              "'within clip' = mean AUC inside each anomalous clip (raw scores: does the score rise while the anomaly "
              "is visible)")
    notes.add("kinds: against_flow = a person tracked in the camera's own test footage, composited back on its path "
              "played backwards; speed = a tracked person at 4x (every 4th frame); object = a real bag or bicycle "
              "(bikes.mp4) appearing and staying; motion = 1.2 s of another real video's busiest motion (tree.avi: a "
              "hand over foliage; bigbuckbunny.mp4) in a feathered ellipse. normal5 has no person in its test part, so "
              "only object and motion there. Every anomalous clip has an unmodified normal twin (same frames)")
    notes.add("AUC all per camera (normalised / absolute): " + "; ".join(
        f"{name}: " + ", ".join(f"{cam} {fmt(v[0])} / {fmt(v[1])}" for cam, v in r["auc_camera"].items())
        for name, r in results.items()))
    notes.add("AUC all, 90 % clip-bootstrap intervals (normalised; absolute): " + "; ".join(
        f"{name} {r['auc_all_90']['normalised'][0]:.2f}-{r['auc_all_90']['normalised'][1]:.2f}; "
        f"{r['auc_all_90']['absolute'][0]:.2f}-{r['auc_all_90']['absolute'][1]:.2f}" for name, r in results.items())
        + f" (each kind rests on {min(counts[k] for k in kinds)}-{max(counts[k] for k in kinds)} clips: read small "
        "differences as noise)")
    notes.add(f"baseline '{BASELINE}': mean |gray(t) - gray(t-1)| at the same working size {size[1]}x{size[0]}, no learning")
    notes.add(f"peak in box: share of anomalous frames whose heat-map peak lies in the inserted box; chance "
              f"(mean box area share) {chance_localisation(manifest):.3f}")
    notes.add("speed: training = both cameras' reading + fit + calibration; scoring = score_video incl. decoding; "
              "1 torch thread" + (" (--quick: " + ", ".join(f"{m} {method_args(m, True)}" for m in runs
                                                           if m != BASELINE) + ")" if args.quick else ""))
    notes.add("where a method loses to the baseline: " + "; ".join(losses))
    common.print_table(SECTION, headers, table)

    doc = {"command": common.command_line(argv, __file__), "quick": args.quick, "size": list(size),
           "cameras": manifest["cameras"], "clips": [{k: c[k] for k in ("path", "camera", "kind", "frames")} for c in clips],
           "methods": results, "baseline": BASELINE, "chance_localisation": chance_localisation(manifest),
           "facts": {n: r.get("facts", {}) for n, r in runs.items()},
           "per_clip": {n: {Path(p).name: np.round(v["normalised"], 4).tolist() for p, v in r["clips"].items()}
                        for n, r in runs.items()}}
    (out / "bench_anomaly.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    figure(out / "bench_anomaly.png", manifest, runs, results)
    shown = out.resolve().relative_to(common.BENCH_DIR.parent) if out.resolve().is_relative_to(common.BENCH_DIR.parent) else out
    notes.add(f"outputs: {shown}/bench_anomaly.json and .png (a bar chart per kind and localisation, score curves per kind)")
    common.publish_table_section(args.results, SECTION, argv, __file__, ("torch", "opencv-python-headless", "scikit-learn"),
                                 headers, table, "l" + "r" * (len(headers) - 1), notes, started=started, machine=machine,
                                 write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
