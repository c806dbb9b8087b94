"""Nightbot replies: short text/plain answers for chat, success and every error, user stored."""
from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from bson import ObjectId

from tests.youtube_fakes import VIDEO_ID, stream_info, wait_for, watch_url

USER = ("name=night_owl&displayName=Night%20Owl&provider=youtube&providerId=UCowl"
        "&userLevel=moderator")
CHANNEL = "name=streamer&displayName=Streamer&provider=youtube&providerId=UC" + "c" * 22
NIGHTBOT = {"Nightbot-User": USER, "Nightbot-Channel": CHANNEL}


def _text(r, status):
    assert r.status_code == status, r.data
    assert r.mimetype == "text/plain"
    body = r.get_data(as_text=True)
    assert 0 < len(body) < 400 and "\n" not in body
    return body


def test_nightbot_success_reply_and_stored_identity(app, client, bound):
    user, token = bound
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t=3725&message=what+a+play",
                   headers=NIGHTBOT)
    body = _text(r, 201)
    doc = app.extensions["yt"]["db"].videos.find_one()
    assert body == f"Clip saved at 1:02:05, id {doc['_id']}: what a play"
    assert doc["nightbot_user"] == {"name": "night_owl", "displayName": "Night Owl",
                                    "provider": "youtube", "providerId": "UCowl",
                                    "userLevel": "moderator"}
    assert doc["nightbot_channel"]["providerId"] == "UC" + "c" * 22
    assert str(doc["user_id"]) == user["id"]
    listed = client.get("/api/video/list", headers=user["headers"]).json["videos"][0]
    assert listed["nightbot_user"]["displayName"] == "Night Owl"


def test_reply_shows_the_time_once_the_stream_start_is_known(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("is_live", time.time() - 3600))
    first = _text(client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}", headers=NIGHTBOT), 201)
    assert "being placed" in first
    wait_for(lambda: app.extensions["yt"]["db"].videos.find_one()["live_phase"]
             == "waiting_for_vod")
    second = _text(client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?delay=0",
                              headers=NIGHTBOT), 201)
    assert second.startswith("Clip saved at 0:59:") or second.startswith("Clip saved at 1:00:0")


def test_format_switches(client, bound):
    _, token = bound
    url = f"/api/video/save/stream/{token}/{VIDEO_ID}?t=5"
    assert _text(client.get(url + "&format=text"), 201).startswith("Clip saved at 0:00:05")
    r = client.get(url + "&format=json", headers=NIGHTBOT)
    assert r.status_code == 201 and r.is_json and r.json["youtube_video_id"] == VIDEO_ID


def test_long_message_is_cut_under_400(client, bound):
    _, token = bound
    body = _text(client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t=1&message="
                            + quote("word " * 99), headers=NIGHTBOT), 201)
    assert body.endswith("…")


@pytest.mark.parametrize("path, status, code", [
    ("not-a-token/{vid}", 401, "INVALID_TOKEN"),
    ("{token}/short", 400, "INVALID_URL"),
    ("{token}/{vid}?duration=0", 400, "VALIDATION_ERROR"),
    ("{token}/{vid}?user_id={other}", 403, "TOKEN_USER_MISMATCH"),
    ("{anon}/{vid}", 400, "VALIDATION_ERROR"),                  # anonymous token needs user_id
    ("{anon}/{vid}?user_id=000000000000000000000000", 400, "VALIDATION_ERROR"),
])
def test_nightbot_error_replies(app, client, auth, bound, path, status, code):
    _, token = bound
    other = auth.user()["id"]
    app.config["ALLOW_ANONYMOUS_PUBLIC_TOKENS"] = True   # for the {anon} cases (off by default)
    anon = client.get("/api/auth/token/public").json["token"]
    url = "/api/video/save/stream/" + path.format(token=token, vid=VIDEO_ID, other=other, anon=anon)
    body = _text(client.get(url, headers=NIGHTBOT), status)
    assert body.startswith("Clip not saved: ") and body.endswith(f"({code})")


def test_revoked_and_rate_limited_replies(make_app, auth_factory):
    app = make_app(RATE_LIMIT_ENABLED=True, RATE_LIMIT_STREAM_SAVE_TOKEN="1/minute")
    client = app.test_client()
    user = auth_factory(client).user()
    issued = client.get("/api/auth/token/public", headers=user["headers"]).json
    url = f"/api/video/save/stream/{issued['token']}/{VIDEO_ID}?t=1"
    _text(client.get(url, headers=NIGHTBOT), 201)
    limited = client.get(url, headers=NIGHTBOT)
    assert _text(limited, 429).endswith("(RATE_LIMITED)")
    assert int(limited.headers["Retry-After"]) > 0
    client.delete(f"/api/auth/tokens/public/{issued['jti']}", headers=user["headers"])
    app.config["RATE_LIMIT_STREAM_SAVE_TOKEN"] = "100/minute"
    assert _text(client.get(url, headers=NIGHTBOT), 401).endswith("(TOKEN_REVOKED)")


def test_pending_clip_cap(make_app, auth_factory):
    app = make_app(MAX_PENDING_CLIPS_PER_USER=2)
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    url = f"/api/video/save/stream/{token}/{VIDEO_ID}?t=1"
    assert [client.get(url).status_code for _ in range(2)] == [201, 201]
    r = client.get(url)
    assert r.status_code == 429 and r.json["code"] == "PENDING_CLIPS_LIMIT"
    assert _text(client.get(url, headers=NIGHTBOT), 429).endswith("(PENDING_CLIPS_LIMIT)")
    app.extensions["yt"]["db"].videos.update_one({"user_id": ObjectId(user["id"])},
                                                 {"$set": {"status": "completed"}})
    assert client.get(url).status_code == 201
