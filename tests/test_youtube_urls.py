"""YouTube URLs people paste (issue 13, item 9), through POST /api/video/save.

``youtube.com/clip/{id}``: yt-dlp's YoutubeClipIE (faked at its boundary with the result its
``_real_extract`` returns: a ``url_transparent`` to the video with ``section_start``/``_end``;
yt-dlp's own processing merges it with the video's info) — the clip is saved as the video's
clip with that section, from one extraction at save time that the download then reuses.
``/live/``, ``/shorts/``, ``m.``/``music.`` hosts and ``youtu.be/{id}?t=90`` name the video
directly; the spec requires ``start_time``, so ``t`` does not replace it in the API.
"""
from __future__ import annotations

import pytest

from src.media.ffmpeg import ffprobe
from tests.youtube_fakes import VIDEO_ID, clip_page, video_page, wait_for, watch_url

CLIP_ID = "UgkxU2HSeGL_NvmDJ-nQJrlLwllwMDBdGZFs"
CLIP_URL = f"https://www.youtube.com/clip/{CLIP_ID}"


def _save(client, auth, user, url, start=0, end=1):
    return client.post("/api/video/save", headers=auth.public_headers(user), json={
        "url": url, "start_time": start, "end_time": end, "user_id": user["id"]})


def _status(client, user, video_id):
    return client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json


@pytest.mark.parametrize("pasted", [CLIP_URL, f"https://m.youtube.com/clip/{CLIP_ID}?si=abc",
                                    f"https://youtube.com/clip/{CLIP_ID}/"])
def test_a_youtube_clip_is_saved_with_its_section(make_app, auth_factory, fake_youtube,
                                                  source_server, tmp_path, pasted):
    fake_youtube.set(CLIP_URL, clip_page(CLIP_ID, VIDEO_ID, 29000, 35700))
    fake_youtube.set(watch_url(), video_page(source_server.mp4_url))
    app = make_app(DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    r = _save(client, auth, user, pasted)
    assert r.status_code == 201, r.json
    shown = _status(client, user, r.json["video_id"])
    assert (shown["youtube_video_id"], shown["url"]) == (VIDEO_ID, watch_url())
    assert (shown["start_time"], shown["end_time"]) == (29.0, 35.7)
    wait_for(lambda: _status(client, user, r.json["video_id"])["available_formats"])
    d = client.post(f"/api/video/download/{r.json['video_id']}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert d.status_code == 200 and d.mimetype == "video/mp4", d.json
    (tmp_path / "clip.mp4").write_bytes(d.data)
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 6.7) <= 1
    # one extraction at save time (the clip page, then its video, as yt-dlp does), one of the
    # video for its format look-up, which the download reused
    assert (fake_youtube.extractions(CLIP_URL), fake_youtube.extractions(watch_url())) == (1, 2)
    again = _save(client, auth, user, pasted)   # the same clip again: read from the cache
    assert again.status_code == 201 and fake_youtube.extractions(CLIP_URL) == 1


def test_a_clip_page_on_a_host_not_allowed_is_refused(make_app, auth_factory, fake_youtube):
    app = make_app(ALLOWED_SOURCE_HOSTS="www.youtube.com,youtu.be")
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    r = _save(client, auth, user, f"https://m.youtube.com/clip/{CLIP_ID}")
    assert r.status_code == 400 and r.json["code"] == "INVALID_URL", r.json
    assert fake_youtube.calls == []


def test_a_clip_longer_than_allowed_is_refused(make_app, auth_factory, fake_youtube,
                                              source_server):
    fake_youtube.set(CLIP_URL, clip_page(CLIP_ID, VIDEO_ID, 10000, 70000))
    fake_youtube.set(watch_url(), video_page(source_server.mp4_url))
    app = make_app(MAX_VIDEO_DURATION=30)
    client = app.test_client()
    auth = auth_factory(client)
    r = _save(client, auth, auth.user(), CLIP_URL)
    assert r.status_code == 400 and r.json["details"]["end_time"], r.json


def test_a_clip_that_cannot_be_read_answers_its_media_error(client, auth, fake_youtube):
    from tests.youtube_fakes import youtube_error
    fake_youtube.set(CLIP_URL, youtube_error("Video unavailable"))
    r = _save(client, auth, auth.user(), CLIP_URL)
    assert r.status_code == 422 and r.json["code"] == "VIDEO_UNAVAILABLE", r.json


@pytest.mark.parametrize("pasted", [
    f"https://www.youtube.com/live/{VIDEO_ID}?si=x", f"https://www.youtube.com/shorts/{VIDEO_ID}",
    f"https://m.youtube.com/watch?v={VIDEO_ID}&t=12s", f"https://music.youtube.com/watch?v={VIDEO_ID}",
    f"https://youtu.be/{VIDEO_ID}?t=90", f"https://youtube.com/shorts/{VIDEO_ID}?feature=share"])
def test_pasted_forms_name_the_video(client, auth, fake_youtube, pasted):
    user = auth.user()
    r = _save(client, auth, user, pasted, 40, 50)
    assert r.status_code == 201, r.json
    shown = _status(client, user, r.json["video_id"])
    assert shown["youtube_video_id"] == VIDEO_ID
    assert (shown["start_time"], shown["end_time"]) == (40, 50)   # t= never overrides the body
