"""`vidlens serve` over real HTTP: jobs for every task, auth, bad uploads, load, timeouts, clean-up.

Servers are real subprocesses (see conftest.py); clients are httpx. Classification results are
compared with the library's own `VideoClassifier` on the same checkpoint.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from vidlens.io import probe
from vidlens.tasks.predictor import VideoClassifier
from vidlens.testing import make_bad_files

from .conftest import API_KEY, CLASSES, VIDLENS, running_server
from .test_browser import browser, status_is, wait_for  # noqa: F401 - the browser fixture


def videos_of(actions: Path, label: str) -> list[Path]:
    return sorted((actions / label).glob("*.mp4"))


def upload(client: httpx.Client, task: str, path: Path, name: str | None = None, **data) -> httpx.Response:
    with open(path, "rb") as handle:
        return client.post(f"/v1/{task}", files={"file": (name or path.name, handle, "video/mp4")},
                           data={k: str(v) for k, v in data.items()})


@pytest.mark.parametrize("given, kept", [
    ("clip.mp4", "clip.mp4"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\My Clip.MOV", "My Clip.MOV"),
    ("..", "upload"), ("", "upload"), (None, "upload"), ("a\x00b\nc.mkv", "abc.mkv"), ("x" * 300 + ".webm", "x" * 115 + ".webm"),
])
def test_client_file_names_become_one_harmless_component(given, kept):
    from vidlens.serve.app import safe_filename

    assert safe_filename(given) == kept


def test_healthz_is_open_and_everything_else_needs_the_key(server):
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    for path in ("/v1/info", "/v1/jobs", "/", "/docs", "/openapi.json", "/v1/jobs/abc"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401, path
        assert "API key" in r.json()["detail"]
    assert httpx.get(f"{server.url}/v1/info", headers={"X-API-Key": "wrong-key-000"}).status_code == 401
    assert httpx.get(f"{server.url}/v1/info", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    # A browser: the key in the address once, then a cookie for the page's own requests.
    with httpx.Client(base_url=server.url) as web:
        assert web.get("/docs", params={"api_key": API_KEY}).status_code == 200
        spec = web.get("/openapi.json")
        assert spec.status_code == 200
        assert {"/v1/classify", "/v1/summarize", "/v1/emotion", "/v1/jobs/{job_id}", "/healthz"} <= set(spec.json()["paths"])
    with server.client() as client:
        info = client.get("/v1/info").json()
    assert info["tasks"] == ["classify", "summarize", "emotion"]
    assert sorted(info["models"]["classify"]["labels"]) == sorted(CLASSES)
    assert info["limits"]["max_upload_mb"] == 20


def test_the_served_model_learned(library_labels):
    correct = sum(label == path.parent.name for path, label in library_labels.items())
    assert correct / len(library_labels) >= 0.8, library_labels


def test_classify_job_gives_what_the_library_gives(server, trained_checkpoint, actions, library_labels):
    library = VideoClassifier.from_checkpoints([trained_checkpoint])
    with server.client() as client:
        for label in CLASSES:  # a video of each class that the model gets right
            video = next(p for p in videos_of(actions, label) if library_labels[p] == label)
            r = upload(client, "classify", video, top_k=2, timeline="true")
            assert r.status_code == 202, r.text
            accepted = r.json()
            assert r.headers["location"] == accepted["url"] == f"/v1/jobs/{accepted['id']}"
            assert accepted["video"]["fps"] == pytest.approx(8.0)
            t0 = time.perf_counter()  # a long poll answers as soon as the job ends
            job = client.get(accepted["url"], params={"wait": 30}).json()
            assert job["status"] == "done" and time.perf_counter() - t0 < 20, job
            expected = library.predict(video, top_k=2)["top"]
            got = job["result"]["top"]
            assert [t["label"] for t in got] == [t["label"] for t in expected]
            np.testing.assert_allclose([t["score"] for t in got], [t["score"] for t in expected], atol=1e-5)
            assert job["result"]["segments"] and job["result"]["video"] == video.name
            assert set(job["artifacts"]) == {"predictions.json", "timeline.png"}
            png = client.get(job["artifacts"]["timeline.png"])
            assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
            saved = client.get(job["artifacts"]["predictions.json"]).json()
            assert saved["top"] == got
            # No server-side path reaches the client.
            assert str(server.work_dir) not in json.dumps(job) and str(server.work_dir) not in json.dumps(saved)
    # The upload itself is deleted once the job ends; only artifacts stay.
    assert not list(server.work_dir.glob("*/*/upload"))


def test_every_common_container_is_accepted(server, actions, tmp_path):
    """The same clip as WebM (VP9), AVI (MPEG-4 Part 2), MKV (H.264), MOV and GIF: each is probed,
    queued and classified; the answer is the library's for that very file."""
    from vidlens.io import VideoWriter, iter_frames

    frames = [f.image for f in iter_frames(videos_of(actions, "grow")[0])]
    library = VideoClassifier.from_checkpoints([server.checkpoint])
    with server.client() as client:
        for suffix in (".webm", ".avi", ".mkv", ".mov", ".gif"):
            path = tmp_path / f"clip{suffix}"
            with VideoWriter(path, 8) as writer:
                writer.write(np.stack(frames))
            r = upload(client, "classify", path)
            assert r.status_code == 202, (suffix, r.text)
            job = server.wait(client, r.json()["id"])
            assert job["status"] == "done", (suffix, job)
            assert job["result"]["top"][0]["label"] == library.predict(path)["top"][0]["label"], suffix
            assert job["result"]["info"]["num_frames"] == len(frames), suffix


