"""What YouTube does to servers, as a user of the API sees it (issue 13, item 6).

Each case is driven by the text yt-dlp 2026.10.26 really produces: YouTube's
``playabilityStatus`` reason as its extractor extends and raises it
(tests/youtube_fakes.py ``youtube_error``: the extractor's own ``raise_no_formats`` /
``raise_login_required``, its cookies hint, its rate-limit explanation), or for a missing
JavaScript runtime the warning yt-dlp reports (``_get_requested_clients``) before the
extraction fails. Checked through POST /api/video/resolutions (status,
code, Retry-After) and through a clip job (its failure on the status endpoint).
"""
from __future__ import annotations

import pytest
from yt_dlp.extractor.youtube.jsc._builtin.ejs import _EJS_WIKI_URL

from tests.youtube_fakes import VIDEO_ID, video_page, watch_url, youtube_error

#: The warning of extractor/youtube/_video.py when no JS runtime is available.
JS_WARNING = ("No supported JavaScript runtime could be found. Only deno is enabled by default; "
              "to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your command/config. "
              "YouTube extraction without a JS runtime has been deprecated, and some formats "
              f"may be missing. See  {_EJS_WIKI_URL}  for details on installing one")


def _no_runtime(ydl):
    """yt-dlp without a JS runtime: it warns, falls back to the clients that need none, and
    YouTube refuses those the video ("Video unavailable. This content isn’t available.")."""
    ydl.report_warning(JS_WARNING)
    raise youtube_error("Video unavailable. This content isn’t available.")


CASES = [
    ("bot", lambda: youtube_error("Sign in to confirm you’re not a bot. This helps protect our "
                                  "community. Learn more"), "BOT_CHECK", 500),
    ("captcha", lambda: youtube_error("Sign in to confirm you’re not a bot. YouTube is requiring "
                                      "a captcha challenge before playback"), "BOT_CHECK", 500),
    ("rate", lambda: youtube_error("This content isn't available, try again later."),
     "RATE_LIMITED", 429),
    ("members", lambda: youtube_error("Join this channel to get access to members-only content "
                                      "like this video, and other exclusive perks."),
     "MEMBERS_ONLY", 422),
    ("login", lambda: youtube_error("Login details are needed to download this content.",
                                    login=True), "LOGIN_REQUIRED", 422),
    ("premiere", lambda: youtube_error("Premieres in 2 hours"), "PREMIERE_NOT_STARTED", 422),
    ("js", lambda: _no_runtime, "JS_RUNTIME_MISSING", 500),
]


@pytest.fixture
def app_for_errors(make_app):
    return make_app(DOWNLOAD_WAIT_SECONDS=30, INFO_RATE_LIMIT_BACKOFF_SECONDS=0.01,
                    RATE_LIMITED_RETRY_AFTER_SECONDS=1200)


@pytest.mark.parametrize("name, page, code, status", CASES, ids=[c[0] for c in CASES])
def test_resolutions_answer_the_code(app_for_errors, fake_youtube, name, page, code, status):
    fake_youtube.set(watch_url(), page())
    r = app_for_errors.test_client().post("/api/video/resolutions", json={"url": watch_url()})
    assert (r.status_code, r.json["code"]) == (status, code), r.json
    message = r.json["error"]
    assert message and "--cookies" not in message and "yt-dlp" not in message
    assert VIDEO_ID not in message and "github.com" not in message
    if code == "RATE_LIMITED":
        assert r.headers["Retry-After"] == "1200"
        assert fake_youtube.extractions() == 3   # tried again twice with back-off, then 429
    else:
        assert "Retry-After" not in r.headers and fake_youtube.extractions() == 1
    if code == "BOT_CHECK":
        assert "upload cookies or set a PO token provider" in message


@pytest.mark.parametrize("name, page, code, status", CASES, ids=[c[0] for c in CASES])
def test_a_clip_job_fails_with_the_code(app_for_errors, auth_factory, fake_youtube, name, page,
                                        code, status):
    fake_youtube.set(watch_url(), page())
    client = app_for_errors.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), 10, 20)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert (r.status_code, r.json["code"]) == (status, code), r.json
    assert ("Retry-After" in r.headers) == (code == "RATE_LIMITED")
    shown = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert shown["status"] == "failed" and shown["error_code"] == code
    assert shown["error_message"] == r.json["error"] and "--cookies" not in shown["error_message"]


def test_rate_limiting_that_ends_within_the_retries_succeeds(app_for_errors, fake_youtube,
                                                             source_server):
    """Rate-limited twice, then YouTube answers: the look-up succeeds after the back-off."""
    answers = [youtube_error("This content isn't available, try again later.")] * 2

    def raise_or_page(ydl):
        if answers:
            raise answers.pop()
        return video_page(source_server.mp4_url)

    fake_youtube.set(watch_url(), raise_or_page)
    r = app_for_errors.test_client().post("/api/video/resolutions", json={"url": watch_url()})
    assert r.status_code == 200 and r.json["resolutions"] == ["720p"], r.json
    assert fake_youtube.extractions() == 3
