"""`vidlens explain` and `vidlens predict --explain` end to end on real footage (issue 18).

A frame+temporal model (small CNN + GRU with attention pooling) and a C3D are trained on real street (bikes.mp4)
and pedestrian (vtest.avi) cuts; the test video is 3 s of street then 3 s of pedestrians (ffmpeg CLI).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vidlens.tasks.explain.outputs import FILES
from vidlens.tasks.predictor import VideoClassifier
from tests.cli import console
from tests.tasks.explain.realclips import PART_S, ffmpeg, mixed_video, train_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(capsys, *args) -> tuple[int, str]:
    """`vidlens --quiet ARGS` (the explain runs are long; their progress bars are not checked)."""
    return console.run_main(capsys, *args, quiet=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    from vidlens.testing import single_thread

    folder = tmp_path_factory.mktemp("explain_cli")
    with single_thread():
        video = mixed_video(folder)
        people = folder / "people.mp4"  # the pedestrian half alone
        ffmpeg("-ss", str(PART_S), "-i", str(video), "-c:v", "libx264", "-crf", "20", str(people))
        return {"video": video, "people": people, "gru": train_classifier(folder / "gru", "gru"),
                "c3d": train_classifier(folder / "c3d", "c3d")}


def test_explain_writes_every_file_for_a_frame_temporal_model(media, tmp_path, capsys):
    out = tmp_path / "out"
    code, text = run_main(capsys, "explain", "--checkpoint", media["gru"], media["video"], "--target", "pedestrians",
                          "--out", out)
    assert code == 0, text
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["method"] == "gradcam" and doc["model"] == "gru" and doc["target"]["label"] == "pedestrians"
    assert any("attention" in note for note in doc["notes"])  # the GRU's attention weights gave the temporal curve
    assert all(3 <= s < 6 for s in doc["top_seconds"][:2])  # the pedestrians are in seconds 3-5
    assert "mixed.mp4: 'pedestrians'" in text and "decisive seconds: " in text and str(out / "overlay.gif") in text


def test_default_target_is_the_prediction_and_methods_per_family(media, tmp_path, capsys):
    predicted = VideoClassifier.from_checkpoints([media["c3d"]]).predict(media["people"])["top"][0]["label"]
    code, text = run_main(capsys, "explain", "--checkpoint", media["c3d"], media["people"], "--method", "gradcam++",
                          "--no-video", "--clips", "3", "--out", tmp_path / "c3d")
    assert code == 0, text
    doc = json.loads((tmp_path / "c3d" / "explanation.json").read_text())
    assert doc["target"]["label"] == predicted and len(doc["clips"]) == 3 and doc["method"] == "gradcam++"
    assert not (tmp_path / "c3d" / "overlay.mp4").exists() and (tmp_path / "c3d" / "frames.png").is_file()
    # Attention needs a temporal head with attention: a C3D has none, and the error names what applies.
    code, text = run_main(capsys, "explain", "--checkpoint", media["c3d"], media["people"], "--method", "attention",
                          "--out", tmp_path / "none")
    assert code == 2 and "does not apply to C3D" in text and "gradcam" in text and not (tmp_path / "none").exists()
    code, text = run_main(capsys, "explain", "--checkpoint", media["gru"], media["people"], "--method", "attention",
                          "--no-video", "--out", tmp_path / "att")
    assert code == 0, text
    assert json.loads((tmp_path / "att" / "explanation.json").read_text())["has_heat"] is False


@pytest.mark.parametrize("args, message", [
    (("--target", "cats"), "unknown label 'cats'; the model's labels: pedestrians, street"),
    (("--method", "lime"), "unknown explain method 'lime'; use one of: gradcam, gradcam++, occlusion"),
])
def test_user_errors_are_one_line_and_write_nothing(media, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, text = run_main(capsys, "explain", "--checkpoint", media["gru"], media["video"], *args, "--out", out)
    assert code == 2 and message in text and "Traceback" not in text
    assert not out.exists()


def test_a_text_file_is_refused_and_nothing_is_written(media, tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    code, text = run_main(capsys, "explain", "--checkpoint", media["gru"], fake, "--out", tmp_path / "out")
    assert code == 2 and "notes.mp4" in text and "Traceback" not in text
    assert not (tmp_path / "out").exists()


def test_predict_explain_writes_explanations_beside_predictions(media, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("video", "people"):
        shutil.copy(media[name], videos / media[name].name)
    (videos / "broken.mp4").write_text("not a video\n")
    out = tmp_path / "pred"
    code, text = run_main(capsys, "predict", "--checkpoint", media["gru"], videos, "--explain", "--explain-method",
                          "gradcam", "--out", out)
    assert code == 2, text  # the broken file fails; the others are predicted and explained
    rows = {Path(r["path"]).name: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert rows["broken.mp4"]["status"] == "error" and "explanation" not in rows["broken.mp4"]
    for name in ("mixed.mp4", "people.mp4"):
        row = rows[name]
        folder = Path(row["explanation"])
        assert folder == out / f"{Path(name).stem}_explain" and sorted(p.name for p in folder.iterdir()) == sorted(FILES)
        doc = json.loads((folder / "explanation.json").read_text())
        assert doc["target"]["label"] == row["top"][0]["label"] == row["explained"]["label"]
    assert rows["people.mp4"]["top"][0]["label"] == "pedestrians"
    code, text = run_main(capsys, "predict", "--checkpoint", media["gru"], videos / "people.mp4", "--explain",
                          "--explain-method", "shap", "--out", tmp_path / "bad")
    assert code == 2 and "unknown explain method 'shap'" in text and not (tmp_path / "bad").exists()


def test_an_ensemble_is_explained_as_the_weighted_mean_of_its_members(media, tmp_path, capsys):
    """Repeated --checkpoint: every member is explained for the ensemble's label and the curve, the frame
    importance and the heat are the mean of the members' own explanations (equal weights)."""
    import numpy as np

    from vidlens.tasks.explain.video import explain_video
    from vidlens.testing import single_thread

    out = tmp_path / "ens"
    code, text = run_main(capsys, "explain", "--checkpoint", media["gru"], "--checkpoint", media["c3d"], media["video"],
                          "--target", "pedestrians", "--no-video", "--out", out)
    assert code == 0, text
    doc = json.loads((out / "explanation.json").read_text())
    with single_thread():
        gru, c3d = (explain_video(media[m], media["video"], target="pedestrians") for m in ("gru", "c3d"))
    assert [m["model"] for m in doc["members"]] == ["gru", "c3d"] and [m["weight"] for m in doc["members"]] == [0.5, 0.5]
    assert doc["model"] == "ensemble of 2: gru + c3d" and doc["notes"][0].startswith("an ensemble of 2 models")
    assert doc["target"]["probability"] == pytest.approx((gru.probability + c3d.probability) / 2, abs=1e-5)
    assert [s["importance"] for s in doc["seconds"]] == pytest.approx(list((gru.temporal + c3d.temporal) / 2), abs=1e-5)
    assert all(3 <= s < 6 for s in doc["top_seconds"][:2])  # the pedestrians are in seconds 3-5, for both members
    assert len(doc["clips"]) == len(gru.clips) + len(c3d.clips)
    heat = np.load(out / "heat.npz")
    assert np.array_equal(heat["frame"], gru.frame_indices) and np.array_equal(gru.frame_indices, c3d.frame_indices)
    assert np.allclose(heat["heat"], (gru.heat + c3d.heat) / 2, atol=2e-3)  # stored as float16
    assert "(gru, weight 0.50)" in doc["notes"][0] and "mixed.mp4: 'pedestrians'" in text


