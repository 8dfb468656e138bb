"""The anomaly pipeline around a method: reading, training + calibration, chunked scoring, events, outputs, model
file, bad input. A user-defined method registered through the public protocol drives it on real footage (OpenCV's
fixed-camera vtest.avi) with an object pasted in at known frames."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from vidlens.errors import CheckpointError, DatasetError, VideoDecodeError
from vidlens.tasks.anomaly import base
from vidlens.tasks.anomaly.base import AnomalyConfig, AnomalyMethod, AnomalyModel, FrameScores, register_method
from vidlens.tasks.anomaly.events import EventConfig, EventTracker, find_events
from vidlens.tasks.anomaly.frames import iter_frame_chunks, list_sources, read_frames
from vidlens.tasks.anomaly.outputs import write_anomaly_outputs
from vidlens.tasks.anomaly.score import score_video
from vidlens.tasks.anomaly.train import train_anomaly_model
from vidlens.testing.real import opencv_sample

SIZE = (96, 128)
PASTE = (40, 70)  # frames [40, 70) of the test clip carry the pasted object
EVENTS = EventConfig(high=6.0)  # the toy method also reacts a little to people near the camera



@register_method
class BackgroundDistance:
    """A user's own method: distance of each 8x8 cell to the normal median frame; `context` > 0 makes it take (and
    ignore) history frames, to exercise the scorer's context handling. Enough to exercise the pipeline; the real methods are tested in test_methods.py."""

    name: ClassVar[str] = "test-background"

    def __init__(self, context: int = 0) -> None:
        self.context = context
        self.background: np.ndarray | None = None

    def fit(self, videos, progress=None) -> dict[str, Any]:
        stack = np.concatenate(list(videos)).astype(np.float32)
        self.background = np.median(stack, axis=0)
        return {"frames": len(stack)}

    def score(self, frames: np.ndarray) -> FrameScores:
        x = frames.astype(np.float32)
        diff = np.abs(x[self.context:] - self.background).mean(-1)  # the first `context` frames are history only
        t, h, w = diff.shape
        cells = diff.reshape(t, h // 8, 8, w // 8, 8).mean((2, 4))
        return FrameScores(cells.reshape(t, -1).max(1).astype(np.float64), cells.astype(np.float32))

    def state(self) -> dict[str, Any]:
        return {"background": torch.from_numpy(self.background)}

    @classmethod
    def from_state(cls, state: dict[str, Any], args: dict[str, Any]) -> BackgroundDistance:
        method = cls(**args)
        method.background = state["background"].numpy()
        return method


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    """Normal training footage (vtest.avi 0-30 s) and a test clip from later (50-60 s) with a bright real object
    (a patch of Megamind.avi) pasted at frames PASTE, encoded near-losslessly."""
    folder = tmp_path_factory.mktemp("anomaly")
    vtest = opencv_sample("vtest.avi")
    normal = folder / "normal.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(vtest), "-t", "30", "-c:v", "libx264", "-crf", "12", str(normal)], check=True)
    test_clip = folder / "test.mkv"
    # The Megamind patch goes in by ffmpeg's overlay filter, enabled for frames PASTE (10 fps; timestamps from 0).
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "50", "-t", "10", "-i", str(vtest), "-i", str(opencv_sample("Megamind.avi")),
                    "-filter_complex", "[1:v]scale=180:120,setpts=PTS-STARTPTS[p];[0:v]setpts=PTS-STARTPTS[m];"
                    f"[m][p]overlay=300:200:enable='between(t,{PASTE[0] / 10 - 0.05},{PASTE[1] / 10 - 0.05})'",
                    "-frames:v", "100", "-an", "-c:v", "ffv1", str(test_clip)], check=True)
    return {"normal": normal, "test": test_clip, "folder": folder}


def truth(n: int) -> np.ndarray:
    labels = np.zeros(n, dtype=np.int64)
    labels[PASTE[0]:PASTE[1]] = 1
    return labels


@pytest.mark.parametrize("context", [0, 1])
def test_train_score_events_on_real_footage(footage, context, tmp_path):
    config = AnomalyConfig(method="test-background", size=SIZE, method_args={"context": context})
    model = train_anomaly_model([footage["normal"]], config)
    assert model.facts["fit_frames"] == 240 and model.facts["calibration_frames"] == 60  # the held-out part brings its own history
    result = score_video(model, footage["test"], chunk=16, events=EVENTS)
    assert len(result.raw) == 100 and list(result.frame_indices) == list(range(100))
    assert np.allclose(result.times, np.arange(100) / 10.0)
    labels = truth(100)
    assert result.absolute[labels == 1].min() > result.absolute[labels == 0].max()  # the paste is obvious to this method
    assert model.calibration.threshold >= 3 and result.threshold == 6.0
    # One event covering the pasted frames, its peak inside the pasted region (x 300-480 of 768, y 200-320 of 576).
    assert len(result.events) == 1
    event = result.events[0]
    assert abs(event.start_frame - PASTE[0]) <= 1 and abs(event.end_frame - (PASTE[1] - 1)) <= 1
    x, y = event.peak_xy
    assert 300 / 768 - 0.07 <= x <= 480 / 768 + 0.07 and 200 / 576 - 0.07 <= y <= 320 / 576 + 0.07
    # Chunk size changes nothing.
    whole = score_video(model, footage["test"], chunk=1000, events=EVENTS)
    np.testing.assert_allclose(whole.raw, result.raw, rtol=1e-6)
    # The model file round-trips.
    model.save(tmp_path / "model.pt")
    again = score_video(AnomalyModel.load(tmp_path / "model.pt"), footage["test"], events=EVENTS)
    np.testing.assert_allclose(again.absolute, result.absolute, rtol=1e-6)


