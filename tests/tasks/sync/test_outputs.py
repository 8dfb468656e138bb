"""`write_sync`: sync.json, sync_windows.csv and sync.png from a `SyncResult`, all or nothing."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vidlens.tasks.sync.base import SyncResult, WindowOffset
from vidlens.tasks.sync.outputs import SYNC_FILES, drift_line, summary_line, write_sync


def drifting_result(video: str = "talk.mp4") -> SyncResult:
    """A result with a peak at +200 ms, windows whose offset grows 60 ms per minute (1 ms/s), one unsure window
    and one that cannot tell."""
    lags = np.arange(-1000, 1010, 10, dtype=np.float32)
    corr = np.exp(-((lags - 200) / 60) ** 2).astype(np.float32) + 0.05 * np.cos(lags / 37).astype(np.float32)
    windows = [WindowOffset(float(s), float(s + 4), 180.0 + (s + 2) * 1.0, 0.9) for s in range(0, 40, 2)]
    windows[3] = WindowOffset(6.0, 10.0, 900.0, 0.2)  # an unsure outlier: off the drift line
    windows[5] = WindowOffset(10.0, 14.0, None, 0.0)
    return SyncResult(video=video, method="speech", offset_ms=200.0, confidence=0.83, verdict="audio late",
                      reason="a talking face matched the voice", fps=25.0, duration_s=44.0, lags_ms=lags,
                      correlation=corr, windows=windows, drift_ms_per_min=60.0, notes=["a note"])


def test_files_hold_the_result(tmp_path):
    result = drifting_result()
    out = tmp_path / "report"
    files = write_sync(result, out)
    assert set(files) == set(SYNC_FILES) and all(files[n] == out / n and files[n].stat().st_size > 0 for n in SYNC_FILES)
    doc = json.loads((out / "sync.json").read_text())
    assert doc["offset_ms"] == 200.0 and doc["verdict"] == "audio late" and doc["drift_ms_per_min"] == 60.0
    assert doc["files"] == list(SYNC_FILES) and len(doc["lags_ms"]) == len(doc["correlation"]) == 201
    assert doc["windows"][5]["offset_ms"] is None and doc["notes"] == ["a note"]
    rows = list(csv.DictReader(open(out / "sync_windows.csv")))
    assert len(rows) == 20 and rows[0] == {"start_s": "0.000", "end_s": "4.000", "center_s": "2.000",
                                           "offset_ms": "182.0", "confidence": "0.900"}
    assert rows[5]["offset_ms"] == "" and rows[3]["offset_ms"] == "900.0"
    assert (out / "sync.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging folder left


def test_drift_line_goes_through_the_confident_windows():
    intercept, slope = drift_line(drifting_result())
    assert slope == pytest.approx(1.0) and intercept == pytest.approx(180.0)  # the outlier (not confident) is ignored
    no_drift = drifting_result()
    no_drift.drift_ms_per_min = None
    assert drift_line(no_drift) is None


def test_cannot_tell_is_written_without_a_number(tmp_path):
    lags = np.arange(-500, 510, 10, dtype=np.float32)
    result = SyncResult(video="/somewhere/still.mp4", method="events", offset_ms=None, confidence=0.1,
                        verdict="cannot tell", reason="no face and no audio events", fps=30.0, duration_s=6.0,
                        lags_ms=lags, correlation=np.full(lags.shape, np.nan, np.float32),
                        windows=[WindowOffset(0.0, 4.0, None, 0.0), WindowOffset(2.0, 6.0, None, 0.05)], drift_ms_per_min=None)
    write_sync(result, tmp_path)
    doc = json.loads((tmp_path / "sync.json").read_text())
    assert doc["offset_ms"] is None and doc["verdict"] == "cannot tell" and all(v is None for v in doc["correlation"])
    assert (tmp_path / "sync.png").stat().st_size > 0
    assert summary_line(result) == "still.mp4: cannot tell (no face and no audio events) [events]"
    assert summary_line(drifting_result()) == ("talk.mp4: audio late, offset +200 ms (confidence 0.83, speech), "
                                               "drift +60.0 ms/min")


def test_a_failed_write_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "sync.json").write_text("old\n")
    broken = drifting_result()
    broken.lags_ms = "not an array"  # the plot fails after the CSV was written
    with pytest.raises(Exception):
        write_sync(broken, out)
    assert [p.name for p in out.iterdir()] == ["sync.json"] and (out / "sync.json").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
