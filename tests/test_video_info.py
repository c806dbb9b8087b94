"""Video information (issue 18, item 3): ``GET /api/video/info`` and the clip status'
``video_info``.

YouTube-only fields (channel, dates, subtitles, audio languages, live, geo) come from
YouTube-shaped raw info dicts run through yt-dlp's own processing (tests/youtube_fakes.py); the
local sources are extracted by yt-dlp for real. Fresh and cached infos must answer the same:
media URLs that expire within ``INFO_CACHE_MARGIN_SECONDS`` are never stored, so an answer
about them is built from yt-dlp's fresh dict.
"""
from __future__ import annotations

import json
import time

import pytest
from yt_dlp.utils import GeoRestrictedError

from tests.youtube_fakes import (
    VIDEO_ID,
    as_download_error,
    stream_info,
    video_page,
    wait_for,
    watch_url,
)

#: 2026-01-02 03:04:05 UTC
STARTED = 1767323045
THUMB = f"https://i.ytimg.com/vi/{VIDEO_ID}/maxresdefault.jpg"


def rich_page(media_url: str) -> dict:
    """A YouTube-shaped VOD of 10 min: 1080p H.264 + 720p H.264 (22, combined), AAC audio in
    two languages, Opus audio, manual English/German subtitles and automatic captions."""
    page = video_page(media_url, duration=600)
    sub = [{"ext": "vtt", "url": "https://www.youtube.com/api/timedtext?v=x&lang=en&fmt=vtt"},
           {"ext": "srv3", "url": "https://www.youtube.com/api/timedtext?v=x&lang=en&fmt=srv3"}]
    page.update({
        "title": "A talk", "uploader": "Speaker", "uploader_id": "@speaker",
        "uploader_url": "https://www.youtube.com/@speaker", "channel": "Speaker",
        "channel_id": "UC" + "b" * 22,
        "channel_url": "https://www.youtube.com/channel/UC" + "b" * 22,
        "upload_date": "20260102", "timestamp": STARTED, "availability": "public",
        "description": "long text " * 50,
        "thumbnails": [{"url": f"https://i.ytimg.com/vi/{VIDEO_ID}/default.jpg", "preference": -1},
                       {"url": THUMB, "preference": 1}],
        "subtitles": {"en": sub, "de": [dict(sub[0])]},
        "automatic_captions": {"fr": [dict(sub[0])], "en": [dict(sub[1])],
                               "live_chat": [{"ext": "json", "url": "https://x/chat"}]},
    })
    page["formats"] += [
        {"format_id": "137", "ext": "mp4", "width": 1920, "height": 1080, "fps": 25,
         "vcodec": "avc1.640028", "acodec": "none", "protocol": "https", "tbr": 4000,
         "filesize": 300_000_000, "url": media_url + "&itag=137"},
        {"format_id": "140", "ext": "m4a", "vcodec": "none", "acodec": "mp4a.40.2",
         "protocol": "https", "tbr": 128, "filesize": 9_600_000, "language": "en",
         "url": media_url + "&itag=140"},
        {"format_id": "140-1", "ext": "m4a", "vcodec": "none", "acodec": "mp4a.40.2",
         "protocol": "https", "tbr": 128, "filesize": 9_600_000, "language": "de",
         "url": media_url + "&itag=140-1"},
        {"format_id": "251", "ext": "webm", "vcodec": "none", "acodec": "opus",
         "protocol": "https", "tbr": 130, "language": "en", "url": media_url + "&itag=251"}]
    return page


def _info(client, url, **environ):
    return client.get("/api/video/info", query_string={"url": url},
                      environ_base=environ)


