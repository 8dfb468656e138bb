"""`vidlens train`, `vidlens eval`, `vidlens predict`: action recognition from the command line.

Every `train` flag defaults to "not given" so that `--config run.yaml` values stay unless a
flag overrides them; the flag names are the YAML keys with dashes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from vidlens.cli.common import STATE, console, console_err, exit_if_failed, print_skipped, progress_enabled
from vidlens.errors import ConfigError

# (flag, section, key): where a train flag lands in RecognitionConfig.
_TRAIN_FLAGS = [
    ("data", "data", "root"), ("layout", "data", "layout"), ("manifest", "data", "manifest"),
    ("val_frac", "data", "val_frac"), ("test_frac", "data", "test_frac"), ("exclude", "data", "exclude"),
    ("cache", "data", "cache"),
    ("sampler", "clip", "sampler"), ("clip_len", "clip", "clip_len"), ("stride", "clip", "stride"), ("fps", "clip", "fps"),
    ("test_clips", "clip", "test_clips"), ("test_crop", "clip", "test_crop"), ("size", "clip", "size"),
    ("decode_size", "clip", "decode_size"), ("crop", "clip", "crop"), ("hflip", "clip", "hflip"),
    ("rotation", "clip", "rotation"), ("color_jitter", "clip", "color_jitter"), ("noise_std", "clip", "noise_std"),
    ("model", "model", "name"), ("encoder", "model", "encoder"), ("pretrained", "model", "pretrained"),
    ("freeze_encoder", "model", "freeze_encoder"), ("weights", "model", "weights"),
    ("precompute_features", "model", "precompute_features"),
    ("epochs", "train", "epochs"), ("steps", "train", "steps"), ("min_steps", "train", "min_steps"),
    ("select_by", "train", "select_by"), ("head_defaults", None, "head_defaults"),
    ("batch_size", "train", "batch_size"), ("workers", "train", "workers"),
    ("seed", "train", "seed"), ("optimizer", "train", "optimizer"), ("lr", "train", "lr"),
    ("weight_decay", "train", "weight_decay"), ("momentum", "train", "momentum"), ("nesterov", "train", "nesterov"),
    ("scheduler", "train", "scheduler"), ("warmup_epochs", "train", "warmup_epochs"),
    ("label_smoothing", "train", "label_smoothing"), ("balanced_sampler", "train", "balanced_sampler"),
    ("early_stopping_patience", "train", "early_stopping_patience"), ("amp", "train", "amp"),
    ("accumulate", "train", "accumulate"), ("clip_grad_norm", "train", "clip_grad_norm"),
    ("ema_decay", "train", "ema_decay"), ("device", "train", "device"),
    ("class_weights", None, "class_weights"), ("test_split", None, "test_split"), ("out", None, "out"),
]


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs; values are read as YAML scalars/lists (so 0.25, true, [2,2] work)."""
    import yaml

    args: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(None, f"--model-arg expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        args[key.strip()] = yaml.safe_load(value)
    return args


def train_command(
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset root (class folders, UCF101, HMDB51, Kinetics)."),
    split: Optional[str] = typer.Option(None, "--split", help="Official split, e.g. ucf101:1 or hmdb51:2."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Manifest CSV/JSONL (path,label[,start,end][,split]) or Kinetics CSV."),
    layout: Optional[str] = typer.Option(None, help="auto | folder | ucf101 | hmdb51 | kinetics | manifest."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (see `vidlens models`)."),
    encoder: Optional[str] = typer.Option(None, help="Frame encoder of frame+temporal models."),
    pretrained: Optional[str] = typer.Option(None, help="'imagenet': start the encoder from offline ImageNet weights."),
    freeze_encoder: Optional[bool] = typer.Option(None, "--freeze-encoder/--train-encoder", help="Freeze the frame encoder."),
    precompute_features: Optional[bool] = typer.Option(None, "--precompute-features", help="Frozen encoder: embed frames once, train only the head."),
    weights: Optional[str] = typer.Option(None, help="'kinetics400' for torchvision 3D CNNs (from the torch cache)."),
    model_arg: Optional[list[str]] = typer.Option(None, "--model-arg", help="Extra builder argument KEY=VALUE (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder: best.pt, last.pt, config.yaml, logs, plots."),
    config: Optional[Path] = typer.Option(None, "--config", help="Start from a saved config.yaml; flags override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt exactly where it stopped."),
    val_frac: Optional[float] = typer.Option(None, help="Folder/manifest without splits: validation share."),
    test_frac: Optional[float] = typer.Option(None, help="Folder/manifest without splits: test share."),
    exclude: Optional[Path] = typer.Option(None, help="bad_files.csv from `vidlens data scan`: skip these."),
    cache: Optional[Path] = typer.Option(None, help="Folder of `vidlens data cache`: read frames from it."),
    sampler: Optional[str] = typer.Option(None, help="clip | uniform | tsn."),
    clip_len: Optional[int] = typer.Option(None, help="Frames per clip (segments for tsn)."),
    stride: Optional[int] = typer.Option(None, help="Frame step inside a clip."),
    fps: Optional[float] = typer.Option(None, help="Resample videos to this rate first."),
    test_clips: Optional[int] = typer.Option(None, help="Clips per video at test time."),
    test_crop: Optional[str] = typer.Option(None, help="center | three."),
    size: Optional[int] = typer.Option(None, help="Crop size fed to the model."),
    decode_size: Optional[int] = typer.Option(None, help="Shorter side frames are decoded at."),
    crop: Optional[str] = typer.Option(None, help="random_resized | scale_jitter | center."),
    hflip: Optional[bool] = typer.Option(None, "--hflip/--no-hflip", help="Random horizontal flips (default: unless the dataset forbids)."),
    rotation: Optional[float] = typer.Option(None, help="Max random rotation, degrees."),
    color_jitter: Optional[float] = typer.Option(None, help="Colour jitter strength."),
    noise_std: Optional[float] = typer.Option(None, help="Gaussian noise std on [0,1] pixels."),
    epochs: Optional[int] = typer.Option(None, help="Evaluation rounds (one pass over the data each, unless --steps/--min-steps)."),
    steps: Optional[int] = typer.Option(None, help="Total optimizer steps, spread over the epochs (the data repeats as needed)."),
    min_steps: Optional[int] = typer.Option(None, help="At least this many optimizer steps (small datasets)."),
    select_by: Optional[str] = typer.Option(None, help="Best checkpoint by: auto | metric | loss (auto: loss on a tiny val split)."),
    head_defaults: Optional[bool] = typer.Option(None, "--head-defaults/--no-head-defaults",
                                                 help="Precomputed features: head-training defaults (lr 0.01, >= 300 steps)."),
    batch_size: Optional[int] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, help="DataLoader worker processes."),
    seed: Optional[int] = typer.Option(None),
    optimizer: Optional[str] = typer.Option(None, help="sgd | adam | adamw | rmsprop."),
    lr: Optional[float] = typer.Option(None),
    weight_decay: Optional[float] = typer.Option(None),
    momentum: Optional[float] = typer.Option(None),
    nesterov: Optional[bool] = typer.Option(None, "--nesterov"),
    scheduler: Optional[str] = typer.Option(None, help="cosine | step | plateau | none."),
    warmup_epochs: Optional[float] = typer.Option(None),
    label_smoothing: Optional[float] = typer.Option(None),
    balanced_sampler: Optional[bool] = typer.Option(None, "--balanced-sampler", help="Draw every class equally often."),
    class_weights: Optional[bool] = typer.Option(None, "--class-weights", help="Inverse-frequency class weights in the loss."),
    early_stopping_patience: Optional[int] = typer.Option(None, "--early-stopping", help="Stop after N evaluations without improvement."),
    amp: Optional[str] = typer.Option(None, help="off | bf16 | fp16."),
    accumulate: Optional[int] = typer.Option(None, help="Gradient accumulation steps."),
    clip_grad_norm: Optional[float] = typer.Option(None),
    ema_decay: Optional[float] = typer.Option(None, help="Keep an EMA of the weights (e.g. 0.999)."),
    device: Optional[str] = typer.Option(None, help="auto | cpu | cuda."),
    test_split: Optional[str] = typer.Option(None, help="Split evaluated after training ('none' to skip)."),
) -> None:
    """Train a video classifier; writes OUT/best.pt, last.pt, config.yaml, log.csv, curves.png and eval/."""
    from vidlens.workflows.config import RecognitionConfig
    from vidlens.workflows.recognition import train_recognizer

    cfg = RecognitionConfig.load_yaml(config) if config else RecognitionConfig()
    given = dict(locals())
    if split is not None:
        given["layout"] = split
    for flag, section, key in _TRAIN_FLAGS:
        value = given.get(flag)
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value)
        target = cfg if section is None else getattr(cfg, section)
        setattr(target, key, value)
        if section == "train" and key not in cfg.user_train_keys:
            cfg.user_train_keys.append(key)
    if model_arg:
        cfg.model.args.update(parse_model_args(model_arg))
    cfg.train = type(cfg.train).from_dict(cfg.train.to_dict())  # re-validate after overrides
    if resume and config is None and out and (Path(out) / "config.yaml").exists() and data is None and manifest is None:
        raise ConfigError(None, "--resume continues a run: pass the same flags (or --config OUT/config.yaml)")
    if config is not None and out is None and not resume and (Path(cfg.out) / "best.pt").exists():
        raise ConfigError(cfg.out, "--config reuses this run folder, which already holds a trained model: "
                                   "give --out for the new run (or --resume to continue this one)")
    outcome = train_recognizer(cfg, resume=resume, progress=progress_enabled())
    if outcome.missing:
        console.print(f"[yellow]{outcome.missing} listed videos were not found and were left out[/yellow]")
    last = outcome.history[-1] if outcome.history else {}
    best = "train_loss" if outcome.monitor == "train_loss" else f"val {outcome.monitor}".strip()  # no val split: the loss
    console.print(f"trained {cfg.model.name} for {len(outcome.history)} epochs ({outcome.steps} steps); best {best} "
                  f"{outcome.val_metric if outcome.val_metric is not None else '-'}; last train loss {last.get('train_loss', '-')}")
    if outcome.substitutions:
        console.print(f"[yellow]{outcome.substitutions} unreadable samples were replaced during training[/yellow]")
    for note in outcome.notes:
        console.print(f"[yellow]note: {escape(note)}[/yellow]")
    if outcome.test_metrics:
        _print_metrics(outcome.test_metrics)
    console.print(f"run folder: {outcome.run_dir}")


def _print_metrics(metrics: dict[str, Any]) -> None:
    keys = [k for k in ("top1", "top5", "mean_class_acc", "macro_f1", "mAP", "num_videos") if k in metrics]
    console.print("  ".join(f"{k} {metrics[k]:.4f}" if isinstance(metrics[k], float) else f"{k} {metrics[k]}" for k in keys))


def eval_command(
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="Checkpoint; repeat for an ensemble."),
    weight: Optional[list[float]] = typer.Option(None, "--weight", help="Ensemble weight per checkpoint (repeat)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset root (default: the one the model was trained on)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
    layout: Optional[str] = typer.Option(None, help="Layout or official split, e.g. ucf101:1."),
    split_name: str = typer.Option("test", "--split-name", help="Which split to evaluate: test | val | train."),
    test_clips: Optional[int] = typer.Option(None, help="Clips per video (multi-view testing)."),
    test_crop: Optional[str] = typer.Option(None, help="center | three."),
    batch_size: int = typer.Option(8),
    workers: int = typer.Option(2),
    out: Path = typer.Option(Path("runs/eval"), "--out", help="Writes metrics.json, per_class.csv, confusion.png."),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="bad_files.csv from `vidlens data scan`: skip these."),
) -> None:
    """Evaluate one checkpoint or an ensemble (weighted probability averaging) on a dataset split.

    Unreadable videos are skipped and listed (and in metrics.json "skipped"), never scored as another video.
    """
    from vidlens.engine.config import TrainConfig
    from vidlens.outputs import staged_output
    from vidlens.workflows.recognition import evaluate_checkpoints

    with staged_output(out) as stage:
        report = evaluate_checkpoints(
            checkpoint, stage.path, weights=weight or None, root=str(data) if data else None, layout=layout,
            manifest=str(manifest) if manifest else None, split=split_name, num_clips=test_clips, test_crop=test_crop,
            cfg_train=TrainConfig(batch_size=batch_size, workers=workers), progress=progress_enabled(), exclude=exclude,
        )
    print_skipped(report.skipped)
    if report.per_class and not STATE.quiet:
        from rich.table import Table

        table = Table("class", "precision", "recall", "f1", "support")
        for row in report.per_class:
            table.add_row(row["class"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}", str(row["support"]))
        console.print(table)
    _print_metrics(report.metrics)
    console.print(f"wrote {', '.join(str(stage.final(p)) for p in report.files.values())}")


def predict_command(
    targets: list[Path] = typer.Argument(..., help="Video files and/or folders of videos."),
    checkpoint: list[Path] = typer.Option(..., "--checkpoint", help="Checkpoint; repeat for an ensemble."),
    weight: Optional[list[float]] = typer.Option(None, "--weight", help="Ensemble weight per checkpoint (repeat)."),
    out: Path = typer.Option(Path("runs/predict"), "--out", help="Writes predictions.jsonl and predictions.csv."),
    top_k: int = typer.Option(5, "--top-k"),
    test_clips: Optional[int] = typer.Option(None, help="Clips averaged per video (default: up to 10 spread over the whole video)."),
    timeline: bool = typer.Option(False, "--timeline", help="Sliding-window labels over time, merged into segments (+ PNG)."),
    hop: Optional[float] = typer.Option(None, help="Timeline: seconds between windows (default half a clip)."),
    smooth: int = typer.Option(3, help="Timeline: windows in the moving average."),
    min_segment: float = typer.Option(0.0, help="Timeline: shortest segment kept, seconds."),
    explain: bool = typer.Option(False, "--explain", help="Also explain each prediction: NAME_explain/ (overlays, strip, curve, JSON)."),
    explain_method: str = typer.Option("gradcam", "--explain-method", help="gradcam | gradcam++ | occlusion | integrated-gradients | attention | hirescam."),
) -> None:
    """Label videos with top-k classes (averaged over clips and ensemble members); --timeline for long videos.

    A file that cannot be read gets a row with status "error" and its reason, and the others go on;
    the exit status is 2 when any file failed. Outputs land in --out only when the run completes.
    """
    from vidlens.outputs import staged_output
    from vidlens.report.timeline import plot_timeline
    from vidlens.tasks.predictor import VideoClassifier, find_videos_arg
    from vidlens.workflows.predict import write_predictions

    if explain:
        from vidlens.cli.explain_command import check_method

        check_method(explain_method)
    classifier = VideoClassifier.from_checkpoints(checkpoint, weight or None, num_clips=test_clips)
    rows: list[dict[str, Any]] = []
    videos: list[Path] = []
    for target in targets:
        found = find_videos_arg(target)
        if not found:  # a folder without videos: reported like an unreadable file
            rows.append({"path": str(target), "status": "error", "error": "no video files in this folder"})
            _print_failure(target, rows[-1]["error"])
        videos.extend(found)
    png_names: set[str] = set()  # videos in different folders may share a name: one PNG each
    with staged_output(out) as stage:
        for video in videos:
            if timeline:
                # One decoding pass: the whole-video scores average the timeline's windows.
                with _timeline_progress(video.name) as report:
                    row, result = classifier.predict_timeline(video, top_k, hop_s=hop, smooth=smooth,
                                                              min_segment_s=min_segment, progress=report)
            else:
                row, result = classifier.predict(video, top_k), None
            if result is not None:
                name, n = video.stem, 1
                while name in png_names:
                    n += 1
                    name = f"{video.stem}_{n}"
                png_names.add(name)
                row["timeline_png"] = str(stage.final(plot_timeline(result, stage.path / f"{name}_timeline.png")))
            if explain and "error" not in row:
                from vidlens.cli.explain_command import check_method, explain_beside

                explain_beside(classifier, video, row, stage, png_names, check_method(explain_method))
            row["status"] = "error" if "error" in row else "ok"
            rows.append(row)
            if "error" in row:
                _print_failure(video, row["error"])
            else:
                best = row["top"][0]
                extra = f"  ({len(row['segments'])} segments)" if "segments" in row else ""
                extra += f"; {row['averaged']}" if "averaged" in row else ""
                console.print(escape(f"{video.name}: {best['label']} {best['score']:.3f}{extra}"), highlight=False)
        files = [stage.final(p) for p in write_predictions(rows, stage.path)]
    console.print(f"wrote {', '.join(str(p) for p in files)}")
    exit_if_failed([row["path"] for row in rows if row["status"] == "error"], len(rows))


def _print_failure(path: Path | str, reason: str) -> None:
    """One line on stderr per file that failed; the command goes on with the others."""
    console_err.print(f"[yellow]{escape(str(path))}: {escape(reason)}[/yellow]", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _timeline_progress(name: str, every_s: float = 5.0) -> Iterator[Callable[[float, float], None]]:
    """A `progress(done_s, total_s)` callback: a rich bar on a terminal, else a plain line on stderr
    every `every_s` seconds (nothing with --quiet)."""
    from vidlens.cli.common import console_err, make_progress

    if progress_enabled():
        with make_progress() as bar:
            task = bar.add_task(f"timeline {name}", total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)
        return
    start, last = time.monotonic(), [time.monotonic()]

    def line(done: float, total: float) -> None:
        now = time.monotonic()
        if STATE.quiet or (now - last[0] < every_s and done < total):
            return
        last[0] = now
        speed = done / max(now - start, 1e-9)
        console_err.print(f"timeline {name}: {done:.0f}/{total:.0f} s of video ({done / max(total, 1e-9):.0%}, "
                          f"{speed:.1f}x real time)", highlight=False, soft_wrap=True)

    yield line


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("predict")(predict_command)
