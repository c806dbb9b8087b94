"""The dashboard's clip library (issue 17, item 4) in headless Chromium, like
tests/test_dashboard.py (whose app, browser and page fixtures this module reuses): the search box
finds a clip by its message and hides the others, the status filter and the pages work, and a
completed clip plays in a ``<video>`` element from its signed URL (``readyState ≥ 2`` after
seeking: the browser fetched and decoded frames through HTTP Range requests). Every test
checks that the browser console stayed free of errors.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests import test_dashboard as dashboard
from tests.test_dashboard import api, email, needs_browser, save_clip

pytestmark = pytest.mark.slow
#: The app served for real, the browser and the page of tests/test_dashboard.py.
driver, live_app, page = dashboard.driver, dashboard.live_app, dashboard.page

CARDS = "#clips-list li.clip"


def cards(shown):
    return shown.drv.find_elements(By.CSS_SELECTOR, CARDS)


def download(base, token, video_id, timeout=90):
    """Ask for the clip's file until the job has made it (202 while it runs); its bytes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        req = urllib.request.Request(f"{base}/api/video/download/{video_id}", method="POST",
                                     data=json.dumps({"format_preference": "mp4"}).encode())
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                if resp.status == 200:
                    return resp.read()
        except urllib.error.HTTPError as err:  # pragma: no cover - shown on failure
            raise AssertionError(err.read()) from None
        time.sleep(0.3)
    raise AssertionError("the download did not finish")


@needs_browser
def test_search_status_filter_and_pages(page, live_app, source_server):
    base, _ = live_app
    user = page.register(email())
    wanted = save_clip(base, user, source_server.mp4_url, 10, 14, "the bunny wakes up")
    save_clip(base, user, source_server.mp4_url, 20, 24, "a butterfly lands")
    save_clip(base, user, source_server.mp4_url, 30, 34, "apple falls")
    page.el("#clips-refresh").click()
    page.wait(lambda: len(page.drv.find_elements(By.CSS_SELECTOR, f"{CARDS}[data-loaded]")) == 3,
              20, "three clips")
    assert page.el("#clips-pages").is_displayed() is False  # one page: no pager

    page.fill("#clips-q", "BUNNY wakes")  # typing searches (case-insensitive, every word)
    page.wait(lambda: [c.get_attribute("data-id") for c in cards(page)] == [wanted], 10,
              "only the bunny clip")
    assert "the bunny wakes up" in page.el(CARDS).text
    assert "butterfly" not in page.el("#clips-list").text
    assert "apple" not in page.el("#clips-list").text

    Select(page.el("#clips-status")).select_by_value("failed")  # with the search: none
    page.visible("#clips-none")
    assert cards(page) == [] and not page.el("#clips-empty").is_displayed()
    Select(page.el("#clips-status")).select_by_value("")
    page.el("#clips-q").send_keys(Keys.CONTROL, "a")
    page.el("#clips-q").send_keys(Keys.BACKSPACE)  # emptied by keyboard: every clip again
    page.wait(lambda: len(cards(page)) == 3, 10, "all three again")

    # More than one page (20 a page): the pager shows and moves.
    for n in range(18):
        save_clip(base, user, f"https://www.youtube.com/watch?v=Filler{n:05d}", 60, 70,
                  f"filler {n}")
    page.el("#clips-refresh").click()
    page.visible("#clips-pages")
    assert page.text("#clips-page-info") == "Page 1 of 2 (21 clips)"
    assert page.el("#clips-prev").get_attribute("disabled") is not None
    page.el("#clips-next").click()
    page.wait(lambda: [c.get_attribute("data-id") for c in cards(page)] == [wanted], 10,
              "page 2: the oldest clip")
    assert page.text("#clips-page-info") == "Page 2 of 2 (21 clips)"
    page.el("#clips-prev").click()
    page.wait(lambda: len(cards(page)) == 20, 10, "page 1 again")

    # Grouped by stream: the Stream menu lists each video with its clips; one is chosen.
    streams = [o.text for o in Select(page.el("#clips-stream")).options]
    assert streams[0] == "All streams and videos" and "Filler00003 (1)" in streams
    Select(page.el("#clips-stream")).select_by_value("Filler00003")
    page.wait(lambda: len(cards(page)) == 1 and "filler 3" in page.el(CARDS).text, 10,
              "the one clip of that stream")
    Select(page.el("#clips-stream")).select_by_value("")
    since = ("const el = document.getElementById('clips-since'); el.value = arguments[0];"
             "el.dispatchEvent(new Event('change'));")  # as a date picker sets it
    page.drv.execute_script(since, "2999-01-01")
    page.visible("#clips-none")
    page.drv.execute_script(since, "")
    page.wait(lambda: len(cards(page)) == 20, 10, "every clip again")

    # On a phone: nothing scrolls sideways, every new control has a label.
    page.drv.set_window_size(390, 844)
    assert page.drv.execute_script("return document.documentElement.scrollWidth - "
                                   "document.documentElement.clientWidth") <= 0
    assert page.drv.execute_script("""
        return [...document.querySelectorAll('#view-clips input, #view-clips select')]
          .filter((el) => el.offsetParent !== null && !(el.labels && el.labels.length))
          .map((el) => el.outerHTML)""") == []
    assert page.console_errors() == []


