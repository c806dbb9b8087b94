"""Chat commands (issue 17, item 1): a Nightbot session — ``!clip -20 nice``, ``!clipedit``,
``!recent``, ``!clipsearch``, ``!clipdelete`` by a moderator and refused for a regular viewer —
plus channel scoping, ids, limits, the JSON answers and the errors as chat lines.

Requests are sent as Nightbot's ``$(urlfetch …)`` sends them: a GET whose ``message`` is the
command's ``$(querystring)`` (percent-encoded, so ``+`` is ``%2B``), with the ``Nightbot-User``
and ``Nightbot-Channel`` headers (URL-encoded query strings, docs.nightbot.tv).
"""
from __future__ import annotations

import os
import time
from urllib.parse import quote, urlencode

import pytest
from bson import ObjectId

from src.middleware import rate_limits
from src.services.stream_service import split_shift
from tests.youtube_fakes import VIDEO_ID, stream_info, video_page, wait_for, watch_url

CHANNEL_ID = "UC" + "c" * 22
OTHER_CHANNEL = "UC" + "d" * 22


def nightbot(level: str, channel: str = CHANNEL_ID, name: str = "Night Owl") -> dict:
    user = urlencode({"name": name.lower().replace(" ", "_"), "displayName": name,
                      "provider": "youtube", "providerId": "UC" + "u" * 22, "userLevel": level})
    return {"Nightbot-User": user, "Nightbot-Channel": urlencode({
        "name": "streamer", "displayName": "Streamer", "provider": "youtube",
        "providerId": channel})}


MOD, VIEWER, OWNER = nightbot("moderator"), nightbot("regular", name="Vee"), nightbot("owner")


def _text(r, status=200):
    assert r.status_code == status, r.data
    assert r.mimetype == "text/plain"
    body = r.get_data(as_text=True)
    assert 0 < len(body) < 400 and "\n" not in body
    return body


def clip(client, token, querystring, t, headers=MOD):
    """``!clip $(querystring)`` while the stream is at ``t`` seconds."""
    return client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t={t}&message="
                      + quote(querystring, safe=""), headers=headers)


def chat(client, token, command, querystring="", headers=MOD, **params):
    url = f"/api/chat/{token}/{command}?message=" + quote(querystring, safe="")
    return client.get(url + "".join(f"&{k}={v}" for k, v in params.items()), headers=headers)


def _videos(app):
    return app.extensions["yt"]["db"].videos


def test_nightbot_session(app, client, bound, fake_youtube, source_server):
    user, token = bound
    fake_youtube.set(watch_url(), video_page(f"{source_server.mp4_url}?expire="
                                             f"{int(time.time()) + 6 * 3600}"))
    first = _text(clip(client, token, "-20 nice", t=300), 201)
    nice = _videos(app).find_one({"additional_message": "nice"})
    assert first == f"Clip saved at 0:04:40, id {nice['_id']}: nice"
    assert (nice["start_time"], nice["end_time"]) == (220, 340)  # default offset 60, duration 120
    second = _text(clip(client, token, "+2 what a play", t=3725), 201)
    play = _videos(app).find_one({"_id": ObjectId(second.split("id ")[1].split(":")[0])})
    assert second.startswith("Clip saved at 1:02:07,") and second.endswith(": what a play")
    assert play["additional_message"] == "what a play"

    edited = _text(chat(client, token, "edit", "better"))
    assert edited == f"Clip at 1:02:07, id {play['_id']}, now says: better"
    assert _videos(app).find_one({"_id": play["_id"]})["additional_message"] == "better"

    assert _text(chat(client, token, "recent", headers=VIEWER)) == \
        "Last 2 clips: 1:02:07 better | 0:04:40 nice"
    assert _text(chat(client, token, "search", "NICE", headers=VIEWER)) == \
        "Clips matching 'NICE': 0:04:40 nice"

    refused = _text(chat(client, token, "delete", headers=VIEWER))
    assert refused == "Sorry Vee, only the channel owner and moderators can delete clips."
    assert _videos(app).count_documents({}) == 2

    # The clip named by id has a finished file: !clipdelete removes the record and the file.
    nice_id = str(nice["_id"])
    _videos(app).update_one({"_id": nice["_id"]}, {"$set": {"start_time": 1, "end_time": 3}})
    done = client.post(f"/api/video/download/{nice_id}", headers=user["headers"],
                       json={"format_preference": "mp4", "resolution_preference": "720p"})
    deadline = time.monotonic() + 60
    while done.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        done = client.post(f"/api/video/download/{nice_id}", headers=user["headers"], json={})
    assert done.status_code == 200 and done.data[4:8] == b"ftyp"
    path = _videos(app).find_one({"_id": nice["_id"]})["file_path"]
    assert os.path.isfile(path)
    deleted = _text(chat(client, token, "delete", nice_id))
    assert deleted == f"Clip at 0:04:40, id {nice_id}, deleted: nice"
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    assert client.get(f"/api/video/status/{nice_id}", headers=user["headers"]).status_code == 404

    newest = _text(chat(client, token, "delete", headers=OWNER))  # no id: the newest clip
    assert newest == f"Clip at 1:02:07, id {play['_id']}, deleted: better"
    assert client.get("/api/video/list", headers=user["headers"]).json["videos"] == []
    assert _text(chat(client, token, "recent", "5")) == "No clips saved in this channel yet."


