"""A channel's public clip page (issue 17, item 5): ``GET /api/public/channels/{handle}/clips``
and ``…/export`` (text, CSV, JSON), and the page ``/c/{handle}`` in headless Chromium.

Clips are made as chat makes them: the stream save from Nightbot (its headers, ``t`` from the
stream), by an owner whose channel settings turned the page on. Every answer is checked for
private fields: each clip has exactly the public keys, and no account id, email, clip id,
token, Nightbot provider id or login name, or file path appears anywhere in a raw body.
"""
from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from src.services import roles
from src.services.public_page import PUBLIC_FIELDS
from src.web import CSP
from tests import test_dashboard as dashboard
from tests.test_dashboard import api, needs_browser
from tests.youtube_fakes import VIDEO_ID

CHANNEL_ID = "UC" + "p" * 22
OTHER_CHANNEL = "UC" + "q" * 22
VIEWER_ID = "UC" + "v" * 22  # the Nightbot user's providerId: private
LOGIN = "owl_login_name"  # the Nightbot user's name (login): private; displayName is public
STREAM_B = "AbCdEfGhIjK"
ROOT = Path(__file__).resolve().parent.parent

#: The served app and the browser of tests/test_dashboard.py.
driver, live_app = dashboard.driver, dashboard.live_app


def nightbot(level="everyone", channel=CHANNEL_ID, name="Night Owl"):
    """Nightbot's urlfetch headers (URL-encoded query strings, docs.nightbot.tv)."""
    user = urlencode({"name": LOGIN, "displayName": name, "provider": "youtube",
                      "providerId": VIEWER_ID, "userLevel": level})
    return {"Nightbot-User": user, "Nightbot-Channel": urlencode({
        "name": "streamer", "displayName": "Streamer", "provider": "youtube",
        "providerId": channel})}


def save_path(token, message, t, video=VIDEO_ID):
    """The stream save of ``message`` at ``t`` seconds into ``video``, for ``CHANNEL_ID`` when
    no Nightbot-Channel header names another (JSON answers)."""
    return (f"/api/video/save/stream/{token}/{video}?t={t}&format=json&message="
            + quote(message, safe=""))


def clip(client, token, message, t, video=VIDEO_ID, headers=None):
    """``!clip message`` at ``t`` seconds into ``video`` (Nightbot's headers unless
    ``headers``; ``{}``: the token's holder, for ``CHANNEL_ID``); the clip's id."""
    path = save_path(token, message, t, video) + ("" if headers else f"&channel={CHANNEL_ID}")
    r = client.get(path, headers=nightbot() if headers is None else headers)
    assert r.status_code == 201, r.data
    return r.json["video_id"]


def owner(client, auth, handle, page=True, channel=CHANNEL_ID):
    """A new owner with a bound public token whose channel has the page ``handle``."""
    user = auth.user()
    user["public"] = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    r = client.put(f"/api/channels/{channel}", headers=user["headers"],
                   json={"public_page": page, "handle": handle})
    assert r.status_code == 200, r.json
    return user


def clips(client, handle, **params):
    r = client.get(f"/api/public/channels/{handle}/clips", query_string=params)
    assert r.status_code == 200, r.data
    return r.json


def export(client, handle, fmt, **params):
    r = client.get(f"/api/public/channels/{handle}/export",
                   query_string={"format": fmt, **params})
    assert r.status_code == 200, r.data
    return r


def private_strings(app, users, clip_ids):
    """What must never be public: account ids, emails, tokens, clip ids, Nightbot's provider
    id and login name, the downloads folder."""
    found = [LOGIN, VIEWER_ID, app.config["DOWNLOADS_DIR"], *clip_ids]
    for user in users:
        found += [user["id"], user["email"], user["token"], user.get("public", user["token"])]
    return found


def assert_nothing_private(raw: str, secrets):
    for secret in secrets:
        assert secret not in raw, f"{secret!r} is in a public answer"


