"""Action recognition end to end: train, evaluate (single models or ensembles), predict.

This layer composes data, models, tasks, engine and report (DESIGN.md leaves that to the
front doors; it lives here so that the CLI, the demo and users' scripts share one
implementation). It returns results and writes files; it never prints.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlens.data import build_datasets, class_weights
from vidlens.data.records import stratified_split
from vidlens.data.sources import DatasetSpec, load_spec
from vidlens.engine import evaluate, fit
from vidlens.engine.config import TrainConfig
from vidlens.engine.state import seed_everything
from vidlens.errors import ConfigError, DatasetError
from vidlens.models import build_model, input_normalization, resolved_args
from vidlens.report.classification import per_class_table, plot_confusion_matrix, write_per_class_csv
from vidlens.tasks.classify import ClassificationTask, classification_metrics, preprocess_fields
from vidlens.tasks.predictor import LoadedClassifier, VideoClassifier, load_classifier
from vidlens.workflows.config import RecognitionConfig
from vidlens.workflows.precompute import FrameFeatureDataset, precompute_features


@dataclass
class TrainOutcome:
    run_dir: Path
    best_checkpoint: Path | None
    history: list[dict[str, Any]]
    val_metric: float | None
    test_metrics: dict[str, float] = field(default_factory=dict)
    substitutions: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    missing: int = 0  # videos the split files or manifest list but that are not on disk
    monitor: str = ""  # what `val_metric` measures: the task's validation metric, or "train_loss" without a val split
    notes: list[str] = field(default_factory=list)  # caveats for the run's summary (tiny validation split, head defaults)
    steps: int = 0  # optimizer steps made


def load_data_spec(cfg: RecognitionConfig, labels: list[str] | None = None) -> DatasetSpec:
    """The run's videos per split. Files of `data.exclude` are left out before any split is drawn,
    so a class keeps its validation and test videos when one of its files is bad."""
    from vidlens.data.scan import load_bad_files

    d = cfg.data
    if d.root is None and d.manifest is None:
        raise ConfigError(None, "give a dataset root (--data) or a manifest (--manifest)")
    spec = load_spec(d.root, d.layout, d.split, d.manifest, val_frac=d.val_frac, test_frac=d.test_frac,
                     seed=cfg.train.seed, labels=labels, exclude=load_bad_files(d.exclude) or None)
    return carve_validation(spec, d.val_frac, cfg.train.seed)


_UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def carve_validation(spec: DatasetSpec, val_frac: float, seed: int) -> DatasetSpec:
    """Hold out a validation split from `train` when the layout has none (UCF101, HMDB51, Kinetics without val).

    UCF101 clips of one group (`v_Class_gNN_cMM`) come from one long video, so whole groups
    are held out (the official splits are built the same way); otherwise a seeded,
    stratified share of the training videos. The test split is never touched.
    """
    if spec.records_by_split.get("val") or val_frac <= 0 or not spec.records_by_split.get("train"):
        return spec
    train = spec.records_by_split["train"]
    groups = sorted({m.group(1) for r in train if (m := _UCF_GROUP.search(os.path.basename(r.path)))})
    if len(groups) >= 2 and all(_UCF_GROUP.search(os.path.basename(r.path)) for r in train):
        rng = np.random.default_rng(seed)
        held = set(rng.choice(groups, size=max(1, round(len(groups) * val_frac)), replace=False).tolist())
        in_val = [_UCF_GROUP.search(os.path.basename(r.path)).group(1) in held for r in train]  # type: ignore[union-attr]
        val = [r for r, v in zip(train, in_val, strict=True) if v]
        rest = [r for r, v in zip(train, in_val, strict=True) if not v]
    else:
        parts = stratified_split(train, val_frac, 0.0, seed)
        val, rest = parts.get("val", []), parts["train"]
    if not val or not rest:
        return spec
    records = dict(spec.records_by_split)
    records["train"], records["val"] = rest, val
    return replace(spec, records_by_split=records)


def _hflip_default(cfg: RecognitionConfig) -> bool:
    """Flip unless the dataset says flipping changes labels (dataset.json: "hflip_safe": false)."""
    if cfg.clip.hflip is not None:
        return cfg.clip.hflip
    for folder in (cfg.data.root, os.path.dirname(cfg.data.manifest or "")):
        if folder and (Path(folder) / "dataset.json").is_file():
            try:
                return bool(json.loads((Path(folder) / "dataset.json").read_text()).get("hflip_safe", True))
            except (OSError, ValueError):
                pass
    return True


# Training a head on precomputed frozen features: a few hundred full steps of a larger learning
# rate converge a linear/GRU head where the fine-tuning defaults (1e-3, 10 epochs of 2 steps on 12
# videos) stop halfway (benchmarks/bench_probe.py). Applied to the options the user did not set
# (`user_train_keys`) and left at TrainConfig's defaults; the resolved values are saved in config.yaml.
HEAD_DEFAULTS = {"lr": 1e-2, "min_steps": 300, "warmup_epochs": 0.0}


def head_training_config(cfg: RecognitionConfig) -> tuple[TrainConfig, list[str]]:
    """`cfg.train` with HEAD_DEFAULTS for options still at their defaults when only a head trains
    (precomputed features); otherwise `cfg.train` unchanged. Returns (config, notes)."""
    if not cfg.model.precompute_features or not cfg.head_defaults:
        return cfg.train, []
    base = TrainConfig().to_dict()
    current = cfg.train.to_dict()
    explicit = set(cfg.user_train_keys)
    changed = {k: v for k, v in HEAD_DEFAULTS.items()
               if k not in explicit and current[k] == base[k] and current[k] != v}
    if not changed:
        return cfg.train, []
    note = ("head on precomputed features: " + ", ".join(f"{k}={v}" for k, v in changed.items())
            + " (set them explicitly to override)")
    return TrainConfig.from_dict({**current, **changed}), [note]


@dataclass
class _Prepared:
    spec: DatasetSpec
    datasets: dict[str, Any]
    task: ClassificationTask
    model: Any
    multi_label: bool


def _prepare(cfg: RecognitionConfig) -> _Prepared:
    """Splits, datasets, model and task of a run (nothing trained, nothing written)."""
    spec = load_data_spec(cfg)
    if not spec.records_by_split.get("train"):
        raise DatasetError(cfg.data.root or cfg.data.manifest, "no training videos found")
    model_args = resolved_args(cfg.model.name, **cfg.model.model_args())
    multi_label = cfg.multi_label
    if multi_label is None:
        multi_label = any(isinstance(r.label, list) for _, r in spec.all_records())
    model_args["multi_label"] = bool(multi_label)
    norm = input_normalization(cfg.model.name)
    sampler = cfg.clip.sampler_config(cfg.model.name)
    transform = cfg.clip.transform_config(norm["mean"], norm["std"], _hflip_default(cfg))
    decode_size = cfg.clip.resolved_decode_size()
    datasets = build_datasets(spec=spec, sampler=sampler, transform=transform, decode_size=decode_size,
                              seed=cfg.train.seed, exclude=cfg.data.exclude, cache=cfg.data.cache,
                              multi_label=multi_label)
    seed_everything(cfg.train.seed)  # the initial weights too: the same seed gives the same run
    model = build_model(cfg.model.name, len(spec.labels), **model_args)
    weights = class_weights(datasets["train"].records, len(spec.labels)) if cfg.class_weights else None
    task = ClassificationTask(model, spec.labels, cfg.model.name, model_args, preprocess_fields(sampler, transform, decode_size),
                              multi_label=bool(multi_label), label_smoothing=cfg.train.label_smoothing, class_weights=weights)
    return _Prepared(spec, datasets, task, model, bool(multi_label))


def precompute_split_features(cfg: RecognitionConfig, *, progress: bool | None = None) -> dict[str, FrameFeatureDataset]:
    """Per-frame features of every split, exactly as `train_recognizer` computes them for this recipe
    (train: one augmented view per video `(T,D)`; val/test: the test views `(V,T,D)`).

    Pass the result back as `train_recognizer(cfg, features=...)` to train on these very tensors
    (e.g. to compare with a linear probe on the same features, or to reuse them across runs)."""
    _check_precompute(cfg)
    prep = _prepare(cfg)
    return {name: precompute_features(prep.model, ds, cfg.train, progress=progress)
            for name, ds in prep.datasets.items() if len(ds)}


def _check_precompute(cfg: RecognitionConfig) -> None:
    if not cfg.model.precompute_features or not (cfg.model.freeze_encoder or cfg.model.args.get("freeze_encoder")):
        raise ConfigError(None, "precompute_features needs a frozen encoder (--freeze-encoder --precompute-features)")


def train_recognizer(cfg: RecognitionConfig, *, resume: bool = False, progress: bool | None = None,
                     features: dict[str, FrameFeatureDataset] | None = None) -> TrainOutcome:
    """Train a classifier; write `best.pt`, `last.pt`, `config.yaml`, logs, curves; evaluate `test_split`.

    `features`: the output of `precompute_split_features(cfg)` (precomputed-feature runs only): the head
    trains on them and the test split, when present there, is scored on them too.
    """
    run_dir = Path(cfg.out)
    cfg = replace(cfg, clip=replace(cfg.clip, sampler=cfg.clip.resolved_sampler(cfg.model.name)))
    train_cfg, notes = head_training_config(cfg)
    cfg = replace(cfg, train=train_cfg)
    prep = _prepare(cfg)
    spec, datasets, task, model = prep.spec, prep.datasets, prep.task, prep.model
    train_set, val_set = datasets["train"], datasets.get("val")
    if features is not None or cfg.model.precompute_features:
        _check_precompute(cfg)
        if features is None:
            features = {"train": precompute_features(model, train_set, cfg.train, progress=progress)}
            if val_set is not None and len(val_set):
                features["val"] = precompute_features(model, val_set, cfg.train, progress=progress)
        train_set, val_set = features["train"], features.get("val")
        task.clip_ndim = 2
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one rank writes the run's files
        cfg.save_yaml(run_dir / "config.yaml")
    extra = {"recipe": cfg.to_dict()}  # "config" holds the engine's TrainConfig; this is the whole recipe
    result = fit(task, train_set, val_set if val_set is not None and len(val_set) else None, cfg.train, run_dir,
                 resume=resume, progress=progress, extra_checkpoint=extra, save_config=False)
    # config.yaml is the whole recipe from the start (the engine's own TrainConfig is its `train`
    # part), so a run killed midway resumes with `--config RUN/config.yaml --resume`.
    outcome = TrainOutcome(run_dir, result.best_checkpoint, result.history, result.best_metric,
                           substitutions=result.substitutions, monitor=result.monitor, missing=len(spec.missing),
                           notes=notes + result.notes, steps=result.steps)
    test = cfg.test_split
    if test != "none" and result.best_checkpoint and features is not None and test in features:
        outcome.test_metrics = _evaluate_features(task, result.best_checkpoint, features[test], cfg.train, run_dir / "eval")
    elif test != "none" and result.best_checkpoint and datasets.get(test) and len(datasets[test]):
        report = evaluate_checkpoints([result.best_checkpoint], run_dir / "eval", cfg_train=cfg.train,
                                      split=test, spec=spec, progress=progress)
        outcome.test_metrics = report.metrics
        outcome.files.update(report.files)
    return outcome


def _evaluate_features(task: ClassificationTask, checkpoint: Path, data: FrameFeatureDataset, cfg: TrainConfig,
                       out: Path) -> dict[str, Any]:
    """Score the best checkpoint's head on precomputed test features; writes `out/metrics.json`."""
    from vidlens.engine.checkpoint import load_checkpoint

    task.model.load_state_dict(load_checkpoint(checkpoint)["state_dict"])
    metrics: dict[str, Any] = dict(evaluate(task, data, cfg).metrics)
    metrics["num_videos"] = len(data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    per_class: list[dict[str, Any]]
    files: dict[str, Path]
    scores: np.ndarray
    targets: np.ndarray
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): unreadable, left out of the metrics


