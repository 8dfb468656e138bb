"""Training-loop benchmark: `vidlens.engine.fit` against a plain PyTorch loop, and the frozen-encoder
feature-precompute speed-up.

    python benchmarks/bench_train.py [--quick] [--results PATH] [--no-write]

1. Loop overhead. The same model (the demo's C3D, width 0.25, 16 frames at 64 px), the same
   in-memory clips (pre-rendered synthetic motions, so decoding is not part of the figure), the
   same batch size, optimizer (AdamW) and cosine schedule, `num_workers=0`. The plain loop is the
   textbook one (DataLoader, forward, cross-entropy, backward, step). `fit` adds what a real run
   needs: progress accounting, per-epoch checkpoints (best and last, atomic), CSV/TensorBoard logs,
   RNG snapshots. Figure: training clips/s over whole epochs, both run alternately in one process;
   target: vidlens >= 0.95x the plain loop.
2. Precompute. A GRU head over a frozen ImageNet MobileNetV2 (8 frames at 112 px) trained on
   synthetic videos decoded by `VideoClipDataset`: per-epoch seconds when every epoch decodes and
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


def plain_loop(dataset: Dataset, epochs: int, batch_size: int, lr: float, seed: int) -> float:
    """The hand-written baseline; returns training clips/s."""
    torch.manual_seed(seed)
    model = build_model("c3d", len(CLASSES), width=0.25)
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


def vidlens_fit(dataset: Dataset, epochs: int, batch_size: int, lr: float, seed: int, work: Path) -> float:
    """`fit` on the same data; returns training clips/s (whole run, checkpoints and logs included)."""
    torch.manual_seed(seed)
    model = build_model("c3d", len(CLASSES), width=0.25)
    task = ClassificationTask(model, list(CLASSES), "c3d", {"width": 0.25}, {})
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


def precompute_benchmark(work: Path, per_class: int, epochs: int) -> dict:
    from vidlens.data.datasets import VideoClipDataset
    from vidlens.data.samplers import SamplerConfig
    from vidlens.data.sources import parse_folder
    from vidlens.data.transforms import TransformConfig, build_train_transform
    from vidlens.models import input_normalization
    from vidlens.workflows.precompute import precompute_features

    root = work / f"precompute_{per_class}"
    if not (root / "dataset.json").exists():
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
    common.WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=common.WORK_DIR))
    try:
        dataset = ClipTensors(clips, 16 if not args.quick else 8, 64 if not args.quick else 32)
        batch, lr = 16 if not args.quick else 8, 3e-3
        timings = common.measure_interleaved({
            "plain": lambda: plain_loop(dataset, epochs, batch, lr, 0),
            "vidlens": lambda: vidlens_fit(dataset, epochs, batch, lr, 0, work),
        }, repeats=repeats, warmup=1 if not args.quick else 0)
        rates = {}
        for name in ("plain", "vidlens"):
            rates[name] = len(dataset) // batch * batch * epochs / timings[name].median
        ratio = rates["vidlens"] / rates["plain"]
        pre = precompute_benchmark(work, per_class, pc_epochs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [["plain PyTorch loop", f"{rates['plain']:.1f}", "1.00"],
            ["vidlens fit (checkpoints, logs)", f"{rates['vidlens']:.1f}", f"{ratio:.3f}"]]
    common.print_table("training clips/s (C3D w0.25, 16x64x64, batch 16, in-memory clips)", ["loop", "clips/s", "ratio"], rows)
    pre_rows = [
        ["frozen encoder, decode + CNN every epoch", f"{pre['end_to_end_epoch_s']:.2f}", "-"],
        ["precomputed features, head only", f"{pre['head_epoch_s']:.2f}", f"{pre['precompute_s']:.2f}"],
    ]
    common.print_table("seconds per epoch (GRU over frozen MobileNetV2, 8x112x112)", ["mode", "s/epoch", "one-off s"], pre_rows)
    print(f"vidlens/plain {ratio:.3f} ({common.verdict(ratio >= 0.95)}); precompute speed-up per epoch "
          f"{pre['speedup_per_epoch']:.1f}x, over {pre['epochs']} epochs {pre['speedup_total']:.1f}x")
    if args.no_write:
        return 0
    body = common.section_preamble(common.command_line(script=__file__), common.library_versions(("torch", "torchvision", "av")),
                                   started=started, machine=machine) + "\n"
    body += "Loop overhead: the same C3D (width 0.25), in-memory 16x64x64 clips, batch 16, AdamW + cosine, "
    body += f"{len(dataset)} clips x {epochs} epochs, `num_workers=0`, plain loop and `fit` alternated, median of {repeats}.\n\n"
    body += common.markdown_table(["loop", "clips/s", "ratio to plain"], rows) + "\n\n"
    body += f"**vidlens / plain = {ratio:.3f}** (target >= 0.95: {common.verdict(ratio >= 0.95)}).\n\n"
    body += (f"Feature precompute: GRU head over a frozen ImageNet MobileNetV2, {pre['videos']} synthetic videos "
             f"(uniform 8 frames, 112 px crops of 128 px decodes, DataLoader workers 2), {pre['epochs']} epochs.\n\n")
    body += common.markdown_table(["mode", "s/epoch", "one-off s"], pre_rows) + "\n\n"
    body += (f"**Per-epoch speed-up {pre['speedup_per_epoch']:.1f}x**; over {pre['epochs']} epochs including the one-off "
             f"precompute {pre['speedup_total']:.1f}x; precompute pays for itself after {pre['break_even_epochs']:.1f} epochs.\n")
    common.write_section(args.results, SECTION, body)
    print(f"wrote section '{SECTION}' of {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
