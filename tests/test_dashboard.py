"""The web dashboard (issue 7), end to end in headless Chromium (Debian's ``chromium`` and
``chromedriver``, driven by Selenium) against the app serving the local source.

The app runs in a thread (werkzeug ``make_server`` on 127.0.0.1:0); downloads land in a per-test
folder (CDP ``Browser.setDownloadBehavior``) and are checked with ffprobe. Each test also checks
the browser console for errors. ``UPDATE_SCREENSHOTS=1`` rewrites ``docs/screenshot-clips.png``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bson import ObjectId
from werkzeug.serving import make_server

from src.media.ffmpeg import ffprobe

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "correct horse 1"

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - selenium is pinned in requirements.txt
    HAVE_SELENIUM = False

BROWSER_MISSING = not (HAVE_SELENIUM and os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))
#: Skipped without a browser, except on CI (CI=true), where .ci/run installs one: there it fails.
needs_browser = pytest.mark.skipif(
    BROWSER_MISSING and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver; .ci/run installs them) and the selenium package")


# --- the app, served for real ------------------------------------------------------------------

@pytest.fixture
def live_app(make_app):
    """``(base_url, app)`` of an app served by werkzeug in a background thread."""
    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()
    thread.join(timeout=10)


def api(base, method, path, body=None, token=None):
    """One JSON request from the test itself: (status, body)."""
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_dashboard_is_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and b'<script type="module" src="/ui/js/main.js">' in page.data
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    script = client.get("/ui/js/main.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert client.get("/ui/js/nope.js").status_code == 404
    assert "/" not in client.get("/openapi.json").json["paths"]  # not part of the API


# --- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver():
    if BROWSER_MISSING:
        pytest.fail(needs_browser.kwargs["reason"])  # only reached on CI (see needs_browser)
    profile = tempfile.mkdtemp(prefix="ytd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,900", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The dashboard in the browser, with the few actions the tests need."""

    def __init__(self, drv, base, downloads: Path):
        self.drv, self.base, self.downloads = drv, base, downloads
        drv.set_window_size(1280, 900)
        drv.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
        drv.get_log("browser")  # drop what earlier tests left
        drv.get(base + "/")

    def el(self, css):
        return self.drv.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition, timeout=20, message=""):
        try:
            return WebDriverWait(self.drv, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda _: condition())
        except TimeoutException:
            raise AssertionError(f"timed out: {message}") from None

    def text(self, css, timeout=10):
        """The text of ``css``, read again if a re-render (progress polling) replaced the
        element between finding and reading it."""
        return self.wait(lambda: (self.el(css).text,), timeout, f"{css} text")[0]

    def visible(self, css, timeout=20):
        return self.wait(lambda: self.el(css).is_displayed() and self.el(css), timeout,
                         f"{css} visible")

    def fill(self, css, text):
        field = self.el(css)
        field.clear()
        field.send_keys(text)

    def log_in(self, email, password):
        self.visible("#login-email")
        self.fill("#login-email", email)
        self.fill("#login-password", password + Keys.ENTER)  # keyboard only

    def register(self, email, password=PASSWORD):
        self.visible("#register-email")
        self.fill("#register-email", email)
        self.fill("#register-password", password)
        self.el("#register-form button[type=submit]").click()
        self.visible("#view-clips")
        return self.session()

    def session(self):
        raw = self.drv.execute_script("return sessionStorage.getItem('ytd.session')")
        return json.loads(raw) if raw else None

    def go(self, view):
        self.el(f'#nav a[data-view="{view}"]').click()
        self.visible(f"#view-{view}")

    def wait_download(self, suffix, timeout=60):
        def done():
            files = [p for p in self.downloads.iterdir() if p.name.endswith(suffix)]
            partial = any(p.name.endswith(".crdownload") for p in self.downloads.iterdir())
            return files[0] if files and not partial else None
        return self.wait(done, timeout, f"a downloaded *{suffix}")

    def console_errors(self, allowed=()):
        """SEVERE console entries, except network errors whose text has one of ``allowed``."""
        return [e for e in self.drv.get_log("browser") if e["level"] == "SEVERE"
                and not (e["source"] == "network" and any(a in e["message"] for a in allowed))]