def test_only_public_fields_in_the_list_and_every_export(app, client, auth):
    streamer = owner(client, auth, "Night-Stream")  # stored lower-case
    first = clip(client, streamer["public"], "what a play", 3725)
    second = clip(client, streamer["public"], "nice", 300, headers=nightbot(name="Vee"))
    third = clip(client, streamer["public"], "mine", 42, headers={})  # the token's holder
    answer = clips(client, "night-stream")
    assert answer["handle"] == "night-stream" and answer["channel_id"] == CHANNEL_ID
    assert (answer["total"], answer["page"], answer["per_page"]) == (3, 1, 20)
    for shown in answer["clips"]:
        assert set(shown) == set(PUBLIC_FIELDS), shown
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", shown["created_at"])
    assert [{k: v for k, v in c.items() if k != "created_at"} for c in answer["clips"]] == [
        {"youtube_video_id": VIDEO_ID, "seconds": 42, "time": "0:00:42", "message": "mine",
         "user": None, "url": f"https://youtu.be/{VIDEO_ID}?t=42"},
        {"youtube_video_id": VIDEO_ID, "seconds": 300, "time": "0:05:00", "message": "nice",
         "user": "Vee", "url": f"https://youtu.be/{VIDEO_ID}?t=300"},
        {"youtube_video_id": VIDEO_ID, "seconds": 3725, "time": "1:02:05",
         "message": "what a play", "user": "Night Owl",
         "url": f"https://youtu.be/{VIDEO_ID}?t=3725"}]
    secrets = private_strings(app, [streamer], [first, second, third])
    raw = {"list": client.get("/api/public/channels/night-stream/clips").get_data(as_text=True)}
    for fmt in ("text", "csv", "json"):
        raw[fmt] = export(client, "night-stream", fmt).get_data(as_text=True)
    for body in raw.values():
        assert_nothing_private(body, secrets)
    for shown in json.loads(raw["json"])["clips"]:
        assert set(shown) == set(PUBLIC_FIELDS), shown
    # The clip in the store does keep what is private (the test would prove nothing else).
    stored = app.extensions["yt"]["db"].videos.find_one({"additional_message": "what a play"})
    assert stored["nightbot_user"]["providerId"] == VIEWER_ID
    assert str(stored["user_id"]) == streamer["id"]


def test_a_page_that_is_off_and_an_unknown_handle_are_the_same_404(app, client, auth):
    quiet = owner(client, auth, "quiet-one", page=False)
    clip(client, quiet["public"], "hidden moment", 10)
    answers = []
    for handle in ("quiet-one", "nobody-here", "QUIET-ONE", "x", "a" * 31, "bad%20name"):
        for path in ("clips", "export?format=csv"):
            r = client.get(f"/api/public/channels/{handle}/{path}")
            assert r.status_code == 404, (handle, path)
            answers.append(r.json)
        page = client.get(f"/c/{handle}")
        assert page.status_code == 404 and page.mimetype == "text/html"
        answers.append(page.get_data(as_text=True))
    assert answers[0] == {"error": "No public clip page with this name", "code": "NOT_FOUND"}
    assert all(answer == answers[i % 3] for i, answer in enumerate(answers))
    # Turned on, the same name answers; turned off again, it is gone again.
    client.put(f"/api/channels/{CHANNEL_ID}", headers=quiet["headers"],
               json={"public_page": True, "handle": "quiet-one"})
    assert [c["message"] for c in clips(client, "QUIET-ONE")["clips"]] == ["hidden moment"]
    assert client.get("/c/quiet-one").status_code == 200
    client.put(f"/api/channels/{CHANNEL_ID}", headers=quiet["headers"],
               json={"public_page": False, "handle": "quiet-one"})
    assert client.get("/api/public/channels/quiet-one/clips").json == answers[0]
    # On, but the owner's account disabled by an admin (item 6): gone as well.
    client.put(f"/api/channels/{CHANNEL_ID}", headers=quiet["headers"],
               json={"public_page": True, "handle": "quiet-one"})
    with app.app_context():
        roles.disable("admin-of-the-test", quiet["id"])
    r = client.get("/api/public/channels/quiet-one/clips")
    assert r.status_code == 404 and r.json == answers[0]
    with app.app_context():
        roles.enable(quiet["id"])
    assert client.get("/api/public/channels/quiet-one/clips").status_code == 200


