"""Saving clips (POST /api/video/save, GET|POST /api/video/save/stream/...), status and list.

Clips are saved with public tokens bound to their user; the cases about an anonymous token's
``user_id`` use an app that issues them (``ALLOW_ANONYMOUS_PUBLIC_TOKENS=True``, off by default).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def _save(client, headers, **body):
    return client.post("/api/video/save", json=body, headers=headers)


@pytest.fixture
def anonymous(make_app, auth_factory):
    """A client of an app that issues anonymous public tokens (the spec's behaviour), + Auth."""
    client = make_app(ALLOW_ANONYMOUS_PUBLIC_TOKENS=True).test_client()
    return client, auth_factory(client)


def test_save_then_status_and_list(client, auth, app):
    user = auth.user()
    r = _save(client, auth.public_headers(user), url=YT, start_time=60, end_time=120,
              user_id=user["id"], additional_message="Great moment!", clip_offset=30)
    assert r.status_code == 201
    assert r.json["message"] == "Video info saved successfully"
    video_id = r.json["video_id"]

    doc = app.extensions["yt"]["db"].videos.find_one()
    assert str(doc["_id"]) == video_id and str(doc["user_id"]) == user["id"]
    assert doc["youtube_video_id"] == "dQw4w9WgXcQ" and doc["status"] == "pending"
    assert doc["additional_message"] == "Great moment!" and doc["clip_offset"] == 30

    r = client.get(f"/api/video/status/{video_id}", headers=user["headers"])
    assert r.status_code == 200
    body = r.json
    assert body["video_id"] == video_id and body["status"] == "pending"
    assert body["url"] == YT and body["start_time"] == 60 and body["end_time"] == 120
    assert body["file_available"] is False and body["progress"] is None
    assert isinstance(body["available_formats"], list)
    assert body["created_at"].endswith("Z")
    datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))

    r = client.get("/api/video/list", headers=user["headers"])
    assert r.status_code == 200
    assert [v["video_id"] for v in r.json["videos"]] == [video_id]
    assert r.json["videos"][0]["status"] == "pending"
    assert r.json["videos"][0]["file_available"] is False