@pytest.fixture
def page(driver, live_app, tmp_path):
    downloads = tmp_path / "browser-downloads"
    downloads.mkdir()
    p = Page(driver, live_app[0], downloads)
    yield p
    driver.execute_script("sessionStorage.clear()")


def email():
    return f"streamer-{time.time_ns() % 10**9}@example.com"


def save_clip(base, user, url, start, end, message=None):
    """Save a clip through the API with a bound public token; return its id."""
    public = api(base, "GET", "/api/auth/token/public", token=user["token"])[1]["token"]
    status, body = api(base, "POST", "/api/video/save", {
        "url": url, "start_time": start, "end_time": end, "user_id": user["user"]["id"],
        "additional_message": message}, token=public)
    assert status == 201, body
    return body["video_id"]


# --- tests ----------------------------------------------------------------------------------------

@needs_browser
def test_time_helpers(page):
    result = page.drv.execute_async_script("""
        const done = arguments[arguments.length - 1];
        import('/ui/js/format.js').then((m) => {
          const parse = (t) => { try { return m.parseTime(t); } catch (e) { return 'error'; } };
          done({parsed: ['0:05:00', '5:30', '90', '12.5', '1:02:03.5', '1:75', '1:60:00', 'abc', '']
                          .map(parse),
                hms: [0, 65.7, 3600, 36000 + 61].map(m.hms),
                range: m.checkRange('0:05:30', '0:05:00')});
        });""")
    assert result["parsed"] == [300, 330, 90, 12.5, 3723.5, "error", "error", "error", "error"]
    assert result["hms"] == ["0:00:00", "0:01:05", "1:00:00", "10:01:01"]
    assert result["range"] == {"errors": {"end": "The end must be after the start."}}
    assert page.console_errors() == []


@needs_browser
def test_wrong_password_register_logout_and_session_end(page, live_app):
    base, _ = live_app
    address = email()
    page.log_in(address, "not the password")
    error = page.visible("#login-error")
    assert "Wrong email or password" in error.text
    assert page.el("#view-login").is_displayed() and page.session() is None

    session = page.register(address)
    assert page.el("#who-email").text == address
    page.el("#logout").click()
    page.visible("#view-login")
    assert "logged out" in page.el("#flash").text and page.session() is None

    page.log_in(address, PASSWORD)
    page.visible("#view-clips")
    token = page.session()["token"]
    assert token != session["token"]
    # The session ends elsewhere (logout from another client): the next call returns to login.
    assert api(base, "POST", "/api/auth/logout", token=token)[0] == 200
    page.el("#clips-refresh").click()
    page.visible("#view-login")
    assert "session has ended" in page.el("#flash").text
    assert page.console_errors(allowed=("401",)) == []


@needs_browser
def test_change_password(page):
    address = email()
    page.register(address)
    page.go("account")
    page.fill("#current-password", "wrong password")
    page.fill("#new-password", "a new password 2")
    page.el("#password-form button[type=submit]").click()
    assert "current password is wrong" in page.visible("#password-error").text
    assert page.el("#view-account").is_displayed()  # a wrong password does not log out
    page.fill("#current-password", PASSWORD)
    page.el("#password-form button[type=submit]").click()
    page.visible("#view-login")
    assert "Password changed" in page.el("#flash").text
    page.log_in(address, "a new password 2")
    page.visible("#view-clips")
    assert page.console_errors(allowed=("401",)) == []