def test_heat_is_moved_between_crops_through_frame_coordinates():
    """Members may crop differently: a map of the frame's left half lands on the left half of a whole-frame map,
    and the right half is marked as outside that member's view."""
    import numpy as np

    from vidlens.tasks.explain.ensemble import heat_on_box

    half = np.tile(np.arange(4, dtype=np.float32), (1, 4, 1))  # (1,4,4) on the left half: value = column
    same, inside = heat_on_box(half, (0, 0, 0.5, 1), (0, 0, 0.5, 1), 4)
    assert inside.all() and np.allclose(same, half, atol=1e-6)
    moved, inside = heat_on_box(half, (0, 0, 0.5, 1), (0, 0, 1, 1), 8)
    assert inside[:, :4].all() and not inside[:, 4:].any()
    assert np.allclose(moved[0, 0, :4], [0, 1, 2, 3], atol=1e-6)


def test_the_cli_and_the_service_offer_every_method_the_library_has():
    """The CLI and the service keep their own method lists (importing the explainers means importing torch);
    they must name exactly the library's methods."""
    from typing import get_args

    from vidlens.cli.explain_command import METHODS
    from vidlens.serve.routes_explain import Method
    from vidlens.tasks.explain import EXPLAIN_METHODS

    assert METHODS == EXPLAIN_METHODS == get_args(Method)
