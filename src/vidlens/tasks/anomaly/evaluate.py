"""Frame-level evaluation of anomaly scores, as the field reports it.

- **micro AUC**: the frames of all test videos concatenated, each video's scores min-max normalised to
  [0, 1] first (the usual protocol of future-frame prediction, Liu et al. 2018), and also on raw scores;
- **macro AUC**: the mean of per-video AUCs over the videos that hold both normal and anomalous frames;
- **EER**: where the micro ROC's false-positive rate equals its miss rate (linear between ROC points).

`evaluate_scores` is the pure part; `evaluate_dataset` trains on a benchmark's normal training videos,
scores its test videos and writes `metrics.json`, `per_video.csv`, `roc.png` and `config.yaml`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vidlens.tasks.anomaly.base import AnomalyConfig, Progress, load_builtin_methods

log = logging.getLogger(__name__)

__all__ = ["AnomalyMetrics", "VideoMetrics", "PUBLISHED_ANCHORS", "evaluate_scores", "equal_error_rate",
           "write_metrics", "evaluate_dataset"]

# Frame-level micro AUC (%) of future-frame prediction (Liu et al., CVPR 2018), the reference the issue names.
PUBLISHED_ANCHORS: dict[str, dict[str, float]] = {
    "future-frame prediction (Liu et al., CVPR 2018)": {"ped1": 83.1, "ped2": 95.4, "avenue": 84.9, "shanghaitech": 72.8},
}


@dataclass
class VideoMetrics:
    """One test video: frame count, anomalous frames and its own AUC (None when it holds one class only)."""

    name: str
    frames: int
    anomalous_frames: int
    auc: float | None


@dataclass
class AnomalyMetrics:
    """Frame-level results over a test set. AUCs and EERs are fractions in [0, 1]; None where undefined
    (one class only). `roc_fpr`/`roc_tpr`: the micro ROC on normalised scores (for the plot)."""

    micro_auc: float | None
    micro_auc_raw: float | None
    macro_auc: float | None
    eer: float | None
    eer_raw: float | None
    eer_threshold: float | None  # normalised score at the EER point
    videos: int
    videos_in_macro: int
    frames: int
    anomalous_frames: int
    per_video: list[VideoMetrics] = field(default_factory=list)
    roc_fpr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    roc_tpr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    roc_raw_fpr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    roc_raw_tpr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (no ROC arrays)."""
        keys = ("micro_auc", "micro_auc_raw", "macro_auc", "eer", "eer_raw", "eer_threshold", "videos", "videos_in_macro",
                "frames", "anomalous_frames")
        out: dict[str, Any] = {k: _round(getattr(self, k)) for k in keys}
        out["per_video"] = [{**asdict(v), "auc": _round(v.auc)} for v in self.per_video]
        return out


def _round(x: Any) -> Any:
    return round(float(x), 6) if isinstance(x, float) else x


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray | None = None) -> tuple[float, float | None]:
    """(EER, threshold) from a ROC (`sklearn.metrics.roc_curve` output): the rate where false positives
    equal misses (1 - tpr), linear between ROC points; the threshold is interpolated likewise (None if not given)."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64), 1.0 - np.asarray(tpr, dtype=np.float64)
    diff = fpr - fnr  # non-decreasing along the ROC
    i = int(np.argmax(diff >= 0)) if np.any(diff >= 0) else len(diff) - 1
    if i == 0 or diff[i] == 0:
        t = 0.0
        j = i
    else:
        j = i - 1
        t = -diff[j] / (diff[i] - diff[j])
    eer = float(fpr[j] + t * (fpr[i] - fpr[j]))
    threshold = None
    if thresholds is not None:
        a, b = float(thresholds[j]), float(thresholds[i])
        threshold = a if not math.isfinite(a) or not math.isfinite(b) else a + t * (b - a)
        threshold = float(threshold) if math.isfinite(threshold) else None
    return eer, threshold


def evaluate_scores(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                    names: Sequence[str] | None = None) -> AnomalyMetrics:
    """Frame-level metrics of per-video `scores (T_i,)` (higher = more anomalous) against `labels (T_i,)`
    (1 = anomalous frame). Raises ValueError when a video's arrays differ in length or hold NaN."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} label arrays but {len(scores)} score arrays")
    names = list(names) if names is not None else [f"video{i + 1:03d}" for i in range(len(labels))]
    ys, raws, norms, per_video = [], [], [], []
    for name, y, s in zip(names, labels, scores):
        y = (np.asarray(y).ravel() != 0).astype(np.uint8)
        s = np.asarray(s, dtype=np.float64).ravel()
        if len(y) != len(s):
            raise ValueError(f"video {name}: {len(y)} labels but {len(s)} scores")
        if len(s) and not np.all(np.isfinite(s)):
            raise ValueError(f"video {name}: scores hold NaN or infinity")
        if not len(s):
            continue
        auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None
        per_video.append(VideoMetrics(name, int(len(y)), int(y.sum()), auc))
        ys.append(y)
        raws.append(s)
        norms.append(_minmax(s))
    y_all = np.concatenate(ys) if ys else np.zeros(0, np.uint8)
    aucs = [v.auc for v in per_video if v.auc is not None]
    metrics = AnomalyMetrics(None, None, float(np.mean(aucs)) if aucs else None, None, None, None, len(per_video), len(aucs),
                             int(len(y_all)), int(y_all.sum()), per_video)
    if 0 < y_all.sum() < len(y_all):
        for tag, s_all in (("", np.concatenate(norms)), ("_raw", np.concatenate(raws))):
            fpr, tpr, thr = roc_curve(y_all, s_all)
            eer, threshold = equal_error_rate(fpr, tpr, thr)
            setattr(metrics, f"micro_auc{tag}", float(roc_auc_score(y_all, s_all)))
            setattr(metrics, f"eer{tag}", eer)
            setattr(metrics, f"roc{tag}_fpr", fpr)
            setattr(metrics, f"roc{tag}_tpr", tpr)
            if not tag:
                metrics.eer_threshold = threshold
    return metrics


