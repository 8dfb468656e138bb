"""The published anomaly benchmarks' layouts (UCSD Ped2, CUHK Avenue, ShanghaiTech), written small from real
footage by the tests, read back exactly; broken layouts give DatasetError naming what is missing."""

from __future__ import annotations

import logging
import shutil

import cv2
import numpy as np
import pytest

from tests.tasks.anomaly import layouts as L
from vidlens.errors import DatasetError
from vidlens.tasks.anomaly.datasets import load_anomaly_dataset, read_avenue_labels, read_ped_gt_script


@pytest.fixture(scope="module")
def ped2_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ped2")
    L.make_ped2(root)
    return root


@pytest.fixture(scope="module")
def avenue_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("avenue")
    L.make_avenue(root)
    return root


@pytest.fixture(scope="module")
def sht_root(tmp_path_factory):
    return L.make_shanghaitech(tmp_path_factory.mktemp("sht"))  # the shanghaitech folder


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- UCSD Ped2


def test_ped2_gt_script_ranges(tmp_path):
    script = tmp_path / "UCSDped2.m"
    script.write_text("TestVideoFile = {};\n\nTestVideoFile{end+1}.gt_frame = [61:180];\n"
                      "TestVideoFile{end+1}.gt_frame = [1:5, 90:120];  % two runs\n"
                      "TestVideoFile{end+1}.gt_frame = [7 9:10];\n"
                      "% TestVideoFile{end+1}.gt_frame = [1:2];\n"
                      "TestVideoFile{end+1}.gt_frame = [];\n")
    assert read_ped_gt_script(script) == [[(61, 180)], [(1, 5), (90, 120)], [(7, 7), (9, 10)], []]
    script.write_text("TestVideoFile{end+1}.gt_frame = [5:x];\n")
    with pytest.raises(DatasetError, match="5:x"):
        read_ped_gt_script(script)
    script.write_text("nothing here\n")
    with pytest.raises(DatasetError, match="gt_frame"):
        read_ped_gt_script(script)