@needs_browser
def test_save_clip_watch_progress_and_download(page, live_app, clean_source_server):
    base, app = live_app
    clean_source_server.rate_bytes_per_sec = 250_000  # ≈ 10 s for the 30 s segment
    user = page.register(email())
    save_clip(base, user, clean_source_server.mp4_url, 95, 125,
              "!clip from chat: the bunny wakes up")
    page.go("save")

    # Checked before sending: nothing reaches the server.
    page.fill("#save-url", "not a url")
    page.fill("#save-start", "0:05:75")
    page.fill("#save-end", "0:05:00")
    page.el("#save-form button[type=submit]").click()
    assert "H:MM:SS" in page.visible("#save-start-error").text or \
        "below 60" in page.el("#save-start-error").text
    assert page.el("#save-url-error").is_displayed()
    token = page.session()["token"]
    assert len(api(base, "GET", "/api/video/list", token=token)[1]["videos"]) == 1

    page.fill("#save-url", clean_source_server.mp4_url)
    page.fill("#save-start", "0:05:00")
    page.fill("#save-end", "330")
    page.fill("#save-message", "the big jump")
    page.el("#save-form button[type=submit]").click()
    page.wait(lambda: len(page.drv.find_elements(By.CSS_SELECTOR, "li.clip[data-loaded]")) == 2)
    card = page.el("#clips-list li.clip")  # newest first
    assert "0:05:00 – 0:05:30" in card.text and "the big jump" in card.text

    Select(card.find_element(By.CSS_SELECTOR, "select[data-role=format]")).select_by_value("mp4")
    card.find_element(By.CSS_SELECTOR, "button[data-role=download]").click()
    seen = set()

    def progressed():
        bars = page.drv.find_elements(By.CSS_SELECTOR,
                                      "li.clip progress[data-role=download-progress]")
        if bars:
            value = float(bars[0].get_attribute("value"))
            seen.add(value)
            if 5 < value < 90 and not shot.get("taken"):
                shot["taken"] = True
                _screenshot(page, "screenshot-clips.png")
        return len([v for v in seen if 0 < v < 100]) >= 2

    shot = {}
    page.wait(progressed, 60, "the progress bar to move")
    text = page.text("li.clip [data-role=download-progress-text]")
    assert "%" in text and "x" in text  # percentage and speed
    path = page.wait_download(".mp4", timeout=90)
    page.wait(lambda: page.el("li.clip").get_attribute("data-status") == "completed", 10, "done")
    probe = ffprobe(str(path))
    assert abs(float(probe["format"]["duration"]) - 30) < 1.5
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert page.console_errors() == []


def _screenshot(page, name):
    """Keep a screenshot for the README (UPDATE_SCREENSHOTS=1) or next to the test's files."""
    target = ROOT / "docs" / name if os.environ.get("UPDATE_SCREENSHOTS") \
        else page.downloads.parent / name
    page.drv.set_window_size(1280, 540)  # the header and the cards, not the empty page below
    page.drv.save_screenshot(str(target))
    page.drv.set_window_size(1280, 900)


@needs_browser
def test_failed_clip_shows_reason_and_retries_and_expired_clip_fetches_again(
        page, live_app, source_server):
    base, app = live_app
    user = page.register(email())
    beyond = save_clip(base, user, source_server.mp4_url, 700, 710)  # the source lasts ~601 s
    expired = save_clip(base, user, source_server.mp4_url, 10, 14)
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(expired)},
                                                 {"$set": {"status": "expired"}})
    page.el("#clips-refresh").click()
    page.wait(lambda: len(page.drv.find_elements(By.CSS_SELECTOR, "li.clip[data-loaded]")) == 2)
    page.el(f'li.clip[data-id="{beyond}"] button[data-role=download]').click()
    card = f'li.clip[data-id="{beyond}"]'
    page.wait(lambda: page.el(card).get_attribute("data-status") == "failed", 30, "the failure")
    assert "starts after the end of the video" in page.el(f"{card} [data-role=error]").text
    assert "SEGMENT_OUT_OF_RANGE" in page.el(f"{card} [data-role=error]").text
    assert page.el(f"{card} button[data-role=download]").text == "Retry"

    card = f'li.clip[data-id="{expired}"]'
    assert page.el(f"{card} [data-role=status]").text.lower() == "expired"
    button = page.el(f"{card} button[data-role=download]")
    assert button.text == "Fetch again"
    button.click()
    path = page.wait_download(f"video_{expired}.mp4")
    assert abs(float(ffprobe(str(path))["format"]["duration"]) - 4) < 1
    assert page.console_errors(allowed=("422",)) == []


