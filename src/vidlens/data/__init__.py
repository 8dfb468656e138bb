"""Datasets (what clips exist and their labels), samplers (which frames), transforms (how they look).

- `sources`: dataset layouts on disk -> `VideoRecord`s per split (folder, UCF101,
  HMDB51, Kinetics CSV, CSV/JSONL manifests).
- `datasets`: `VideoClipDataset` (torch), `build_datasets`, class balancing.
- `samplers`: pure (frame count, fps, settings) -> frame indices.
- `transforms`: `(T,C,H,W)` clip transforms for training and evaluation.
- `scan`: parallel validation scans that report bad files; `cache`: a pre-decoded frame cache.
- `synthetic`: generated datasets with ground truth.

Names are imported lazily (PEP 562), so ``import vidlens.data.samplers`` stays light
(no torch) and scan/cache worker processes start fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # sources
    "VideoRecord": "sources", "DatasetSpec": "sources", "SPLITS": "sources", "LAYOUTS": "sources",
    "parse_folder": "sources", "parse_ucf101": "sources", "parse_hmdb51": "sources",
    "parse_kinetics": "sources", "parse_manifest": "sources", "load_spec": "sources",
    "detect_layout": "sources", "parse_split_arg": "sources", "stratified_split": "sources",
    "find_videos": "sources", "save_labels": "sources", "load_labels": "sources",
    # datasets
    "VideoClipDataset": "datasets", "build_datasets": "datasets", "BalancedSampler": "datasets",
    "class_weights": "datasets", "class_counts": "datasets", "sample_weights": "datasets",
    "load_bad_files": "scan",
    # scan / cache
    "scan_dataset": "scan", "scan_files": "scan", "check_file": "scan", "ScanResult": "scan",
    "write_scan_outputs": "scan",
    "build_cache": "cache", "CacheReader": "cache", "CacheReport": "cache", "CacheEntry": "cache",
    # samplers
    "SamplerConfig": "samplers", "sample_indices": "samplers", "uniform_indices": "samplers",
    "random_clip_indices": "samplers", "tsn_indices": "samplers", "multi_clip_indices": "samplers",
    "resample_indices": "samplers", "clip_indices": "samplers",
    # transforms
    "TransformConfig": "transforms", "build_train_transform": "transforms",
    "build_eval_transform": "transforms", "normalize": "transforms", "denormalize": "transforms",
    "IMAGENET_MEAN": "transforms", "IMAGENET_STD": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vidlens.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vidlens.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