def test_info_of_a_youtube_video_fresh_and_cached(make_app, fake_youtube, source_server):
    fake_youtube.set(watch_url(), rich_page(f"{source_server.mp4_url}?expire="
                                            f"{int(time.time()) + 6 * 3600}"))
    app = make_app()
    client = app.test_client()
    first = _info(client, watch_url())
    assert first.status_code == 200, first.json
    body = first.json
    assert {k: body[k] for k in ("video_id", "title", "uploader", "uploader_id", "channel",
                                 "channel_id", "duration", "duration_hms", "upload_date",
                                 "timestamp", "live_status", "thumbnail", "availability")} == {
        "video_id": VIDEO_ID, "title": "A talk", "uploader": "Speaker",
        "uploader_id": "@speaker", "channel": "Speaker", "channel_id": "UC" + "b" * 22,
        "duration": 600, "duration_hms": "0:10:00", "upload_date": "2026-01-02",
        "timestamp": "2026-01-02T03:04:05Z", "live_status": "not_live", "thumbnail": THUMB,
        "availability": "public"}
    assert body["channel_url"] == "https://www.youtube.com/channel/UC" + "b" * 22
    # default clip: mp4 at ≤1080p → 137 + the best m4a (yt-dlp's pick among 140/140-1)
    assert body["filesize"] == 309_600_000 and body["filesize_human"] == "309.6 MB"
    assert body["audio_languages"] == ["de", "en"]
    assert body["subtitles"] == [
        {"lang": "de", "automatic": False, "exts": ["vtt"]},
        {"lang": "en", "automatic": False, "exts": ["vtt", "srv3"]},
        {"lang": "en", "automatic": True, "exts": ["srv3"]},
        {"lang": "fr", "automatic": True, "exts": ["vtt"]}]
    assert body["has_subtitles"] is True
    assert (body["is_geo_restricted"], body["allowed_countries"],
            body["blocked_countries"]) == (None, None, None)
    # the cached entry keeps one thumbnail, the compact subtitle lists and per language only
    # the caption URL a clip would fetch (vtt before srv3)
    entry = app.extensions["yt"]["redis"].get(f"info:{VIDEO_ID}")
    assert entry and "long text" not in entry
    cached = json.loads(entry)["info"]
    assert cached["thumbnail"] == THUMB
    assert cached["subtitle_tracks"]["manual"]["en"]["url"].endswith("fmt=vtt")
    assert cached["subtitle_tracks"]["automatic"]["en"]["url"].endswith("fmt=srv3")
    assert "subtitles" not in cached and "automatic_captions" not in cached
    again = _info(client, watch_url())
    assert again.json == body and fake_youtube.extractions() == 1

    # URLs expiring within INFO_CACHE_MARGIN_SECONDS are never stored: the answer is built
    # from yt-dlp's fresh dict
    fake_youtube.set(watch_url(), rich_page(f"{source_server.mp4_url}?expire="
                                            f"{int(time.time()) + 60}"))
    fresh_app = make_app()
    fresh = _info(fresh_app.test_client(), watch_url())
    assert fresh.status_code == 200 and fresh.json == body
    assert fresh_app.extensions["yt"]["redis"].get(f"info:{VIDEO_ID}") is None
    assert fake_youtube.extractions() == 2


def test_live_stream_dates_and_status(app, client, fake_youtube):
    fake_youtube.set(watch_url(), stream_info("is_live", STARTED))
    r = _info(client, watch_url())
    assert r.status_code == 200, r.json
    assert r.json["live_status"] == "is_live"
    assert r.json["release_timestamp"] == "2026-01-02T03:04:05Z"
    assert r.json["duration"] is None and r.json["duration_hms"] is None
    assert r.json["subtitles"] == [] and r.json["has_subtitles"] is False


def test_geo_restricted_video_names_the_allowed_countries(client, fake_youtube):
    """yt-dlp's YouTube extractor raises GeoRestrictedError with the player's
    availableCountries (extractor/youtube/_video.py); the info has no geo field otherwise."""
    fake_youtube.set(watch_url(), as_download_error(GeoRestrictedError(
        "The uploader has not made this video available in your country", countries=["FR", "DE"])))
    r = _info(client, watch_url())
    assert r.status_code == 422, r.json
    assert r.json["code"] == "GEO_RESTRICTED"
    assert r.json["details"] == {"allowed_countries": ["DE", "FR"]}


def test_info_of_the_local_source(client, source_server):
    r = _info(client, source_server.mp4_url)
    assert r.status_code == 200, r.json
    assert r.json["video_id"] is None and r.json["url"] == source_server.mp4_url
    assert r.json["title"] == "long"
    assert r.json["subtitles"] == [] and r.json["audio_languages"] == []


def test_bad_urls_are_400(client):
    r = client.get("/api/video/info")
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert "url" in r.json["details"]
    r = _info(client, "https://example.org/watch?v=1")
    assert r.status_code == 400 and r.json["code"] == "INVALID_URL"


def test_status_of_a_clip_carries_the_same_video_info(client, auth, fake_youtube, source_server):
    fake_youtube.set(watch_url(), rich_page(f"{source_server.mp4_url}?expire="
                                            f"{int(time.time()) + 6 * 3600}"))
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), 300, 330)
    status = wait_for(lambda: (lambda s: s if s.get("video_info") else None)(
        client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json))
    public = _info(client, watch_url()).json
    assert status["video_info"] == {k: v for k, v in public.items()
                                    if k not in ("video_id", "url")}
    assert status["video_info"]["filesize_human"] == "309.6 MB"
    assert "googlevideo" not in json.dumps(status["video_info"])  # no media URL
    assert fake_youtube.extractions() == 1


@pytest.mark.slow
def test_info_is_rate_limited_per_ip_apart_from_resolutions(make_app):
    app = make_app(RATE_LIMIT_ENABLED=True, RATE_LIMIT_INFO="2/minute",
                   RATE_LIMIT_RESOLUTIONS="1000/minute")
    client = app.test_client()
    here, there = {"REMOTE_ADDR": "10.0.0.1"}, {"REMOTE_ADDR": "10.0.0.2"}
    assert [_info(client, "ftp://nowhere", **here).status_code for _ in range(2)] == [400, 400]
    r = _info(client, "ftp://nowhere", **here)
    assert r.status_code == 429 and r.json["code"] == "RATE_LIMITED"
    assert 0 < int(r.headers["Retry-After"]) <= 61
    assert _info(client, "ftp://nowhere", **there).status_code == 400
    r = client.post("/api/video/resolutions", environ_base=here, json={"url": "ftp://nowhere"})
    assert r.status_code == 400
