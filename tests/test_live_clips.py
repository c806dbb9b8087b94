"""Live timing: the background resolver places stream clips, waits for the VOD, releases them."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from yt_dlp.utils import ExtractorError, UserNotLive

from src.services import live_service
from tests.youtube_fakes import CHANNEL_ID, VIDEO_ID, stream_info, wait_for, watch_url

CHANNEL_LIVE = f"https://www.youtube.com/channel/{CHANNEL_ID}/live"


@pytest.mark.parametrize("moment, delay, offset, duration, expected", [
    (3600, 0, 60, 120, (3540, 3660)),
    (3600, 8, 60, 120, (3532, 3652)),
    (3600, 8, 0, 30, (3592, 3622)),
    (30, 8, 60, 120, (0, 120)),        # before the start (or within the offset): clamped to 0
    (5, 10, 0, 20, (0, 20)),           # delay larger than the moment
])
def test_place_arithmetic(moment, delay, offset, duration, expected):
    started = 1_760_000_000
    requested = datetime.fromtimestamp(started + moment, timezone.utc)
    assert live_service.place(requested, started, delay, offset, duration) == expected


def _save(client, token, ref=VIDEO_ID, headers=None, **query):
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return client.get(f"/api/video/save/stream/{token}/{ref}?{params}", headers=headers or {})


def _doc(app, video_id):
    return app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})


@pytest.mark.slow
def test_clip_waits_for_vod_then_is_released(make_app, auth_factory, fake_youtube):
    app = make_app(DOWNLOAD_WAIT_SECONDS=5)
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    started = time.time() - 3600
    fake_youtube.set(watch_url(), stream_info("is_live", started))

    r = _save(client, token, delay=8, offset=30, duration=60)
    assert r.status_code == 201, r.json
    video_id = r.json["video_id"]
    doc = wait_for(lambda: (d := _doc(app, video_id))["live_phase"] == "waiting_for_vod" and d)
    moment = doc["clip_moment_at"].replace(tzinfo=timezone.utc).timestamp() - int(started) - 8
    assert doc["start_time"] == pytest.approx(moment - 30) and doc["start_time"] > 3500
    assert doc["end_time"] == pytest.approx(doc["start_time"] + 60)
    assert doc["status"] == "pending" and doc["live_checks"] == 1
    first_wait = doc["next_check_at"].replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(seconds=50) < first_wait <= timedelta(seconds=60)   # LIVE_RECHECK_INITIAL

    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["status"] == "pending" and status["phase"] == "waiting_for_vod"

    # the download job refuses a clip whose recording is not published yet: a clear 4xx
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 422 and r.json["code"] == "WAITING_FOR_VOD", r.json

    # stream over, VOD being processed: still waiting, the back-off doubles
    fake_youtube.set(watch_url(), stream_info("post_live", started))
    app.config["LIVE_INFO_CACHE_SECONDS"] = 0
    with app.app_context():
        assert live_service.check_clip(video_id) == "waiting_for_vod"
    doc = _doc(app, video_id)
    assert doc["live_checks"] == 2
    wait = doc["next_check_at"].replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(seconds=110) < wait <= timedelta(seconds=120)

    # VOD published: the clip is released and becomes an ordinary pending clip again
    fake_youtube.set(watch_url(), stream_info("was_live", started, duration=7200))
    with app.app_context():
        assert live_service.check_clip(video_id) is None
    doc = _doc(app, video_id)
    assert doc["live_phase"] is None and doc["status"] == "pending" and doc["error_code"] is None
    assert doc["start_time"] == pytest.approx(moment - 30)
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["phase"] is None and status["start_time"] == pytest.approx(moment - 30)


@pytest.mark.parametrize("page, code", [
    (stream_info("not_live", None, duration=300), "TIMESTAMP_REQUIRED"),
    (stream_info("is_upcoming", time.time() + 3600), "LIVE_NOT_STARTED"),
    (ExtractorError("Private video. Sign in if you've been granted access to this video",
                    expected=True), "PRIVATE_VIDEO"),
])
@pytest.mark.slow
def test_clip_that_cannot_be_placed_fails_with_a_code(app, client, bound, fake_youtube, page,
                                                      code):
    _, token = bound
    fake_youtube.set(watch_url(), page)
    video_id = _save(client, token).json["video_id"]
    doc = wait_for(lambda: (d := _doc(app, video_id))["status"] == "failed" and d)
    assert doc["error_code"] == code and doc["error_message"] and doc["live_phase"] is None


def test_never_live_video_with_t_needs_no_lookup(app, client, bound, fake_youtube):
    _, token = bound
    video_id = _save(client, token, t=100, offset=10, duration=30).json["video_id"]
    doc = _doc(app, video_id)
    assert (doc["start_time"], doc["end_time"]) == (90, 120) and doc.get("live_phase") is None
    time.sleep(0.2)
    assert all(url == watch_url() for url, _ in fake_youtube.calls)  # only the formats look-up


def test_source_errors_are_retried_with_backoff(app, client, bound, fake_youtube):
    _, token = bound  # no page registered: the source cannot be reached
    video_id = _save(client, token).json["video_id"]
    doc = wait_for(lambda: (d := _doc(app, video_id)).get("live_checks") == 1 and d)
    assert doc["status"] == "pending" and doc["live_phase"] == "resolving"
    assert doc["live_last_error"] == "SOURCE_HTTP_ERROR"
    # past LIVE_VOD_MAX_WAIT_HOURS the clip gives up with the last error
    app.extensions["yt"]["db"].videos.update_one(
        {"_id": doc["_id"]},
        {"$set": {"created_at": datetime.now(timezone.utc) - timedelta(days=3)}})
    with app.app_context():
        live_service.check_clip(video_id)
    assert _doc(app, video_id)["error_code"] == "SOURCE_HTTP_ERROR"


def test_waiting_too_long_for_the_vod_fails(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("post_live", time.time() - 600))
    video_id = _save(client, token).json["video_id"]
    wait_for(lambda: _doc(app, video_id)["live_phase"] == "waiting_for_vod")
    app.extensions["yt"]["db"].videos.update_one(
        {"_id": ObjectId(video_id)},
        {"$set": {"created_at": datetime.now(timezone.utc) - timedelta(hours=49)}})
    with app.app_context():
        live_service.check_clip(video_id)
    assert _doc(app, video_id)["error_code"] == "VOD_UNAVAILABLE"


def test_live_keyword_resolves_the_channel_stream(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(CHANNEL_LIVE,
                     stream_info("is_live", time.time() - 120, video_id="LiveStream1"))
    header = f"name=chan&displayName=Chan&provider=youtube&providerId={CHANNEL_ID}"
    r = _save(client, token, "live", headers={"Nightbot-Channel": header}, format="json")
    assert r.status_code == 201 and r.json["youtube_video_id"] is None
    doc = wait_for(lambda: (d := _doc(app, r.json["video_id"]))["live_phase"] == "waiting_for_vod"
                   and d)
    assert doc["youtube_video_id"] == "LiveStream1" and doc["url"] == watch_url("LiveStream1")
    assert doc["live_channel_id"] == CHANNEL_ID and 0 <= doc["start_time"] < 120

    # ?channel= works without Nightbot; a channel that is not live fails NOT_LIVE
    other = "UC" + "b" * 22
    fake_youtube.set(f"https://www.youtube.com/channel/{other}/live", UserNotLive(video_id=other))
    video_id = _save(client, token, "live", channel=other).json["video_id"]
    doc = wait_for(lambda: (d := _doc(app, video_id))["status"] == "failed" and d)
    assert doc["error_code"] == "NOT_LIVE"

    r = _save(client, token, "live")          # no channel anywhere
    assert r.status_code == 400 and r.json["code"] == "CHANNEL_REQUIRED"


def test_sweep_claims_due_clips_once(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("is_live", time.time() - 60))
    video_id = _save(client, token).json["video_id"]
    wait_for(lambda: _doc(app, video_id)["live_phase"] == "waiting_for_vod")
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    pool = app.extensions["yt"]["jobs"]
    queued = []  # held until both sweeps ran: a check that ends in between sets a new due time
    pool.submit_light = lambda fn, *args: queued.append((fn, args))  # this instance only
    try:
        with app.app_context():
            assert live_service.sweep(datetime.now(timezone.utc)) == 0     # not due yet
            assert live_service.sweep(later) == 1
            assert live_service.sweep(later) == 0                          # leased by the first
    finally:
        del pool.submit_light
    for fn, args in queued:
        pool.submit_light(fn, *args)
    wait_for(lambda: _doc(app, video_id)["live_checks"] == 2)


def test_a_lost_first_check_is_picked_up_by_the_sweep(app, client, bound, fake_youtube,
                                                      monkeypatch):
    """The first look-up lives only in this process's queue; if it is lost (a restart), the
    clip's lease makes the sweep check it later, so it never waits forever."""
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("is_live", time.time() - 60))
    monkeypatch.setattr(live_service, "schedule_first_check", lambda video_id: None)
    video_id = _save(client, token).json["video_id"]
    assert _doc(app, video_id)["live_phase"] == "resolving"
    with app.app_context():
        assert live_service.sweep(datetime.now(timezone.utc)) == 0     # lease not over yet
        later = datetime.now(timezone.utc) + timedelta(seconds=live_service.LEASE_SECONDS + 1)
        assert live_service.sweep(later) == 1
    doc = wait_for(lambda: (d := _doc(app, video_id))["live_phase"] == "waiting_for_vod" and d)
    assert doc["start_time"] is not None


@pytest.mark.slow
def test_stream_save_answers_without_network(app, client, bound, fake_youtube):
    _, token = bound
    fake_youtube.set(watch_url(), stream_info("is_live", time.time() - 60))
    fake_youtube.delay = 3  # a slow YouTube must not slow the request
    began = time.monotonic()
    r = _save(client, token, headers={"Nightbot-User": "name=viewer"})
    elapsed = time.monotonic() - began
    assert r.status_code == 201 and elapsed < 1.5
    main = threading.current_thread().name
    wait_for(lambda: fake_youtube.calls)
    assert all(thread != main for _, thread in fake_youtube.calls)
