"""A thumbnail of the clip's moment beside its finished file (issue 17, item 4): one frame,
JPEG, at most 360 px high; for a clip saved from chat or live, the frame of the moment (its
offset into the clip), checked against the time the live source burns into its frames."""
from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from scripts.live_source import LiveHLS, read_clock
from src.media.ffmpeg import ffprobe
from src.services import cleanup_service


def _doc(app, video_id):
    return app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})


def test_a_finished_clip_has_a_thumbnail_and_an_audio_clip_none(app, client, auth,
                                                                source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 14)
    assert auth.download(user, video_id).status_code == 200
    doc = _doc(app, video_id)
    probe = ffprobe(doc["thumbnail_path"])
    [stream] = probe["streams"]
    assert stream["codec_name"] == "mjpeg" and stream["height"] == 360
    assert doc["thumbnail_path"].rsplit("/", 1)[0] == doc["file_path"].rsplit("/", 1)[0]
    r = auth.download(user, video_id, body={"format_preference": "m4a"})
    assert r.status_code == 200
    assert _doc(app, video_id)["thumbnail_path"] is None


def test_the_clip_list_shows_title_channel_and_a_cacheable_thumbnail(app, client, auth,
                                                                    source_server):
    """The list names the video's title and channel and links the thumbnail by a signed URL
    an <img> can load: the same URL on the next refresh (so the browser's cache answers), a
    JPEG kept privately for at most the URL's life; a forged or reused signature is refused."""
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 14)
    assert auth.download(user, video_id).status_code == 200
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "video_info": {"title": "Speedrun finale", "channel": "Some Channel"}}})
    [item] = client.get("/api/video/list", headers=user["headers"]).json["videos"]
    assert (item["title"], item["channel"]) == ("Speedrun finale", "Some Channel")
    url = item["thumbnail_url"]
    assert client.get("/api/video/list", headers=user["headers"]).json["videos"][0][
        "thumbnail_url"] == url
    r = client.get(url)  # no token: the signature is the proof
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    cache, age = r.headers["Cache-Control"].split(", max-age=")
    assert cache == "private" and 3600 <= int(age) <= 7200
    query = url.split("?", 1)[1]
    assert client.get(f"/api/video/play/{video_id}/file?{query}").json["code"] == \
        "INVALID_SIGNATURE"  # a thumbnail's signature does not open the clip
    forged = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert client.get(forged).json["code"] == "INVALID_SIGNATURE"
    r = auth.download(user, video_id, body={"format_preference": "m4a"})
    [item] = client.get("/api/video/list", headers=user["headers"]).json["videos"]
    assert item["thumbnail_url"] is None and client.get(url).status_code == 404


def test_the_thumbnail_lives_and_expires_with_its_clip(app, auth, source_server):
    """The orphan sweep keeps a finished clip's thumbnail (the record names it); the expiry
    deletes it with the file."""
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 14)
    assert auth.download(user, video_id).status_code == 200
    doc = _doc(app, video_id)
    picture = doc["thumbnail_path"]
    with app.app_context():
        assert cleanup_service.sweep_orphans(time.time() + 10 * 86400) == []
        assert os.path.exists(picture) and os.path.exists(doc["file_path"])
        removed = cleanup_service.expire_due(datetime.now(timezone.utc) + timedelta(days=30))
    assert sorted(removed) == sorted([doc["file_path"], picture])
    assert not os.path.exists(picture)
    after = _doc(app, video_id)
    assert after["status"] == "expired" and after["thumbnail_path"] is None


@pytest.mark.slow
def test_a_live_clips_thumbnail_shows_its_moment(make_app, auth_factory, tmp_path):
    with LiveHLS(tmp_path / "live", clock=True) as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        time.sleep(3)
        r = client.post("/api/video/save/live", headers=auth.public_headers(user),
                        json={"url": stream.url, "offset": 3, "duration": 5})
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        deadline = time.time() + 40
        while _doc(app, video_id)["status"] != "completed" and time.time() < deadline:
            time.sleep(0.3)
        doc = _doc(app, video_id)
        assert doc["status"] == "completed", doc.get("error_message")
        first = read_clock(doc["file_path"])
        moment = read_clock(doc["thumbnail_path"])
        assert abs(moment - first - 3) <= 0.25, (first, moment)
