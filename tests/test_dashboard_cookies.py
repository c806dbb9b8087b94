"""The dashboard's YouTube cookies panel and the ``t=`` start prefill (issue 13, items 2 and 9),
in headless Chromium like tests/test_dashboard.py (whose browser fixtures are reused).
"""
from __future__ import annotations

import time

import pytest

from tests import test_dashboard as dashboard
from tests.test_dashboard import api, email, needs_browser

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

# The browser, the served app and the page object of tests/test_dashboard.py, as fixtures here.
driver, live_app, page = dashboard.driver, dashboard.live_app, dashboard.page
DAY = 86400


def _file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@needs_browser
def test_upload_replace_and_delete_cookies(page, live_app, tmp_path):
    base, _ = live_app
    user = page.register(email())
    page.go("account")
    page.wait(lambda: "No cookies stored" in page.el("#cookies-summary").text, 10, "empty panel")
    assert not page.el("#cookies-delete").is_displayed()
    assert page.el("#cookies-upload").text == "Upload cookies"

    soon = int(time.time()) + 3 * DAY
    cookies = ("# Netscape HTTP Cookie File\n"
               f".youtube.com\tTRUE\t/\tTRUE\t{soon}\tLOGIN_INFO\tsecret-login-value\n"
               f".google.com\tTRUE\t/\tTRUE\t{soon + 100 * DAY}\tSID\tsecret-sid\n"
               f".example.org\tTRUE\t/\tFALSE\t{soon}\tx\ty\n")
    page.el("#cookies-file").send_keys(_file(tmp_path, "cookies.txt", cookies))
    page.el("#cookies-upload").click()
    page.wait(lambda: page.el("#cookies-panel").get_attribute("data-state") == "stored", 10,
              "cookies stored")
    assert "2 cookies of google.com, youtube.com" in page.text("#cookies-summary")
    assert "1 of other sites ignored" in page.el("#flash").text
    assert page.text("#cookies-expiry").startswith("Earliest expiry: ")
    warning = page.visible("#cookies-warning")
    assert warning.get_attribute("data-kind") == "soon" and "in 3 days" in warning.text
    assert "secret" not in page.el("#cookies-panel").text
    assert page.el("#cookies-upload").text == "Replace cookies"
    status, body = api(base, "GET", "/api/auth/cookies", token=user["token"])
    assert status == 200 and body["earliest_expiry"] == soon

    broken = f".youtube.com\tTRUE\t/\tTRUE\t{soon}\tA\tb\n.youtube.com TRUE / TRUE 1 SID v\n"
    page.el("#cookies-file").send_keys(_file(tmp_path, "broken.txt", broken))
    page.el("#cookies-upload").click()
    error = page.visible("#cookies-error")
    assert "line 2: expected 7 tab-separated fields" in error.text
    assert api(base, "GET", "/api/auth/cookies", token=user["token"])[1]["earliest_expiry"] == soon

    passed = f".youtube.com\tTRUE\t/\tTRUE\t{int(time.time()) - DAY}\tSID\told\n"
    page.el("#cookies-file").send_keys(_file(tmp_path, "old.txt", passed))
    page.el("#cookies-upload").click()
    page.wait(lambda: page.el("#cookies-warning").get_attribute("data-kind") == "expired", 10,
              "the expired warning")
    assert "expired on" in page.text("#cookies-warning")
    assert not page.el("#cookies-error").is_displayed()
    assert "1 cookie of youtube.com" in page.text("#cookies-summary")

    page.el("#cookies-delete").click()
    page.wait(lambda: page.el("#cookies-panel").get_attribute("data-state") == "none", 10,
              "cookies deleted")
    assert not page.el("#cookies-warning").is_displayed()
    assert not page.el("#cookies-delete").is_displayed()
    assert api(base, "GET", "/api/auth/cookies", token=user["token"])[1]["exists"] is False
    assert page.console_errors(allowed=("400",)) == []  # the broken file's answer


@needs_browser
def test_a_pasted_youtube_url_with_t_fills_the_start(page, live_app):
    base, _ = live_app
    user = page.register(email())
    shapes = page.drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/js/format.js').then((m) => done([
          'https://youtu.be/dQw4w9WgXcQ?t=90', 'https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1m30s',
          'https://m.youtube.com/watch?v=dQw4w9WgXcQ&t=1h2m3s', 'https://youtu.be/dQw4w9WgXcQ?t=45s',
          'https://www.youtube.com/watch?v=dQw4w9WgXcQ#t=75', 'https://www.youtube.com/embed/x?start=12',
          'https://www.youtube.com/watch?v=dQw4w9WgXcQ', 'https://example.com/v?t=90',
          'https://youtu.be/dQw4w9WgXcQ?t=soon', 'not a url',
        ].map(m.youtubeStart)));""")
    assert shapes == [90, 90, 3723, 45, 75, 12, None, None, None, None]

    page.go("save")
    page.fill("#save-url", "https://youtu.be/dQw4w9WgXcQ?t=90")
    assert page.el("#save-start").get_attribute("value") == "90"
    page.fill("#save-url", "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=1m45s")
    assert page.el("#save-start").get_attribute("value") == "105"  # ours: follows the URL
    page.fill("#save-url", "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert page.el("#save-start").get_attribute("value") == ""
    page.fill("#save-start", "5:00")  # typed by the user: kept
    page.fill("#save-url", "https://youtu.be/dQw4w9WgXcQ?t=90")
    assert page.el("#save-start").get_attribute("value") == "5:00"

    page.fill("#save-start", "")
    page.fill("#save-url", "https://youtu.be/dQw4w9WgXcQ?t=1m30s")
    assert page.el("#save-start").get_attribute("value") == "90"
    page.fill("#save-end", "2:00")
    page.el("#save-form button[type=submit]").click()
    page.visible("#view-clips")
    videos = api(base, "GET", "/api/video/list", token=user["token"])[1]["videos"]
    assert [(v["start_time"], v["end_time"]) for v in videos] == [(90, 120)]
    assert page.console_errors() == []
