"""The dashboard's "Clip now" (issue 14, item 3), in headless Chromium like
tests/test_dashboard.py (whose browser, page object and served app are reused).

The live source is a real-time live HLS made by plain ffmpeg from the real clip
(scripts/live_source.py :class:`LiveHLS`), which yt-dlp's generic extractor reads as live, as
tests/test_live_capture.py uses it through the API. What the user gets is checked as bytes:
ffprobe of the file the Download button saved. Every test also checks that the browser console
has no error: the page asks whether a source is live (the save form's look-up) before it posts
a save the server would refuse.
"""
from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from werkzeug.serving import make_server

from scripts.live_source import LiveHLS
from src.media.ffmpeg import ffprobe
from tests import test_dashboard as dashboard
from tests.test_dashboard import api, email, needs_browser

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

driver, page, live_app = dashboard.driver, dashboard.page, dashboard.live_app

#: Visible form controls without a label (as tests/test_dashboard_media.py checks its views).
UNLABELLED = """
    return [...document.querySelectorAll('input, select, textarea, progress, button')]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => el.tagName === 'BUTTON' ? !(el.textContent.trim()
                      || el.getAttribute('aria-label'))
                    : !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
      .map((el) => el.outerHTML)"""


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _clips(base, user):
    return api(base, "GET", "/api/video/list", token=user["token"])[1]["videos"]


def _clip_now_form(page, url, offset, duration):
    page.go("save")
    page.fill("#save-url", url)
    page.fill("#live-offset", str(offset))
    page.fill("#live-duration", str(duration))


