"""Per-channel settings (issue 17, item 2): the API, its checks, and their effect on the stream
save from chat (the reply's template, who may clip, the delay and the follow-up)."""
from __future__ import annotations

import pytest
from bson import ObjectId

from tests.youtube_fakes import VIDEO_ID

CHANNEL_ID = "UC" + "c" * 22
CHANNEL = f"name=streamer&displayName=Streamer&provider=youtube&providerId={CHANNEL_ID}"


def _nightbot(level: str) -> dict:
    return {"Nightbot-User": f"name=viewer&displayName=Night%20Owl&provider=youtube"
                             f"&providerId=UCviewer&userLevel={level}",
            "Nightbot-Channel": CHANNEL,
            "Nightbot-Response-Url": "https://api.nightbot.tv/1/channel/send/abc"}


def _put(client, user, body, channel=CHANNEL_ID):
    return client.put(f"/api/channels/{channel}", headers=user["headers"], json=body)


def test_settings_are_the_owners_own_with_defaults_until_saved(client, auth):
    owner, other = auth.user(), auth.user()
    r = client.get(f"/api/channels/{CHANNEL_ID}", headers=owner["headers"])
    assert r.status_code == 200 and r.json == {
        "channel_id": CHANNEL_ID, "saved": False, "delay": None, "offset": 60.0,
        "duration": 120.0, "reply_template": None, "min_user_level": "everyone",
        "discord_webhook_url": None, "webhook_url": None, "webhook_secret": None,
        "public_page": False, "handle": None, "followup": True}
    hook = "https://discord.com/api/webhooks/123456/abc-DEF_1"
    r = _put(client, owner, {"delay": 8, "offset": 30, "reply_template": "{user}: {time}",
                             "min_user_level": "subscriber", "discord_webhook_url": hook})
    assert r.status_code == 200, r.json
    assert r.json["saved"] and r.json["delay"] == 8 and r.json["duration"] == 120
    assert client.get("/api/channels", headers=owner["headers"]).json["channels"] == [r.json]
    assert client.get(f"/api/channels/{CHANNEL_ID}", headers=other["headers"]).json["saved"] \
        is False
    assert client.get("/api/channels", headers=other["headers"]).json["channels"] == []
    assert client.get("/api/channels").status_code == 401
    # PUT replaces: what is left out returns to its default
    r = _put(client, owner, {"followup": False})
    assert r.json["delay"] is None and r.json["reply_template"] is None and not r.json["followup"]