def test_edit_by_id_and_channel_scope(app, client, bound):
    _, token = bound
    _text(clip(client, token, "first", t=10), 201)
    older = _videos(app).find_one({"additional_message": "first"})["_id"]
    _text(clip(client, token, "second", t=20), 201)
    _text(clip(client, token, "elsewhere", t=30, headers=nightbot("moderator", OTHER_CHANNEL)),
          201)
    assert _text(chat(client, token, "edit", f"{older} fixed typo")).endswith(
        f"id {older}, now says: fixed typo")
    assert _text(chat(client, token, "recent")) == \
        "Last 2 clips: 0:00:20 second | 0:00:10 fixed typo"
    other = nightbot("owner", OTHER_CHANNEL)
    assert _text(chat(client, token, "recent", headers=other)) == "Last 1 clip: 0:00:30 elsewhere"
    assert _text(chat(client, token, "search", "second", headers=other)) == \
        "No clip matches 'second'."
    body = _text(chat(client, token, "edit", f"{older} hijack", headers=other), 404)
    assert body == f"Clip command failed: No clip {older} in this channel (NOT_FOUND)"
    assert _videos(app).find_one({"_id": older})["additional_message"] == "fixed typo"
    # ?channel= names the channel without Nightbot's headers (JSON then).
    r = chat(client, token, "recent", headers={}, channel=OTHER_CHANNEL)
    assert r.is_json and [c["message"] for c in r.json["clips"]] == ["elsewhere"]


def test_refusals_change_nothing(app, client, bound):
    _, token = bound
    _text(clip(client, token, "keep me", t=5), 201)
    for level in ("regular", "subscriber", "everyone", "twitch_vip"):
        body = _text(chat(client, token, "edit", "spam", headers=nightbot(level, name="Bo")))
        assert body == "Sorry Bo, only the channel owner and moderators can edit clips."
    r = chat(client, token, "delete", headers=nightbot("everyone"), format="json")
    assert r.status_code == 200 and r.json == {
        "message": "Sorry Night Owl, only the channel owner and moderators can delete clips.",
        "done": False, "clips": []}
    assert [d["additional_message"] for d in _videos(app).find()] == ["keep me"]


def test_json_answers_and_usage_hints(app, client, bound):
    _, token = bound
    _text(clip(client, token, "-5", t=3), 201)  # only a shift: no message
    doc = _videos(app).find_one()
    assert doc["additional_message"] is None and doc["start_time"] == 0
    r = client.post(f"/api/chat/{token}/recent")
    assert r.status_code == 200 and r.json == {
        "message": "Last 1 clip: 0:00:00 (no message)", "done": True, "clips": [{
            "video_id": str(doc["_id"]), "position": 0.0, "time": "0:00:00", "message": None,
            "status": "pending", "youtube_video_id": VIDEO_ID}]}
    assert _text(chat(client, token, "edit", str(doc["_id"]))) == \
        "Give the new message: !clipedit [id] new message"
    assert _text(chat(client, token, "search", "  ")) == \
        "Give words to search for: !clipsearch words"
    assert chat(client, token, "edit", "x", format="text", headers={}).mimetype == "text/plain"


