"""The web page at `/`, end to end in headless Chromium (Debian's chromium + chromedriver, installed
by `make test`): upload a video, watch the job finish, see the labels and the timeline image;
a text file gets the server's 415 reason on the page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import API_KEY, CLASSES

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium and chromium-driver (make test installs them)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1600", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def status_is(*prefixes: str):
    from selenium.webdriver.common.by import By

    def check(driver):
        text = driver.find_element(By.ID, "status").text
        return text if text.startswith(prefixes) else False

    return check


def test_upload_classify_with_timeline_and_see_results(server, browser, actions, library_labels, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/?api_key={API_KEY}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
    assert [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#task option")] == ["classify", "summarize", "emotion"]
    video = sorted((actions / "grow").glob("*.mp4"))[0]
    expected = library_labels[video]
    browser.find_element(By.ID, "file").send_keys(str(video))
    Select(browser.find_element(By.ID, "task")).select_by_value("classify")
    browser.find_element(By.ID, "timeline").click()
    browser.find_element(By.ID, "submit").click()
    assert wait_for(browser, status_is("done", "failed", "rejected")) == "done"
    rows = browser.find_elements(By.CSS_SELECTOR, "#labels tr td:first-child")
    assert [r.text for r in rows][0] == expected and {r.text for r in rows} == set(CLASSES)
    assert browser.find_elements(By.CSS_SELECTOR, "#segments tr td")
    # The timeline PNG loaded (the page's cookie carried the API key for the <img> request).
    image = browser.find_element(By.CSS_SELECTOR, "img[data-artifact='timeline.png']")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30)
    links = {a.text for a in browser.find_elements(By.CSS_SELECTOR, "#artifacts a")}
    assert links == {"predictions.json", "timeline.png"}
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_summary_shows_its_video_and_pictures(server, browser, actions):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{server.url}/?api_key={API_KEY}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
    browser.find_element(By.ID, "file").send_keys(str(sorted((actions / "move_left").glob("*.mp4"))[0]))
    Select(browser.find_element(By.ID, "task")).select_by_value("summarize")
    browser.find_element(By.ID, "submit").click()
    assert wait_for(browser, status_is("done", "failed", "rejected")) == "done"
    facts = browser.find_element(By.ID, "summary-facts").text  # e.g. "1 segment kept, 1 s (100 %), 1 shot"
    assert " kept, " in facts and facts.endswith(("shot", "shots"))
    image = browser.find_element(By.CSS_SELECTOR, "img[data-artifact='importance.png']")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30)


def test_a_text_file_shows_the_servers_reason(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    browser.get(f"{server.url}/?api_key={API_KEY}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
    browser.find_element(By.ID, "file").send_keys(str(notes))
    browser.find_element(By.ID, "submit").click()
    text = wait_for(browser, status_is("rejected", "failed", "done"), 60)
    assert text.startswith("rejected (415): not a readable video")


def test_several_videos_for_emotion_make_one_job_with_a_row_each(server, browser, tmp_path):
    """Emotion takes a folder's worth of uploads at once: one job, a table row per video, summary.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from vidlens.testing.real import realdata

    clips = [realdata(f"expressions/W011_front_{name}_001.mp4") for name in ("happy_level3", "surprised_level3")]
    browser.get(f"{server.url}/?api_key={API_KEY}")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#task option"))
    Select(browser.find_element(By.ID, "task")).select_by_value("emotion")
    browser.find_element(By.ID, "file").send_keys("\n".join(str(c) for c in clips))
    browser.find_element(By.ID, "submit").click()
    assert wait_for(browser, status_is("done", "failed", "rejected")) == "done"
    assert browser.find_element(By.ID, "emotion-facts").text == "2 of 2 videos analysed"
    rows = browser.find_elements(By.CSS_SELECTOR, "#videos tr")[1:]
    assert sorted(r.find_elements(By.TAG_NAME, "td")[0].text for r in rows) == sorted(c.name for c in clips)
    assert {r.find_elements(By.TAG_NAME, "td")[4].text for r in rows} == {"ok"}
    happy = next(r for r in rows if "happy" in r.find_elements(By.TAG_NAME, "td")[0].text)
    assert happy.find_elements(By.TAG_NAME, "td")[2].text == "happy"  # the acted smile
    image = browser.find_element(By.CSS_SELECTOR, "img[data-artifact='summary.png']")
    wait_for(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image), 30)
