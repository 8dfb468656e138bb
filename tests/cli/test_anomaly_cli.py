"""`vidlens anomaly train`, `vidlens anomaly VIDEO` and `vidlens stream SOURCE --anomaly MODEL` end to end on real
fixed-camera footage (OpenCV's vtest.avi) with a real object (a Megamind.avi patch) pasted in at known frames."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vidlens.cli.main import app
from vidlens.deploy.anomaly_stream import run_anomaly_stream
from vidlens.tasks.anomaly.base import AnomalyModel
from vidlens.testing.real import opencv_sample
from tests.cli.console import run_main

pytestmark = pytest.mark.usefixtures("one_thread")
PASTE_S = (4.0, 7.0)  # the pasted object is visible from 4.0 s to 6.9 s (frames 40-69 at 10 fps)


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("camera")
    vtest = opencv_sample("vtest.avi")
    normal = folder / "normal.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(vtest), "-t", "30", "-c:v", "libx264", "-crf", "14", str(normal)],
                   check=True)
    test = folder / "test.mp4"
    # The patch moves across the scene (x grows 60 px/s): a new object with motion where nobody walks.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "30", "-t", "10", "-i", str(vtest), "-i", str(opencv_sample("Megamind.avi")),
                    "-filter_complex", "[1:v]scale=160:110,setpts=PTS-STARTPTS[p];[0:v]setpts=PTS-STARTPTS[m];"
                    f"[m][p]overlay=x='150+60*t':y=330:enable='between(t,{PASTE_S[0] - 0.05},{PASTE_S[1] - 0.05})'",
                    "-frames:v", "100", "-an", "-c:v", "libx264", "-crf", "14", str(test)], check=True)
    model = folder / "flow.pt"
    result = CliRunner().invoke(app, ["--quiet", "anomaly", "train", "--normal", str(normal), "--out", str(model),
                                      "--method", "flow", "--size", "144x192"])
    assert result.exit_code == 0, result.output
    assert "anomaly model (flow)" in result.output and model.is_file()
    return {"normal": normal, "test": test, "model": model, "folder": folder}


def test_anomaly_video_command_finds_the_pasted_object(camera, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["--quiet", "anomaly", str(camera["test"]), "--model", str(camera["model"]),
                                      "--out", str(out), "--annotate"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "anomaly.json").read_text())
    assert doc["frames"] == 100 and doc["method"] == "flow"
    # The strongest event overlaps the pasted stretch and peaks inside it (a short weak one may start the clip).
    assert doc["events"], doc
    strongest = max(doc["events"], key=lambda e: e["peak_score"])
    assert strongest["start_s"] < PASTE_S[1] and strongest["end_s"] > PASTE_S[0]
    assert PASTE_S[0] - 0.5 <= strongest["peak_s"] <= PASTE_S[1]
    for name in ("anomaly.csv", "scores.png", "annotated.mp4"):
        assert (out / name).stat().st_size > 0


def test_stream_anomaly_events_match_the_file_command(camera):
    model = AnomalyModel.load(camera["model"])
    decisions, events = [], []
    stats = run_anomaly_stream(camera["test"], model, every=5, realtime=False, on_decision=decisions.append,
                               on_event=events.append)
    assert stats.frames == 100 and stats.dropped_frames == 0 and sum(d["frames"] for d in decisions) == 100 - model.method.context
    starts = [e for e in events if e["event"] == "start"]
    ends = [e for e in events if e["event"] == "end"]
    assert starts and len(ends) >= 1
    assert any(e["start_s"] < PASTE_S[1] and e["end_s"] > PASTE_S[0] for e in ends)
    # The live path and the file path agree on the events (same frames, same scores, same hysteresis).
    from vidlens.tasks.anomaly.score import score_video

    offline = score_video(model, camera["test"])
    assert [(e["start_frame"], e["end_frame"]) for e in ends] == [(e.start_frame, e.end_frame) for e in offline.events]


def test_stream_cli_needs_one_model_kind(camera, capsys):
    code, output = run_main(capsys, "stream", camera["test"])
    assert code == 2 and "--checkpoint" in output
    result = CliRunner().invoke(app, ["stream", str(camera["test"]), "--anomaly", str(camera["model"]), "--no-realtime", "--every", "10"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert any(row.get("event") == "start" for row in lines) and any("score" in row for row in lines)


def test_bad_inputs_are_clear_errors(camera, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    code, output = run_main(capsys, "anomaly", broken, "--model", camera["model"], "--out", tmp_path / "o")
    assert code == 2 and "broken.mp4" in output and not (tmp_path / "o").exists()
    code, output = run_main(capsys, "anomaly", "train", "--normal", camera["normal"], "--out", tmp_path / "m.pt", "--method", "nope")
    assert code == 2 and "unknown anomaly method" in output and not (tmp_path / "m.pt").exists()
    code, output = run_main(capsys, "anomaly", camera["test"], "--model", camera["normal"], "--out", tmp_path / "o")
    assert code == 2 and "checkpoint" in output.lower()