@pytest.mark.parametrize("url, youtube_id", [
    ("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "dQw4w9WgXcQ"),
    ("https://youtube.com/shorts/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://m.youtube.com/live/dQw4w9WgXcQ?feature=share", "dQw4w9WgXcQ"),
    ("https://www.youtube.com/embed/dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("https://youtu.be/dQw4w9WgXcQ?t=10", "dQw4w9WgXcQ"),
    ("http://music.youtube.com/watch?v=dQw4w9WgXcQ", "dQw4w9WgXcQ"),
    ("http://127.0.0.1:8000/video.mp4", None),
])
@pytest.mark.slow
def test_save_accepts_url_forms(client, auth, app, url, youtube_id):
    user = auth.user()
    r = _save(client, auth.public_headers(user), url=url, start_time=0, end_time=10,
              user_id=user["id"])
    assert r.status_code == 201, r.json
    doc = app.extensions["yt"]["db"].videos.find_one()
    assert doc["youtube_video_id"] == youtube_id


@pytest.mark.parametrize("url", [
    "ftp://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "https://youtube.com.evil.com/watch?v=dQw4w9WgXcQ",
    "https://evilyoutube.com/watch?v=dQw4w9WgXcQ",
    "https://www.youtube.com@evil.com/watch?v=dQw4w9WgXcQ",
    "https://user:pw@www.youtube.com/watch?v=dQw4w9WgXcQ",
    "https://www.youtube.com/watch?v=short",
    "https://www.youtube.com/feed/trending",
    "https://www.youtube.com:99999/watch?v=dQw4w9WgXcQ",
    "http://localhost:8000/video.mp4",
    "not a url",
    "",
])
@pytest.mark.slow
def test_save_rejects_bad_urls(client, auth, url):
    user = auth.user()
    r = _save(client, auth.public_headers(user), url=url, start_time=0, end_time=10,
              user_id=user["id"])
    assert r.status_code == 400, url
    assert r.json["code"] in ("INVALID_URL", "VALIDATION_ERROR") and r.json["error"]


@pytest.mark.parametrize("change, field", [
    ({"start_time": -1}, "start_time"),
    ({"end_time": 60}, "end_time"),            # end == start
    ({"end_time": 30}, "end_time"),            # end < start
    ({"end_time": 60 + 3601}, "end_time"),     # longer than MAX_VIDEO_DURATION
    ({"start_time": "60"}, "start_time"),      # numbers must be numbers
    ({"end_time": True}, "end_time"),
    ({"start_time": None}, "start_time"),
    ({"clip_offset": "x"}, "clip_offset"),
])
@pytest.mark.slow
def test_save_validation(client, auth, change, field):
    user = auth.user()
    body = {"url": YT, "start_time": 60, "end_time": 120, "user_id": user["id"], **change}
    r = _save(client, auth.public_headers(user), **body)
    assert r.status_code == 400, (change, r.json)
    assert field in r.json["details"], r.json


@pytest.mark.parametrize("user_id", ["000000000000000000000000", "not-an-id"])
def test_an_anonymous_token_needs_an_existing_user(anonymous, user_id):
    client, auth = anonymous
    body = {"url": YT, "start_time": 60, "end_time": 120, "user_id": user_id}
    r = _save(client, auth.public_headers(), **body)
    assert r.status_code == 400 and "user_id" in r.json["details"], r.json


def test_save_missing_fields_and_token(client, auth):
    user = auth.user()
    r = _save(client, auth.public_headers(user))
    assert r.status_code == 400 and {"url", "start_time", "end_time"} == set(r.json["details"])
    assert _save(client, {}, url=YT, start_time=0, end_time=5, user_id=user["id"]
                 ).status_code == 401


def test_a_bound_token_saves_without_user_id(client, auth):
    """A bound public token names its owner: ``user_id`` may be left out (and another user's
    is refused, tests/security/test_held.py)."""
    user = auth.user()
    r = _save(client, auth.public_headers(user), url=YT, start_time=10, end_time=20)
    assert r.status_code == 201, r.json
    listed = client.get("/api/video/list", headers=user["headers"]).json["videos"]
    assert [v["video_id"] for v in listed] == [r.json["video_id"]]


def test_an_anonymous_token_still_needs_user_id(anonymous):
    client, _auth = anonymous
    token = client.get("/api/auth/token/public").json["token"]
    r = _save(client, {"Authorization": f"Bearer {token}"}, url=YT, start_time=10, end_time=20)
    assert r.status_code == 400 and "user_id" in r.json["details"], r.json


def test_stream_save_get_and_post(client, auth, app):
    user = auth.user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    before = datetime.now(timezone.utc) - timedelta(milliseconds=1)  # MongoDB keeps ms
    r = client.get(f"/api/video/save/stream/{token}/dQw4w9WgXcQ?user_id={user['id']}"
                   "&message=what+a+play&offset=30&duration=90")
    assert r.status_code == 201, r.json
    assert r.json == {"message": "Video clip saved successfully", "video_id": r.json["video_id"],
                      "youtube_video_id": "dQw4w9WgXcQ"}
    doc = app.extensions["yt"]["db"].videos.find_one()
    assert doc["url"] == YT and doc["additional_message"] == "what a play"
    assert doc["clip_offset"] == 30 and doc["clip_duration"] == 90
    moment = doc["clip_moment_at"].replace(tzinfo=timezone.utc)
    assert before <= moment <= datetime.now(timezone.utc)
    assert doc["start_time"] is None  # placed from the stream start when downloaded

    r = client.post(f"/api/video/save/stream/{token}/dQw4w9WgXcQ?user_id={user['id']}&t=100")
    assert r.status_code == 201
    doc = app.extensions["yt"]["db"].videos.find_one({"_id": {"$ne": doc["_id"]}})
    assert (doc["start_time"], doc["end_time"]) == (40, 160)   # defaults: offset 60, duration 120
    r = client.post(f"/api/video/save/stream/{token}/dQw4w9WgXcQ?user_id={user['id']}&t=10")
    doc = app.extensions["yt"]["db"].videos.find_one({"_id": _oid(r.json["video_id"])})
    assert (doc["start_time"], doc["end_time"]) == (0, 120)


def _oid(value):
    from bson import ObjectId
    return ObjectId(value)


@pytest.mark.parametrize("path, status", [
    ("{token}/dQw4w9WgXcQ", 400),                          # user_id missing
    ("{token}/dQw4w9WgXcQ?user_id=000000000000000000000000", 400),
    ("{token}/short?user_id={uid}", 400),                   # not an 11-char id
    ("{token}/dQw4w9WgXcQ?user_id={uid}&offset=abc", 400),
    ("{token}/dQw4w9WgXcQ?user_id={uid}&duration=0", 400),
    ("{token}/dQw4w9WgXcQ?user_id={uid}&duration=99999", 400),
    ("{token}/dQw4w9WgXcQ?user_id={uid}&t=-5", 400),
    ("not-a-token/dQw4w9WgXcQ?user_id={uid}", 401),
    ("{private}/dQw4w9WgXcQ?user_id={uid}", 401),
])
def test_stream_save_errors(anonymous, path, status):
    client, auth = anonymous
    user = auth.user()
    token = client.get("/api/auth/token/public").json["token"]    # anonymous: user_id needed
    url = "/api/video/save/stream/" + path.format(token=token, uid=user["id"],
                                                  private=user["token"])
    r = client.get(url)
    assert r.status_code == status, (path, r.json)
    assert r.json["code"] and r.json["error"]


def test_foreign_unknown_and_malformed_ids(client, auth):
    owner, other = auth.user(), auth.user()
    video_id = _save(client, auth.public_headers(owner), url=YT, start_time=0, end_time=5,
                     user_id=owner["id"]).json["video_id"]
    for method, path in (("get", "/api/video/status/{}"), ("post", "/api/video/download/{}"),
                         ("get", "/api/video/formats/{}")):
        r = getattr(client, method)(path.format(video_id), headers=other["headers"])
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN", path
        r = getattr(client, method)(path.format("0" * 24), headers=owner["headers"])
        assert r.status_code == 404, path
        r = getattr(client, method)(path.format("zz-not-an-id"), headers=owner["headers"])
        assert r.status_code in (400, 404), path
    assert client.get("/api/video/list", headers=other["headers"]).json == {"videos": []}
    assert client.get(f"/api/video/status/{video_id}").status_code == 401
