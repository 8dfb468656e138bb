"""K-fold evaluation of a summarization method on a SumMe/TVSum-style HDF5 file.

For each split: train on `train_keys` (DSN: features only; supervised: `gtscore`), score every test
video, turn scores into a keyshot summary (`generate_summary`) and compare it with the user
summaries (`evaluate_summary`). A fold's F-score is the mean over its test videos; the reported
figure is the mean over folds (as in pytorch-vsumm-reinforce).
"""

from __future__ import annotations

import csv
import json
import os
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import ConfigError
from vidlens.tasks.summarize.baselines import kmeans_scores, random_scores, uniform_scores
from vidlens.tasks.summarize.dsn import DSNConfig, dsn_scores, train_dsn
from vidlens.tasks.summarize.protocol import (
    VideoRecord, evaluate_summary, generate_summary, load_h5, load_splits, make_splits, resolve_metric, resolve_split_keys,
)
from vidlens.tasks.summarize.supervised import SupervisedConfig, predict_scores, train_supervised

METHODS = ("dsn", "supervised", "uniform", "kmeans", "random")
TRAINED = ("dsn", "supervised")


@dataclass
class EvalConfig:
    """Everything `evaluate_h5` needs besides the file, the splits, the method and the metric."""

    ratio: float = 0.15
    seed: int = 0
    folds: int = 5  # used only when no splits are given
    dsn: DSNConfig = field(default_factory=DSNConfig)
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    kmeans_clusters: int | None = None
    uniform_windows: int = 10
    save_models: bool = True


@dataclass
class FoldResult:
    fold: int
    f_score: float  # mean F over the fold's test videos
    n_videos: int
    train_keys: list[str]
    test_keys: list[str]
    videos: dict[str, dict[str, float]]  # key -> {"f_score", "precision", "recall", "summary_ratio"}
    train_seconds: float = 0.0
    checkpoint: str | None = None


@dataclass
class EvalResult:
    h5: str
    method: str
    metric: str
    ratio: float
    folds: list[FoldResult]

    @property
    def mean_f_score(self) -> float:
        return float(np.mean([f.f_score for f in self.folds])) if self.folds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"h5": self.h5, "method": self.method, "metric": self.metric, "ratio": self.ratio,
                "mean_f_score": self.mean_f_score, "folds": [asdict(f) for f in self.folds]}


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(None, f"unknown summarization method {method!r}; valid: {', '.join(METHODS)}")


