"""`vidlens demo`: the whole action-recognition job on synthetic data, in one output folder.

1. Generate the synthetic action dataset (eight motions no single frame can tell apart).
2. Train a temporal model (a small C3D) and, as the control, a frame-averaging model (TSN
   consensus over a small per-frame CNN) on the same split.
3. Evaluate both on the held-out test split: the temporal model should be near-perfect,
   the frame-averaging one near chance (1/8), because a clip and its time reversal hold the
   same frames.
4. Predict fresh videos the models never saw, and run the sliding-window timeline over one
   long video made of several actions in a row.
5. Write an HTML report linking everything.

It returns figures and writes files; the CLI prints.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.data.synthetic import make_action_dataset
from vidlens.engine.config import TrainConfig
from vidlens.io import VideoWriter, iter_frames, probe
from vidlens.report.html import ReportSection, write_html_report
from vidlens.report.timeline import plot_timeline
from vidlens.tasks.predictor import VideoClassifier
from vidlens.workflows.config import ClipConfig, DataConfig, ModelConfig, RecognitionConfig
from vidlens.workflows.predict import write_predictions
from vidlens.workflows.recognition import TrainOutcome, train_recognizer


# Eight classes in four time-reversed pairs. The default synthetic set's rotate_cw/rotate_ccw
# pair is swapped for brighten/darken: a small C3D at 64 px stays at chance on the direction
# of rotation within a CPU budget (measured: 50% on that pair after 30 epochs), see docs/recognition.md.
DEMO_CLASSES = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "brighten", "darken")


@dataclass
class DemoSettings:
    """Sizes chosen so that the full demo trains in a few minutes on 2 CPU cores."""

    per_class: int = 100  # clips per class (70/15/15 train/val/test)
    frames: int = 16
    size: int = 64
    fps: float = 8.0
    epochs: int = 14
    baseline_epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    width: float = 0.25  # C3D channel multiplier
    seed: int = 0
    workers: int = 2

    @classmethod
    def quick(cls) -> DemoSettings:
        """A seconds-long smoke run (tests): same pipeline, far too little training to learn."""
        return cls(per_class=4, frames=8, size=32, epochs=1, baseline_epochs=1, batch_size=8, workers=0)


@dataclass
class DemoOutcome:
    out: Path
    temporal_top1: float
    baseline_top1: float
    chance: float
    heldout_correct: int
    heldout_total: int
    report: Path
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def _recipe(s: DemoSettings, manifest: Path, out: Path, model: ModelConfig, clip: ClipConfig, epochs: int) -> RecognitionConfig:
    train = TrainConfig(epochs=epochs, batch_size=s.batch_size, workers=s.workers, seed=s.seed, optimizer="adamw",
                        lr=s.lr, weight_decay=1e-4, scheduler="cosine", warmup_epochs=min(1.0, epochs / 4))
    return RecognitionConfig(out=str(out), data=DataConfig(manifest=str(manifest), layout="manifest"), clip=clip,
                             model=model, train=train)


def temporal_recipe(s: DemoSettings, manifest: Path, out: Path) -> RecognitionConfig:
    """C3D over every frame of the clip; crops keep most of the frame (the object must stay in view)."""
    # The clip is the whole video: one test view (three would be the same frames three times).
    clip = ClipConfig(sampler="clip", clip_len=s.frames, stride=1, test_clips=1, size=s.size, decode_size=s.size,
                      crop="random_resized", crop_scale=(0.7, 1.0))
    return _recipe(s, manifest, out, ModelConfig(name="c3d", args={"width": s.width}), clip, s.epochs)


def baseline_recipe(s: DemoSettings, manifest: Path, out: Path) -> RecognitionConfig:
    """TSN: a small per-frame CNN whose frame scores are averaged, i.e. blind to frame order."""
    clip = ClipConfig(sampler="tsn", clip_len=min(8, s.frames), size=s.size, decode_size=s.size,
                      crop="random_resized", crop_scale=(0.7, 1.0))
    return _recipe(s, manifest, out, ModelConfig(name="tsn", encoder="small_cnn"), clip, s.baseline_epochs)


def _concatenate(videos: list[Path], out: Path, fps: float) -> list[tuple[float, float, str]]:
    """Join equally sized clips into one video; returns the ground-truth (start_s, end_s, label) spans."""
    spans, t = [], 0.0
    with VideoWriter(out, fps) as writer:
        for video in videos:
            n = 0
            for frame in iter_frames(video):
                writer.write(frame.image)
                n += 1
            spans.append((t, t + n / fps, video.parent.name))
            t += n / fps
    return spans


def _timeline_accuracy(timeline: Any, spans: list[tuple[float, float, str]]) -> float:
    """Share of the video's duration whose segment label matches the ground truth (sampled every 0.05 s)."""
    times = np.arange(0.0, spans[-1][1], 0.05)
    hits = 0
    for t in times:
        truth = next(label for a, b, label in spans if a <= t < b)
        seg = next((s for s in timeline.segments if s.start_s <= t < s.end_s), None)
        hits += int(seg is not None and seg.label == truth)
    return hits / max(len(times), 1)