def test_summarize_job_writes_a_playable_summary(server, actions, tmp_path):
    # Two actions back to back: a video with a cut in the middle.
    from vidlens.io import VideoWriter, iter_frames

    video = tmp_path / "two_shots.mp4"
    with VideoWriter(video, 8) as writer:
        for label in CLASSES:
            for path in videos_of(actions, label)[:2]:
                for frame in iter_frames(path):
                    writer.write(frame.image)
    with server.client() as client:
        # Named like our own output: the upload lives apart from the artifacts, so nothing collides.
        r = upload(client, "summarize", video, name="summary.mp4", ratio=0.3, method="kmeans")
        assert r.status_code == 202, r.text
        job = server.wait(client, r.json()["id"])
        assert job["status"] == "done", job
        result = job["result"]
        assert result["method"] == "kmeans" and result["num_shots"] >= 2 and result["selected"]
        assert 0 < result["ratio_achieved"] <= 0.5
        assert {"summary.json", "segments.csv", "importance.png", "summary.mp4"} <= set(job["artifacts"])
        clip = tmp_path / "summary.mp4"
        clip.write_bytes(client.get(job["artifacts"]["summary.mp4"]).content)
        assert probe(clip).duration_s == pytest.approx(result["summary_s"], abs=0.2) and result["summary_s"] < 3.5
        assert job["filename"] == result["video"] == "summary.mp4"


def test_emotion_job_finds_the_smiling_face(server, face_video):
    with server.client() as client:
        r = upload(client, "emotion", face_video, fps=5)
        assert r.status_code == 202, r.text
        job = server.wait(client, r.json()["id"])
    assert job["status"] == "done", job
    result = job["result"]
    assert len(result["tracks"]) == 1 and result["has_faces"]
    assert {row["dominant"] for row in result["timeline"]} == {"happy"}
    assert {"emotion.json", "emotion.csv", "emotion.png"} <= set(job["artifacts"])


