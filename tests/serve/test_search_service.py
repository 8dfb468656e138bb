"""Video search over real HTTP: `vidlens serve --index` with an index of real footage (four 6 s cuts of
the realdata scenes and opencv-doc samples, made with ffmpeg), searched by clip, image, text and
indexed video; videos added and removed through /v1/index; bad uploads; the API key; the web page."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from vidlens.testing.real import opencv_sample, realdata

from .conftest import API_KEY, running_server

NAMES = ("bunny.mp4", "chaplin.mp4", "street.mp4", "megamind.mp4")  # indexed at start; tree.mp4 is added and removed
USER_TEXT = {"bunny.mp4": "a cartoon rabbit in a green meadow", "street.mp4": "pedestrians walking in a shopping street"}
pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


def sources() -> dict[str, Path]:
    try:
        return {"bunny.mp4": realdata("scenes/big_buck_bunny_0_30.webm"), "chaplin.mp4": realdata("scenes/chaplin.mp4"),
                "street.mp4": opencv_sample("vtest.avi"), "megamind.mp4": opencv_sample("Megamind.avi"),
                "tree.mp4": opencv_sample("tree.avi")}
    except FileNotFoundError as exc:
        pytest.skip(f"needs the real footage: {exc}")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def cut(src: Path, out: Path, start: float, seconds: float, width: int = 320) -> Path:
    """`seconds` of `src` from `start`, scaled to `width`, H.264, no audio."""
    ffmpeg("-ss", str(start), "-i", str(src), "-t", str(seconds), "-vf", f"scale={width}:-2", "-an",
           "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out))
    return out


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("search_footage")
    return {name: cut(src, folder / name, 0, 6) for name, src in sources().items()}


@pytest.fixture(scope="module")
def search_server(footage, tmp_path_factory):
    """An index of four real videos (two with user text), built once by the library, served with a key."""
    from vidlens.tasks.retrieval.index import VideoIndex
    from vidlens.testing import single_thread

    tmp = tmp_path_factory.mktemp("search_server")
    with single_thread(), VideoIndex.create(tmp / "index") as index:
        report = index.add_videos([footage[n] for n in NAMES], text=USER_TEXT)
    assert len(report.added) == len(NAMES), report.to_json()
    uploads = tmp / "index" / "uploads"  # what an index job killed at its timeout leaves: a copy with no row
    uploads.mkdir()
    shutil.copy(footage[NAMES[0]], uploads / "killed.mp4")
    os.utime(uploads / "killed.mp4", (time.time() - 2 * 3600,) * 2)
    shutil.copy(footage[NAMES[0]], uploads / "running.mp4")  # a job still running: too recent to be an orphan
    with running_server(tmp, "--no-summarize", "--no-emotion", "--index", str(tmp / "index"), "--workers", "1",
                        "--max-upload-mb", "5", "--job-timeout", "120", api_key=API_KEY) as server:
        server.index = tmp / "index"
        yield server


def search(server, client: httpx.Client, *, path: Path | None = None, **data) -> dict:
    """POST /v1/search and wait for the job; the finished job."""
    files = {"file": (path.name, path.read_bytes())} if path else None
    r = client.post("/v1/search", files=files, data={k: str(v) for k, v in data.items()})
    assert r.status_code == 202, r.text
    job = server.wait(client, r.json()["id"])
    assert job["status"] == "done", job["error"]
    return job


def names(job: dict) -> list[str]:
    return [h["video"] for h in job["result"]["hits"]]


def test_a_killed_jobs_upload_copy_is_swept_at_start_and_a_recent_one_kept(search_server):
    uploads = search_server.index / "uploads"
    assert not (uploads / "killed.mp4").exists() and (uploads / "running.mp4").exists()


def test_info_and_listing_show_the_index(search_server):
    with search_server.client() as client:
        info = client.get("/v1/info").json()
        listing = client.get("/v1/index").json()
    assert info["tasks"] == ["search", "index"]
    assert info["index"]["videos"] == 4 and info["index"]["backend"].startswith("faiss")
    assert info["index"]["segments"]["video"] == 4 and info["index"]["visual_dim"] == 1280
    assert sorted(v["name"] for v in listing["videos"]) == sorted(NAMES)
    street = next(v for v in listing["videos"] if v["name"] == "street.mp4")
    assert street["user_text"] == USER_TEXT["street.mp4"] and street["uploaded"] is False
    assert str(search_server.index) not in str(listing)  # no server paths


def test_a_clip_cut_from_an_indexed_video_finds_it_and_its_time_range(search_server, footage, tmp_path):
    query = cut(footage["street.mp4"], tmp_path / "query.mp4", 2.0, 2.5, width=240)  # re-encoded, smaller
    with search_server.client() as client:
        job = search(search_server, client, path=query, k=3)
        top = job["result"]["hits"][0]
        assert top["video"] == "street.mp4" and top["kind"] == "range", job["result"]
        assert abs(top["start_s"] - 2.0) <= 0.6 and abs(top["end_s"] - 4.5) <= 0.6, top
        assert {"results.json", "results.csv", "sheet.png", "hits/1.jpg"} <= set(job["artifacts"])
        sheet = client.get(job["artifacts"]["sheet.png"])
        assert sheet.status_code == 200 and sheet.content[:8] == b"\x89PNG\r\n\x1a\n"
        doc = client.get(job["artifacts"]["results.json"]).json()
        assert doc["hits"][0]["video"] == "street.mp4" and "/" not in str([h["video"] for h in doc["hits"]])
        assert doc["query"]["path"] == "query.mp4"
        # start/end pick the part of the upload that is searched: seconds 1-3.5 of a whole indexed video.
        job = search(search_server, client, path=footage["chaplin.mp4"], start=1.0, end=3.5, k=2)
    top = job["result"]["hits"][0]
    assert top["video"] == "chaplin.mp4" and abs(top["start_s"] - 1.0) <= 0.6 and abs(top["end_s"] - 3.5) <= 0.6, top


def test_an_image_finds_the_video_and_the_time_of_its_frame(search_server, footage, tmp_path):
    frame = tmp_path / "frame.jpg"
    ffmpeg("-ss", "3", "-i", str(footage["megamind.mp4"]), "-frames:v", "1", str(frame))
    with search_server.client() as client:
        r = client.post("/v1/search", files={"file": ("frame.jpg", frame.read_bytes())}, data={"k": "2"})
        assert r.status_code == 202 and r.json()["image"]["width"] == 320
        job = search_server.wait(client, r.json()["id"])
    top = job["result"]["hits"][0]
    assert job["result"]["query"]["kind"] == "image" and top["video"] == "megamind.mp4"
    assert top["start_s"] - 0.3 <= 3.0 <= top["end_s"] + 0.3, top


def test_text_search_finds_the_user_text_given_at_add_time(search_server):
    with search_server.client() as client:
        rabbit = search(search_server, client, text="bunny on the grass", k=2)
        people = search(search_server, client, text="people walking down a street", k=2)
    assert names(rabbit)[0] == "bunny.mp4" and names(people)[0] == "street.mp4"
    assert "not the pixels" in people["result"]["note"] and people["filename"] == "text-query"


def test_more_like_this_leaves_out_the_video_itself(search_server):
    with search_server.client() as client:
        job = search(search_server, client, video="street.mp4", k=3)
        assert client.post("/v1/search", data={"video": "no-such-video.mp4"}).status_code == 404
        assert client.post("/v1/search", data={"video": "/etc/passwd"}).status_code == 404  # never a server file
    assert "street.mp4" not in names(job) and len(names(job)) == 3
    assert job["result"]["query"]["excluded"][0]["video"] == "street.mp4"


def test_adding_then_removing_a_video_changes_the_results(search_server, footage, tmp_path):
    tree = footage["tree.mp4"]
    query = cut(tree, tmp_path / "tree-part.mp4", 1.0, 3.0, width=200)
    with search_server.client() as client:
        before = search(search_server, client, path=query, k=5)
        assert "tree.mp4" not in names(before)
        r = client.post("/v1/index", files={"file": ("tree.mp4", tree.read_bytes())}, data={"text": "a tree swaying in the wind"})
        assert r.status_code == 202, r.text
        added = search_server.wait(client, r.json()["id"])
        assert added["status"] == "done" and added["result"]["status"] == "added", added
        again = search_server.wait(client, client.post("/v1/index", files={"file": ("copy.mp4", tree.read_bytes())}).json()["id"])
        assert again["result"]["status"] == "skipped" and again["result"]["video"] == "tree.mp4"
        assert client.get("/v1/info").json()["index"]["videos"] == 5
        after = search(search_server, client, path=query, k=5)
        assert names(after)[0] == "tree.mp4" and abs(after["result"]["hits"][0]["start_s"] - 1.0) <= 0.6
        assert names(search(search_server, client, text="branches moving in the wind", k=1)) == ["tree.mp4"]
        assert (search_server.index / "uploads" / "tree.mp4").is_file()

        gone = client.delete("/v1/index/tree.mp4")
        assert gone.status_code == 200 and gone.json()["removed"] is True
        assert client.delete("/v1/index/tree.mp4").status_code == 404
        assert "tree.mp4" not in [v["name"] for v in client.get("/v1/index").json()["videos"]]
        assert not (search_server.index / "uploads" / "tree.mp4").exists()
        assert "tree.mp4" not in names(search(search_server, client, path=query, k=5))


def test_bad_uploads_and_queries_are_refused(search_server, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    with search_server.client() as client:
        for route in ("/v1/search", "/v1/index"):
            r = client.post(route, files={"file": ("notes.mp4", notes.read_bytes())})
            assert r.status_code == 415 and r.json()["detail"].startswith("not a readable video"), r.text
        r = client.post("/v1/search", files={"file": ("frame.png", notes.read_bytes())})
        assert r.status_code == 415 and r.json()["detail"].startswith("not a readable image")
        assert client.post("/v1/search", data={"k": "3"}).status_code == 400  # no query at all
        assert client.post("/v1/search", data={"text": "a", "video": "street.mp4"}).status_code == 400
        assert client.post("/v1/search", data={"text": "   "}).status_code == 400
        assert client.post("/v1/search", data={"text": "x", "k": "0"}).status_code == 422
        big = tmp_path / "big.mp4"
        big.write_bytes(b"\0" * (6 * 1024 * 1024))  # over the 5 MB limit
        assert client.post("/v1/search", files={"file": ("big.mp4", big.read_bytes())}).status_code == 413


def test_the_api_key_guards_every_search_route(search_server, footage):
    anonymous = httpx.Client(base_url=search_server.url, timeout=30)
    with anonymous:
        for method, path, kwargs in [("POST", "/v1/search", {"data": {"text": "rabbit"}}), ("GET", "/v1/index", {}),
                                     ("POST", "/v1/index", {"files": {"file": ("t.mp4", footage["tree.mp4"].read_bytes())}}),
                                     ("DELETE", "/v1/index/street.mp4", {})]:
            r = anonymous.request(method, path, **kwargs)
            assert r.status_code == 401, (method, path, r.text)
    with search_server.client() as client:
        assert "street.mp4" in [v["name"] for v in client.get("/v1/index").json()["videos"]]  # not removed


def test_the_config_offers_search_only_with_an_index(tmp_path):
    from vidlens.serve.config import ServeConfig

    assert "search" not in ServeConfig().tasks
    assert ServeConfig(summarize=False, emotion=False, index=str(tmp_path / "new")).tasks == ["search", "index"]


def test_the_page_searches_by_text_and_shows_the_hits(search_server, tmp_path):
    from .test_browser import CHROMIUM, DRIVER, status_is, wait_for

    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian chromium and chromium-driver (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1600", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        browser.set_page_load_timeout(60)
        browser.get(f"{search_server.url}/?api_key={API_KEY}")
        wait_for(browser, lambda d: "indexed" in d.find_element(By.ID, "index-facts").text, 30)
        assert not browser.find_element(By.ID, "upload").is_displayed()  # no upload tasks on this server
        browser.find_element(By.ID, "query").send_keys("people walking down a street")
        browser.find_element(By.ID, "search").click()
        assert wait_for(browser, status_is("done", "failed", "rejected"), 60) == "done"
        cards = browser.find_elements(By.CSS_SELECTOR, "#hits .hit")
        assert cards and cards[0].find_element(By.CLASS_NAME, "name").text == "1. street.mp4"
        assert cards[0].find_element(By.CLASS_NAME, "range").text.endswith(" s")
        assert cards[0].find_element(By.CLASS_NAME, "score").text.startswith("score ")
        sheet = browser.find_element(By.CSS_SELECTOR, "img[data-artifact='sheet.png']")
        wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", sheet), 30)
        thumb = cards[0].find_element(By.TAG_NAME, "img")
        wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb), 30)
    finally:
        browser.quit()