def evaluate_checkpoints(
    checkpoints: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    weights: list[float] | None = None,
    root: str | None = None,
    layout: str | None = None,
    manifest: str | None = None,
    split: str = "test",
    num_clips: int | None = None,
    test_crop: str | None = None,
    cfg_train: TrainConfig | None = None,
    spec: DatasetSpec | None = None,
    progress: bool | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> EvalReport:
    """Evaluate one checkpoint or a weighted ensemble on a dataset split; write metrics and plots.

    Without `root`/`manifest` the data (and its seeded split) is the one the first checkpoint was
    trained on. Each member sees the videos through its own preprocessing; probabilities are fused.
    Writes `metrics.json`, `per_class.csv`, `confusion.png`, `scores.npz` into `out`. Files of
    `exclude` (a scan's bad_files.csv) are left out; unreadable files are skipped and reported in
    `skipped` and metrics.json, never scored as another video.
    """
    from vidlens.data.scan import load_bad_files, substituted_rows, without_files

    members = [load_classifier(p, num_clips=num_clips, test_crop=test_crop) for p in checkpoints]
    ensemble = VideoClassifier(members, weights)
    labels = ensemble.labels
    if spec is None:
        if not members[0].config and not (root or manifest):
            raise ConfigError(None, f"{members[0].path} does not record its training data: pass --data or --manifest")
        saved = RecognitionConfig.from_dict(members[0].config) if members[0].config else RecognitionConfig()
        if root or manifest:
            saved.data.root, saved.data.manifest = root, manifest
            saved.data.layout = layout or "auto"
        if exclude:
            saved.data.exclude = os.fspath(exclude)  # left out before the seeded split, as in training
        spec = load_data_spec(saved, labels=labels)
    elif exclude:
        spec = without_files(spec, load_bad_files(exclude))
    if list(spec.labels) != labels:
        spec = _relabel(spec, labels)
    records = spec.records_by_split.get(split) or []
    if not records:
        raise DatasetError(root or spec.root, f"split {split!r} has no videos (splits: {sorted(spec.records_by_split)})")
    train_cfg = cfg_train or TrainConfig()
    member_scores, targets, paths, seen = [], None, [], []
    for member in members:
        task, dataset = _member_eval(member, spec, split, train_cfg)
        result = evaluate(task, dataset, train_cfg, progress=progress)
        member_scores.append(result.scores.float().cpu().numpy())
        targets = result.targets.cpu().numpy()
        paths = result.paths
        seen.append(result.paths)
    keep, skipped = substituted_rows([r.path for r in records], seen)  # a substitute is not the listed video
    if not keep:
        raise DatasetError(root or spec.root, f"none of the {len(records)} videos of split {split!r} could be read")
    if skipped:
        member_scores = [s[keep] for s in member_scores]
        targets, paths = targets[keep], [paths[i] for i in keep]
    # Members' columns follow their own label order; fuse() aligns them to the first's.
    scores = ensemble.fuse(member_scores)
    assert targets is not None
    metrics: dict[str, Any] = classification_metrics(scores, targets, len(labels), ensemble.multi_label)
    metrics["split"] = split
    metrics["checkpoints"] = [os.fspath(p) for p in checkpoints]
    metrics["weights"] = ensemble.weights
    metrics["skipped"] = [{"path": p, "reason": r} for p, r in skipped]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "scores": out / "scores.npz"}
    files["metrics"].write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez_compressed(files["scores"], scores=scores, targets=targets, paths=np.asarray(paths), labels=np.asarray(labels))
    per_class: list[dict[str, Any]] = []
    if not ensemble.multi_label:
        per_class = per_class_table(scores, targets, labels)
        files["per_class"] = write_per_class_csv(per_class, out / "per_class.csv")
        files["confusion"] = plot_confusion_matrix(targets, scores.argmax(axis=1), labels, out / "confusion.png",
                                                   title=f"{split}: top-1 {metrics['top1']:.3f} ({metrics['num_videos']} videos)")
    return EvalReport(metrics, per_class, files, scores, targets, paths, skipped)