@needs_browser
def test_a_completed_clip_plays(page, live_app, source_server):
    base, _ = live_app
    user = page.register(email())
    video_id = save_clip(base, user, source_server.mp4_url, 40, 44, "play me")
    other = save_clip(base, user, source_server.mp4_url, 50, 54, "not downloaded")
    data = download(base, user["token"], video_id)
    assert data[4:8] == b"ftyp"
    page.el("#clips-refresh").click()
    card = f'{CARDS}[data-id="{video_id}"]'
    page.wait(lambda: page.el(card).get_attribute("data-status") == "completed", 20, "completed")
    assert page.drv.find_elements(By.CSS_SELECTOR, f'{CARDS}[data-id="{other}"] '
                                                   "[data-role=play]") == []  # nothing to play
    picture = page.visible(f"{card} img[data-role=thumbnail]")  # the moment, loaded
    page.wait(lambda: page.drv.execute_script(
        "return arguments[0].complete && arguments[0].naturalHeight", picture) == 360, 20,
        "the thumbnail decoded")
    assert picture.get_attribute("src").startswith(f"{base}/api/video/thumbnail/{video_id}.jpg")

    page.el(f"{card} button[data-role=play]").click()
    video = page.visible(f"{card} video[data-role=player]")
    src = video.get_attribute("src")
    assert src.startswith(f"{base}/api/video/play/{video_id}/file?exp=") and "&sig=" in src
    page.wait(lambda: page.drv.execute_script(
        "return arguments[0].readyState >= 1", video), 30, "metadata")
    duration = page.drv.execute_script("return arguments[0].duration", video)
    assert abs(duration - 4) < 1
    page.drv.execute_script("const v = arguments[0]; v.pause(); v.currentTime = 2.5;", video)
    state = page.wait(lambda: page.drv.execute_script(
        "const v = arguments[0]; return !v.seeking && v.readyState >= 2 && "
        "{ready: v.readyState, time: v.currentTime, error: v.error && v.error.code, "
        " width: v.videoWidth}", video), 30, "frames after seeking")
    assert state["error"] is None and state["width"] == 1280
    assert abs(state["time"] - 2.5) < 0.6
    # The card is redrawn by the status polls and format look-ups: the same player stays.
    page.el("#clips-refresh").click()
    page.wait(lambda: page.drv.execute_script(
        "const v = document.querySelector(arguments[0]);"
        "return v && v.readyState >= 2 && Math.abs(v.currentTime - 2.5) < 0.6",
        f"{card} video[data-role=player]"), 20, "the player kept")
    assert api(base, "GET", "/api/video/list", token=user["token"])[0] == 200
    assert page.console_errors() == []
