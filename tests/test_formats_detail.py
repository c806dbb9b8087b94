"""Labelled formats (issue 18, item 4): ``GET /api/video/formats/{id}?detail=true`` and a
download that names its ``format_id``.

The DASH ladder of the local source (720p/480p H.264 + AAC, separate streams) is extracted by
yt-dlp for real and cut for real (checked with ffprobe); codecs YouTube has and the local
source has not (VP9, AV1, Opus, HDR, HLS) come from a YouTube-shaped info dict run through
yt-dlp's own processing (tests/youtube_fakes.py).
"""
from __future__ import annotations

import time

from src.media.ffmpeg import ffprobe
from tests.youtube_fakes import VIDEO_ID, video_page, wait_for, watch_url


def youtube_page(media_url: str) -> dict:
    page = video_page(media_url, duration=600)
    page["formats"] += [
        {"format_id": "248", "ext": "webm", "width": 1920, "height": 1080, "fps": 30,
         "vcodec": "vp9", "acodec": "none", "protocol": "https", "tbr": 2000,
         "filesize": 150_000_000, "url": media_url + "&itag=248"},
        {"format_id": "701", "ext": "mp4", "width": 3840, "height": 2160, "fps": 60,
         "vcodec": "av01.0.13M.10.0.110.09.16.09.0", "acodec": "none", "protocol": "https",
         "dynamic_range": "HDR10", "tbr": 20000, "filesize_approx": 1_500_000_000,
         "url": media_url + "&itag=701"},
        {"format_id": "251", "ext": "webm", "vcodec": "none", "acodec": "opus",
         "protocol": "https", "tbr": 130, "filesize": 9_750_000, "url": media_url + "&itag=251"},
        {"format_id": "96", "ext": "mp4", "width": 1920, "height": 1080, "fps": 30,
         "vcodec": "avc1.640028", "acodec": "mp4a.40.2", "protocol": "m3u8_native",
         "tbr": 4500, "url": "https://manifest.googlevideo.com/api/96/index.m3u8"}]
    return page


def _details(body: dict) -> dict:
    return {d["format_id"]: d for d in body["details"]}


def test_detail_of_a_youtube_id_labels_every_format(client, auth, fake_youtube, source_server):
    fake_youtube.set(watch_url(), youtube_page(f"{source_server.mp4_url}?expire="
                                               f"{int(time.time()) + 6 * 3600}"))
    user = auth.user()
    compact = client.get(f"/api/video/formats/{VIDEO_ID}", headers=user["headers"])
    assert compact.status_code == 200, compact.json
    assert set(compact.json) == {"video_id", "resolutions", "extensions", "formats",
                                 "audio_formats", "subtitles"}
    r = client.get(f"/api/video/formats/{VIDEO_ID}?detail=true", headers=user["headers"])
    assert r.status_code == 200, r.json
    assert {k: v for k, v in r.json.items() if k != "details"} == compact.json
    found = _details(r.json)
    assert set(found) == {"22", "248", "701", "251", "96"}
    assert found["248"] == {
        "format_id": "248", "ext": "webm", "resolution": "1920x1080", "height": 1080, "fps": 30,
        "vcodec": "VP9", "acodec": "none", "vcodec_raw": "vp9", "acodec_raw": "none",
        "tbr": 2000, "filesize": 150_000_000, "filesize_approx": None, "protocol": "https",
        "dynamic_range": "SDR", "hdr": False}
    assert (found["701"]["vcodec"], found["701"]["hdr"], found["701"]["dynamic_range"],
            found["701"]["filesize_approx"]) == ("AV1", True, "HDR10", 1_500_000_000)
    assert (found["251"]["resolution"], found["251"]["acodec"], found["251"]["height"],
            found["251"]["vcodec"]) == ("audio only", "Opus", None, "none")
    assert (found["22"]["vcodec"], found["22"]["acodec"]) == ("H.264", "AAC")
    assert found["96"]["protocol"] == "hls"
    r = client.get(f"/api/video/formats/{VIDEO_ID}?detail=false", headers=user["headers"])
    assert r.json == compact.json
    r = client.get(f"/api/video/formats/{VIDEO_ID}?detail=maybe", headers=user["headers"])
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"


