"""One extraction per video (issue 13, item 5; src/services/info_cache.py).

yt-dlp is faked at its boundary (tests/youtube_fakes.py: ``YoutubeDL.extract_info`` for the
watch URL runs yt-dlp's own processing on a YouTube-shaped info dict) and every call is
counted; the media are the real local sources, so clips are cut and checked with ffprobe.
"""
from __future__ import annotations

import hashlib
import json
import time

import pytest

from src.media.ffmpeg import ffprobe
from src.services import cookies_service, info_cache
from tests.media_fixtures import SOURCES_DIR
from tests.test_reextract import ExpiringCDN
from tests.youtube_fakes import VIDEO_ID, video_page, wait_for, watch_url


def _redis(app):
    return app.extensions["yt"]["redis"]


@pytest.mark.slow
def test_ten_clips_of_one_video_extract_once(make_app, auth_factory, fake_youtube,
                                             source_server, tmp_path):
    expire = int(time.time()) + 6 * 3600
    fake_youtube.set(watch_url(), video_page(f"{source_server.mp4_url}?expire={expire}"))
    fake_youtube.delay = 0.3  # an extraction takes a while: the others arrive meanwhile
    app = make_app(MAX_JOBS_PER_USER=0, MAX_CONCURRENT_JOBS=2)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    ids = [auth.save_clip(user, watch_url(), 30 + 10 * i, 32 + 10 * i) for i in range(10)]
    body = {"format_preference": "mp4", "resolution_preference": "720p"}
    for video_id in ids:   # each saved clip's format look-up runs meanwhile, in the background
        r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=body)
        assert r.status_code in (200, 202), r.json

    def statuses():
        found = [client.get(f"/api/video/status/{v}", headers=user["headers"]).json
                 for v in ids]
        return found if all(s["status"] in ("completed", "failed") for s in found) else None

    done = wait_for(statuses, timeout=240)
    assert [s["status"] for s in done] == ["completed"] * 10, done
    assert all(s["available_formats"] == ["720p"] for s in done)
    assert fake_youtube.extractions() == 1, fake_youtube.calls
    r = client.post(f"/api/video/download/{ids[3]}", headers=user["headers"], json=body)
    (tmp_path / "clip.mp4").write_bytes(r.data)
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 2) <= 1
    # the entry lives until the URLs' expire= minus the margin
    ttl = _redis(app).ttl(f"info:{VIDEO_ID}")
    margin = app.config["INFO_CACHE_MARGIN_SECONDS"]
    assert expire - margin - time.time() - 60 < ttl <= expire - margin - time.time() + 1


def test_a_refused_media_url_drops_the_entry_and_extracts_once_more(
        make_app, auth_factory, fake_youtube, local_sources, tmp_path):
    """The cached URLs are still within their ``expire=`` but the CDN refuses them (403): the
    job drops the entry, extracts once more and the clip completes."""
    cdn = ExpiringCDN(SOURCES_DIR)
    try:
        expire = int(time.time()) + 3 * 3600
        handed = []

        def page(ydl):  # the first extraction's URL is refused by the CDN (exp= in the past)
            exp = int(time.time()) + (3600 if handed else -60)
            handed.append(exp)
            return video_page(f"{cdn.base}/long.mp4?exp={exp}&expire={expire}")

        fake_youtube.set(watch_url(), page)
        app = make_app(DOWNLOAD_WAIT_SECONDS=120)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        video_id = auth.save_clip(user, watch_url(), 30, 34)
        wait_for(lambda: client.get(f"/api/video/status/{video_id}", headers=user["headers"])
                 .json["available_formats"])   # the save's look-up filled the cache
        assert fake_youtube.extractions() == 1
        r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                        json={"format_preference": "mp4", "resolution_preference": "720p"})
        assert r.status_code == 200 and r.mimetype == "video/mp4", r.json
        assert fake_youtube.extractions() == 2
        assert [code for exp, code in cdn.answers if exp == handed[0]] == [403]
        assert {code for exp, code in cdn.answers if exp == handed[1]} <= {200, 206}
        (tmp_path / "clip.mp4").write_bytes(r.data)
        assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 4) <= 1
        stored = json.loads(_redis(app).get(f"info:{VIDEO_ID}"))
        assert f"exp={handed[1]}" in stored["info"]["formats"][0]["url"]   # the fresh entry
    finally:
        cdn.stop()


def test_lifetime_follows_the_earliest_expire(app):
    now = 1_800_000_000.0
    margin = app.config["INFO_CACHE_MARGIN_SECONDS"]
    info = {"live_status": "not_live", "formats": [
        {"url": f"https://rr1---sn-x.googlevideo.com/videoplayback?expire={int(now) + 7200}&ei=1"},
        {"url": "https://rr2.googlevideo.com/videoplayback?id=1",
         "manifest_url": f"https://manifest.googlevideo.com/api/manifest/dash/expire/"
                         f"{int(now) + 5000}/ei/x/file/index.mpd"}]}
    with app.app_context():
        assert info_cache.expires_at(info) == int(now) + 5000
        assert info_cache.lifetime(info, now) == 5000 - margin
        assert info_cache.lifetime({"formats": [{"url": "http://127.0.0.1/a.mp4"}]}, now) == \
            app.config["INFO_CACHE_SECONDS"]
        live = {**info, "live_status": "is_live"}
        assert info_cache.lifetime(live, now) == app.config["LIVE_INFO_CACHE_SECONDS"]
        assert info_cache.lifetime({**info, "live_status": "is_upcoming", "formats": []}, now) \
            == app.config["LIVE_INFO_CACHE_SECONDS"]


