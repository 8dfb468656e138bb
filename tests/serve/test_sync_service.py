"""`POST /v1/sync` over real HTTP, and the sync box of the web page.

A server of its own (`vidlens serve --no-emotion`, one worker, an API key: sync needs no model) measures the
offset of real footage whose audio the ffmpeg CLI delayed by 240 ms (OpenCV's vtest.avi pedestrians with a box
flashed and a beep mixed over Big Buck Bunny's music at the same instants); the answer must be the library's
(`estimate_sync` on the same file); fixed copies are checked with the ffmpeg CLI; a training job on a real talking
face (the SyncNet sample) gives a model that `method=learned` then uses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import running_server
from .test_browser import CHROMIUM, DRIVER, browser, status_is, wait_for  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")
KEY = "sync-key-0123456789"


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> dict[str, Path]:
    from vidlens.testing.real import opencv_sample
    from vidlens.testing.sync_media import make_flash_beep_clip, shift_audio

    folder = tmp_path_factory.mktemp("sync_media")
    source = folder / "street.mp4"
    make_flash_beep_clip(source, 6.0, seed=3)
    silent = folder / "silent.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(opencv_sample("vtest.avi")), "-t", "4", "-vf", "scale=320:-2",
                    "-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(silent)], check=True)
    return {"source": source, "late": shift_audio(source, folder / "street_late240.mp4", 240), "silent": silent}


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> dict[str, Path]:
    """5 s of the SyncNet talking-face sample (in sync) and a copy with the audio 200 ms late."""
    from vidlens.testing.real import realdata
    from vidlens.testing.sync_media import cut_clip, shift_audio

    folder = tmp_path_factory.mktemp("sync_face")
    source = cut_clip(realdata("faces/guangfan.avi"), folder / "face.mp4", 0.0, 5.0)
    return {"face": source, "face_late": shift_audio(source, folder / "face_late200.mp4", 200)}


@pytest.fixture(scope="module")
def sync_server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("sync_server"), "--no-emotion", "--workers", "1", "--job-timeout", "120",
                        api_key=KEY) as server:
        yield server


def post(client: httpx.Client, video: Path, **form) -> httpx.Response:
    with open(video, "rb") as handle:
        return client.post("/v1/sync", files={"file": (video.name, handle, "video/mp4")}, data=form)


def test_sync_job_gives_the_librarys_estimate_and_its_plot(sync_server, talk):
    from vidlens.tasks.sync.base import estimate_sync
    from vidlens.testing import single_thread

    with sync_server.client() as client:
        assert client.get("/v1/info").json()["sync"]["methods"] == ["auto", "speech", "events", "baseline", "learned"]
        answer = post(client, talk["late"], method="events")
        assert answer.status_code == 202, answer.text
        assert answer.json()["kind"] == "sync"
        job = sync_server.wait(client, answer.json()["id"])
        assert job["status"] == "done", job
        result = job["result"]
        with single_thread():
            reference = estimate_sync(talk["late"], "events")
        assert result["offset_ms"] == pytest.approx(reference.offset_ms, abs=1e-3) and abs(result["offset_ms"] - 240) <= 40
        assert result["verdict"] == "audio late" and result["method"] == "events" and result["video"] == "street_late240.mp4"
        assert result["summary"].startswith("street_late240.mp4: audio late, offset +")
        assert result["plot"] == job["artifacts"]["sync.png"] == f"/v1/jobs/{job['id']}/artifacts/sync.png"
        assert client.get(result["plot"]).content[:8] == b"\x89PNG\r\n\x1a\n"
        doc = client.get(job["artifacts"]["sync.json"]).json()
        assert doc["offset_ms"] == result["offset_ms"] and str(sync_server.work_dir) not in json.dumps(doc)
        assert client.get(job["artifacts"]["sync_windows.csv"]).text.startswith("start_s,end_s,center_s,offset_ms")
        assert "fixed" not in result


def test_fix_by_a_known_offset_gives_a_corrected_copy(sync_server, talk, tmp_path):
    from vidlens.testing.sync_media import audio_lag_ms, decode_audio_cli, video_packets

    with sync_server.client() as client:
        job = sync_server.wait(client, post(client, talk["late"], fix="true", offset_ms="240").json()["id"])
        assert job["status"] == "done", job
        assert job["result"]["fixed"] == job["artifacts"]["fixed.mp4"] and job["result"]["measured"] is False
        fixed = tmp_path / "fixed.mp4"
        fixed.write_bytes(client.get(job["result"]["fixed"]).content)
    assert video_packets(fixed) == video_packets(talk["late"])
    assert abs(audio_lag_ms(decode_audio_cli(talk["source"]), decode_audio_cli(fixed), start_s=1.0, seconds=4.0)) <= 3.0


@pytest.mark.slow  # ~16 s of training in the worker; `make test-slow`
def test_train_job_then_learned_with_its_model(sync_server, face):
    with sync_server.client() as client:
        with open(face["face"], "rb") as handle:
            answer = client.post("/v1/sync/train", files=[("file", ("face.mp4", handle, "video/mp4"))],
                                 data={"epochs": "1"})
        assert answer.status_code == 202, answer.text
        trained = sync_server.wait(client, answer.json()["id"])
        assert trained["status"] == "done", trained
        assert trained["kind"] == "sync-train" and trained["result"]["videos"] == ["face.mp4"]
        assert trained["result"]["model"] == trained["artifacts"]["sync_model.pt"]
        assert len(client.get(trained["result"]["model"]).content) > 1000
        job = sync_server.wait(client, post(client, face["face_late"], method="learned", model_job=trained["id"]).json()["id"])
        assert job["status"] == "done", job
        assert job["result"]["method"] == "learned"
        assert (job["result"]["offset_ms"] is None) == (job["result"]["verdict"] == "cannot tell")
        # a sync job is not a model
        assert post(client, face["face_late"], method="learned", model_job=job["id"]).status_code == 404


def test_what_is_refused(sync_server, talk, tmp_path):
    with sync_server.client() as client:
        assert post(client, talk["late"], offset_ms="100").status_code == 400  # a known offset without fix
        assert post(client, talk["late"], method="lipreading").status_code == 422
        assert post(client, talk["late"], max_offset_ms="1").status_code == 422
        assert post(client, talk["late"], method="learned").status_code == 400  # needs a trained model
        assert post(client, talk["late"], method="learned", model_job="0123abcd").status_code == 404
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n")
        assert post(client, notes).status_code == 415
        failed = sync_server.wait(client, post(client, talk["silent"]).json()["id"])
        assert failed["status"] == "failed" and "no audio stream" in failed["error"]
    with httpx.Client(base_url=sync_server.url, timeout=30) as anonymous:
        assert post(anonymous, talk["late"]).status_code == 401


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver (make test installs them)")
def test_page_sync_box_shows_the_offset_and_the_plot(sync_server, browser, talk):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{sync_server.url}/?api_key={KEY}")
    wait_for(browser, lambda d: d.find_element(By.ID, "sync-form").is_displayed())
    browser.find_element(By.ID, "sync-file").send_keys(str(talk["late"]))
    Select(browser.find_element(By.ID, "sync-method")).select_by_value("events")
    browser.find_element(By.ID, "sync-fix").click()
    browser.find_element(By.ID, "sync-submit").click()
    assert wait_for(browser, status_is("done", "failed", "rejected"), 90) == "done"
    assert "audio late" in browser.find_element(By.ID, "sync-facts").text
    assert browser.find_element(By.ID, "sync-fixed").get_attribute("href").endswith("/artifacts/fixed.mp4")
    image = browser.find_element(By.CSS_SELECTOR, "img[data-artifact='sync.png']")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30)