def test_bad_uploads_get_the_right_4xx_and_leave_nothing(server, actions, tmp_path):
    bad = make_bad_files(tmp_path / "bad", videos_of(actions, "grow")[0])
    huge = tmp_path / "huge.mp4"
    huge.write_bytes(np.random.default_rng(0).integers(0, 256, 21 * 2**20, dtype=np.uint8).tobytes())
    with server.client() as client:
        before = {p.name for p in server.work_dir.glob("*/*")}
        assert upload(client, "classify", bad["zero_byte"]).status_code == 400
        for name in ("text", "garbage", "audio_only"):
            r = upload(client, "classify", bad[name])
            assert r.status_code == 415, (name, r.text)
            assert r.json()["detail"].startswith("not a readable video: ")
        r = upload(client, "classify", bad["truncated"])  # the index is at the end of this mp4: unreadable
        assert r.status_code == 415, r.text
        r = upload(client, "classify", huge)
        assert r.status_code == 413 and "20 MB" in r.json()["detail"]

        def chunks():  # no Content-Length: cut off while streaming
            boundary = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.mp4\"\r\n\r\n"
            yield boundary
            data = huge.read_bytes()
            for i in range(0, len(data), 1 << 20):
                yield data[i:i + 1 << 20]
            yield b"\r\n--xyz--\r\n"

        r = client.post("/v1/classify", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert r.status_code == 413
        assert client.post("/v1/classify", data={"top_k": "3"}).status_code == 422  # no file
        assert upload(client, "summarize", videos_of(actions, "grow")[0], ratio=2).status_code == 422
        assert upload(client, "classify", videos_of(actions, "grow")[0], top_k=0).status_code == 422
        assert client.get("/v1/jobs/not-a-job").status_code == 404
        job = server.wait(client, upload(client, "classify", videos_of(actions, "grow")[1]).json()["id"])
        for name in ("../../../etc/passwd", "upload.mp4", "..%2F..%2Fetc%2Fpasswd"):
            assert client.get(f"/v1/jobs/{job['id']}/artifacts/{name}").status_code == 404
        assert client.delete(f"/v1/jobs/{job['id']}").json() == {"id": job["id"], "deleted": True}
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
        # Nothing was left behind by the rejected uploads (the accepted one was deleted).
        assert {p.name for p in server.work_dir.glob("*/*")} == before
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"


def test_fifty_uploads_from_ten_clients_none_lost_and_health_stays_up(server, actions, library_labels, tmp_path):
    videos = [p for label in CLASSES for p in videos_of(actions, label)]
    good = [videos[i % len(videos)] for i in range(45)]  # some twice: the same file in two jobs
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    uploads = good + [text] * 5
    health: list[tuple[int, float]] = []
    stop = threading.Event()

    def watch_health() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                t0 = time.perf_counter()
                status = client.get(f"{server.url}/healthz").status_code
                health.append((status, time.perf_counter() - t0))
                time.sleep(0.05)

    def client_work(batch: list[Path]) -> list[tuple[Path, int, str | None]]:
        out = []
        with server.client() as client:
            for path in batch:
                r = upload(client, "classify", path)
                out.append((path, r.status_code, r.json().get("id")))
        return out

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(10) as pool:
            responses = [row for rows in pool.map(client_work, [uploads[i::10] for i in range(10)]) for row in rows]
        accepted = [(path, job_id) for path, status, job_id in responses if status == 202]
        with server.client() as client:
            finished = {job_id: server.wait(client, job_id, timeout=180) for _, job_id in accepted}
            listed = {job["id"] for job in client.get("/v1/jobs", params={"limit": 500}).json()}
    finally:
        stop.set()
        watcher.join()
    elapsed = time.perf_counter() - t0
    statuses = sorted(status for _, status, _ in responses)
    assert len(responses) == 50
    assert statuses.count(415) == 5 and statuses.count(202) == 45, statuses
    assert all(job["status"] == "done" for job in finished.values()), [j["error"] for j in finished.values() if j["error"]]
    for path, job_id in accepted:  # each job answered for its own upload
        assert finished[job_id]["filename"] == path.name
        assert finished[job_id]["result"]["top"][0]["label"] == library_labels[path]
    assert set(finished) <= listed
    assert elapsed < 150
    assert health and all(status == 200 for status, _ in health)
    assert max(latency for _, latency in health) < 2.0, max(latency for _, latency in health)


def test_full_queue_429_timeout_restart_and_cleanup(trained_checkpoint, actions, library_labels, tmp_path):
    """One worker, a queue of one and a 3 s job timeout: summaries (a per-video DSN: 5 s or more) overrun."""
    with running_server(tmp_path, "--checkpoint", str(trained_checkpoint), "--no-emotion", "--workers", "1",
                        "--queue-size", "1", "--job-timeout", "3") as server:
        video = videos_of(actions, "grow")[0]
        with server.client() as client:
            codes = [upload(client, "summarize", video, method="dsn") for _ in range(4)]
            assert [r.status_code for r in codes].count(429) >= 1, [r.status_code for r in codes]
            rejected = next(r for r in codes if r.status_code == 429)
            assert "queue is full" in rejected.json()["detail"] and rejected.headers["retry-after"]
            first = next(r for r in codes if r.status_code == 202).json()["id"]
            t0 = time.perf_counter()  # a long poll on a job that will not end that soon answers after `wait`
            still = client.get(f"/v1/jobs/{first}", params={"wait": 0.5}).json()
            assert still["status"] in ("queued", "running") and 0.45 < time.perf_counter() - t0 < 2.5
            jobs = [server.wait(client, r.json()["id"], timeout=120) for r in codes if r.status_code == 202]
            assert jobs and all(job["status"] == "failed" and "timed out after 3 s" in job["error"] for job in jobs)
            r = upload(client, "emotion", video)
            assert r.status_code == 503 and "does not offer emotion" in r.json()["detail"]
            health = client.get("/healthz")  # answers while the killed worker is being replaced
            assert health.status_code == 200 and health.json()["restarts"] >= 1
            # The killed worker was replaced and serves again (its first job waits for the models to load).
            quick = server.wait(client, upload(client, "classify", video).json()["id"], timeout=120)
            assert quick["status"] == "done", quick
            assert quick["result"]["top"][0]["label"] == library_labels[video]
        assert any(server.work_dir.iterdir())
    # SIGTERM: the server stops its workers and deletes every upload and artifact (uvicorn then
    # re-raises the signal, so the exit status says SIGTERM).
    assert server.process.returncode in (0, -signal.SIGTERM)
    assert not any(server.work_dir.iterdir())
    assert "Traceback" not in server.log.read_text()


def test_server_refuses_to_start_with_a_bad_checkpoint(tmp_path):
    notes = tmp_path / "model.pt"
    notes.write_text("not a checkpoint")
    r = subprocess.run([str(VIDLENS), "serve", "--checkpoint", str(notes), "--port", "1", "--no-summarize", "--no-emotion"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "cannot load the models" in r.stderr and "model.pt" in r.stderr
    r = subprocess.run([str(VIDLENS), "serve", "--no-summarize", "--no-emotion"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nothing to serve" in r.stderr


def test_without_the_serve_extra_the_error_says_what_to_install():
    code = ("import sys; sys.modules['uvicorn'] = None\n"  # as if the [serve] extra were not installed
            "from vidlens.cli.main import main; main(['serve'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "pip install 'vidlens[serve]'" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def av_checkpoint(tmp_path_factory) -> Path:
    """A late-fusion audio-visual model (`vidlens emotion train-av`, 1 epoch on the synthetic set)."""
    from vidlens.cli.main import main
    from vidlens.data.synthetic import make_audiovisual_dataset
    from vidlens.testing import single_thread

    root = tmp_path_factory.mktemp("serve_av")
    make_audiovisual_dataset(root / "data", num_per_class=6, size=32, workers=1, seed=2)
    with single_thread(), pytest.raises(SystemExit) as exit_info:
        main(["emotion", "train-av", "--data", str(root / "data"), "--out", str(root / "run"), "--fusion", "late",
              "--epochs", "1", "--size", "32", "--num-frames", "4", "--batch-size", "8"])
    assert exit_info.value.code in (0, None)
    return root / "run" / "best.pt"


def test_emotion_folder_job_and_av_model(av_checkpoint, face_video, tmp_path, browser):  # noqa: F811 - the fixture
    """--av-model loaded once per worker; one upload = the job as before (plus av_probs); several
    uploads = one folder job with per-video results and summary.csv; nothing readable = 415; POST /v1/explain
    explains the audio-visual model as the library does."""
    from vidlens.testing.real import realdata_dir

    try:
        real = realdata_dir() / "expressions" / "W011_front_happy_level3_001.mp4"
    except FileNotFoundError:
        pytest.skip("shared/realdata is not here")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    with running_server(tmp_path, "--no-summarize", "--workers", "1", "--av-model", str(av_checkpoint)) as server:
        with server.client() as client:
            info = client.get("/v1/info").json()
            assert info["tasks"] == ["emotion"]
            assert info["models"]["emotion"]["av_model"] == {"labels": ["negative", "neutral", "positive"],
                                                             "fusion": "late", "clip_s": 1.0}
            single = upload(client, "emotion", face_video, fps=5)
            assert single.status_code == 202 and set(single.json()["video"]) >= {"duration_s", "width"}
            job = server.wait(client, single.json()["id"])
            assert job["status"] == "done", job
            result = job["result"]
            assert result["video"] == "astronaut.mkv" and len(result["tracks"]) == 1 and result["dominant"] == "happy"
            track = result["tracks"][0]
            assert track["av_labels"] == ["negative", "neutral", "positive"]
            assert sum(track["av_probs"].values()) == pytest.approx(1.0, abs=1e-3)
            assert result["av"]["scope"] == "faces" and result["av"]["notes"]  # a silent video: the model heard silence
            assert {"emotion.json", "emotion.csv", "emotion.png", "av.csv"} <= set(job["artifacts"])

            files = [("file", ("astronaut.mkv", open(face_video, "rb"), "video/x-matroska")),
                     ("file", ("happy.mp4", open(real, "rb"), "video/mp4")),
                     ("file", ("happy.mp4", open(real, "rb"), "video/mp4")),  # the same name twice: kept apart
                     ("file", ("notes.mp4", open(notes, "rb"), "video/mp4"))]
            r = client.post("/v1/emotion", files=files, data={"fps": "3"})
            assert r.status_code == 202, r.text
            listed = r.json()["videos"]
            assert [v["name"] for v in listed] == ["astronaut.mkv", "happy.mp4", "happy-2.mp4", "notes.mp4"]
            assert "error" in listed[3] and "error" not in listed[1] and listed[1]["width"] == 256
            job = server.wait(client, r.json()["id"])
            assert job["status"] == "done", job
            result = job["result"]
            assert (result["succeeded"], result["failed"]) == (3, 1) and "video" not in result
            by_name = {v["video"]: v for v in result["videos"]}
            assert by_name["notes.mp4"]["status"] == "failed" and by_name["notes.mp4"]["error"]
            assert by_name["happy.mp4"]["result"]["tracks"][0]["av_probs"]
            assert by_name["happy.mp4"]["dominant"] == by_name["happy-2.mp4"]["dominant"] == "happy"
            assert {"summary.csv", "summary.png", "happy/emotion.json", "happy-2/emotion.json", "astronaut/av.csv"} \
                <= set(job["artifacts"])
            summary = client.get(job["artifacts"]["summary.csv"]).text
            assert summary.splitlines()[0].startswith("video,folder,duration_s,faces,dominant,valence,sentiment,confidence")
            assert len(summary.splitlines()) == 5 and "notes.mp4" in summary
            doc = client.get(job["artifacts"]["happy-2/emotion.json"])
            assert doc.status_code == 200 and doc.json()["video"] == "happy-2.mp4"
            assert str(server.work_dir) not in doc.text and str(server.work_dir) not in summary  # no server paths
            assert client.get(f"/v1/jobs/{job['id']}/artifacts/upload/happy.mp4").status_code == 404

            bad = client.post("/v1/emotion", files=[("file", ("a.mp4", b"", "video/mp4")),
                                                    ("file", ("notes.mp4", open(notes, "rb"), "video/mp4"))])
            assert bad.status_code == 415 and "none of the files" in bad.json()["detail"]

            # POST /v1/explain with the audio-visual model (the server has no classifier): the library's answer
            from vidlens.tasks.explain.video import explain_video
            from vidlens.testing import single_thread

            explain = client.post("/v1/explain", files={"file": ("astronaut.mkv", open(face_video, "rb"), "video/x-matroska")},
                                  data={"overlay_video": "false"})
            assert explain.status_code == 202, explain.text
            job = server.wait(client, explain.json()["id"])
            assert job["status"] == "done", job
            result = job["result"]
            with single_thread():
                reference = explain_video(av_checkpoint, face_video)
            assert result["model"] == "av_fusion (late)" and result["method"] == "occlusion" == reference.method
            assert result["target"]["label"] == reference.label
            assert result["target"]["probability"] == pytest.approx(reference.probability, abs=1e-4)
            assert result["modalities"] == pytest.approx(reference.modalities, abs=1e-4)
            assert {"frames.png", "temporal.png", "explanation.json"} <= set(job["artifacts"])
            refused = client.post("/v1/explain", data={"model": "classifier"},
                                  files={"file": ("astronaut.mkv", open(face_video, "rb"), "video/x-matroska")})
            assert refused.status_code == 503 and "--checkpoint" in refused.json()["detail"]

        # the page offers "explain" with the emotion task and shows which modality carried the decision
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        browser.get(server.url)
        wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
        Select(browser.find_element(By.ID, "task")).select_by_value("emotion")
        assert browser.find_element(By.ID, "explain-option").is_displayed()
        browser.find_element(By.ID, "file").send_keys(str(face_video))
        browser.find_element(By.ID, "explain").click()
        Select(browser.find_element(By.ID, "explain-method")).select_by_value("occlusion")
        browser.find_element(By.ID, "submit").click()
        assert wait_for(browser, status_is("done", "failed", "rejected"), 90) == "done"
        assert " by occlusion over " in browser.find_element(By.ID, "explain-facts").text
        shares = browser.find_element(By.ID, "explain-modalities").text
        assert shares.startswith("carried by: ") and "video" in shares and "audio" in shares
    assert "Traceback" not in server.log.read_text()


def test_server_refuses_to_start_with_a_bad_av_model(tmp_path):
    notes = tmp_path / "av.pt"
    notes.write_text("not a checkpoint")
    r = subprocess.run([str(VIDLENS), "serve", "--av-model", str(notes), "--port", "1", "--no-summarize", "--workers", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot load the models" in r.stderr and "av.pt" in r.stderr, r.stderr
    r = subprocess.run([str(VIDLENS), "serve", "--av-model", str(tmp_path / "gone.pt"), "--no-summarize"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no such checkpoint file" in r.stderr and "Traceback" not in r.stderr