def test_search_pages_and_stream_filter(client, auth):
    streamer = owner(client, auth, "searchable")
    token = streamer["public"]
    for n, message in enumerate(["The BUNNY wakes up", "a butterfly lands", "abc",
                                 "bunny again", "a.c (regex?) [x]"]):
        clip(client, token, message, 100 + n, video=STREAM_B if n == 3 else VIDEO_ID)

    def found(**params):
        return [c["message"] for c in clips(client, "searchable", **params)["clips"]]

    assert found(q="bunny") == ["bunny again", "The BUNNY wakes up"]  # case-insensitive
    assert found(q="BUNNY wakes") == ["The BUNNY wakes up"]  # every word
    assert found(q="a.c") == ["a.c (regex?) [x]"]  # literal: "." is no wildcard
    assert found(q="(regex?) [x]") == ["a.c (regex?) [x]"]
    assert found(q="Night Owl") == []  # the message only, not the user
    assert found(youtube_video_id=STREAM_B) == ["bunny again"]
    assert found(q="bunny", youtube_video_id=VIDEO_ID) == ["The BUNNY wakes up"]
    page2 = clips(client, "searchable", per_page=2, page=2)
    assert [c["message"] for c in page2["clips"]] == ["abc", "a butterfly lands"]
    assert (page2["total"], page2["page"], page2["per_page"]) == (5, 2, 2)
    assert clips(client, "searchable", per_page=2, page=4)["clips"] == []
    assert len(clips(client, "searchable", per_page=100)["clips"]) == 5
    for bad in ({"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": "x"},
                {"youtube_video_id": "short"}, {"q": "x" * 101}):
        r = client.get("/api/public/channels/searchable/clips", query_string=bad)
        assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR", bad
    r = client.get("/api/public/channels/searchable/export", query_string={"format": "xml"})
    assert r.status_code == 400 and "format" in r.json["details"]
    assert export(client, "searchable", "csv", q="butterfly").get_data(as_text=True).count(
        "\r\n") == 2  # the header and the one match


def test_only_this_owners_stream_clips_of_this_channel(app, client, auth):
    streamer = owner(client, auth, "the-owner")
    shown = clip(client, streamer["public"], "shown", 60)
    clip(client, streamer["public"], "other channel", 61,
         headers=nightbot(channel=OTHER_CHANNEL))
    auth.save_clip(streamer, f"https://www.youtube.com/watch?v={VIDEO_ID}")  # not from chat
    placing = client.get(f"/api/video/save/stream/{streamer['public']}/{VIDEO_ID}?format=json"
                         "&message=being+placed", headers=nightbot())  # no t: no moment yet
    assert placing.status_code == 201
    # A second owner clips the same channel with their own token (and settings, no page).
    rival = auth.user()
    rival_token = client.get("/api/auth/token/public", headers=rival["headers"]).json["token"]
    assert client.put(f"/api/channels/{CHANNEL_ID}", headers=rival["headers"],
                      json={"offset": 10}).status_code == 200
    rival_clip = clip(client, rival_token, "rival's clip", 62)
    answer = clips(client, "the-owner")
    assert [c["message"] for c in answer["clips"]] == ["shown"] and answer["total"] == 1
    for fmt in ("text", "csv", "json"):
        body = export(client, "the-owner", fmt).get_data(as_text=True)
        assert "rival" not in body and "other channel" not in body and "placed" not in body
        assert_nothing_private(body, private_strings(app, [streamer, rival],
                                                     [shown, rival_clip]))
    # A moderator's !clipdelete removes it: gone from the page and the exports.
    r = client.get(f"/api/chat/{streamer['public']}/delete?message={shown}",
                   headers=nightbot("moderator"))
    assert r.status_code == 200 and "deleted" in r.get_data(as_text=True)
    assert clips(client, "the-owner")["clips"] == []
    assert export(client, "the-owner", "text").get_data(as_text=True) == ""