# ---------------------------------------------------------------- outputs


def plot_roc(metrics: AnomalyMetrics, path: str | os.PathLike[str], title: str = "") -> Path:
    """The micro ROC curves (normalised and raw scores) with their AUCs in the legend, written to `path` (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(5.2, 5), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if len(metrics.roc_fpr):
        ax.plot(metrics.roc_fpr, metrics.roc_tpr, lw=2, label=f"per-video normalised, micro AUC = {100 * metrics.micro_auc:.1f}%")
    if len(metrics.roc_raw_fpr):
        ax.plot(metrics.roc_raw_fpr, metrics.roc_raw_tpr, lw=1.2, ls="--",
                label=f"raw scores, micro AUC = {100 * metrics.micro_auc_raw:.1f}%")
    if metrics.eer is not None:
        ax.plot([metrics.eer], [1 - metrics.eer], "o", color="black", label=f"EER = {100 * metrics.eer:.1f}%")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    macro = "n/a" if metrics.macro_auc is None else f"{100 * metrics.macro_auc:.1f}%"
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (normal frames flagged)", ylabel="true positive rate",
           title=(title + "\n" if title else "") + f"frame-level ROC, macro AUC {macro} ({metrics.videos_in_macro} videos)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_metrics(metrics: AnomalyMetrics, out_dir: str | os.PathLike[str], extra: dict[str, Any] | None = None,
                  title: str = "") -> dict[str, Path]:
    """Write `metrics.json` (the summary plus `extra`), `per_video.csv` and `roc.png` into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = {**(extra or {}), "metrics": metrics.to_json()}
    paths = {"json": out / "metrics.json", "csv": out / "per_video.csv", "roc": out / "roc.png"}
    paths["json"].write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["video", "frames", "anomalous_frames", "auc"])
        for v in metrics.per_video:
            writer.writerow([v.name, v.frames, v.anomalous_frames, "" if v.auc is None else f"{v.auc:.6f}"])
    plot_roc(metrics, paths["roc"], title)
    return paths


def _json_default(x: Any) -> Any:
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def evaluate_dataset(root: str | os.PathLike[str], format: str, config: AnomalyConfig, out_dir: str | os.PathLike[str],
                     progress: Progress | None = None, *, scene: str | None = None) -> AnomalyMetrics:
    """Train `config.method` on a published benchmark's normal training videos, score every test video and
    write metrics.json (with the published anchors), per_video.csv, roc.png and config.yaml into `out_dir`
    (all or nothing). Scores are matched to labels through the scored frames' source indices."""
    from vidlens.outputs import staged_output
    from vidlens.tasks.anomaly.datasets import load_anomaly_dataset
    from vidlens.tasks.anomaly.score import score_video
    from vidlens.tasks.anomaly.train import train_anomaly_model

    load_builtin_methods()
    config.check()  # a bad method or size fails before any footage is read
    dataset = load_anomaly_dataset(root, format, scene=scene)
    start = time.perf_counter()
    model = train_anomaly_model(dataset.train, config, progress=progress)
    train_s = time.perf_counter() - start
    labels, scores, names, skipped = [], [], [], list(dataset.skipped)
    scored_frames, score_s = 0, 0.0
    for i, video in enumerate(dataset.test):
        if progress is not None:
            progress("score", i / max(1, len(dataset.test)))
        t0 = time.perf_counter()
        result = score_video(model, video.source)
        score_s += time.perf_counter() - t0
        idx = np.asarray(result.frame_indices, dtype=np.int64)
        if len(idx) != len(result.raw) or (len(idx) and (idx.min() < 0 or idx.max() >= video.num_frames)):
            reason = f"{len(result.raw)} scored frames do not map onto its {video.num_frames} labelled frames; left out"
            log.warning("anomaly eval: test video %s: %s", video.name, reason)
            skipped.append({"name": video.name, "reason": reason})
            continue
        labels.append(video.labels[idx])
        scores.append(np.asarray(result.raw, dtype=np.float64))
        names.append(video.name)
        scored_frames += len(idx)
    if progress is not None:
        progress("score", 1.0)
    metrics = evaluate_scores(labels, scores, names)
    fmt = dataset.name
    anchors = {method: {"micro_auc": values[fmt]} for method, values in PUBLISHED_ANCHORS.items() if fmt in values}
    extra = {
        "dataset": {**dataset.summary(), "format": fmt, "skipped": skipped},
        "method": config.method,
        "config": _config_dict(config),
        "model": model.facts,
        "published_anchors": anchors,
        "protocol": "frame-level; micro AUC over all test frames with per-video min-max normalised scores (and raw); "
                    "macro AUC = mean per-video AUC over videos with both classes; EER from the micro ROC",
        "seconds": {"train": round(train_s, 3), "score": round(score_s, 3),
                    "score_frames_per_s": round(scored_frames / score_s, 2) if score_s > 0 else None},
    }
    with staged_output(out_dir) as stage:
        write_metrics(metrics, stage.path, extra, title=f"{fmt} / {config.method}")
        _write_config(stage.path / "config.yaml", config, root, fmt)
    return metrics


def _config_dict(config: AnomalyConfig) -> dict[str, Any]:
    d = asdict(config)
    d["size"] = list(config.size)
    return d


def _write_config(path: Path, config: AnomalyConfig, root: str | os.PathLike[str], fmt: str) -> None:
    import yaml

    data = {"data": str(Path(root).resolve()), "format": fmt, **_config_dict(config)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