@needs_browser
def test_upload_and_encode(page):
    page.register(email())
    page.go("encode")
    page.wait(lambda: len(Select(page.el("#encode-codec")).options) >= 3, 10, "codecs")
    Select(page.el("#encode-codec")).select_by_value("h264")
    Select(page.el("#encode-preset")).select_by_value("medium")
    page.el("#encode-file").send_keys(str(CLIP))
    page.el("#encode-form button[type=submit]").click()
    page.wait(lambda: page.el("#upload-progress").get_attribute("value") == "100", 30, "upload")
    page.visible("#encode-list li.encode")
    assert CLIP.name in page.text("#encode-list li.encode")
    page.wait(lambda: page.el("#encode-list li.encode").get_attribute("data-status") == "completed",
              120, "the encode to finish")
    page.el("#encode-list li.encode button[data-role=download]").click()
    path = page.wait_download("_h264_medium.mp4")
    video = [s for s in ffprobe(str(path))["streams"] if s["codec_type"] == "video"][0]
    assert video["codec_name"] == "h264" and video["height"] == 720
    assert page.console_errors() == []


@needs_browser
def test_nightbot_token_issue_and_revoke(page, live_app):
    base, _ = live_app
    user = page.register(email())
    page.go("nightbot")
    page.el("#nightbot-issue").click()
    command = page.visible("#nightbot-command").get_attribute("value")
    prefix = f"!addcom !clip $(urlfetch {base}/api/video/save/stream/"
    assert command.startswith(prefix) and command.endswith("/live?message=$(querystring))")
    assert len(command) - len("!addcom !clip ") <= 500  # Nightbot's limit for a command
    token = command[len(prefix):].split("/", 1)[0]
    lines = page.el("#nightbot-chat-commands").get_attribute("value").split("\n")
    assert lines == [f"!addcom {name} $(urlfetch {base}/api/chat/{token}/{path}"
                     "?message=$(querystring))" for name, path in (
                         ("-ul=moderator !clipedit", "edit"), ("-ul=moderator !clipdelete",
                                                               "delete"),
                         ("!recent", "recent"), ("!clipsearch", "search"))]
    claims = api(base, "GET", "/api/auth/tokens/public", token=user["token"])[1]["tokens"]
    assert len(claims) == 1 and not claims[0]["revoked"]  # bound to the user: listed
    # The token works (400: authenticated, then the empty body is refused)...
    assert api(base, "POST", "/api/video/save", {}, token=token)[0] == 400
    row = page.visible("#tokens-list li.token[data-revoked=false]")
    row.find_element(By.CSS_SELECTOR, "button[data-role=revoke]").click()
    page.wait(lambda: page.el("#tokens-list li.token").get_attribute("data-revoked") == "true",
              10, "the token to show as revoked")
    # ...and is refused once revoked.
    assert api(base, "POST", "/api/video/save", {}, token=token) == (
        401, {"error": "This public token has been revoked", "code": "TOKEN_REVOKED"})
    assert page.console_errors() == []


@needs_browser
def test_phone_width_and_labels(page, live_app, source_server, tmp_path):
    base, _ = live_app
    user = page.register(email())
    save_clip(base, user, source_server.mp4_url, 305, 335,
              "a long message that has to wrap on a phone screen")
    page.drv.set_window_size(390, 844)
    page.el("#clips-refresh").click()
    page.visible("#clips-list li.clip[data-loaded]")
    for view in ("clips", "save", "encode", "nightbot", "account"):
        page.go(view)
        if view == "nightbot":
            page.el("#nightbot-issue").click()
            page.visible("#tokens-list li.token")
        overflow = page.drv.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{view} scrolls sideways at phone width"
        unlabelled = page.drv.execute_script("""
            return [...document.querySelectorAll('input, select, textarea, progress')]
              .filter((el) => el.offsetParent !== null)
              .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map((el) => el.outerHTML)""")
        assert unlabelled == [], f"{view}: controls without a label"
        page.drv.save_screenshot(str(tmp_path / f"phone-{view}.png"))
    page.go("clips")
    assert "0:05:05 – 0:05:35" in page.el("#clips-list li.clip").text
    assert page.console_errors() == []