def train_model(method: str, records: dict[str, VideoRecord], keys: list[str], config: EvalConfig,
                progress: Callable[[int, int], None] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """Train `dsn` or `supervised` on `keys`; returns `(model, history)`."""
    if method == "dsn":
        return train_dsn([records[k].features for k in keys], config.dsn, progress=progress)
    if method == "supervised":
        history: list[dict[str, Any]] = []
        return train_supervised(records, keys, config.supervised, progress=progress, history=history), history
    raise ConfigError(None, f"method {method!r} is not trained (trained methods: {', '.join(TRAINED)})")


def score_video(method: str, record: VideoRecord, config: EvalConfig, model: Any = None) -> np.ndarray:
    """Per-step importance scores `(n_picks,)` of one video by `method` (`model` for trained methods)."""
    _check_method(method)
    n = len(record.features)
    if method == "dsn":
        return dsn_scores(model, record.features)
    if method == "supervised":
        return predict_scores(model, record.features)
    if method == "uniform":
        return uniform_scores(n, config.ratio, config.uniform_windows)
    if method == "kmeans":
        return kmeans_scores(record.features, config.kmeans_clusters, config.seed)
    return random_scores(n, seed=config.seed * 1_000_003 + zlib.crc32(record.key.encode()))


def evaluate_h5(
    h5_path: str | os.PathLike[str],
    splits: list[dict[str, list[str]]] | str | os.PathLike[str] | None = None,
    method: str = "dsn",
    metric: str = "auto",
    config: EvalConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate `method` over the splits (a list, a splits JSON path, or None for `config.folds` seeded folds).

    With `out_dir`: writes `fscores.json` (per video and per fold), `folds.csv`, `folds.png`,
    `config.yaml`, and for trained methods `models/fold{i}.pt` (+ `models/fold{i}_history.json`).
    `progress(done, total)` counts training epochs and scored test videos.
    """
    _check_method(method)
    config = config or EvalConfig()
    records = load_h5(h5_path)
    resolved_metric = resolve_metric(metric, h5_path)
    source = None
    if splits is None:
        splits = make_splits(list(records), config.folds, config.seed)
    elif not isinstance(splits, list):
        source, splits = splits, load_splits(splits)
    splits = [{"train_keys": resolve_split_keys(s["train_keys"], records, source),
               "test_keys": resolve_split_keys(s["test_keys"], records, source)} for s in splits]
    if method in TRAINED and any(not s["train_keys"] for s in splits):
        raise ConfigError(source, f"method {method} needs train_keys in every split")
    epochs = config.dsn.epochs if method == "dsn" else config.supervised.epochs
    total = sum(len(s["test_keys"]) + (epochs if method in TRAINED else 0) for s in splits)
    done = 0
    out = Path(out_dir) if out_dir is not None else None
    folds: list[FoldResult] = []
    for i, split in enumerate(splits):
        model, seconds, ckpt = None, 0.0, None
        if method in TRAINED:
            base = done
            start = time.perf_counter()
            model, history = train_model(method, records, split["train_keys"], config,
                                         progress=(lambda e, _t, b=base: progress(b + e, total)) if progress else None)
            seconds = time.perf_counter() - start
            done += epochs
            if out is not None and config.save_models:
                ckpt = str(_save_fold_model(out, i, model, method, config, split, history, str(h5_path)))
        videos = {}
        for key in split["test_keys"]:
            r = records[key]
            scores = score_video(method, r, config, model)
            summary = generate_summary(scores, r.change_points, r.n_frames, r.n_frame_per_seg, r.picks, config.ratio)
            f, p, rec = evaluate_summary(summary, r.user_summary, resolved_metric)
            videos[key] = {"f_score": f, "precision": p, "recall": rec, "summary_ratio": float(summary.mean()) if len(summary) else 0.0}
            done += 1
            if progress:
                progress(done, total)
        fold_f = float(np.mean([v["f_score"] for v in videos.values()]))
        folds.append(FoldResult(i, fold_f, len(videos), split["train_keys"], split["test_keys"], videos, seconds, ckpt))
    result = EvalResult(str(h5_path), method, resolved_metric, config.ratio, folds)
    if out is not None:
        write_outputs(result, out, config)
    return result


def _save_fold_model(out: Path, fold: int, model: Any, method: str, config: EvalConfig, split: dict, history: list, h5: str) -> Path:
    from vidlens.tasks.summarize.checkpoint import save_summarizer

    method_config = config.dsn.to_dict() if method == "dsn" else config.supervised.to_dict()
    path = save_summarizer(out / "models" / f"fold{fold}.pt", model,
                           config={**method_config, "h5": h5, "fold": fold, "train_keys": split["train_keys"]},
                           preprocess={"features": "h5"})
    (out / "models" / f"fold{fold}_history.json").write_text(json.dumps(history, indent=2) + "\n")
    return path


def write_outputs(result: EvalResult, out: Path, config: EvalConfig) -> None:
    """`fscores.json`, `folds.csv` (fold, f_score, n_videos + a `mean` row), `folds.png`, `config.yaml`."""
    import yaml

    from vidlens.report.summary import plot_fold_fscores

    out.mkdir(parents=True, exist_ok=True)
    _atomic_text(out / "fscores.json", json.dumps(result.to_dict(), indent=2) + "\n")
    rows = [[f.fold, f"{f.f_score:.6f}", f.n_videos] for f in result.folds]
    rows.append(["mean", f"{result.mean_f_score:.6f}", sum(f.n_videos for f in result.folds)])
    with open(out / "folds.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fold", "f_score", "n_videos"])
        writer.writerows(rows)
    plot_fold_fscores([f.f_score for f in result.folds], out / "folds.png",
                      title=f"{result.method} on {Path(result.h5).name} ({result.metric}, ratio {result.ratio:g})")
    resolved = {"h5": result.h5, "method": result.method, "metric": result.metric, **asdict(config)}
    _atomic_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