def run_demo(
    out: str | os.PathLike[str],
    settings: DemoSettings | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda message: None,
    synth_progress: Callable[[int, int], None] | None = None,
) -> DemoOutcome:
    """Run the demo into `out` (created; an earlier demo there is replaced). See the module docstring."""
    s = settings or DemoSettings()
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"generating {s.per_class * len(DEMO_CLASSES)} synthetic clips ({s.frames} frames, {s.size} px) ...")
    data = make_action_dataset(out / "data", s.per_class, s.frames, s.size, s.fps, seed=s.seed, workers=2,
                               progress=synth_progress, overwrite=True, classes=DEMO_CLASSES)
    log(f"training the temporal model (C3D, width {s.width}) for {s.epochs} epochs ...")
    temporal = train_recognizer(temporal_recipe(s, data.manifest, out / "temporal"), progress=progress)
    log(f"training the frame-averaging baseline (TSN over a small CNN) for {s.baseline_epochs} epochs ...")
    baseline = train_recognizer(baseline_recipe(s, data.manifest, out / "frame_average"), progress=progress)
    chance = 1.0 / len(data.classes)

    # Fresh videos from another seed: one per class, then all of them in a row for the timeline.
    log("predicting held-out videos ...")
    heldout = make_action_dataset(out / "heldout", 1, s.frames, s.size, s.fps, seed=s.seed + 1_000_003, workers=2,
                                  overwrite=True, classes=DEMO_CLASSES)
    videos = [heldout.root / r["path"] for r in heldout.records]
    assert temporal.best_checkpoint is not None
    classifier = VideoClassifier.from_checkpoints([temporal.best_checkpoint])
    rows = []
    for video, record in zip(videos, heldout.records, strict=True):
        row = classifier.predict(video, top_k=3)
        row["true_label"] = record["label"]
        rows.append(row)
    correct = sum(1 for r in rows if "top" in r and r["top"][0]["label"] == r["true_label"])
    predictions_dir = out / "predictions"
    files = {name: p for name, p in zip(("predictions_jsonl", "predictions_csv"), write_predictions(rows, predictions_dir), strict=True)}
    long_video = predictions_dir / "actions_in_a_row.mp4"
    spans = _concatenate(videos, long_video, s.fps)
    timeline = classifier.timeline(long_video, smooth=1)
    files["timeline_png"] = plot_timeline(timeline, predictions_dir / "actions_in_a_row_timeline.png")
    timeline_row = {"path": str(long_video), "segments": [seg.to_dict() for seg in timeline.segments],
                    "truth": [{"start_s": round(a, 3), "end_s": round(b, 3), "label": label} for a, b, label in spans],
                    "time_accuracy": round(_timeline_accuracy(timeline, spans), 4)}
    files["timeline_json"] = predictions_dir / "actions_in_a_row_timeline.json"
    files["timeline_json"].write_text(json.dumps(timeline_row, indent=2) + "\n")

    outcome = DemoOutcome(out, temporal.test_metrics.get("top1", float("nan")), baseline.test_metrics.get("top1", float("nan")),
                          chance, correct, len(rows), out / "index.html", 0.0, files)
    outcome.seconds = time.perf_counter() - t0
    summary = {
        "temporal_model": _run_summary(temporal, "c3d"),
        "frame_average_model": _run_summary(baseline, "tsn"),
        "chance": chance,
        "heldout": {"correct": correct, "total": len(rows)},
        "timeline_time_accuracy": timeline_row["time_accuracy"],
        "settings": asdict(s),
        "seconds": round(outcome.seconds, 1),
        "video_info": asdict(probe(videos[0])) if videos else None,
    }
    files["summary"] = out / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n")
    _write_report(outcome, temporal, baseline, rows, timeline_row, summary)
    return outcome


