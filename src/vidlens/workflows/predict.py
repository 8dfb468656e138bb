"""Writing predictions: JSON lines for machines, CSV for spreadsheets."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def write_predictions(rows: list[dict[str, Any]], out: str | Path) -> list[Path]:
    """`out/predictions.jsonl` (one object per video: path, top, [segments], [error]) and `out/predictions.csv`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "predictions.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    table = out / "predictions.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "rank", "label", "score", "error"])
        for row in rows:
            if "error" in row:
                writer.writerow([row["path"], "", "", "", row["error"]])
                continue
            for rank, item in enumerate(row["top"], 1):
                writer.writerow([row["path"], rank, item["label"], f"{item['score']:.6f}", ""])
    return [jsonl, table]
