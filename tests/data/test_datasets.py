"""VideoClipDataset: shapes, trimmed segments, bad-file substitution (also in DataLoader workers), balancing."""

from __future__ import annotations

import logging
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidlens.data import datasets as datasets_module
from vidlens.data.datasets import BalancedSampler, VideoClipDataset, build_datasets, class_weights
from vidlens.data.samplers import SamplerConfig
from vidlens.data.sources import VideoRecord, parse_folder
from vidlens.data.transforms import TransformConfig, build_eval_transform, build_train_transform
from vidlens.errors import DatasetError
from vidlens.io import PartialDecodeWarning
from vidlens.testing import make_bad_files, read_pattern_index, write_pattern_video

BAD = {"zero_byte.mp4", "notes.mp4", "truncated.mp4", "audio_only.mp4", "garbage.mp4"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """ROOT/<class>/<video>: 3 classes x 3 pattern videos (16 frames, 8 fps, 64x48) + 5 bad files in class a."""
    root = tmp_path_factory.mktemp("folder")
    first = write_pattern_video(root / "a" / "a0.mp4", 16, fps=8, size=(48, 64))
    for cls in "abc":
        (root / cls).mkdir(exist_ok=True)
        for i in range(3):
            if (cls, i) != ("a", 0):
                shutil.copyfile(first, root / cls / f"{cls}{i}.mp4")
    make_bad_files(root / "a", first)
    return root


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return write_pattern_video(tmp_path_factory.mktemp("long") / "long.mp4", 40, fps=8, size=(48, 64), gop=8)


def frame_ids(video: torch.Tensor) -> list[int]:
    """Pattern indices of a uint8 (T,C,H,W) clip."""
    return [read_pattern_index(f.permute(1, 2, 0).numpy()) for f in video]


def good_only(tree: Path):
    spec = parse_folder(tree, val_frac=0, test_frac=0)
    return [r for r in spec.records_by_split["train"] if Path(r.path).name not in BAD], spec.labels


def test_train_and_test_items(tree):
    records, labels = good_only(tree)
    tcfg = TransformConfig(size=32, test_crop="three")
    train = VideoClipDataset(records, labels, SamplerConfig(clip_len=4), build_train_transform(tcfg), train=True, decode_size=40)
    item = train[0]
    assert item["video"].shape == (4, 3, 32, 32) and item["video"].dtype == torch.float32
    assert isinstance(item["label"], int) and item["label"] == records[0].label
    meta = item["meta"]
    assert meta["path"] == records[0].path and meta["index"] == 0 and meta["substituted"] is False
    assert meta["clip_starts_s"].shape == (1,) and meta["original_path"] == ""
    assert all(v is not None for v in meta.values())

    test = VideoClipDataset(records, labels, SamplerConfig(clip_len=4, num_clips=2), build_eval_transform(tcfg),
                            train=False, decode_size=40)
    item = test[1]
    assert item["video"].shape == (2 * 3, 4, 3, 32, 32)  # K clips x V crops
    assert item["meta"]["clip_starts_s"].shape == (2,)
    batch = next(iter(DataLoader(test, batch_size=2)))
    assert batch["video"].shape == (2, 6, 4, 3, 32, 32) and batch["label"].tolist() == [r.label for r in records[:2]]

    raw = VideoClipDataset(records, labels, SamplerConfig(clip_len=5, num_clips=3), None, train=False, decode_size=None)
    clips = raw[2]["video"]
    assert clips.shape == (3, 5, 3, 48, 64) and clips.dtype == torch.uint8
    # 16 frames, clips of 5: starts 0, 6 (centre), 11 (last frame ends the clip).
    assert [frame_ids(c) for c in clips] == [[0, 1, 2, 3, 4], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
    assert raw[2]["meta"]["clip_starts_s"].tolist() == pytest.approx([0, 6 / 8, 11 / 8])


def test_trimmed_segment_sampling_stays_inside(long_video):
    rec = VideoRecord(str(long_video), 0, start_s=1.0, end_s=2.5)  # frames 8..19 at 8 fps
    train = VideoClipDataset([rec], ["x"], SamplerConfig(clip_len=3, stride=2), None, train=True, decode_size=None, seed=5)
    seen = set()
    for _ in range(12):
        item = train[0]
        ids = frame_ids(item["video"])
        assert all(8 <= i < 20 for i in ids), ids
        assert item["meta"]["clip_starts_s"].item() == pytest.approx(ids[0] / 8)
        seen.add(ids[0])
    assert len(seen) > 2  # random starts, from 8 to 15
    test = VideoClipDataset([rec], ["x"], SamplerConfig(clip_len=4, num_clips=2), None, train=False, decode_size=None)
    assert [frame_ids(c) for c in test[0]["video"]] == [[8, 9, 10, 11], [16, 17, 18, 19]]
    uniform = VideoClipDataset([rec], ["x"], SamplerConfig(mode="uniform", clip_len=6), None, train=True, decode_size=None)
    assert frame_ids(uniform[0]["video"]) == [9, 11, 13, 15, 17, 19]

    beyond = VideoRecord(str(long_video), 0, start_s=9.0, end_s=10.0)
    with pytest.raises(DatasetError, match="holds no frames"):
        VideoClipDataset([beyond], ["x"], SamplerConfig(clip_len=2), None, train=True)[0]


def test_training_rng_is_seeded(long_video):
    rec = VideoRecord(str(long_video), 0)
    make = lambda seed: VideoClipDataset([rec] * 6, ["x"], SamplerConfig(clip_len=2), None, train=True,  # noqa: E731
                                         decode_size=24, seed=seed)
    starts = lambda ds: [ds[i]["meta"]["clip_starts_s"].item() for i in range(len(ds))]  # noqa: E731
    assert starts(make(1)) == starts(make(1))
    assert starts(make(1)) != starts(make(2))


def test_bad_files_are_substituted_and_logged_once(tree, caplog):
    spec = parse_folder(tree, val_frac=0, test_frac=0)
    records = spec.records_by_split["train"]
    ds = VideoClipDataset(records, spec.labels, SamplerConfig(clip_len=2), None, train=True, decode_size=24, seed=0)
    bad_idx = [i for i, r in enumerate(records) if Path(r.path).name in BAD]
    assert len(bad_idx) == 5
    with caplog.at_level(logging.WARNING, logger="vidlens.data"):
        for _ in range(2):
            items = [ds[i] for i in range(len(ds))]
    warned = [r for r in caplog.records if "skipping unreadable video" in r.getMessage()]
    assert len(warned) == 5  # once per file, not once per access
    assert {Path(p).name for p in ds.bad_files} == BAD
    for i, item in enumerate(items):
        meta = item["meta"]
        if i in bad_idx:
            assert meta["substituted"] and Path(meta["original_path"]).name in BAD
            assert Path(meta["path"]).name not in BAD
            assert item["label"] == records[i].label  # same class preferred in training
        else:
            assert not meta["substituted"] and meta["path"] == records[i].path
    # Deterministic from (seed, index): a fresh dataset (another process) picks the same substitutes.
    fresh = VideoClipDataset(records, spec.labels, SamplerConfig(clip_len=2), None, train=True, decode_size=24, seed=0)
    assert [fresh[i]["meta"]["used_index"] for i in bad_idx] == [items[i]["meta"]["used_index"] for i in bad_idx]
    pickle.loads(pickle.dumps(ds))


def test_dataloader_workers_survive_bad_files(tree):
    tcfg = TransformConfig(size=24)
    splits = build_datasets(tree, "folder", sampler=SamplerConfig(clip_len=2), transform=tcfg, decode_size=28,
                            val_frac=0, test_frac=0)
    ds = splits["train"]
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    substituted, seen = 0, 0
    for batch in loader:
        assert batch["video"].shape[1:] == (2, 3, 24, 24)
        substituted += int(batch["meta"]["substituted"].sum())
        seen += len(batch["label"])
        assert all(Path(p).name not in BAD for p in batch["meta"]["path"])
    assert seen == len(ds) == 14 and substituted == 5


def test_worker_rng_differs_between_workers(long_video):
    rec = VideoRecord(str(long_video), 0)
    ds = VideoClipDataset([rec] * 8, ["x"], SamplerConfig(clip_len=2), None, train=True, decode_size=24, seed=0)
    ds[0]  # an RNG made in the main process must not be shared by the workers
    torch.manual_seed(0)
    starts = [b["meta"]["clip_starts_s"].item() for b in DataLoader(ds, batch_size=None, num_workers=2)]
    worker0, worker1 = starts[0::2], starts[1::2]  # the default sampler hands items out round-robin
    assert worker0 != worker1


def test_every_retry_failing_raises(tree):
    records = [VideoRecord(str(tree / "a" / name), 0) for name in sorted(BAD)]
    ds = VideoClipDataset(records, ["a"], SamplerConfig(clip_len=2), None, train=True, max_retries=3)
    with pytest.raises(DatasetError, match="no readable substitute"):
        ds[0]


def test_exclude_skips_scanned_bad_files(tree, tmp_path):
    bad_csv = tmp_path / "bad_files.csv"
    bad_csv.write_text("path,reason\n" + "".join(f"{tree / 'a' / n},broken\n" for n in sorted(BAD)))
    splits = build_datasets(tree, "folder", sampler=SamplerConfig(clip_len=2), val_frac=0, test_frac=0,
                            exclude=bad_csv, decode_size=24)
    ds = splits["train"]
    assert len(ds) == 9 and ds.excluded == 5
    assert not any(ds[i]["meta"]["substituted"] for i in range(len(ds)))


def test_partial_decode_warnings_are_counted_not_spammed(tree, monkeypatch, caplog):
    records, labels = good_only(tree)
    real = datasets_module.read_clip

    def flaky(path, indices, **kwargs):
        warnings.warn(PartialDecodeWarning(path, "1 of 2 requested frames could not be decoded"), stacklevel=2)
        return real(path, indices, **kwargs)

    monkeypatch.setattr(datasets_module, "read_clip", flaky)
    ds = VideoClipDataset(records[:1], labels, SamplerConfig(clip_len=2), None, train=True, decode_size=24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may escape as a Python warning
        with caplog.at_level(logging.WARNING, logger="vidlens.data"):
            metas = [ds[0]["meta"] for _ in range(3)]
    assert all(m["partial_decode"] for m in metas) and not any(m["substituted"] for m in metas)
    assert ds.partial_decodes[records[0].path] == 3
    assert sum("could not be decoded" in r.getMessage() for r in caplog.records) == 1


def test_multi_label_targets(tree, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label,split\n{tree / 'a' / 'a1.mp4'},cat;dog,train\n{tree / 'b' / 'b1.mp4'},dog,train\n")
    ds = build_datasets(layout="manifest", manifest=manifest, sampler=SamplerConfig(clip_len=2), decode_size=24)["train"]
    assert ds.multi_label
    assert ds[0]["label"].tolist() == [1.0, 1.0] and ds[1]["label"].tolist() == [0.0, 1.0]
    assert ds[0]["label"].dtype == torch.float32


def test_class_weights_and_balanced_sampler():
    records = [VideoRecord(f"{i}.mp4", 0) for i in range(8)] + [VideoRecord(f"x{i}.mp4", 1) for i in range(2)]
    weights = class_weights(records, 3)
    assert weights.tolist() == pytest.approx([10 / 16, 10 / 4, 0.0])
    sampler = BalancedSampler(records, 3, num_samples=4000, generator=torch.Generator().manual_seed(0))
    drawn = np.array([records[i].label for i in sampler])
    assert len(drawn) == 4000 and abs((drawn == 1).mean() - 0.5) < 0.05
