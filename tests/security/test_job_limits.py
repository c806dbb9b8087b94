"""One user cannot starve the rest (issue 11, item 2), shown with the real job pool, real uploads
of the test clip and real clips from the local source:

- two encodes queued by user A do not delay user B's clip (encodes have their own lane);
- a ≥1440p MP4 clip waits for the encoder in the encode lane, not on a clip worker;
- ``MAX_JOBS_PER_USER`` caps a user's running + queued jobs (429 ``TOO_MANY_JOBS`` with
  ``Retry-After``), across clips and encodes, also under concurrent requests; joining a running
  job is not a new job;
- an encode past its time limit is killed and ends ``failed`` ``ENCODE_TIMEOUT``.

Encodes are made slow deterministically by their codec: AV1 lossless (libaom) encodes the 5.3 s
720p clip at ≈ 0.1x real time on one thread, so such an encode runs for most of a minute.
"""
from __future__ import annotations

import io
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from bson import ObjectId

from src.media import encode
from src.media.ffmpeg import ffprobe

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CLIP = Path(__file__).resolve().parent.parent / "media" / "big_buck_bunny_720p_5s.mp4"
SLOW = {"video_codec": "av1", "quality_preset": "lossless"}
FAST = {"video_codec": "h264", "quality_preset": "medium"}


@pytest.fixture
def pool_app(make_app):
    """``make_app`` whose still-running jobs are cancelled when the test ends (their records lose
    their job id, so each stops at its next progress report and the pool shuts down at once)."""
    apps = []

    def factory(**overrides):
        app = make_app(**overrides)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        _cancel(app, {"status": "processing"})


def _cancel(app, query) -> None:
    app.extensions["yt"]["db"].videos.update_many(query, {"$set": {"job_id": "cancelled"}})