def test_search_is_literal_and_case_insensitive(app, client, bound):
    _, token = bound
    for n, text in enumerate(("GG (again)", "gg wp", "a+b", "nothing here")):
        _text(clip(client, token, text, t=60 * (n + 1)), 201)
    assert _text(chat(client, token, "search", "gg")) == \
        "Clips matching 'gg': 0:02:00 gg wp | 0:01:00 GG (again)"
    assert _text(chat(client, token, "search", "(again) gg")) == \
        "Clips matching '(again) gg': 0:01:00 GG (again)"
    assert _text(chat(client, token, "search", "a+b")) == "Clips matching 'a+b': 0:03:00 a+b"
    assert _text(chat(client, token, "search", ".*")) == "No clip matches '.*'."
    assert _text(chat(client, token, "search", "[")) == "No clip matches '['."


def test_recent_caps_at_five_under_400_characters(app, client, bound):
    _, token = bound
    for n in range(7):
        _text(clip(client, token, f"clip{n} " + "long words " * 40, t=100 + n), 201)
    body = _text(chat(client, token, "recent", "9"))
    assert body.startswith("Last 5 clips: 0:01:46 clip6 long")
    assert body.count(" | ") == 4 and "clip1" not in body
    found = _text(chat(client, token, "search", "long"))
    assert found.endswith(" | …") and found.count(" | ") == 5


def test_errors_are_chat_lines(app, client, auth, bound):
    _, token = bound
    assert _text(chat(client, token, "delete"), 404) == \
        "Clip command failed: No clip saved in this channel yet (NOT_FOUND)"
    assert _text(chat(client, token, "recent")) == "No clips saved in this channel yet."
    assert _text(chat(client, "not-a-token", "recent"), 401).endswith("(INVALID_TOKEN)")
    assert _text(chat(client, token, "recent", channel="UCshort"), 400).endswith(
        "(VALIDATION_ERROR)")
    app.config["ALLOW_ANONYMOUS_PUBLIC_TOKENS"] = True
    anon = client.get("/api/auth/token/public").json["token"]
    assert _text(chat(client, anon, "recent"), 403).endswith("(TOKEN_NOT_BOUND)")
    r = chat(client, anon, "edit", "x", headers={})
    assert r.status_code == 403 and r.json["code"] == "TOKEN_NOT_BOUND"


def test_shift_word():
    assert split_shift("-20 nice") == (-20.0, "nice")
    assert split_shift("  +15   what a play ") == (15.0, "what a play")
    assert split_shift("+5") == (5.0, None)
    assert split_shift("-12345 nice") == (0.0, "-12345 nice")  # over 4 digits: a message
    assert split_shift("-20nice") == (0.0, "-20nice")
    assert split_shift("nice -20") == (0.0, "nice -20")
    assert split_shift(None) == (0.0, None)


def test_shift_moves_the_moment_of_a_clip_placed_later(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("was_live", time.time() - 3600))
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?message=-30%20late&delay=0",
                   headers=MOD)
    assert _text(r, 201).endswith(": late")
    placed = wait_for(lambda: _videos(app).find_one({"start_time": {"$ne": None}}))
    assert placed["additional_message"] == "late"
    moment = placed["start_time"] + 60  # default offset
    assert 3600 - 30 - 3 < moment <= 3600 - 30 + 1
    assert _text(chat(client, token, "recent")) == \
        f"Last 1 clip: 0:59:{int(moment) - 3540:02d} late"


@pytest.mark.parametrize("command", ["edit", "delete", "recent", "search"])
def test_rate_limited_like_the_stream_save(make_app, auth_factory, monkeypatch, command):
    # The lead's patch to src/middleware/rate_limits.py (notes/chat.md) adds these rules.
    monkeypatch.setitem(rate_limits.LIMITS, f"chat.{command}", [
        ("RATE_LIMIT_STREAM_SAVE_TOKEN", "path_token"), ("RATE_LIMIT_STREAM_SAVE_IP", "ip")])
    app = make_app(RATE_LIMIT_ENABLED=True, RATE_LIMIT_STREAM_SAVE_TOKEN="2/minute")
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    assert 429 not in [chat(client, token, command, "x").status_code for _ in range(2)]
    limited = chat(client, token, command, "x")
    assert _text(limited, 429).endswith("(RATE_LIMITED)")
    assert int(limited.headers["Retry-After"]) > 0
    # The stream save keeps its own bucket.
    assert client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t=1").status_code == 201