def test_urls_close_to_their_expiry_are_not_kept(client, auth, fake_youtube, source_server,
                                                 app):
    """URLs that expire within the margin are never handed out from the cache."""
    soon = int(time.time()) + int(app.config["INFO_CACHE_MARGIN_SECONDS"]) - 30
    fake_youtube.set(watch_url(), video_page(f"{source_server.mp4_url}?expire={soon}"))
    headers = auth.user()["headers"]
    for _ in range(2):
        assert client.get(f"/api/video/formats/{VIDEO_ID}", headers=headers).status_code == 200
    assert fake_youtube.extractions() == 2 and _redis(app).get(f"info:{VIDEO_ID}") is None


def test_every_youtube_url_form_shares_the_entry(client, fake_youtube, source_server):
    fake_youtube.set(watch_url(), video_page(source_server.mp4_url))
    r = client.post("/api/video/resolutions", json={"url": watch_url()})
    assert r.status_code == 200 and r.json["resolutions"] == ["720p"]
    for url in (f"https://youtu.be/{VIDEO_ID}?t=90", f"https://m.youtube.com/watch?v={VIDEO_ID}",
                f"https://www.youtube.com/shorts/{VIDEO_ID}",
                f"https://music.youtube.com/watch?v={VIDEO_ID}&feature=share"):
        r = client.post("/api/video/resolutions", json={"url": url})
        assert r.status_code == 200 and r.json["video_id"] == VIDEO_ID, (url, r.json)
    assert fake_youtube.extractions() == 1


COOKIES = ("# Netscape HTTP Cookie File\n"
           ".youtube.com\tTRUE\t/\tTRUE\t2000000000\tSID\tmembers-session-secret\n")


def test_the_owners_cookies_get_their_own_entry(app, client, auth, fake_youtube, source_server,
                                                monkeypatch):
    member, other = auth.user(), auth.user()
    monkeypatch.setattr(cookies_service, "cookies_for",
                        lambda user_id: COOKIES if user_id == member["id"] else None)
    seen = []

    def page(ydl):  # what yt-dlp was given: the cookie file's content, or None
        path = ydl.params.get("cookiefile")
        seen.append(open(path, encoding="utf-8").read() if path else None)
        return video_page(source_server.mp4_url)

    fake_youtube.set(watch_url(), page)
    for user in (member, other, member, other):
        r = client.get(f"/api/video/formats/{VIDEO_ID}", headers=user["headers"])
        assert r.status_code == 200 and r.json["resolutions"] == ["720p"], r.json
    assert seen == [COOKIES, None]          # one extraction each, the member's with cookies
    suffix = hashlib.sha256(COOKIES.encode()).hexdigest()[:16]
    redis = _redis(app)
    assert set(redis.keys("info:*")) >= {f"info:{VIDEO_ID}", f"info:{VIDEO_ID}:{suffix}"}
    assert all("members-session-secret" not in (redis.get(key) or "")
               for key in redis.keys("info:*"))
    # the public look-up (no owner) shares the cookie-less entry
    assert client.post("/api/video/resolutions", json={"url": watch_url()}).status_code == 200
    assert len(seen) == 2


@pytest.mark.parametrize("value", [lambda: print, object(), (1, 2)])
def test_what_json_cannot_hold_is_left_out(value):
    info = {"id": VIDEO_ID, "__real_download": True, "subtitles": {"en": [{}]},
            "formats": [{"url": "u", "odd": value() if callable(value) else value,
                         "fragments": [{"path": "a"}]}]}
    stored = info_cache.storable(info)
    assert json.loads(json.dumps(stored)) == stored
    assert "subtitles" not in stored and "__real_download" not in stored
    assert stored["formats"][0]["fragments"] == [{"path": "a"}]


def test_stream_clips_of_one_stream_share_the_live_lookup(make_app, auth_factory, fake_youtube):
    """Five ``!clip``s of one live stream: one extraction places them all. (Recording them
    live fails — the playlist is on a dead port — and asks yt-dlp with ``live_from_start``
    for sequence-number formats: those extractions are counted apart.)"""
    from tests.youtube_fakes import stream_info
    page, from_start = stream_info("is_live", time.time() - 3600), []
    fake_youtube.set(watch_url(), lambda ydl: from_start.append(1) or page if ydl.params.get(
        "live_from_start") else page)
    fake_youtube.delay = 0.2
    app = make_app()
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    ids = [client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?offset=30").json["video_id"]
           for _ in range(5)]
    db = app.extensions["yt"]["db"]
    from bson import ObjectId
    wait_for(lambda: all(db.videos.find_one({"_id": ObjectId(v)})["live_phase"]
                         == "waiting_for_vod" for v in ids))
    assert fake_youtube.extractions() - len(from_start) == 1


def test_a_second_refusal_of_the_same_entry_drops_nothing_new(app, fake_youtube, source_server):
    """Two jobs that used one entry both meet a 403: the first drops it and extracts again;
    the second's drop leaves the fresh entry alone."""
    fake_youtube.set(watch_url(), lambda ydl: video_page(f"{source_server.mp4_url}?n="
                                                         f"{fake_youtube.extractions()}"))
    with app.app_context():
        first, second = info_cache.get_info(watch_url()), info_cache.get_info(watch_url())
        assert fake_youtube.extractions() == 1
        info_cache.drop(first)
        fresh = info_cache.get_info(watch_url())
        info_cache.drop(second)          # stale origin: the fresh entry stays
        assert info_cache.get_info(watch_url())["formats"][0]["url"] == \
            fresh["formats"][0]["url"]
    assert fake_youtube.extractions() == 2
