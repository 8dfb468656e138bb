"""`POST /v1/explain` over real HTTP and the explanation on the web page (issue 18).

The package's server (tests/serve/conftest.py: a C3D on the synthetic move_left/grow set, an API key, two
workers) explains uploads of real footage (OpenCV's vtest.avi, cut with the ffmpeg CLI) and of its own
classes; the answers must be the library's (`explain_video` on the same checkpoint and file).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from .conftest import API_KEY, CLASSES
from .test_browser import CHROMIUM, DRIVER, browser, status_is, wait_for  # noqa: F401 - the browser fixture

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    """4 s of real pedestrians (vtest.avi), 320 px wide, H.264."""
    from vidlens.testing.real import opencv_sample

    try:
        src = opencv_sample("vtest.avi")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("explain_media") / "street.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", "4", "-vf", "scale=320:-2", "-an", "-c:v", "libx264",
                    "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def post(client: httpx.Client, video: Path, **form) -> httpx.Response:
    with open(video, "rb") as handle:
        return client.post("/v1/explain", files={"file": (video.name, handle, "video/mp4")}, data=form)


def test_explain_job_gives_the_librarys_explanation_and_its_pictures(server, street):
    from vidlens.tasks.explain.video import explain_video
    from vidlens.testing import single_thread

    with server.client() as client:
        answer = post(client, street, method="gradcam")
        assert answer.status_code == 202, answer.text
        assert answer.json()["kind"] == "explain" and answer.json()["video"]["width"] == 320
        job = server.wait(client, answer.json()["id"])
        assert job["status"] == "done", job
        result = job["result"]
        with single_thread():
            reference = explain_video(server.checkpoint, street, method="gradcam")
        assert result["target"]["label"] == reference.label
        assert result["target"]["probability"] == pytest.approx(reference.probability, abs=1e-4)
        assert [s["importance"] for s in result["seconds"]] == pytest.approx(reference.temporal.tolist(), abs=1e-4)
        assert result["clips"] == len(reference.clips) and result["video"] == "street.mp4"
        assert {t["label"] for t in result["top"]} == set(CLASSES)
        overlay = result["overlay"]
        assert overlay["gif"] == job["artifacts"]["overlay.gif"] == f"/v1/jobs/{job['id']}/artifacts/overlay.gif"
        assert overlay["strip"] == job["artifacts"]["frames.png"] and overlay["curve"] == job["artifacts"]["temporal.png"]
        assert client.get(overlay["gif"]).content[:6] == b"GIF89a"
        for url in (overlay["strip"], overlay["curve"]):
            assert client.get(url).content[:8] == b"\x89PNG\r\n\x1a\n"
        doc = client.get(job["artifacts"]["explanation.json"]).json()
        text = json.dumps(doc)
        assert doc["video"] == "street.mp4" and str(server.work_dir) not in text and str(server.checkpoint) not in text


def test_a_named_target_and_what_is_refused(server, street, actions, tmp_path):
    with server.client() as client:
        grow = sorted((actions / "grow").glob("*.mp4"))[0]
        answer = post(client, grow, target="move_left", method="gradcam++", clips="2")
        assert answer.status_code == 202, answer.text
        job = server.wait(client, answer.json()["id"])
        assert job["status"] == "done", job
        assert job["result"]["target"]["label"] == "move_left" and job["result"]["clips"] == 2
        assert job["result"]["method"] == "gradcam++"
        refused = post(client, street, target="cats")
        assert refused.status_code == 400 and "the model's labels: move_left, grow" in refused.json()["detail"]
        assert post(client, street, method="lime").status_code == 422
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video\n")
        assert post(client, notes).status_code == 415
        # The C3D has no attention: the job fails with the reason and the methods that apply.
        failed = server.wait(client, post(client, street, method="attention").json()["id"])
        assert failed["status"] == "failed" and "does not apply to C3D" in failed["error"] and "gradcam" in failed["error"]
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert post(anonymous, street).status_code == 401


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver (make test installs them)")
def test_page_shows_the_overlay_for_a_prediction(server, browser, street):  # noqa: F811 - the fixture
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/?api_key={API_KEY}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
    Select(browser.find_element(By.ID, "task")).select_by_value("classify")
    browser.find_element(By.ID, "file").send_keys(str(street))
    browser.find_element(By.ID, "explain").click()
    Select(browser.find_element(By.ID, "explain-method")).select_by_value("gradcam")
    browser.find_element(By.ID, "submit").click()
    assert wait_for(browser, status_is("done", "failed", "rejected"), 60) == "done"
    assert {r.text for r in browser.find_elements(By.CSS_SELECTOR, "#labels tr td:first-child")} == set(CLASSES)
    facts = browser.find_element(By.ID, "explain-facts").text
    assert " by gradcam over " in facts and "decisive seconds: " in facts
    for name in ("overlay.gif", "frames.png", "temporal.png"):
        image = browser.find_element(By.CSS_SELECTOR, f"img[data-artifact='{name}']")
        wait_for(browser, lambda d, image=image: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                                                 image), 30)
    links = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#artifacts a")}
    assert {"overlay.gif", "overlay.mp4", "frames.png", "explanation.json"} <= links