def _upload(client, user) -> str:
    r = client.post("/api/encode/upload", headers=user["headers"],
                    data={"video": (io.BytesIO(CLIP.read_bytes()), "clip.mp4")},
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    return r.json["encode_id"]


def _start(client, user, encode_id, body=SLOW):
    return client.post(f"/api/encode/start/{encode_id}", headers=user["headers"], json=body)


def _status(client, user, kind, item_id) -> dict:
    return client.get(f"/api/{kind}/status/{item_id}", headers=user["headers"]).json


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _lanes(client) -> dict:
    return client.get("/api/health").json["checks"]["jobs"]["lanes"]


def test_two_queued_encodes_of_one_user_do_not_delay_another_users_clip(
        pool_app, auth_factory, source_server, tmp_path):
    # one clip worker: before the lanes, the queued encode held it and B's clip never started
    app = pool_app(MAX_CONCURRENT_JOBS=1, MAX_CONCURRENT_ENCODES=1)
    client = app.test_client()
    auth = auth_factory(client)
    a, b = auth.user(), auth.user()
    encodes = [_upload(client, a) for _ in range(2)]
    for encode_id in encodes:
        assert _start(client, a, encode_id).status_code == 202
    _wait(lambda: _lanes(client)["encode"] == {"running": 1, "queued": 1}, 30,
          "one encode running, one queued")

    clip_id = auth.save_clip(b, source_server.mp4_url, 10, 14)
    r = client.post(f"/api/video/download/{clip_id}", headers=b["headers"])
    assert r.status_code in (200, 202), r.json
    final = _wait(lambda: (lambda s: s if s["status"] in ("completed", "failed") else None)(
        _status(client, b, "video", clip_id)), 60, "B's clip")
    assert final["status"] == "completed", final

    # A's encodes are still there: one encoding, one waiting; nothing waits in the clip lane
    states = [_status(client, a, "encode", e) for e in encodes]
    assert [s["status"] for s in states] == ["processing", "processing"], states
    assert all(s["progress"] < 100 for s in states)
    lanes = _lanes(client)
    assert lanes["encode"] == {"running": 1, "queued": 1}, lanes
    assert lanes["clip"] == {"running": 0, "queued": 0}, lanes

    r = client.post(f"/api/video/download/{clip_id}", headers=b["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    (tmp_path / "clip.mp4").write_bytes(r.data)
    info = ffprobe(str(tmp_path / "clip.mp4"))
    assert abs(float(info["format"]["duration"]) - 4) < 1
    assert {s["codec_type"] for s in info["streams"]} == {"video", "audio"}


@pytest.fixture(scope="session")
def highres_mpd(local_sources):
    from scripts.highres_source import build_highres_source
    from tests.media_fixtures import SOURCES_DIR
    build_highres_source(SOURCES_DIR)
    return "hires/manifest.mpd"


def test_a_1440p_mp4_clip_waits_for_the_encoder_without_holding_a_clip_worker(
        pool_app, auth_factory, source_server, highres_mpd, tmp_path):
    app = pool_app(MAX_CONCURRENT_JOBS=1, MAX_CONCURRENT_ENCODES=1)
    client = app.test_client()
    auth = auth_factory(client)
    a, b, c = auth.user(), auth.user(), auth.user()
    slow = _upload(client, a)
    assert _start(client, a, slow).status_code == 202                 # the encoder is busy
    _wait(lambda: _lanes(client)["encode"]["running"] == 1, 30, "A's encode")

    hires = auth.save_clip(b, source_server.url(highres_mpd), 20, 22)
    prefs = {"format_preference": "mp4", "resolution_preference": "1440p",
             "quality_preset": "medium"}
    assert client.post(f"/api/video/download/{hires}", headers=b["headers"],
                       json=prefs).status_code == 202
    _wait(lambda: _lanes(client)["encode"]["queued"] == 1, 60, "B's encode phase queued")
    waiting = _status(client, b, "video", hires)
    assert waiting["status"] == "processing"
    assert waiting["progress"]["current_phase"] == "encoding"
    assert waiting["progress"]["encoding_progress"] == 0
    assert _lanes(client)["clip"] == {"running": 0, "queued": 0}   # the clip worker is free

    plain = auth.save_clip(c, source_server.mp4_url, 10, 13)       # so C's clip runs at once
    assert client.post(f"/api/video/download/{plain}", headers=c["headers"]).status_code \
        in (200, 202)
    done = _wait(lambda: (lambda s: s if s["status"] != "processing" else None)(
        _status(client, c, "video", plain)), 60, "C's clip")
    assert done["status"] == "completed", done
    assert _status(client, b, "video", hires)["status"] == "processing"

    _cancel(app, {"_id": ObjectId(slow)})                           # A's encode ends
    done = _wait(lambda: (lambda s: s if s["status"] != "processing" else None)(
        _status(client, b, "video", hires)), 240, "B's 1440p clip")
    assert done["status"] == "completed", done
    r = client.post(f"/api/video/download/{hires}", headers=b["headers"], json=prefs)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    (tmp_path / "hevc.mp4").write_bytes(r.data)
    video = next(s for s in ffprobe(str(tmp_path / "hevc.mp4"))["streams"]
                 if s["codec_type"] == "video")
    assert video["codec_name"] == "hevc" and (video["width"], video["height"]) == (2560, 1440)


def test_jobs_per_user_cap_counts_clips_and_encodes_and_lets_joins_through(
        pool_app, auth_factory, source_server):
    app = pool_app(MAX_JOBS_PER_USER=2, MAX_CONCURRENT_ENCODES=1)
    client = app.test_client()
    auth = auth_factory(client)
    a, b = auth.user(), auth.user()
    first, second, third = (_upload(client, a) for _ in range(3))
    assert _start(client, a, first).status_code == 202
    assert _start(client, a, second).status_code == 202

    r = _start(client, a, third)
    assert r.status_code == 429, r.json
    assert set(r.json) == {"error", "code"} and r.json["code"] == "TOO_MANY_JOBS"
    assert "2 jobs running or queued" in r.json["error"] and "at most 2" in r.json["error"]
    assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) > 0
    assert _status(client, a, "encode", third)["status"] == "pending"     # nothing claimed

    clip_id = auth.save_clip(a, source_server.mp4_url, 10, 13)           # clips count too
    r = client.post(f"/api/video/download/{clip_id}", headers=a["headers"])
    assert r.status_code == 429 and r.json["code"] == "TOO_MANY_JOBS"
    assert _status(client, a, "video", clip_id)["status"] == "pending"

    assert _start(client, a, first).status_code == 202                   # joining is no new job

    other = auth.save_clip(b, source_server.mp4_url, 10, 13)             # B is not A
    assert client.post(f"/api/video/download/{other}", headers=b["headers"]).status_code \
        in (200, 202)

    app.extensions["yt"]["db"].videos.update_one(      # one of A's jobs ends...
        {"_id": ObjectId(second)}, {"$set": {"status": "failed", "job_id": "ended"}})
    assert _start(client, a, third).status_code == 202  # ...so there is room for one more


def test_a_dead_job_does_not_count(pool_app, auth_factory):
    """A record left ``processing`` by a process that died (no heartbeat, claimed long ago) holds
    nothing and is not counted, though it has not been reaped yet."""
    app = pool_app(MAX_JOBS_PER_USER=1)
    client = app.test_client()
    user = auth_factory(client).user()
    app.extensions["yt"]["db"].videos.insert_one({
        "user_id": ObjectId(user["id"]), "source_type": "url", "status": "processing",
        "job_id": "dead", "job_claimed_at": datetime.now(timezone.utc) - timedelta(minutes=10)})
    assert _start(client, user, _upload(client, user), FAST).status_code == 202


def test_jobs_per_user_cap_holds_under_concurrent_requests(pool_app, auth_factory):
    app = pool_app(MAX_JOBS_PER_USER=2, MAX_CONCURRENT_ENCODES=1)
    client = app.test_client()
    user = auth_factory(client).user()
    uploads = [_upload(client, user) for _ in range(5)]
    barrier = threading.Barrier(len(uploads))
    statuses = []

    def start(encode_id):
        own = app.test_client()
        barrier.wait()
        statuses.append(_start(own, user, encode_id).status_code)

    threads = [threading.Thread(target=start, args=(e,)) for e in uploads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [202, 202, 429, 429, 429]
    assert app.extensions["yt"]["db"].videos.count_documents({"status": "processing"}) == 2


def test_no_cap_when_max_jobs_per_user_is_zero(pool_app, auth_factory):
    app = pool_app(MAX_JOBS_PER_USER=0, MAX_CONCURRENT_ENCODES=1)
    client = app.test_client()
    user = auth_factory(client).user()
    assert [_start(client, user, _upload(client, user)).status_code for _ in range(5)] \
        == [202] * 5


def test_encode_over_its_time_limit_is_killed_and_fails_clearly(pool_app, auth_factory,
                                                                monkeypatch, tmp_path):
    # The limit is 60 s + factor × (measured time); the fixed 60 s would outlast this whole test,
    # so it is taken out here: AV1 lossless of the clip then gets 0.05 × 14.3 × 5.3 ≈ 3.8 s.
    monkeypatch.setattr(encode, "ENCODE_TIME_ALLOWANCE_SECONDS", 0)
    app = pool_app(ENCODE_TIMEOUT_FACTOR=0.05, DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    user = auth_factory(client).user()
    encode_id = _upload(client, user)
    folder = os.path.dirname(app.extensions["yt"]["db"].videos.find_one(
        {"_id": ObjectId(encode_id)})["input_file_path"])
    started = time.monotonic()
    r = _start(client, user, encode_id)
    elapsed = time.monotonic() - started
    assert r.status_code == 422 and r.json["code"] == "ENCODE_TIMEOUT", r.json
    assert "time limit (4 s" in r.json["error"]
    assert 3 < elapsed < 30                    # killed at its limit, well before it could finish
    status = _status(client, user, "encode", encode_id)
    assert status["status"] == "failed" and status["error_code"] == "ENCODE_TIMEOUT"
    assert status["file_available"] is False
    assert os.listdir(folder) == ["source.mp4"]          # the partial output is gone
    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 422 and r.json["code"] == "ENCODE_TIMEOUT"

    app.config["ENCODE_TIMEOUT_FACTOR"] = 4              # with a sane limit it encodes again
    r = _start(client, user, encode_id, FAST)
    assert r.status_code == 200, r.json
    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    (tmp_path / "out.mp4").write_bytes(r.data)
    video = next(s for s in ffprobe(str(tmp_path / "out.mp4"))["streams"]
                 if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["height"] == 720