def _relabel(spec: DatasetSpec, labels: list[str]) -> DatasetSpec:
    """Map a parsed dataset's class ids onto a checkpoint's label order (by name)."""
    missing = sorted(set(spec.labels) - set(labels))
    if missing:
        raise DatasetError(spec.root, f"classes {missing[:5]} are not among the checkpoint's {len(labels)} labels")
    index = {name: labels.index(name) for name in spec.labels}

    def remap(label: int | list[int]) -> int | list[int]:
        if isinstance(label, list):
            return [index[spec.labels[c]] for c in label]
        return index[spec.labels[label]]

    records = {name: [replace(r, label=remap(r.label)) for r in recs] for name, recs in spec.records_by_split.items()}
    return replace(spec, records_by_split=records, labels=list(labels))


def _member_eval(member: LoadedClassifier, spec: DatasetSpec, split: str, cfg: TrainConfig):
    """A task and dataset that evaluate one member with its own clip preprocessing.

    Its scores come out in the member's label order (`VideoClassifier.fuse` aligns them), so only
    the raw scores of `evaluate` are used, not its metrics.
    """
    from vidlens.data.datasets import VideoClipDataset
    from vidlens.data.transforms import build_eval_transform

    dataset = VideoClipDataset(spec.records_by_split[split], spec.labels, member.sampler, build_eval_transform(member.transform),
                               train=False, decode_size=member.decode_size, seed=cfg.seed, multi_label=member.multi_label)
    task = ClassificationTask(member.model, member.labels, member.model_name, {}, {}, multi_label=member.multi_label)
    return task, dataset