def _run_summary(outcome: TrainOutcome, name: str) -> dict[str, Any]:
    metrics = {k: v for k, v in outcome.test_metrics.items() if k in ("top1", "top5", "mean_class_acc", "macro_f1", "num_videos")}
    return {"model": name, "run_dir": str(outcome.run_dir), "best_checkpoint": str(outcome.best_checkpoint),
            "epochs": len(outcome.history), "monitor": outcome.monitor, "best_monitor": outcome.val_metric, "test": metrics}


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def _write_report(outcome: DemoOutcome, temporal: TrainOutcome, baseline: TrainOutcome, rows: list[dict[str, Any]],
                  timeline_row: dict[str, Any], summary: dict[str, Any]) -> None:
    root = outcome.out
    figures = []
    for title, run in (("temporal model (C3D)", temporal), ("frame-averaging model (TSN)", baseline)):
        m = run.test_metrics
        figures.append({"model": title, "test top-1": m.get("top1", float("nan")), "top-5": m.get("top5", float("nan")),
                        "mean class acc": m.get("mean_class_acc", float("nan")), "macro F1": m.get("macro_f1", float("nan")),
                        "test videos": m.get("num_videos", 0), "epochs": len(run.history)})
    sections = [
        ReportSection("Result", text=(
            f"Eight synthetic motions that no single frame can tell apart. Chance is {outcome.chance:.3f}; "
            f"the temporal model reaches {outcome.temporal_top1:.3f} top-1 on the held-out test split, "
            f"the frame-averaging model {outcome.baseline_top1:.3f}. Run time {outcome.seconds:.0f} s."), table=figures),
    ]
    for title, run in (("Temporal model (C3D)", temporal), ("Frame-averaging model (TSN)", baseline)):
        d = run.run_dir
        images = [_rel(p, root) for p in (d / "curves.png", d / "eval" / "confusion.png") if p.exists()]
        links = [_rel(p, root) for p in (d / "best.pt", d / "last.pt", d / "config.yaml", d / "log.csv",
                                         d / "eval" / "metrics.json", d / "eval" / "per_class.csv") if p.exists()]
        sections.append(ReportSection(title, images=images, links=links))
    table = []
    for row in rows:
        top = row.get("top") or [{"label": row.get("error", "?"), "score": float("nan")}]
        table.append({"video": Path(row["path"]).name, "true": row["true_label"], "predicted": top[0]["label"],
                      "score": float(top[0]["score"]), "correct": "yes" if top[0]["label"] == row["true_label"] else "no"})
    sections.append(ReportSection(
        f"Held-out videos ({outcome.heldout_correct}/{outcome.heldout_total} correct)", table=table,
        links=[_rel(outcome.files["predictions_jsonl"], root), _rel(outcome.files["predictions_csv"], root)]))
    sections.append(ReportSection(
        "Timeline of a long video (the held-out clips in a row)",
        text=f"Segment labels match the ground truth over {timeline_row['time_accuracy']:.0%} of the video.",
        table=[{"start_s": s["start_s"], "end_s": s["end_s"], "label": s["label"], "score": s["score"]} for s in timeline_row["segments"]],
        images=[_rel(outcome.files["timeline_png"], root)],
        links=[_rel(outcome.files["timeline_json"], root), _rel(Path(timeline_row["path"]), root)]))
    sections.append(ReportSection("Files", links=[_rel(outcome.files["summary"], root), "data/manifest.csv", "data/ground_truth.jsonl"]))
    write_html_report(outcome.report, "vidlens demo: action recognition on synthetic motions", sections)
