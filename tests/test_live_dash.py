"""Clip a live DASH source while it is live (issue 14: a ``type="dynamic"`` MPD other than
YouTube's), through the API, against live DASH that plain ffmpeg's dash muxer writes in real
time (scripts/live_dash.py: ``$Number$`` with ``@duration``, or a ``SegmentTimeline`` with
``$Time$`` names), served as written; the first frame's burnt-in clock
(scripts/live_source.py ``read_clock``) shows where the clip starts in the stream."""
from __future__ import annotations

import time
from datetime import datetime

import pytest

from scripts.live_dash import LiveDASH
from scripts.live_source import read_clock
from scripts.local_source import SourceServer
from src.media import livempd
from src.media.errors import MediaError
from src.media.ffmpeg import ffprobe
from src.services import info_cache
from tests.youtube_fakes import VIDEO_ID, stream_info, wait_for, watch_url

SEGMENT = 2  # LiveDASH's -seg_duration
CHANNEL = "name=streamer&displayName=Streamer&provider=youtube&providerId=UC" + "c" * 22
NIGHTBOT = {"Nightbot-User": "name=viewer&displayName=Viewer&provider=youtube"
                             "&providerId=UCviewer&userLevel=everyone",
            "Nightbot-Channel": CHANNEL}


def _save(client, auth, user, body):
    return client.post("/api/video/save/live", headers=auth.public_headers(user), json=body)


def _status(client, user, video_id) -> dict:
    return client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _finished(client, user, video_id, timeout: float) -> tuple:
    """Poll until the clip is completed or failed: ``(status, phases seen, seconds_to_come
    values seen)``."""
    phases, to_come, deadline = set(), [], time.time() + timeout
    status = _status(client, user, video_id)
    while status["status"] in ("pending", "processing") and time.time() < deadline:
        progress = status.get("progress") or {}
        phases.add(progress.get("current_phase"))
        if progress.get("current_phase") == "recording":
            to_come.append(progress["seconds_to_come"])
        time.sleep(0.2)
        status = _status(client, user, video_id)
    return status, phases, to_come


@pytest.mark.slow
@pytest.mark.parametrize("timeline", [False, True], ids=["number-template", "time-timeline"])
def test_a_live_dash_clip_records_the_window(make_app, auth_factory, tmp_path, timeline):
    with LiveDASH(tmp_path / "live", timeline=timeline, time_names=timeline,
                  clock=True) as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        time.sleep(3)  # some past to clip
        r = _save(client, auth, user, {"url": stream.url, "offset": 4, "duration": 6})
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        window = _status(client, user, video_id)["live_window"]
        t0, t1 = _seconds(window["start_at"]), _seconds(window["end_at"])
        status, phases, to_come = _finished(client, user, video_id, t1 - time.time() + 30)
        assert status["status"] == "completed", status
        assert time.time() - t1 <= SEGMENT + 15
        assert "recording" in phases and to_come and to_come[0] > 0
        served = stream.server.bytes_served()
        began = stream.available_from()
    r = auth.download(user, video_id)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(r.data)
    probe = ffprobe(str(clip))
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert abs(float(probe["format"]["duration"]) - 6) <= 0.5
    # the first frame is the window's start in the stream's own clock, ±1 segment
    assert abs(read_clock(clip) - (t0 - began)) <= SEGMENT
    # only the window's segments (+ the parts of the first/last outside it) were fetched,
    # each once: bytes ≈ the clip's, with 2 segments of slack per stream and the manifests
    assert served <= len(r.data) * (6 + 2 * SEGMENT) / 6 + 200_000, (served, len(r.data))


@pytest.mark.slow
def test_a_dynamic_mpd_that_yt_dlp_does_not_call_live_is_live(make_app, auth_factory,
                                                              tmp_path):
    """The MPD embedded in a page's ``<video>``: yt-dlp's generic extractor lists its DASH
    formats without ``live_status``; the manifest's ``type="dynamic"`` makes the source live.
    Once the stream ended (ffmpeg rewrote the MPD static) the same page is NOT_LIVE."""
    with LiveDASH(tmp_path / "live") as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        with app.app_context():
            info = info_cache.get_info(stream.page_url, user_id=str(user["id"]))
        assert info.get("live_status") != "is_live" and not info.get("is_live")
        assert any(f.get("protocol") == "http_dash_segments" for f in info["formats"])
        time.sleep(2)
        r = _save(client, auth, user, {"url": stream.page_url, "offset": 2, "duration": 4})
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        status, _, _ = _finished(client, user, video_id, 40)
        assert status["status"] == "completed", status
        stream.end()
        r = _save(client, auth, user, {"url": stream.page_url, "offset": 2, "duration": 4})
        assert r.status_code == 400 and r.json["code"] == "NOT_LIVE", r.json
    r = auth.download(user, video_id)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    (tmp_path / "clip.mp4").write_bytes(r.data)
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 4) <= 0.5


