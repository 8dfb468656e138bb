"""Frame-level anomaly metrics against hand-computed cases, and the result files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vidlens.tasks.anomaly.evaluate import PUBLISHED_ANCHORS, equal_error_rate, evaluate_scores, write_metrics


def _pairs_auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC as its definition: P(score of an anomalous frame > score of a normal one), ties count half."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def test_perfect_and_inverted():
    y = [np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])]
    m = evaluate_scores(y, [np.array([0, 1, 2, 3.0]), np.array([0, 5, 1, 6.0])], names=["a", "b"])
    assert (m.micro_auc, m.micro_auc_raw, m.macro_auc, m.eer) == (1.0, 1.0, 1.0, 0.0)
    assert (m.videos, m.videos_in_macro, m.frames, m.anomalous_frames) == (2, 2, 8, 4)
    assert [(v.name, v.frames, v.anomalous_frames, v.auc) for v in m.per_video] == [("a", 4, 2, 1.0), ("b", 4, 2, 1.0)]
    inv = evaluate_scores(y, [np.array([3, 2, 1, 0.0]), np.array([6, 1, 5, 0.0])])
    assert (inv.micro_auc, inv.macro_auc, inv.eer) == (0.0, 0.0, 1.0)


def test_per_video_normalisation_vs_raw():
    # each video alone is perfect; the second sits at a higher level, so raw scores interleave across videos
    y = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])]
    s = [np.array([0, 1, 2, 3.0]), np.array([10, 11, 12, 13.0])]
    m = evaluate_scores(y, s)
    assert m.micro_auc == 1.0 and m.macro_auc == 1.0
    assert m.micro_auc_raw == pytest.approx(12 / 16)  # anomalies 2,3 beat 2 of 4 normals each; 12,13 beat all 4
    assert m.micro_auc_raw == pytest.approx(_pairs_auc(np.concatenate(y), np.concatenate(s)))
    assert m.eer == 0.0 and m.eer_raw > 0


def test_macro_differs_from_micro_and_skips_one_class_videos():
    y = [np.array([0, 1]), np.array([0, 0, 0, 1]), np.zeros(5, np.uint8)]
    s = [np.array([0, 1.0]), np.array([0, 1, 2, 0.5]), np.arange(5.0)]
    m = evaluate_scores(y, s)
    assert m.per_video[1].auc == pytest.approx(1 / 3) and m.per_video[2].auc is None
    assert m.videos == 3 and m.videos_in_macro == 2
    assert m.macro_auc == pytest.approx((1 + 1 / 3) / 2)
    # normalised: v1 [0, 1], v2 [0, .5, 1, .25], v3 [0, .25, .5, .75, 1]; anomalies 1 and .25 against 9 normals:
    # 1 beats 7 and ties 2 (8), .25 beats 3 and ties 1 (3.5)
    norm = np.concatenate([[0, 1.0], [0, 0.5, 1, 0.25], np.arange(5) / 4])
    expected = _pairs_auc(np.concatenate(y), norm)
    assert expected == pytest.approx((8 + 3.5) / 18)
    assert m.micro_auc == pytest.approx(expected)
    assert m.micro_auc != pytest.approx(m.macro_auc)


def test_eer_hand_computed():
    # normals 1..4, anomalies 3.5,5,6,7: ROC corner (fpr .25, tpr .75) is where fpr = miss rate
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = evaluate_scores([y], [np.array([1, 2, 3, 4, 3.5, 5, 6, 7.0])])
    assert m.eer == pytest.approx(0.25) and m.micro_auc == pytest.approx(_pairs_auc(y, np.array([1, 2, 3, 4, 3.5, 5, 6, 7.0])))
    assert 3.5 <= (m.eer_threshold * 6 + 1) <= 4  # normalised threshold back in raw units lies between the two scores
    # ties: normals {0, 1}, anomalies {1, 2}: ROC (0,0) (0,.5) (.5,1) (1,1): the crossing is midway on a segment
    t = evaluate_scores([np.array([0, 0, 1, 1])], [np.array([0, 1, 1, 2.0])])
    assert t.micro_auc == pytest.approx(0.875) and t.eer == pytest.approx(0.25)
    # constant scores: the diagonal; EER .5, AUC .5
    c = evaluate_scores([np.array([0, 1, 0, 1])], [np.ones(4)])
    assert (c.micro_auc, c.macro_auc, c.eer) == (0.5, 0.5, 0.5)
    assert equal_error_rate(np.array([0, 0, 1.0]), np.array([0, 1, 1.0]))[0] == 0.0


def test_random_scores_near_chance():
    rng = np.random.default_rng(0)
    y = [(rng.random(2000) < 0.3).astype(np.uint8) for _ in range(4)]
    s = [rng.random(2000) * (k + 1) for k in range(4)]
    m = evaluate_scores(y, s)
    assert abs(m.micro_auc - 0.5) < 0.03 and abs(m.macro_auc - 0.5) < 0.03 and abs(m.eer - 0.5) < 0.03


def test_undefined_and_bad_input():
    m = evaluate_scores([np.zeros(4, np.uint8)], [np.arange(4.0)])
    assert (m.micro_auc, m.macro_auc, m.eer, m.videos_in_macro) == (None, None, None, 0)
    with pytest.raises(ValueError, match="3 labels but 4 scores"):
        evaluate_scores([np.zeros(3)], [np.zeros(4)])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_scores([np.array([0, 1])], [np.array([0, np.nan])])
    with pytest.raises(ValueError, match="1 label arrays but 2"):
        evaluate_scores([np.zeros(3)], [np.zeros(3), np.zeros(3)])


def test_written_outputs(tmp_path):
    import cv2

    y = [np.array([0, 0, 1, 1]), np.zeros(3, np.uint8)]
    m = evaluate_scores(y, [np.array([0, 2, 1, 3.0]), np.arange(3.0)], names=["Test001", "Test002"])
    paths = write_metrics(m, tmp_path / "out", {"published_anchors": PUBLISHED_ANCHORS}, title="unit")
    data = json.loads(paths["json"].read_text())
    assert data["metrics"]["micro_auc"] == pytest.approx(m.micro_auc) and data["metrics"]["macro_auc"] == pytest.approx(0.75)
    assert data["published_anchors"]["future-frame prediction (Liu et al., CVPR 2018)"]["ped2"] == 95.4
    rows = list(csv.DictReader(paths["csv"].open()))
    assert rows == [{"video": "Test001", "frames": "4", "anomalous_frames": "2", "auc": "0.750000"},
                    {"video": "Test002", "frames": "3", "anomalous_frames": "0", "auc": ""}]
    img = cv2.imread(str(paths["roc"]))
    assert img is not None and img.shape[0] > 300 and img.std() > 10


# ---------------------------------------------------------------- end to end on a Ped2-layout fixture


@pytest.mark.usefixtures("one_thread")
def test_evaluate_dataset_ped2_layout_detects_pasted_fast_object(tmp_path):
    """Real street footage in UCSD Ped2's layout; the frames UCSDped2.m labels anomalous carry an object crossing
    the frame far faster than the pedestrians. The same test frames without it are the control: the AUC must
    come from the inserted object, not from whatever else happens in those frames."""
    from tests.tasks.anomaly import layouts as L
    from vidlens.tasks.anomaly.base import AnomalyConfig
    from vidlens.tasks.anomaly.evaluate import evaluate_dataset

    config = AnomalyConfig(method="flow", size=(96, 128))  # optical-flow statistics: the fastest method
    L.make_ped2(tmp_path / "data", anomaly=True)
    m = evaluate_dataset(tmp_path / "data", "ped2", config, tmp_path / "out")
    assert (m.videos, m.frames, m.anomalous_frames) == (2, 66, 19)  # every frame scored and matched to its label
    assert m.micro_auc > 0.9 and m.macro_auc > 0.9 and m.eer < 0.2

    L.make_ped2(tmp_path / "control", anomaly=False)
    control = evaluate_dataset(tmp_path / "control", "ped2", config, tmp_path / "control_out")
    assert m.micro_auc > control.micro_auc + 0.15

    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert data["metrics"]["micro_auc"] == pytest.approx(m.micro_auc, abs=1e-6)
    assert data["published_anchors"] == {"future-frame prediction (Liu et al., CVPR 2018)": {"micro_auc": 95.4}}
    assert data["dataset"]["format"] == "ped2" and data["dataset"]["test_frames"] == 66 and data["method"] == "flow"
    assert data["seconds"]["score_frames_per_s"] > 0
    rows = list(csv.DictReader((tmp_path / "out" / "per_video.csv").open()))
    assert [(r["video"], r["frames"], r["anomalous_frames"]) for r in rows] == [("Test001", "36", "14"), ("Test002", "30", "5")]
    assert (tmp_path / "out" / "roc.png").stat().st_size > 10_000
    assert "method: flow" in (tmp_path / "out" / "config.yaml").read_text()


def test_evaluate_dataset_bad_input_writes_nothing(tmp_path):
    from vidlens.errors import ConfigError, DatasetError
    from vidlens.tasks.anomaly.base import AnomalyConfig
    from vidlens.tasks.anomaly.evaluate import evaluate_dataset

    with pytest.raises(ConfigError, match="unknown anomaly method 'nope'"):
        evaluate_dataset(tmp_path, "ped2", AnomalyConfig(method="nope"), tmp_path / "out")
    with pytest.raises(DatasetError, match="UCSDped2"):
        evaluate_dataset(tmp_path, "ped2", AnomalyConfig(method="features"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("fmt", ["avenue", "shanghaitech"])
def test_evaluate_dataset_video_and_jpg_layouts_score_every_labelled_frame(tmp_path, fmt):
    """Avenue's .avi test videos and ShanghaiTech's .jpg frame folders: every labelled frame gets a score (the
    fixtures carry no inserted anomaly, so the AUC itself says nothing here)."""
    from tests.tasks.anomaly import layouts as L
    from vidlens.tasks.anomaly.base import AnomalyConfig
    from vidlens.tasks.anomaly.evaluate import evaluate_dataset

    make, expected = {"avenue": (L.make_avenue, (3, 2, 66, 9)), "shanghaitech": (L.make_shanghaitech, (3, 3, 64, 19))}[fmt]
    make(tmp_path / "data")
    m = evaluate_dataset(tmp_path / "data", fmt, AnomalyConfig(method="flow", size=(96, 128)), tmp_path / "out")
    assert (m.videos, m.videos_in_macro, m.frames, m.anomalous_frames) == expected  # Avenue 03 is all normal
    assert m.micro_auc is not None and 0 <= m.micro_auc <= 1
    anchors = json.loads((tmp_path / "out" / "metrics.json").read_text())["published_anchors"]
    published = {"avenue": 84.9, "shanghaitech": 72.8}[fmt]
    assert anchors == {"future-frame prediction (Liu et al., CVPR 2018)": {"micro_auc": published}}