def test_text_export_lines_by_stream_and_moment(client, auth):
    streamer = owner(client, auth, "timestamps")
    token = streamer["public"]
    clip(client, token, "second half", 3725)
    clip(client, token, "two\nlines\tand  spaces", 100)
    clip(client, token, "other stream", 50, video=STREAM_B)  # the newest clip: first
    clip(client, token, "", 7, video=STREAM_B)  # no message: the time alone
    r = export(client, "timestamps", "text")
    assert r.mimetype == "text/plain" and r.mimetype_params == {"charset": "utf-8"}
    assert r.headers["Content-Disposition"] == 'attachment; filename="clips-timestamps.txt"'
    assert r.get_data(as_text=True) == ("0:00:07\n0:00:50 other stream\n\n"
                                        "0:01:40 two lines and spaces\n1:02:05 second half\n")
    one = export(client, "timestamps", "text", youtube_video_id=VIDEO_ID)
    assert one.get_data(as_text=True) == "0:01:40 two lines and spaces\n1:02:05 second half\n"
    assert one.headers["Content-Disposition"] == \
        f'attachment; filename="clips-timestamps-{VIDEO_ID}.txt"'
    data = export(client, "timestamps", "json")
    assert data.mimetype == "application/json"
    assert data.headers["Content-Disposition"] == 'attachment; filename="clips-timestamps.json"'
    assert [c["seconds"] for c in data.json["clips"]] == [7, 50, 100, 3725]  # the text's order
    assert data.json["handle"] == "timestamps" and data.json["channel_id"] == CHANNEL_ID


def test_csv_cells_cannot_become_formulas(client, auth):
    streamer = owner(client, auth, "spreadsheet")
    token = streamer["public"]
    for n, message in enumerate(['=HYPERLINK("http://evil.example","x")', "@SUM(A1:A9)",
                                 "+1+1", "-x minus", "plain, with a comma"]):
        clip(client, token, message, 10 + n, headers=nightbot(name="=cmd|' /C calc'!A0"))
    r = export(client, "spreadsheet", "csv")
    assert r.mimetype == "text/csv" and r.mimetype_params == {"charset": "utf-8"}
    assert r.headers["Content-Disposition"] == 'attachment; filename="clips-spreadsheet.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["youtube_video_id", "time", "seconds", "message", "user", "url"]
    assert [row[3] for row in rows[1:]] == [
        '\'=HYPERLINK("http://evil.example","x")', "'@SUM(A1:A9)", "'+1+1", "'-x minus",
        "plain, with a comma"]
    assert {row[4] for row in rows[1:]} == {"'=cmd|' /C calc'!A0"}
    assert rows[1][:3] == [VIDEO_ID, "0:00:10", "10"]
    assert rows[1][5] == f"https://youtu.be/{VIDEO_ID}?t=10"
    for row in rows:  # no cell a spreadsheet would evaluate
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


def test_public_routes_are_rate_limited_per_ip(make_app, auth_factory):
    app = make_app(RATE_LIMIT_ENABLED=True, RATE_LIMIT_PUBLIC_PAGE="2/minute")
    client = app.test_client()
    owner(client, auth_factory(client), "limited")
    for path in ("clips", "export?format=json"):
        url = f"/api/public/channels/limited/{path}"
        assert [client.get(url).status_code for _ in range(2)] == [200, 200]
        r = client.get(url)
        assert r.status_code == 429 and r.json["code"] == "RATE_LIMITED"
        assert int(r.headers["Retry-After"]) > 0
        assert client.get(url, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code == 200


def test_the_page_is_one_static_file_with_the_dashboards_policy(client, auth):
    owner(client, auth, "static-page")
    r = client.get("/c/static-page")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    html = r.get_data(as_text=True)
    assert "static-page" not in html  # nothing of the channel is rendered into the HTML
    assert html == (ROOT / "src/web/static/public.html").read_text()
    assert '<script type="module" src="/ui/js/public.js">' in html
    script = client.get("/ui/js/public.js")
    assert script.status_code == 200 and "javascript" in script.mimetype
    assert script.headers["Content-Security-Policy"] == CSP
    assert client.get("/ui/public.css").status_code == 200
    source = script.get_data(as_text=True)  # text only: no HTML is ever parsed from data
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", source)
    assert "/c/{handle}" not in client.get("/openapi.json").json["paths"]


# --- in the browser -------------------------------------------------------------------------

def http(base, path, headers=None):
    """A GET from the test itself: (status, headers, text)."""
    req = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def served_owner(base, handle):
    """A registered owner on the served app, with a bound public token and the page on."""
    email = f"public-{time.time_ns() % 10**9}@example.com"
    assert api(base, "POST", "/api/auth/register", {"email": email,
                                                    "password": dashboard.PASSWORD})[0] == 201
    status, body = api(base, "POST", "/api/auth/login", {"email": email,
                                                         "password": dashboard.PASSWORD})
    assert status == 200
    user = {"id": body["user"]["id"], "email": email, "token": body["token"]}
    user["public"] = api(base, "GET", "/api/auth/token/public", token=user["token"])[1]["token"]
    status, body = api(base, "PUT", f"/api/channels/{CHANNEL_ID}",
                       {"public_page": True, "handle": handle}, token=user["token"])
    assert status == 200, body
    return user


@pytest.fixture
def browser(driver):
    driver.set_window_size(1280, 900)
    driver.get_log("browser")  # drop what earlier tests left
    return driver


def wait(drv, condition, timeout=20, message=""):
    """``condition()`` once it is true (re-read when the page replaced an element)."""
    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.1, ignored_exceptions=(
            StaleElementReferenceException,)).until(lambda _: condition())
    except TimeoutException:
        raise AssertionError(f"timed out: {message}") from None