def test_detail_of_a_clip_scales_sizes_to_its_duration(client, auth, fake_youtube,
                                                        source_server):
    fake_youtube.set(watch_url(), youtube_page(f"{source_server.mp4_url}?expire="
                                               f"{int(time.time()) + 6 * 3600}"))
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), 300, 330)  # 30 s of 600 s: 1/20
    r = client.get(f"/api/video/formats/{video_id}?detail=true", headers=user["headers"])
    assert r.status_code == 200, r.json
    found = _details(r.json)
    assert found["248"]["filesize"] == 7_500_000
    assert found["701"]["filesize_approx"] == 75_000_000
    assert found["251"]["filesize"] == 487_500


def test_detail_of_the_dash_ladder(client, auth, source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 300, 330)
    r = client.get(f"/api/video/formats/{video_id}?detail=true", headers=user["headers"])
    assert r.status_code == 200, r.json
    found = _details(r.json)
    assert set(found) == {"audio-aac", "video-480p", "video-720p"}
    assert {k: found["video-720p"][k] for k in ("resolution", "height", "vcodec", "vcodec_raw",
                                                "acodec", "protocol", "hdr")} == {
        "resolution": "1280x720", "height": 720, "vcodec": "H.264", "vcodec_raw": "avc1.64001f",
        "acodec": "none", "protocol": "dash", "hdr": False}
    assert (found["audio-aac"]["resolution"], found["audio-aac"]["acodec"]) == \
        ("audio only", "AAC")


def _streams(path) -> dict:
    return {s["codec_type"]: s for s in ffprobe(str(path))["streams"]}


def test_download_by_format_id_uses_exactly_those_formats(client, auth, clean_source_server,
                                                         tmp_path):
    server = clean_source_server
    user = auth.user()
    video_id = auth.save_clip(user, server.dash_url, 300, 310)
    body = {"format_id": "video-480p+audio-aac"}
    r = auth.download(user, video_id, body=body)
    assert r.status_code == 200, r.json
    (tmp_path / "a.mp4").write_bytes(r.data)
    streams = _streams(tmp_path / "a.mp4")
    assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("h264", 480)
    assert streams["audio"]["codec_name"] == "aac"
    assert server.bytes_served("dash/video_720p.mp4") == 0  # only the named streams are read
    assert server.bytes_served("dash/video_480p.mp4") > 0
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["format_id"] == "video-480p+audio-aac"
    first_file = client.application.extensions["yt"]["db"].videos.find_one()["file_path"]

    server.reset_counters()  # the same body again: the same file, nothing fetched
    r = auth.download(user, video_id, body=body)
    assert r.status_code == 200 and server.bytes_served() == 0
    assert client.application.extensions["yt"]["db"].videos.find_one()["file_path"] == first_file

    r = auth.download(user, video_id, body={"format_preference": "mp4",  # the format logic
                                           "resolution_preference": "720p"})
    assert r.status_code == 200, r.json
    (tmp_path / "b.mp4").write_bytes(r.data)
    assert _streams(tmp_path / "b.mp4")["video"]["height"] == 720
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["format_id"] is None


def test_download_by_a_single_combined_format_id(client, auth, fake_youtube, source_server,
                                                 tmp_path):
    fake_youtube.set(watch_url(), youtube_page(f"{source_server.mp4_url}?expire="
                                               f"{int(time.time()) + 6 * 3600}"))
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), 300, 306)
    r = auth.download(user, video_id, body={"format_id": "22"})
    assert r.status_code == 200, r.json
    (tmp_path / "c.mp4").write_bytes(r.data)
    streams = _streams(tmp_path / "c.mp4")
    assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("h264", 720)
    assert streams["audio"]["codec_name"] == "aac"


def test_unknown_or_unusable_format_ids_are_400(client, auth, source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 300, 310)
    for format_id, words in (("137", "'137' is not offered"),
                             ("audio-aac", "has no video"),
                             ("video-480p+video-720p", "not audio only")):
        r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                        json={"format_id": format_id})
        assert r.status_code == 400, r.json
        assert r.json["code"] == "FORMAT_ID_UNAVAILABLE" and words in r.json["error"], r.json
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_id": "a+b+c"})
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    status = wait_for(lambda: client.get(f"/api/video/status/{video_id}",
                                         headers=user["headers"]).json)
    assert status["status"] == "pending" and status["format_id"] is None