@pytest.mark.slow
def test_a_window_out_of_the_time_shift_buffer_is_missed(make_app, auth_factory, tmp_path):
    """3 segments of 2 s are kept (``timeShiftBufferDepth`` 6 s, older files deleted): a
    window of the stream that started 12 s ago fails at once with LIVE_WINDOW_MISSED."""
    with LiveDASH(tmp_path / "live", window_size=3) as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        time.sleep(max(0.0, stream.available_from() + 16 - time.time()))
        r = _save(client, auth, user, {"url": stream.url, "offset": 12, "duration": 4})
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        status = wait_for(lambda: (v := _status(client, user, video_id))["status"] in (
            "completed", "failed") and v, timeout=10)
        served = stream.server.bytes_served()
    assert status["status"] == "failed" and status["error_code"] == "LIVE_WINDOW_MISSED", status
    assert served < 100_000  # manifests only: no segment was fetched
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={})
    assert r.status_code == 409 and r.json["code"] == "LIVE_WINDOW_MISSED", r.json


@pytest.mark.slow
def test_a_stream_that_ends_inside_the_window_gives_what_exists(make_app, auth_factory,
                                                                tmp_path):
    """ffmpeg stops 4 s into a 12 s window and rewrites the MPD ``static``: the clip is
    completed soon after with the part that was produced, not stalled or failed."""
    with LiveDASH(tmp_path / "live") as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        time.sleep(2)
        r = _save(client, auth, user, {"url": stream.url, "offset": 2, "duration": 12})
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        time.sleep(4)
        stream.end()
        ended = time.time()
        status, _, _ = _finished(client, user, video_id, 30)
        assert status["status"] == "completed", status
        assert time.time() - ended <= 3 * SEGMENT + 5
    r = auth.download(user, video_id)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    (tmp_path / "clip.mp4").write_bytes(r.data)
    duration = float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"])
    assert 4 <= duration <= 9, duration  # 2 s of past + what came before the end


_HOSTILE = """<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011"
  type="dynamic" minimumUpdatePeriod="PT2S" availabilityStartTime="{ast}"
  timeShiftBufferDepth="PT12.0S" maxSegmentDuration="PT2.0S" minBufferTime="PT4.0S">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video" startWithSAP="1" segmentAlignment="true">
   <Representation id="0" mimeType="video/mp4" codecs="avc1.42c015" bandwidth="1500000"
     width="426" height="240">
    <SegmentTemplate timescale="{timescale}" duration="{duration}" startNumber="1"
      initialization="init-$RepresentationID$.m4s"
      media="chunk-$RepresentationID$-$Number%05d$.m4s"/>
   </Representation>
  </AdaptationSet>
 </Period>
 <!-- {padding} -->
</MPD>
"""


@pytest.mark.parametrize("shape", ["huge", "far-future-start", "ancient-start",
                                   "tiny-segments"])
def test_a_hostile_live_mpd_fails_with_a_code(make_app, auth_factory, tmp_path, shape):
    """Manifests a stranger writes: larger than the server reads (9 MB), an
    availabilityStartTime in the year 9999 or before 1970, segments of 1 µs. The job ends
    failed with a clear code and message (never a 500, never stuck in processing), no
    segment fetched."""
    values = {"ast": "2026-01-01T00:00:00Z", "timescale": 1000000, "duration": 2000000,
              "padding": ""}
    if shape == "huge":
        values["padding"] = "x" * (9 * 1024 * 1024)
    elif shape == "far-future-start":
        values["ast"] = "9999-12-31T23:59:59Z"
    elif shape == "ancient-start":
        values["ast"] = "1066-10-14T09:00:00Z"
    else:
        values["duration"] = 1
    why = {"huge": "larger than the server accepts", "far-future-start": "availabilityStart",
           "ancient-start": "availabilityStart", "tiny-segments": "SegmentTemplate"}
    (tmp_path / "live.mpd").write_text(_HOSTILE.format(**values))
    with SourceServer(tmp_path) as server:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        auth = auth_factory(client)
        user = auth.user()
        r = _save(client, auth, user, {"url": server.url("live.mpd"), "offset": 4,
                                       "duration": 4})
        # yt-dlp's generic extractor reads any of them as a live MPD: the job refuses it
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        status = wait_for(lambda: (v := _status(client, user, video_id))["status"] in (
            "completed", "failed") and v, timeout=30)
        assert status["status"] == "failed", status
        assert status["error_code"] == "FORMAT_UNAVAILABLE", status
        assert why[shape] in status["error_message"], status
        assert not any(server.bytes_served(f"chunk-0-{n:05d}.m4s") for n in range(1, 10))