def test_outputs_json_csv_png_mp4(footage, tmp_path):
    model = train_anomaly_model([footage["normal"]], AnomalyConfig(method="test-background", size=SIZE))
    result = score_video(model, footage["test"], events=EVENTS)
    files = write_anomaly_outputs(result, tmp_path, source=footage["test"], truth=truth(100))
    doc = json.loads(files["anomaly.json"].read_text())
    assert doc["frames"] == 100 and len(doc["events"]) == 1 and doc["events"][0]["start_s"] == pytest.approx(PASTE[0] / 10, abs=0.11)
    rows = files["anomaly.csv"].read_text().splitlines()
    assert rows[0].startswith("frame,time_s,raw,absolute") and len(rows) == 101
    flagged = [int(r.split(",")[0]) for r in rows[1:] if r.split(",")[5] == "1"]
    assert set(flagged) <= set(range(PASTE[0], PASTE[1])) and len(flagged) >= 25
    assert files["scores.png"].stat().st_size > 10_000
    heat = np.load(files["heat.npz"])
    assert heat["heat"].shape == (100, SIZE[0] // 8, SIZE[1] // 8) and list(heat["frame"]) == list(range(100))
    frames, _, _ = read_frames(files["annotated.mp4"], (144, 192))
    assert len(frames) == 100
    # Heat is drawn on the pasted frames and not on normal ones: the annotated frame differs from the source there.
    source, _, _ = read_frames(footage["test"], (144, 192))
    changed = np.abs(frames.astype(int) - source.astype(int)).mean(axis=(1, 2, 3))
    assert changed[PASTE[0] + 5:PASTE[1] - 5].min() > 3 * np.median(changed[:PASTE[0] - 5])


def test_image_folders_and_chunks(footage, tmp_path):
    frames, _, _ = read_frames(footage["test"], SIZE)
    import cv2

    folder = tmp_path / "Test001"
    folder.mkdir()
    for i, frame in enumerate(frames[:30]):
        cv2.imwrite(str(folder / f"{i + 1:03d}.tif"), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    assert list_sources(tmp_path) == [folder] and list_sources(folder) == [folder]
    images, times, indices = read_frames(folder, SIZE)
    assert images.shape == (30, *SIZE, 3) and np.allclose(times, np.arange(30) / 25.0)
    chunks = list(iter_frame_chunks(folder, SIZE, chunk=8, context=4))
    assert [c.context for c in chunks] == [0, 4, 4, 4] and [c.new for c in chunks] == [8, 8, 8, 6]
    assert np.array_equal(np.concatenate([chunks[0].frames] + [c.frames[c.context:] for c in chunks[1:]]), images)


def test_hysteresis_online_equals_offline():
    t = np.arange(40) / 10.0
    s = np.zeros(40)
    s[5:9] = [4, 5, 2.5, 1]  # starts at 5 (>= high 3), stays while >= low 2, ends
    s[9:11] = [0.5, 0.5]  # frames 8-10 below low: a dip of 0.3 s after frame 7, shorter than the gap, same event
    s[11:13] = [2.5, 2.2]
    s[20] = 3.5  # one frame: shorter than min duration, dropped
    s[30:36] = 6
    events = find_events(s, t, np.arange(40), 3.0, 2.0, gap_s=0.35, min_duration_s=0.15)
    assert [(e.start_frame, e.end_frame, e.peak_frame) for e in events] == [(5, 12, 6), (30, 35, 30)]
    tracker = EventTracker(3.0, 2.0, 0.35, 0.15)
    online = []
    for i in range(40):
        online += tracker.update(i, t[i], s[i])
    online += tracker.finish()
    assert [k for k, _ in online] == ["start", "end", "start", "start", "end"]
    assert [e.to_json() for k, e in online if k == "end"] == [e.to_json() for e in events]


def test_bad_input(footage, tmp_path):
    config = AnomalyConfig(method="test-background", size=SIZE, method_args={"context": 1})
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.warns(UserWarning, match="skipping normal footage"):
        model = train_anomaly_model([empty, footage["normal"], text], config)
    assert [s["source"] for s in model.facts["skipped"]] == [str(empty), str(text)]
    with pytest.raises(DatasetError, match="no usable normal footage"), pytest.warns(UserWarning):
        train_anomaly_model([empty, text], config)
    with pytest.raises(VideoDecodeError):
        score_video(model, text)
    one = tmp_path / "one.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(footage["normal"]), "-frames:v", "1", str(one)], check=True)
    with pytest.raises(VideoDecodeError, match="too short"):
        score_video(model, one)
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(footage["test"].read_bytes()[: footage["test"].stat().st_size // 3])
    partial = score_video(model, truncated)  # a cut-off file scores the frames it has
    assert 0 < len(partial.raw) < 100
    (tmp_path / "classifier.pt").write_bytes(b"PK\x03\x04 junk")
    with pytest.raises(CheckpointError):
        AnomalyModel.load(tmp_path / "classifier.pt")
    assert isinstance(model.method, AnomalyMethod)