@pytest.mark.parametrize("body, field", [
    ({"reply_template": "Clip {time} by {viewer}"}, "reply_template"),
    ({"reply_template": "Clip {time"}, "reply_template"),
    ({"reply_template": "{message!r}"}, "reply_template"),
    ({"reply_template": "{time:>30}"}, "reply_template"),
    ({"reply_template": "{user.__class__}"}, "reply_template"),
    ({"discord_webhook_url": "https://discord.com.evil.example/api/webhooks/1/x"},
     "discord_webhook_url"),
    ({"discord_webhook_url": "http://discord.com/api/webhooks/1/x"}, "discord_webhook_url"),
    ({"min_user_level": "admin"}, "min_user_level"),
    ({"duration": 0}, "duration"),
    ({"offset": -1}, "offset"),
    ({"webhook_url": "http://hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "https://user:pw@hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "file:///etc/passwd"}, "webhook_url"),
    ({"public_page": True}, "handle"),
    ({"handle": "a b"}, "handle"),
    ({"handle": "-dash"}, "handle"),
    ({"public_page": 1, "handle": "fine"}, "public_page"),
], ids=["placeholder", "brace", "conversion", "spec", "attribute", "host", "http", "level",
        "duration", "offset", "webhook-http", "webhook-userinfo", "webhook-file", "no-handle",
        "handle-space", "handle-dash", "page-not-bool"])
def test_bad_settings_are_400_naming_the_field(client, auth, body, field):
    user = auth.user()
    r = _put(client, user, body)
    assert r.status_code == 400 and field in r.json["details"], r.json
    assert client.get(f"/api/channels/{CHANNEL_ID}", headers=user["headers"]).json["saved"] \
        is False


def test_the_webhook_secret_is_made_once_kept_and_rotated(client, auth):
    user = auth.user()
    r = _put(client, user, {"webhook_url": "https://hooks.example.com/clips"})
    secret = r.json["webhook_secret"]
    assert r.status_code == 200 and len(secret) == 64
    assert _put(client, user, {"webhook_secret": "mine"}).status_code == 400  # server-made
    r = _put(client, user, {"webhook_url": "https://hooks.example.com/other"})
    assert r.json["webhook_secret"] == secret and r.json["webhook_url"].endswith("/other")
    r = client.post(f"/api/channels/{CHANNEL_ID}/webhook-secret", headers=user["headers"])
    assert r.status_code == 200 and r.json["webhook_secret"] not in (secret, None)
    fresh = "UC" + "f" * 22
    assert client.post(f"/api/channels/{fresh}/webhook-secret",
                       headers=user["headers"]).status_code == 404
    assert client.post(f"/api/channels/{CHANNEL_ID}/webhook-secret").status_code == 401


def test_a_public_page_name_belongs_to_one_channel(client, auth):
    owner, other = auth.user(), auth.user()
    r = _put(client, owner, {"public_page": True, "handle": "My_Channel"})
    assert r.status_code == 200 and r.json["handle"] == "my_channel" and r.json["public_page"]
    r = _put(client, other, {"handle": "my_channel"})
    assert r.status_code == 409 and r.json["code"] == "HANDLE_TAKEN"
    r = _put(client, owner, {"handle": "my_channel"}, channel="UC" + "b" * 22)
    assert r.status_code == 409  # the same owner's other channel neither
    assert _put(client, owner, {}).json["handle"] is None  # given up: free again
    assert _put(client, other, {"handle": "my_channel"}).status_code == 200


def test_a_duration_over_the_servers_limit_and_a_bad_channel_id_are_400(make_app, auth_factory):
    app = make_app(MAX_VIDEO_DURATION=600)
    client = app.test_client()
    user = auth_factory(client).user()
    assert _put(client, user, {"duration": 900}).json["details"] == {
        "duration": ["At most 600 s."]}
    assert _put(client, user, {}, channel="UCshort").status_code == 400
    assert client.get("/api/channels/not-a-channel", headers=user["headers"]).status_code == 400


def test_the_stream_save_uses_the_channels_settings(app, client, auth, bound):
    user, token = bound
    assert _put(client, user, {"reply_template": "{user} clipped {time}: {message} ({id})",
                               "min_user_level": "moderator", "delay": 12,
                               "followup": False}).status_code == 200
    url = f"/api/video/save/stream/{token}/{VIDEO_ID}?t=3725&message=what+a+play"
    r = client.get(url, headers=_nightbot("moderator"))
    assert r.status_code == 201 and r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    video_id = text.rsplit("(", 1)[1].rstrip(")")
    assert text == f"Night Owl clipped 1:02:05: what a play ({video_id})"
    doc = app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})
    assert doc["clip_delay"] == 12
    assert app.extensions["yt"]["redis"].get(f"followup:url:{video_id}") is None  # off
    # a viewer below the channel's minimum is refused, and nothing is stored
    r = client.get(url, headers=_nightbot("regular"))
    assert r.status_code == 403 and r.get_data(as_text=True) == (
        "Clip not saved: Only moderators and above may clip in this channel (CLIP_NOT_ALLOWED)")
    assert client.get("/api/video/list", headers=user["headers"]).json["videos"].__len__() == 1
    # the token's holder (no Nightbot headers) may always clip; an unknown level is everyone
    assert client.get(url + "&channel=" + CHANNEL_ID).status_code == 201
    assert client.get(url, headers={**_nightbot("moderator"), "Nightbot-User":
                                    "name=x&userLevel=superfan"}).status_code == 403


def test_without_settings_the_follow_up_is_kept_and_the_reply_is_the_built_in_one(
        app, client, bound):
    user, token = bound
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t=5", headers={
        **_nightbot("everyone"), "Nightbot-Response-Url": "https://api.nightbot.tv/1/channel/"
                                                          "send/tok"})
    assert r.status_code == 201 and r.get_data(as_text=True).startswith("Clip saved at 0:00:05")
    video_id = r.get_data(as_text=True).split("id ")[1]
    assert app.extensions["yt"]["redis"].get(f"followup:url:{video_id}") is not None


def test_the_channels_offset_and_duration_apply_unless_the_command_gives_them(app, client,
                                                                               bound):
    user, token = bound
    assert _put(client, user, {"offset": 30, "duration": 45}).status_code == 200
    base = f"/api/video/save/stream/{token}/{VIDEO_ID}?t=600&channel={CHANNEL_ID}&format=json"
    videos = app.extensions["yt"]["db"].videos
    by_channel = videos.find_one({"_id": ObjectId(client.get(base).json["video_id"])})
    assert (by_channel["start_time"], by_channel["end_time"]) == (570, 615)
    given = videos.find_one({"_id": ObjectId(client.get(base + "&offset=10&duration=20")
                                             .json["video_id"])})
    assert (given["start_time"], given["end_time"]) == (590, 610)
    other = videos.find_one({"_id": ObjectId(client.get(
        f"/api/video/save/stream/{token}/{VIDEO_ID}?t=600&format=json").json["video_id"])})
    assert (other["start_time"], other["end_time"]) == (540, 660)  # no channel: 60 / 120
