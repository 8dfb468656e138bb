"""Validation scans, the pre-decoded frame cache, and the `vidlens data scan/cache` commands."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidlens.data import datasets as datasets_module
from vidlens.data.cache import CacheReader, build_cache
from vidlens.data.datasets import VideoClipDataset
from vidlens.data.samplers import SamplerConfig
from vidlens.data.scan import load_bad_files, scan_dataset
from vidlens.data.sources import parse_folder
from vidlens.data.transforms import TransformConfig, build_eval_transform
from vidlens.errors import ConfigError
from vidlens.io import read_clip
from vidlens.testing import corrupt_middle, make_bad_files, write_pattern_video

BAD = {"zero_byte.mp4", "notes.mp4", "truncated.mp4", "audio_only.mp4", "garbage.mp4"}
VIDLENS = Path(sys.executable).parent / "vidlens"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """ROOT/{a,b}/: 3 + 2 pattern videos (16 frames at 8 fps, 64x48; one with audio) and 5 bad files in a/."""
    root = tmp_path_factory.mktemp("scan")
    write_pattern_video(root / "a" / "a0.mp4", 16, fps=8, size=(48, 64))
    write_pattern_video(root / "a" / "a1.mp4", 12, fps=8, size=(48, 64), audio_rate=16000)
    write_pattern_video(root / "a" / "a2.mp4", 16, fps=8, size=(48, 64))
    (root / "b").mkdir()
    write_pattern_video(root / "b" / "b0.mkv", 10, fps=10, size=(64, 96))
    write_pattern_video(root / "b" / "b1.mp4", 16, fps=8, size=(48, 64))
    make_bad_files(root / "a", root / "a" / "a0.mp4")
    return root


def good_records(tree: Path):
    spec = parse_folder(tree, val_frac=0, test_frac=0)
    return [r for r in spec.records_by_split["train"] if Path(r.path).name not in BAD], spec.labels


# ------------------------------------------------------------------ scan


def test_scan_finds_exactly_the_bad_files(tree, tmp_path):
    calls = []
    result = scan_dataset(tree, "folder", out=tmp_path / "out", workers=2, val_frac=0, test_frac=0,
                          progress=lambda done, total: calls.append((done, total)))
    assert {Path(p).name for p, _ in result.bad} == BAD
    reasons = dict((Path(p).name, r) for p, r in result.bad)
    assert "empty" in reasons["zero_byte.mp4"] and "no video stream" in reasons["audio_only.mp4"]
    assert calls[0] == (0, 10) and calls[-1] == (10, 10)

    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"bad_files.csv", "scan_summary.json", "scan_summary.png"}
    with open(out / "bad_files.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {Path(r["path"]).name for r in rows} == BAD and all(r["reason"] for r in rows)
    assert {Path(p).name for p in load_bad_files(out / "bad_files.csv")} == BAD
    summary = json.loads((out / "scan_summary.json").read_text())
    assert (summary["total_files"], summary["ok_files"], summary["bad_files"]) == (10, 5, 5)
    assert summary["classes"]["a"] == {"train": 8, "total": 8, "bad": 5}
    assert summary["classes"]["b"]["total"] == 2
    assert summary["resolutions"] == {"64x48": 4, "96x64": 1}
    assert summary["fps"] == {"8": 4, "10": 1}
    assert summary["duration_s"]["min"] == pytest.approx(1.0) and summary["duration_s"]["max"] == pytest.approx(2.0)
    assert summary["duration_s"]["total"] == pytest.approx(2 + 1.5 + 2 + 1 + 2)
    assert summary["audio_share"] == pytest.approx(0.2)
    assert sum(summary["duration_histogram"]["counts"]) == 5
    assert (out / "scan_summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deep_scan_and_missing_manifest_entries(tree, tmp_path):
    write_pattern_video(tmp_path / "long.mp4", 90, fps=30, size=(96, 128), gop=10)
    corrupt_middle(tmp_path / "long.mp4", tmp_path / "damaged.mp4", fraction=0.2)  # opens, but frame 45 is gone
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"path,label\n{tree / 'a' / 'a0.mp4'},x\n{tree / 'a' / 'garbage.mp4'},x\n{tmp_path / 'gone.mp4'},y\n"
        "damaged.mp4,y\n"
    )
    shallow = scan_dataset(layout="manifest", manifest=manifest, workers=1, val_frac=0, test_frac=0)
    assert sorted(Path(p).name for p, _ in shallow.bad) == ["garbage.mp4", "gone.mp4"]
    result = scan_dataset(layout="manifest", manifest=manifest, out=tmp_path / "out", workers=1, deep=True,
                          val_frac=0, test_frac=0)
    # A damaged file stays usable: its lost frames are substituted, and the scan counts it.
    assert sorted(Path(p).name for p, _ in result.bad) == ["garbage.mp4", "gone.mp4"]
    partial = {Path(row["path"]).name: row["warning"] for row in result.summary["partial_decode_files"]}
    assert list(partial) == ["damaged.mp4"] and "could not be decoded" in partial["damaged.mp4"]
    assert "not found" in dict(result.bad)[str(tmp_path / "gone.mp4")]
    assert result.summary["missing"] == 1 and (tmp_path / "out" / "missing.csv").is_file()


# ------------------------------------------------------------------ cache


def test_raw_cache_round_trip_is_exact(tree, tmp_path):
    records, labels = good_records(tree)
    report = build_cache(records, tmp_path / "c", fps=8, size=32, image_format="raw", shard_videos=2, labels=labels)
    assert report.cached == 5 and report.skipped == 0 and not report.bad
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "index.json", "shard-00000.bin", "shard-00000.json", "shard-00001.bin", "shard-00001.json",
        "shard-00002.bin", "shard-00002.json"]  # 2 videos per shard, no temporary files left
    cache = CacheReader(tmp_path / "c")
    assert len(cache) == 5 and cache.labels == labels
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["fps"] == 8.0 and index["image_format"] == "raw"
    for rec in records:
        entry = cache.entry(rec.path)
        if rec.path.endswith("b0.mkv"):  # 10 fps source, 1 s: cached at 8 fps
            assert entry.num_frames == 8 and (entry.height, entry.width) == (32, 48)
            continue
        assert entry.fps == 8.0 and index["videos"][os.path.realpath(rec.path)]["label"] == rec.label
        wanted = [entry.num_frames - 1, 0, 3, 3]
        assert np.array_equal(cache.read(rec.path, wanted), read_clip(rec.path, wanted, size=32))


def test_jpeg_cache_close_to_direct_decoding_and_reruns_skip(tree, tmp_path):
    src = tmp_path / "videos"
    shutil.copytree(tree, src)
    records, labels = good_records(src)
    first = build_cache(records + [r for r in parse_folder(src, 0, 0).records_by_split["train"]], tmp_path / "c",
                        fps=8, size=32, quality=90, workers=2)
    assert first.cached == 5 and {Path(p).name for p in first.bad} == BAD  # bad videos reported, not fatal
    cache = CacheReader(tmp_path / "c")
    rec = next(r for r in records if r.path.endswith("a2.mp4"))
    direct = read_clip(rec.path, range(16), size=32).astype(np.float32)
    cached = cache.read(rec.path, range(16)).astype(np.float32)
    assert direct.shape == cached.shape and np.abs(direct - cached).mean() < 4.0

    again = build_cache(records, tmp_path / "c", fps=8, size=32, quality=90)
    assert (again.cached, again.skipped) == (0, 5)
    os.utime(rec.path, ns=(1_000_000_000, 1_000_000_000))  # a changed source is cached again
    third = build_cache(records, tmp_path / "c", fps=8, size=32, quality=90)
    assert (third.cached, third.skipped) == (1, 4)
    assert CacheReader(tmp_path / "c").entry(rec.path).shard == "shard-00001.bin"
    with pytest.raises(ConfigError, match="fps=4"):
        build_cache(records, tmp_path / "c", fps=4, size=32)


def test_dataset_reads_the_cache_instead_of_the_video(tree, tmp_path, monkeypatch):
    records, labels = good_records(tree)
    build_cache(records, tmp_path / "c", fps=8, size=32, image_format="raw")
    sampler = SamplerConfig(clip_len=4, num_clips=2)
    from_video = VideoClipDataset(records, labels, sampler, None, train=False, decode_size=32)
    from_cache = VideoClipDataset(records, labels, sampler, None, train=False, decode_size=32, cache=tmp_path / "c")
    i = next(i for i, r in enumerate(records) if r.path.endswith("a0.mp4"))
    assert torch.equal(from_cache[i]["video"], from_video[i]["video"])

    def no_video(*args, **kwargs):
        raise AssertionError("decoded a video although it is cached")

    monkeypatch.setattr(datasets_module, "read_clip", no_video)
    monkeypatch.setattr(datasets_module, "frame_index", no_video)
    cached = VideoClipDataset(records, labels, sampler, build_eval_transform(TransformConfig(size=24)),
                              train=False, cache=CacheReader(tmp_path / "c"))
    for j in range(len(cached)):
        item = cached[j]
        assert item["video"].shape == (2, 4, 3, 24, 24) and not item["meta"]["substituted"]


# ------------------------------------------------------------------ CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(VIDLENS), *args], capture_output=True, text=True, timeout=120, env=env)


def test_cli_scan_and_cache(tree, tmp_path):
    scan = run_cli("data", "scan", str(tree), "--out", str(tmp_path / "scan"), "--workers", "2")
    assert scan.returncode == 0, scan.stderr
    assert "5 bad" in scan.stdout and "10 files" in scan.stdout
    assert {p.name for p in (tmp_path / "scan").iterdir()} == {"bad_files.csv", "scan_summary.json", "scan_summary.png"}

    args = ["data", "cache", str(tree), "--out", str(tmp_path / "c"), "--fps", "4", "--size", "32", "--format", "raw",
            "--exclude", str(tmp_path / "scan" / "bad_files.csv"), "--workers", "1"]
    cache = run_cli(*args)
    assert cache.returncode == 0, cache.stderr
    assert "5 videos cached" in cache.stdout and "0 bad" in cache.stdout
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert index["fps"] == 4.0 and index["num_videos"] == 5 and index["labels"] == ["a", "b"]
    rerun = run_cli(*args)
    assert rerun.returncode == 0 and "5 already cached" in rerun.stdout

    missing = run_cli("data", "scan", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
