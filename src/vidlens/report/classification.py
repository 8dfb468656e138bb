"""Classification results for people: per-class table (CSV) and confusion matrix (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from vidlens.report.png import save_png


def per_class_table(scores: np.ndarray, targets: np.ndarray, labels: list[str]) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support per class (single-label: `scores` `(N,K)`, `targets` `(N,)`)."""
    from sklearn.metrics import precision_recall_fscore_support

    predicted = scores.argmax(axis=1)
    p, r, f, support = precision_recall_fscore_support(
        targets, predicted, labels=np.arange(len(labels)), zero_division=0
    )
    return [
        {"class": name, "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
         "f1": round(float(f[i]), 4), "support": int(support[i])}
        for i, name in enumerate(labels)
    ]


def write_per_class_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_confusion_matrix(targets: np.ndarray, predicted: np.ndarray, labels: list[str], path: str | Path, *, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    from sklearn.metrics import confusion_matrix

    k = len(labels)
    counts = confusion_matrix(targets, predicted, labels=np.arange(k))
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    side = max(4.0, 0.55 * k + 2.0)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(title or f"confusion matrix ({int(counts.sum())} videos)")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)