@pytest.mark.parametrize("level", ["archive", "ped2", "parent"])
def test_ped2_reads_frames_and_labels(ped2_root, level):
    root = {"archive": ped2_root / "UCSD_Anomaly_Dataset.v1p2", "ped2": ped2_root / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2",
            "parent": ped2_root}[level]
    ds = load_anomaly_dataset(root, "ped2")
    assert ds.name == "ped2" and ds.root.name == "UCSDped2"
    assert ds.train_names == ["Train001", "Train002"]
    assert [len(s) for s in ds.train] == [n for _, n in L.PED2_TRAIN]
    assert [p.name for p in ds.train[0][:3]] == ["001.tif", "002.tif", "003.tif"]
    assert [v.name for v in ds.test] == ["Test001", "Test002"]  # ._Test001 debris and _gt folders ignored
    first, second = ds.test
    assert first.num_frames == 36 and len(first.source) == 36
    np.testing.assert_array_equal(np.flatnonzero(first.labels), np.r_[11:20, 29:34])  # [12:20, 30:34], 1-based inclusive
    np.testing.assert_array_equal(np.flatnonzero(second.labels), np.arange(5))      # [1:5]
    assert first.labels.dtype == np.uint8 and second.num_frames == 30
    assert len(first.pixel_masks) == 36 and first.pixel_masks[0].name == "001.bmp"
    assert not ds.skipped
    # the frames are the real footage, lossless grayscale .tif as in the real set
    img = cv2.imread(str(first.source[5]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(img, L.real_frames(L.PED2_TEST[0][0], 6, gray=True)[5])


def test_ped2_labels_from_masks_without_script(tmp_path):
    L.make_ped2(tmp_path, script=False)
    ds = load_anomaly_dataset(tmp_path, "ped2")
    for video, ranges in zip(ds.test, L.PED2_RANGES):
        np.testing.assert_array_equal(video.labels, L.ped2_labels(ranges, video.num_frames))


def test_ped2_broken_layouts(ped2_root, tmp_path):
    with pytest.raises(DatasetError, match="UCSDped2 folder"):
        load_anomaly_dataset(tmp_path, "ped2")
    root = _copy(ped2_root, tmp_path)
    ped = root / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2"
    script = ped / "Test" / "UCSDped2.m"
    # one gt line too few for the test folders
    text = script.read_text()
    script.write_text(text.rsplit("TestVideoFile{end+1}", 1)[0])
    with pytest.raises(DatasetError, match="1 gt_frame lines for 2 test video folders") as err:
        load_anomaly_dataset(root, "ped2")
    assert err.value.path.endswith("UCSDped2.m")
    # neither the script nor masks
    script.unlink()
    shutil.rmtree(ped / "Test" / "Test002_gt")
    with pytest.raises(DatasetError, match="missing: .*Test002") as err:
        load_anomaly_dataset(root, "ped2")
    assert "UCSDped2.m" in str(err.value)
    with pytest.raises(DatasetError, match="unknown anomaly dataset format"):
        load_anomaly_dataset(root, "ped3")


def test_ped2_label_frame_mismatch_is_skipped_not_truncated(ped2_root, tmp_path, caplog):
    root = _copy(ped2_root, tmp_path)
    script = root / "UCSD_Anomaly_Dataset.v1p2" / "UCSDped2" / "Test" / "UCSDped2.m"
    script.write_text(script.read_text().replace("[1:5]", "[25:40]"))  # Test002 has 30 frames
    with caplog.at_level(logging.WARNING):
        ds = load_anomaly_dataset(root, "ped2")
    assert [v.name for v in ds.test] == ["Test001"]
    assert ds.skipped[0]["name"] == "Test002" and "40 frame labels but 30 frames" in ds.skipped[0]["reason"]
    assert "Test002" in caplog.text
    assert ds.summary()["skipped"] == ds.skipped


# ---------------------------------------------------------------- CUHK Avenue


def test_avenue_reads_videos_and_label_volumes(avenue_root):
    for root in (avenue_root, avenue_root / "Avenue Dataset"):  # the ground truth found beside the dataset folder too
        ds = load_anomaly_dataset(root, "avenue")
        assert ds.name == "avenue" and ds.train_names == ["01", "02"]
        assert [p.name for p in ds.train] == ["01.avi", "02.avi"]
        assert [v.name for v in ds.test] == ["01", "02", "03"]
        for video, (_, n), run in zip(ds.test, L.AVENUE_TEST, L.AVENUE_ANOMALOUS):
            assert video.num_frames == n and video.source.suffix == ".avi"
            np.testing.assert_array_equal(video.labels, L.avenue_labels(n, run))
            assert video.pixel_masks.name == f"{int(video.name)}_label.mat"


def test_avenue_mat_v5_and_v73(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 0, 1], np.uint8)
    cell = L.vol_label(labels)
    import scipy.io

    scipy.io.savemat(tmp_path / "1_label.mat", {"volLabel": cell})
    np.testing.assert_array_equal(read_avenue_labels(tmp_path / "1_label.mat"), labels)
    L.write_mat_v73(tmp_path / "2_label.mat", cell)
    with pytest.raises(NotImplementedError):  # really a v7.3 file to scipy
        scipy.io.loadmat(tmp_path / "2_label.mat")
    np.testing.assert_array_equal(read_avenue_labels(tmp_path / "2_label.mat"), labels)
    scipy.io.savemat(tmp_path / "3_label.mat", {"gt": labels})
    with pytest.raises(DatasetError, match="no `volLabel`"):
        read_avenue_labels(tmp_path / "3_label.mat")
    (tmp_path / "4_label.mat").write_text("not a mat file")
    with pytest.raises(DatasetError, match="cannot read"):
        read_avenue_labels(tmp_path / "4_label.mat")


def test_avenue_v73_layout_and_broken(avenue_root, tmp_path):
    v73 = tmp_path / "v73"
    L.make_avenue(v73, v73=True)
    ds = load_anomaly_dataset(v73, "avenue")
    np.testing.assert_array_equal(ds.test[0].labels, L.avenue_labels(L.AVENUE_TEST[0][1], L.AVENUE_ANOMALOUS[0]))

    root = _copy(avenue_root, tmp_path)
    (root / "ground_truth_demo" / "testing_label_mask" / "2_label.mat").unlink()
    with pytest.raises(DatasetError, match="label volume of test video 02.avi") as err:
        load_anomaly_dataset(root, "avenue")
    assert err.value.path.endswith("2_label.mat")
    shutil.rmtree(root / "ground_truth_demo")
    with pytest.raises(DatasetError, match="missing: the Avenue ground truth"):
        load_anomaly_dataset(root, "avenue")
    with pytest.raises(DatasetError, match="training_videos"):
        load_anomaly_dataset(tmp_path / "v73" / "ground_truth_demo", "avenue")


def test_avenue_label_count_mismatch_skipped(avenue_root, tmp_path, caplog):
    import scipy.io

    root = _copy(avenue_root, tmp_path)
    n = L.AVENUE_TEST[2][1]
    scipy.io.savemat(root / "ground_truth_demo" / "testing_label_mask" / "3_label.mat",
                     {"volLabel": L.vol_label(np.zeros(n + 3, np.uint8))})
    with caplog.at_level(logging.WARNING):
        ds = load_anomaly_dataset(root, "avenue")
    assert [v.name for v in ds.test] == ["01", "02"]
    assert ds.skipped == [{"name": "03", "reason": ds.skipped[0]["reason"]}]
    assert f"{n + 3} frame labels but {n} frames" in ds.skipped[0]["reason"]


# ---------------------------------------------------------------- ShanghaiTech


def test_shanghaitech_reads_frames_and_masks(sht_root):
    ds = load_anomaly_dataset(sht_root.parent, "shanghaitech")
    assert ds.name == "shanghaitech" and ds.train_names == L.SHT_TRAIN
    assert [p.suffix for p in ds.train] == [".avi"] * 3
    assert [v.name for v in ds.test] == list(L.SHT_TEST)
    for video, (start, n, (a, b)) in zip(ds.test, L.SHT_TEST.values()):
        assert video.num_frames == n == len(video.source)
        assert video.source[0].name == "000.jpg" and video.source[-1].name == f"{n - 1:03d}.jpg"
        np.testing.assert_array_equal(np.flatnonzero(video.labels), np.arange(a, b + 1))
        assert video.pixel_masks.name == f"{video.name}.npy"
    img = cv2.cvtColor(cv2.imread(str(ds.test[0].source[3])), cv2.COLOR_BGR2RGB)
    ref = L.real_frames(300, 4)[3]
    assert np.abs(img.astype(int) - ref).mean() < 4  # jpg of the same real frame

    one = load_anomaly_dataset(sht_root, "shanghaitech", scene="02")
    assert one.train_names == ["02_001"] and [v.name for v in one.test] == ["02_0161"]


def test_shanghaitech_training_frames_and_broken(sht_root, tmp_path, caplog):
    root = _copy(sht_root, tmp_path)
    # the frame-folder variant of the training split (training/frames/01_001/000.jpg ...)
    shutil.rmtree(root / "training" / "videos")
    L.write_images(root / "training" / "frames" / "01_001", L.real_frames(0, 12), ".jpg", start_number=0)
    ds = load_anomaly_dataset(root, "shanghaitech")
    assert ds.train_names == ["01_001"] and len(ds.train[0]) == 12 and ds.test[0].pixel_masks is not None
    # a mask one frame short: reported and left out, not truncated
    np.save(root / "testing" / "test_frame_mask" / "01_0015.npy", np.zeros(19, np.int64))
    with caplog.at_level(logging.WARNING):
        ds = load_anomaly_dataset(root, "shanghaitech")
    assert [v.name for v in ds.test] == ["01_0014", "02_0161"] and ds.skipped[0]["name"] == "01_0015"
    (root / "testing" / "test_frame_mask" / "02_0161.npy").unlink()
    with pytest.raises(DatasetError, match="frame labels of test video 02_0161") as err:
        load_anomaly_dataset(root, "shanghaitech")
    assert err.value.path.endswith("02_0161.npy")
    shutil.rmtree(root / "training" / "frames")
    with pytest.raises(DatasetError, match="missing: the training videos"):
        load_anomaly_dataset(root, "shanghaitech")
    with pytest.raises(DatasetError, match="not a folder"):
        load_anomaly_dataset(root / "nope", "shanghaitech")
