"""`vidlens summarize ...`: video summarization on SumMe/TVSum-style HDF5 files.

`summarize eval` runs the standard k-fold protocol, `summarize train` fits a model on every video.
The group dispatches an unknown first argument to the `video` subcommand (registered elsewhere),
so `vidlens summarize VIDEO.mp4 --ratio 0.15` means `vidlens summarize video VIDEO.mp4 --ratio 0.15`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from vidlens.cli.common import VideoDefaultGroup, console, make_progress

summarize_app = typer.Typer(
    cls=VideoDefaultGroup,
    help="Video summarization: `vidlens summarize VIDEO --out DIR` cuts a short summary of a file; "
         "`eval` and `train` run DSN / supervised / baseline methods on SumMe/TVSum HDF5 files (or train a DSN on a folder of videos).",
    no_args_is_help=True,
)

METHOD_HELP = "dsn (unsupervised RL), supervised (attention regressor on gtscore), uniform, kmeans, random."


def _build_config(method: str, epochs: int | None, lr: float | None, ratio: float, seed: int, folds: int,
                  reward_features: str | None):
    from vidlens.errors import ConfigError
    from vidlens.tasks.summarize import DSNConfig, EvalConfig, SupervisedConfig

    if epochs is not None and epochs < 1:
        raise ConfigError(None, f"--epochs must be >= 1, got {epochs}")
    if lr is not None and lr <= 0:
        raise ConfigError(None, f"--lr must be > 0, got {lr}")
    if reward_features not in (None, "raw", "l2"):
        raise ConfigError(None, f"--reward-features must be raw or l2, got {reward_features!r}")
    dsn = DSNConfig(seed=seed)
    sup = SupervisedConfig(seed=seed)
    for cfg in (dsn, sup):
        if epochs is not None:
            cfg.epochs = epochs
        if lr is not None:
            cfg.lr = lr
    if reward_features is not None:
        dsn.reward_features = reward_features  # type: ignore[assignment]
    return EvalConfig(ratio=ratio, seed=seed, folds=folds, dsn=dsn, supervised=sup)


@summarize_app.command("eval")
def eval_command(
    h5: Path = typer.Option(..., "--h5", help="SumMe/TVSum-style HDF5 file (features, gtscore, user_summary, ...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: fscores.json, folds.csv, folds.png, config.yaml, models/."),
    splits: Path | None = typer.Option(None, "--splits", help="Splits JSON (list of {train_keys, test_keys}); default: --folds seeded folds."),
    method: str = typer.Option("dsn", "--method", help=METHOD_HELP),
    metric: str = typer.Option("auto", "--metric", help="avg (TVSum), max (SumMe) or auto (max if the file name contains 'summe')."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (default: the method's own)."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the method's own)."),
    ratio: float = typer.Option(0.15, "--ratio", help="Summary length as a fraction of the video."),
    folds: int = typer.Option(5, "--folds", help="Number of folds when no --splits file is given."),
    seed: int = typer.Option(0, "--seed", help="Seed for folds, training and the random baseline."),
    reward_features: str | None = typer.Option(None, "--reward-features", help="DSN representativeness reward on raw or l2 features."),
) -> None:
    """Standard k-fold SumMe/TVSum evaluation: per-fold F-scores and their mean."""
    from rich.table import Table

    from vidlens.errors import ConfigError
    from vidlens.outputs import staged_output
    from vidlens.tasks.summarize import METHODS, evaluate_h5
    from vidlens.tasks.summarize.evaluate import write_outputs

    if method not in METHODS:
        raise ConfigError(None, f"unknown --method {method!r}; valid: {', '.join(METHODS)}")
    config = _build_config(method, epochs, lr, ratio, seed, folds, reward_features)
    with staged_output(out) as stage, make_progress() as bar:
        task = bar.add_task(f"summarize eval {method}", total=None)
        result = evaluate_h5(h5, splits, method, metric, config, stage.path,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
        for fold in result.folds:  # fscores.json names the fold models where they will be, not in the staging folder
            fold.checkpoint = str(stage.final(fold.checkpoint)) if fold.checkpoint else None
        write_outputs(result, stage.path, config)
    table = Table(title=f"{method} on {h5.name} (metric {result.metric}, ratio {ratio:g})")
    table.add_column("fold", justify="right")
    table.add_column("F-score", justify="right")
    table.add_column("videos", justify="right")
    for f in result.folds:
        table.add_row(str(f.fold), f"{f.f_score:.4f}", str(f.n_videos))
    table.add_row("mean", f"{result.mean_f_score:.4f}", str(sum(f.n_videos for f in result.folds)), style="bold")
    console.print(table)
    console.print(f"mean F-score {result.mean_f_score:.4f} -> {out}/fscores.json, folds.csv, folds.png", highlight=False, soft_wrap=True)


@summarize_app.command("train")
def train_command(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: model.pt, history.json, config.yaml."),
    h5: Path | None = typer.Option(None, "--h5", help="SumMe/TVSum-style HDF5 file."),
    videos: Path | None = typer.Option(None, "--videos", help="A folder of unlabelled videos (DSN only): embeds them, then trains."),
    method: str = typer.Option("dsn", "--method", help="dsn or supervised (--h5 only)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (default: the method's own)."),
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the method's own)."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation and sampling."),
    reward_features: str | None = typer.Option(None, "--reward-features", help="DSN representativeness reward on raw or l2 features."),
    fps: float = typer.Option(2.0, "--fps", help="--videos: frames embedded per second."),
    features: str = typer.Option("mobilenet_v2", "--features", help="--videos: frame embeddings, mobilenet_v2 or hsv."),
) -> None:
    """Train a DSN or supervised model on every video of an HDF5 file, or a DSN on a folder of videos; save `OUT/model.pt`."""
    import yaml

    from vidlens.errors import ConfigError
    from vidlens.outputs import staged_output
    from vidlens.tasks.summarize import TRAINED, load_h5, save_summarizer, train_model

    if (h5 is None) == (videos is None):
        raise ConfigError(None, "give exactly one of --h5 FILE or --videos DIR")
    if videos is not None:
        with staged_output(out) as stage:
            _train_on_videos(videos, stage.path, method, epochs, seed, fps, features, shown=out)
        return
    assert h5 is not None
    if method not in TRAINED:
        raise ConfigError(None, f"--method must be one of {', '.join(TRAINED)} for training, got {method!r}")
    config = _build_config(method, epochs, lr, 0.15, seed, 5, reward_features)
    records = load_h5(h5)
    keys = list(records)
    n_epochs = config.dsn.epochs if method == "dsn" else config.supervised.epochs
    with make_progress() as bar:
        task = bar.add_task(f"summarize train {method}", total=n_epochs)
        model, history = train_model(method, records, keys, config, progress=lambda e, t: bar.update(task, completed=e, total=t))
    method_config = (config.dsn if method == "dsn" else config.supervised).to_dict()
    with staged_output(out) as stage:
        save_summarizer(stage.path / "model.pt", model, config={**method_config, "h5": str(h5), "train_keys": keys},
                        preprocess={"features": "h5"})
        (stage.path / "history.json").write_text(json.dumps(history, indent=2) + "\n")
        (stage.path / "config.yaml").write_text(yaml.safe_dump({"h5": str(h5), "method": method, **method_config}, sort_keys=False))
    path = out / "model.pt"
    last = history[-1] if history else {}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k in ("reward", "loss"))
    console.print(f"trained {method} on {len(keys)} videos ({n_epochs} epochs{', ' + summary if summary else ''}) -> {path}",
                  highlight=False, soft_wrap=True)


def _train_on_videos(folder: Path, out: Path, method: str, epochs: int | None, seed: int, fps: float, features: str,
                     shown: Path) -> None:
    """`summarize train --videos DIR`: unsupervised DSN on a folder of video files, written to `out` (shown as `shown`)."""
    import yaml

    from vidlens.errors import ConfigError, DatasetError
    from vidlens.tasks.frame_features import FEATURE_KINDS
    from vidlens.tasks.summarize import save_summarizer
    from vidlens.tasks.summarize.videos import NORMALISATION, list_videos, train_dsn_on_videos, video_dsn_config

    if method != "dsn":
        raise ConfigError(None, "--videos trains the unsupervised DSN only (supervised training needs gtscore: --h5)")
    if features not in FEATURE_KINDS:
        raise ConfigError(None, f"--features must be one of {', '.join(FEATURE_KINDS)}, got {features!r}")
    paths = list_videos(folder)
    if not paths:
        raise DatasetError(folder, "no video files found")
    n_epochs = epochs or video_dsn_config().epochs
    with make_progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        model, history, skipped = train_dsn_on_videos(paths, fps=fps, features=features, epochs=n_epochs, seed=seed,
                                                      progress=progress)
    dsn_config = video_dsn_config(n_epochs, seed).to_dict()
    used = [str(p) for p in paths if str(p) not in {s for s, _ in skipped}]
    path = save_summarizer(out / "model.pt", model, config={**dsn_config, "videos": used},
                           preprocess={"features": features, "fps": fps, "normalise": NORMALISATION},
                           metrics={"final_reward": history[-1]["reward"] if history else None})
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    (out / "config.yaml").write_text(yaml.safe_dump({"videos": str(folder), "method": "dsn", "fps": fps,
                                                     "features": features, **dsn_config}, sort_keys=False))
    for bad, reason in skipped:
        console.print(f"[yellow]skipped {bad}: {reason}[/yellow]", highlight=False, soft_wrap=True)
    console.print(f"trained dsn on {len(used)} videos ({n_epochs} epochs, reward {history[0]['reward']:.4f} -> "
                  f"{history[-1]['reward']:.4f}) -> {shown / path.name}", highlight=False, soft_wrap=True)
