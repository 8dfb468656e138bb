"""The real-footage anomaly set has exact ground truth, and `bench_anomaly.py --quick` reports every method and kind.

The set is built once (quick: vtest.avi, one clip per kind + one normal twin) and shared by both tests.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tests.test_benchmarks_smoke import _load, run_quick
from vidlens.testing.real import ffmpeg_available

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not ffmpeg_available(), reason="needs the ffmpeg CLI")]


@pytest.fixture(scope="module")
def anomaly_set(tmp_path_factory):
    data = _load("_anomaly_data")
    real = _load("_common").real_videos(["vtest.avi"])
    if "vtest.avi" not in real:
        pytest.skip("opencv-doc vtest.avi is not installed")
    folder = tmp_path_factory.mktemp("anomaly_set")
    return data, folder, data.build_set(folder, quick=True), real["vtest.avi"]


def test_anomaly_set_ground_truth_is_exact(anomaly_set):
    data, folder, manifest, vtest = anomaly_set
    cam = manifest["cameras"][0]
    size = tuple(cam["size"])
    source = data.decode(vtest, size)  # the ffmpeg CLI's frames: what the clips were built from
    train = data.decode(cam["train"])
    assert np.array_equal(train, source[cam["train_frames"][0]:cam["train_frames"][1]])
    assert cam["train_frames"][1] <= cam["test_frames"][0]  # training and test material never overlap
    kinds = sorted(c["kind"] for c in manifest["clips"])
    assert kinds == sorted(["normal", "against_flow", "speed", "object", "motion"])
    for clip in manifest["clips"]:
        frames = data.decode(clip["path"])
        start = clip["source_start_frame"]
        assert start >= cam["test_frames"][0]
        base = source[start:start + clip["frames"]]
        assert frames.shape == base.shape and len(clip["labels"]) == len(frames) == len(clip["boxes"])
        labels = np.asarray(clip["labels"])
        if clip["kind"] == "normal":
            assert labels.sum() == 0
        else:
            assert 6 <= labels.sum() < len(labels)  # a stretch of anomaly with normal frames before it
            assert labels[0] == 0
        for t, (frame, ref) in enumerate(zip(frames, base)):
            changed = np.any(frame != ref, axis=-1)
            if not labels[t]:
                assert not changed.any(), f"{clip['path']} frame {t}: unlabelled but changed"
                assert clip["boxes"][t] is None
                continue
            x0, y0, x1, y1 = clip["boxes"][t]
            assert 0 <= x0 < x1 <= size[1] and 0 <= y0 < y1 <= size[0]
            inside = np.zeros_like(changed)
            inside[y0:y1, x0:x1] = True
            assert changed.any() and not (changed & ~inside).any(), f"{clip['path']} frame {t}: change outside its box"
            ys, xs = np.nonzero(changed)  # the box is tight
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [x0, y0, x1, y1]
        if clip["kind"] == "object":  # appears and stays, static
            first = int(np.argmax(labels))
            assert labels[first:].all()
            assert clip["boxes"][first] == clip["boxes"][-1]
        if clip["kind"] in ("against_flow", "speed"):  # the person's pixels are those of the source track, in order
            first_src, last_src = clip["source_frames"]
            assert clip["step"] == (4 if clip["kind"] == "speed" else 1)
            assert not (start <= first_src < start + clip["frames"] or start <= last_src < start + clip["frames"])
            first = int(np.argmax(labels))
            for j, t in enumerate(range(first, first + int(labels.sum()))):
                src = source[last_src - j] if clip["kind"] == "against_flow" else source[first_src + 4 * j]
                wrong = source[first_src + j] if clip["kind"] == "against_flow" else source[first_src + j]
                changed = np.any(frames[t] != base[t], axis=-1)
                same = np.all(frames[t] == src, axis=-1)[changed].mean()  # the opaque core is the source's pixels
                err = np.abs(frames[t].astype(int) - src)[changed].mean()
                err_wrong = np.abs(frames[t].astype(int) - wrong)[changed].mean()
                assert same > 0.1 and (j < 2 or err < err_wrong), (clip["kind"], j, same, err, err_wrong)
        on_disk = json.loads((folder / (clip["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".json")).read_text())
        assert on_disk["labels"] == clip["labels"]

    # What the anomaly models read (PyAV through vidlens) is the same lossless frames.
    from vidlens.tasks.anomaly.frames import read_frames

    clip = next(c for c in manifest["clips"] if c["kind"] == "speed")
    frames, _, _ = read_frames(clip["path"], size)
    assert np.array_equal(frames, data.decode(clip["path"]))


def _methods_present() -> bool:
    return all(importlib.util.find_spec(f"vidlens.tasks.anomaly.{m}") for m in ("prediction", "features", "motion"))


@pytest.mark.skipif(not _methods_present(), reason="the anomaly methods (issue 17) are not in yet")
def test_bench_anomaly_quick_reports_every_method_and_kind(anomaly_set, tmp_path):
    data, folder, _, _ = anomaly_set
    bench, text = run_quick("bench_anomaly", tmp_path / "RESULTS.md", "--out", str(tmp_path / "out"), "--data", str(folder))
    assert "bench_anomaly.py --quick" in text and "frame-diff energy" in text
    assert "where a method loses to the baseline" in text
    doc = json.loads((tmp_path / "out" / "bench_anomaly.json").read_text())
    assert set(doc["methods"]) == {"frame-diff energy", "prediction", "features", "flow"}
    for name, result in doc["methods"].items():
        assert set(result["auc"]) == {*data.KINDS, "all"}, name
        values = [*result["auc"].values(), *result["auc_absolute"].values(), result["auc_within_clip"], result["localisation"]]
        for value in values:
            assert 0.0 <= value <= 1.0, (name, result)
        assert result["frames"] == sum(c["frames"] for c in doc["clips"])
        assert result["score_fps"] > 0
    assert (tmp_path / "out" / "bench_anomaly.png").stat().st_size > 10_000
