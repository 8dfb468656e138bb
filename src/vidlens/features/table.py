"""`FeatureTable`: per-frame features of one video, and its NPZ / CSV files.

NPZ (`to_npz` / `from_npz`, no pickle):
    times          float64 (N,)   seconds from the first frame of the file
    frame_indices  int64 (N,)     source frame index of each row
    feat/<name>    float32 (N,D)  one array per feature
    meta           str            JSON: {"format": 1, source, fps, size, which, config, ...}
CSV (`to_csv`): one row per frame, columns `time_s` (3 decimals), `frame`, then every
scalar feature (D == 1) in table order; histograms are left to the NPZ.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlens.errors import VidlensError

NPZ_FORMAT = 1
_PREFIX = "feat/"


@dataclass
class FeatureTable:
    """Features of N analysed frames: `times` float64 (N,), `frame_indices` int64 (N,), `features` name -> (N,D)."""

    times: np.ndarray
    frame_indices: np.ndarray
    features: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        self.frame_indices = np.asarray(self.frame_indices, dtype=np.int64).reshape(-1)
        n = self.times.shape[0]
        if self.frame_indices.shape[0] != n:
            raise ValueError(f"{n} times but {self.frame_indices.shape[0]} frame indices")
        fixed: dict[str, np.ndarray] = {}
        for name, values in self.features.items():
            arr = np.asarray(values)
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"feature {name!r} has shape {arr.shape}, expected ({n}, D)")
            fixed[name] = arr
        self.features = fixed

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.features)

    def scalar_columns(self) -> list[str]:
        """Names of the one-value-per-frame features (D == 1), in table order."""
        return [name for name, arr in self.features.items() if arr.shape[1] == 1]

    def column(self, name: str) -> np.ndarray:
        """A scalar feature as `(N,)`; raises KeyError for unknown or multi-value names."""
        arr = self.features[name]
        if arr.shape[1] != 1:
            raise KeyError(f"{name!r} has {arr.shape[1]} values per frame, not a scalar column")
        return arr[:, 0]

    def to_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write the table (compressed, no pickled objects); written to a temp file then renamed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"times": self.times, "frame_indices": self.frame_indices}
        for name, arr in self.features.items():
            arrays[_PREFIX + name] = arr
        meta = {"format": NPZ_FORMAT, **self.meta, "order": self.names}
        arrays["meta"] = np.array(json.dumps(meta, default=_json_default))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_npz(cls, path: str | os.PathLike[str]) -> FeatureTable:
        """Read a table written by `to_npz`; raises `VidlensError` for a missing or foreign file."""
        path = Path(path)
        if not path.is_file():
            raise VidlensError(path, "feature file does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
                if not {"times", "frame_indices", "meta"} <= keys:
                    raise VidlensError(path, "not a vidlens feature file (times/frame_indices/meta missing)")
                meta = json.loads(str(data["meta"]))
                if meta.get("format") != NPZ_FORMAT:
                    raise VidlensError(path, f"unknown feature file format {meta.get('format')!r}")
                order = [n for n in meta.pop("order", []) if _PREFIX + n in keys]
                order += sorted(k[len(_PREFIX) :] for k in keys if k.startswith(_PREFIX) and k[len(_PREFIX) :] not in order)
                features = {name: data[_PREFIX + name] for name in order}
                meta.pop("format", None)
                return cls(data["times"], data["frame_indices"], features, meta)
        except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise VidlensError(path, f"cannot read feature file ({exc})") from None

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the scalar features, one row per frame: `time_s, frame, <scalar columns...>`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = self.scalar_columns()
        values = [self.column(name) for name in columns]
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time_s", "frame", *columns])
            for i in range(len(self)):
                writer.writerow(
                    [f"{self.times[i]:.3f}", int(self.frame_indices[i]), *(_fmt(v[i]) for v in values)]
                )
        return path


def _fmt(value: float) -> str:
    return "nan" if value != value else f"{float(value):.6g}"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)