@needs_browser
def test_live_helpers(page):
    """The pickers' bounds, the progress line of a recording, and which clips have only their
    live recording (Clip now: final) or also a place in the stream's recording (a stream clip
    from chat: a failed or expired one falls back to the VOD, so it keeps Retry)."""
    result = page.drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all([import('/ui/js/clipnow.js'), import('/ui/js/liveclip.js'),
                     import('/ui/js/progress.js')]).then(([now, clip, progress]) => {
          const input = (value, min, max) => Object.assign(document.createElement('input'),
            {type: 'number', min, max: max ?? '', value});
          const read = (v, min, max) => { const r = now.readSeconds(input(v, min, max));
                                          return r.error ? 'error' : r.value; };
          const win = {start_at: '2026-01-01T10:00:00Z', end_at: '2026-01-01T10:00:06Z'};
          const clips = {
            clipNow: {live_window: win, start_time: null, end_time: null, status: 'failed'},
            clipNowDone: {live_window: win, start_time: null, end_time: null,
                          status: 'completed'},
            streamFailed: {live_window: win, start_time: 300, end_time: 330, status: 'failed'},
            streamDone: {live_window: win, start_time: 300, end_time: 330, status: 'completed'},
            vod: {live_window: null, start_time: 300, end_time: 330, status: 'completed'},
          };
          const bar = progress.jobProgress();
          bar.update({current_phase: 'recording', seconds_to_come: 3.2, download_progress: 40});
          const recording = [bar.el.dataset.phase, bar.el.querySelector('label').textContent,
                             bar.el.querySelector('.progress-text').textContent];
          bar.update({current_phase: 'downloading', download_progress: 95});
          done({
            offsets: ['0', '4', '12.5', '-1', '', 'abc'].map((v) => read(v, '0')),
            durations: ['1', '3600', '0', '3601'].map((v) => read(v, '1', '3600')),
            liveOnly: Object.fromEntries(Object.entries(clips).map(
              ([k, v]) => [k, clip.liveOnly(v)])),
            liveFile: Object.fromEntries(Object.entries(clips).map(
              ([k, v]) => [k, clip.liveFile(v)])),
            span: clip.liveSpan(win).seconds, noSpan: clip.liveSpan(null),
            recording, after: bar.el.querySelector('.progress-text').textContent,
            notLive: [now.notLiveMessage('was_live'), now.notLiveMessage(null)],
          });
        });""")
    assert result["offsets"] == [0, 4, 12.5, "error", "error", "error"]
    assert result["durations"] == [1, 3600, "error", "error"]
    assert result["liveOnly"] == {"clipNow": True, "clipNowDone": True, "streamFailed": False,
                                  "streamDone": False, "vod": False}
    assert result["liveFile"] == {"clipNow": True, "clipNowDone": True, "streamFailed": False,
                                  "streamDone": True, "vod": False}
    assert result["span"] == 6 and result["noSpan"] is None
    assert result["recording"] == ["recording", "Recording", "recording — 4 s to come · 40 %"]
    assert "to come" not in result["after"] and "95" in result["after"]
    assert result["notLive"][0].startswith("This stream has ended.")
    assert result["notLive"][1].startswith("This source is not live now.")
    assert page.console_errors() == []


@needs_browser
def test_clip_now_records_a_live_stream_and_downloads_it(page, live_app, tmp_path):
    base, _ = live_app
    with LiveHLS(tmp_path / "live") as stream:
        user = page.register(email())
        page.go("save")
        assert page.drv.execute_script(UNLABELLED) == []
        # The pickers start at the API's defaults, bounded like SaveLiveSchema.
        offset, duration = page.el("#live-offset"), page.el("#live-duration")
        assert (offset.get_attribute("value"), duration.get_attribute("value")) == ("60", "120")
        assert (offset.get_attribute("min"), duration.get_attribute("min")) == ("0", "1")
        _clip_now_form(page, stream.url, 4, 6)
        page.fill("#save-message", "what a play")
        asked = time.time()
        page.el("#clip-now").click()

        # The look-up said live (its card shows it), the save went through, the list shows it.
        card_css = "#clips-list li.clip[data-live=true]"
        card = page.visible(card_css, timeout=30)
        video_id = card.get_attribute("data-id")
        assert "Live clip saved: from 4 s before now, 6 s long" in page.el("#flash").text
        assert page.text(f"{card_css} [data-role=length]") == "(0:00:06)"
        assert "what a play" in page.text(card_css)
        status = api(base, "GET", f"/api/video/status/{video_id}", token=user["token"])[1]
        window = status["live_window"]
        start = _seconds(window["start_at"])
        assert _seconds(window["end_at"]) - start == pytest.approx(6)
        assert asked - 4 - 1 <= start <= time.time() - 4  # "4 s before now", at the request

        # Recording with the seconds still to come, then downloading or done.
        seen = []

        def recording_seen():
            bar = page.drv.execute_script(
                "const el = document.querySelector(arguments[0]);"
                "return el && [el.querySelector('label').textContent,"
                "              el.querySelector('.progress-text').textContent];",
                f"{card_css} .job-progress[data-phase=recording]")
            if bar:
                seen.append(bar)
            return bool(bar)

        page.wait(recording_seen, 20, "the recording progress")
        label, text = seen[-1]
        assert label == "Recording" and re.match(r"recording — \d+ s to come · ", text), seen
        page.wait(lambda: page.el(card_css).get_attribute("data-status") == "completed", 45,
                  "the live clip to complete")

        # The normal download button saves the MP4 of the window.
        button = page.el(f"{card_css} button[data-role=download]")
        assert button.text == "Download"
        assert page.drv.find_elements(By.CSS_SELECTOR, f"{card_css} select") == []  # one file
        button.click()
        path = page.wait_download(f"video_{video_id}.mp4", timeout=60)
    probe = ffprobe(str(path))
    assert probe["format"]["format_name"].startswith("mov,mp4")
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert abs(float(probe["format"]["duration"]) - 6) <= 0.6
    assert [v["video_id"] for v in _clips(base, user)] == [video_id]
    assert page.console_errors() == []


@needs_browser
def test_clip_now_on_a_source_that_is_not_live_says_so(page, live_app, source_server):
    base, _ = live_app
    user = page.register(email())
    # Bounds are checked before anything is sent.
    _clip_now_form(page, source_server.mp4_url, -1, 0)
    page.el("#clip-now").click()
    assert page.visible("#live-offset-error").text
    assert "1 to 3600" in page.visible("#live-duration-error").text
    assert page.el("#live-offset").get_attribute("aria-invalid") == "true"
    assert page.drv.switch_to.active_element.get_attribute("id") == "live-offset"

    # Keyboard only: Enter in a Clip now field clips now (not the form's Save clip).
    page.fill("#live-offset", "4")
    page.fill("#live-duration", "6" + Keys.ENTER)
    message = page.visible("#live-error", timeout=30)
    assert "not live now" in message.text and "Save clip" in message.text
    assert message.get_attribute("data-code") == "NOT_LIVE"
    assert not page.el("#live-offset-error").is_displayed()
    assert not page.el("#save-start-error").is_displayed()  # the VOD save did not run
    assert page.el("#save-info [data-role=info]").is_displayed()  # the look-up's card
    state = page.visible("#live-state")
    assert "not live" in state.text
    assert page.el("#live-box").get_attribute("data-live") == "false"
    assert page.el("#view-save").is_displayed()
    assert _clips(base, user) == []
    assert page.console_errors() == []


@pytest.fixture
def uncached_app(make_app):
    """``(base_url, app)``: the app served for real, with no cached live info (each save
    extracts the source again, as when the look-up's answer is older than
    ``LIVE_INFO_CACHE_SECONDS``)."""
    app = make_app(LIVE_INFO_CACHE_SECONDS=0)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=10)


@needs_browser
def test_a_stream_that_ended_after_the_look_up_gets_the_servers_not_live(
        driver, uncached_app, tmp_path):
    """The look-up said live, the stream ended before Clip now: the server's 400 NOT_LIVE is
    shown as the same clear message (its refused request is the only console entry)."""
    base, _ = uncached_app
    downloads = tmp_path / "browser-downloads"
    downloads.mkdir()
    page = dashboard.Page(driver, base, downloads)
    try:
        with LiveHLS(tmp_path / "live") as stream:
            user = page.register(email())
            _clip_now_form(page, stream.url, 4, 6)
            page.el("#save-lookup").click()
            assert page.text("#save-info [data-role=live]", timeout=30) == "Live now"
            assert "Live now" in page.visible("#live-state").text
            assert page.el("#live-box").get_attribute("data-live") == "true"
            stream.end()  # the playlist now ends with EXT-X-ENDLIST
            page.el("#clip-now").click()
            message = page.visible("#live-error", timeout=30)
        assert "not live now" in message.text
        assert message.get_attribute("data-code") == "NOT_LIVE"
        assert page.el("#view-save").is_displayed() and _clips(base, user) == []
        errors = page.console_errors(allowed=("/api/video/save/live",))
        assert errors == []
    finally:
        driver.execute_script("sessionStorage.clear()")