@pytest.mark.slow
def test_a_chat_clip_of_a_live_stream_is_recorded_from_its_dash_manifest(
        make_app, auth_factory, fake_youtube, tmp_path):
    """A Nightbot-style save during a live stream whose HLS playlist cannot be read (port 9)
    and whose info also lists DASH formats of a live MPD (the local one): the clip is
    recorded from the MPD at once."""
    with LiveDASH(tmp_path / "live", timeline=True) as stream:
        app = make_app(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0)
        client = app.test_client()
        user = auth_factory(client).user()
        token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
        started = time.time() - 600
        page = stream_info("is_live", started)
        dash = {"protocol": "http_dash_segments", "url": stream.url,
                "manifest_url": stream.url, "ext": "mp4"}
        page["formats"] += [
            {**dash, "format_id": "dash-0", "vcodec": "avc1.42c015", "acodec": "none",
             "width": 426, "height": 240, "tbr": 1500},
            {**dash, "format_id": "dash-1", "ext": "m4a", "vcodec": "none",
             "acodec": "mp4a.40.2", "tbr": 64}]
        fake_youtube.set(watch_url(), page)
        time.sleep(3)
        asked = time.time()
        r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?offset=4&duration=6"
                       "&format=json", headers=NIGHTBOT)
        assert r.status_code == 201, r.json
        video_id = r.json["video_id"]
        status = wait_for(lambda: (v := _status(client, user, video_id))["status"] in (
            "completed", "failed") and v, timeout=40)
        assert status["status"] == "completed" and status["live_fallback"] is None, status
        assert time.time() - (asked - 4 + 6) <= SEGMENT + 15
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={})
    assert r.status_code == 200 and r.mimetype == "video/mp4", r.data[:200]
    (tmp_path / "clip.mp4").write_bytes(r.data)
    probe = ffprobe(str(tmp_path / "clip.mp4"))
    assert {s["codec_type"] for s in probe["streams"]} == {"video", "audio"}
    assert abs(float(probe["format"]["duration"]) - 6) <= 0.5


@pytest.mark.parametrize("timeline", [False, True], ids=["number-template", "time-timeline"])
def test_the_wall_clock_maps_to_the_segments_ffmpeg_wrote(tmp_path, timeline):
    """No HTTP: the MPD ffmpeg writes, read by src/media/livempd.py, names for a past window
    exactly the segment files ffmpeg wrote, each starting at AST + k × 2 s."""
    with LiveDASH(tmp_path / "live", timeline=timeline, time_names=timeline,
                  min_segments=4) as stream:
        data, now = stream.manifest.read_bytes(), time.time()
        manifest = livempd.read(data, "http://127.0.0.1:1/live.mpd", now - 4, now)
        files = {p.name for p in stream.folder.glob("chunk-*.m4s")}
    assert manifest.dynamic and manifest.available_from == pytest.approx(
        stream.available_from(), abs=1e-3)
    video, audio = livempd.choose(manifest.tracks)
    assert (video.kind, video.height, audio.kind) == ("video", 240, "audio")
    # from the second segment on: ffmpeg 5.1 names the first audio segment by its real start
    # (-1024, the AAC priming) while its SegmentTimeline says t="0" (notes/livedash.md)
    t0 = manifest.available_from + 3.0
    segments = video.covering(t0, t0 + 2.5)
    assert [round(s.start - manifest.available_from, 3) for s in segments] == [2.0, 4.0]
    assert {s.url.rpartition("/")[2] for s in segments} <= files
    assert {s.url.rpartition("/")[2] for s in audio.covering(t0, t0 + 2.5)} <= files


@pytest.mark.parametrize("timeline", ['<S t="0" d="1" r="999999999999"/>',
                                      '<S t="0" d="1" r="-1"/>'], ids=["repeat", "open-repeat"])
def test_a_timeline_that_would_expand_without_end_is_refused(timeline):
    """``S@r`` of 10¹² (or ``-1`` from 1970 in 1 ms steps, up to now): refused before any list
    is built."""
    doc = _HOSTILE.format(ast="1970-01-01T00:00:00Z", timescale=1000, duration=2000,
                          padding="").replace(
        'duration="2000"', "").replace('startNumber="1"\n      initialization',
                                       'startNumber="1" initialization').replace(
        'media="chunk-$RepresentationID$-$Number%05d$.m4s"/>',
        f'media="chunk-$RepresentationID$-$Time$.m4s"><SegmentTimeline>{timeline}'
        '</SegmentTimeline></SegmentTemplate>')
    with pytest.raises(MediaError) as caught:
        livempd.read(doc.encode(), "http://127.0.0.1:1/live.mpd", time.time() - 10,
                      time.time())
    assert caught.value.code == "FORMAT_UNAVAILABLE"