def console_errors(drv, allowed=()):
    """SEVERE console entries, except network errors whose text has one of ``allowed``."""
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"
            and not (e["source"] == "network" and any(a in e["message"] for a in allowed))]


@needs_browser
def test_the_public_page_in_a_browser(browser, live_app):
    base, app = live_app
    streamer = served_owner(base, "browser-page")
    ids = []
    for t, message in ((300, "the bunny wakes up"), (420, "a butterfly lands"),
                       (3725, "apple falls")):
        status, _, body = http(base, save_path(streamer["public"], message, t), nightbot())
        assert status == 201, body
        ids.append(json.loads(body)["video_id"])
    browser.get(base + "/c/browser-page")
    items = "#public-list li.public-clip"
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, items)) == 3, 20,
         "three clips")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Clips of browser-page"
    first = browser.find_elements(By.CSS_SELECTOR, items)[0]
    assert "1:02:05" in first.text and "apple falls" in first.text
    assert "clipped by Night Owl" in first.text
    link = first.find_element(By.CSS_SELECTOR, "a.public-watch")
    assert link.text == "Watch at 1:02:05"
    assert link.get_attribute("href") == f"https://youtu.be/{VIDEO_ID}?t=3725"
    assert set(link.get_attribute("rel").split()) == {"noopener", "noreferrer"}

    box = browser.find_element(By.ID, "public-q")
    box.send_keys("BUTTERFLY")  # typing searches the messages
    wait(browser, lambda: [e.text for e in browser.find_elements(
        By.CSS_SELECTOR, f"{items} .message")] == ["a butterfly lands"], 10, "only the butterfly")
    assert "?q=BUTTERFLY" in browser.current_url

    secrets = private_strings(app, [streamer], ids)
    dom = browser.execute_script("return document.documentElement.outerHTML + "
                                 "document.body.innerText")
    assert_nothing_private(dom, secrets)
    exports = {}
    for fmt in ("text", "csv", "json"):  # the page's own export links, with its search
        href = browser.find_element(By.ID, f"public-export-{fmt}").get_attribute("href")
        assert href.startswith(f"{base}/api/public/channels/browser-page/export?")
        status, headers, text = http(base, href[len(base):])
        assert status == 200 and headers["Content-Disposition"].startswith("attachment")
        assert "butterfly" in text and "apple" not in text
        assert_nothing_private(text, secrets)
        exports[fmt] = text
    assert exports["text"] == "0:07:00 a butterfly lands\n"
    # Every control has a label; the headings are there.
    assert browser.execute_script("""
        return [...document.querySelectorAll('input, select')]
          .filter((el) => !(el.labels && el.labels.length)).map((el) => el.outerHTML)""") == []
    assert [h.text for h in browser.find_elements(By.TAG_NAME, "h2")] == ["Clips", "Export"]
    assert console_errors(browser) == []


@needs_browser
def test_a_missing_page_says_so_in_a_browser(browser, live_app):
    base, _ = live_app
    browser.get(base + "/c/nobody-home")
    status = browser.find_element(By.ID, "public-status")
    wait(browser, lambda: "no public clip page" in status.text, 10, "the not-found text")
    assert browser.find_element(By.TAG_NAME, "h1").text == "No such page"
    assert not browser.find_element(By.ID, "public-body").is_displayed()
    assert console_errors(browser, allowed=("404",)) == []
