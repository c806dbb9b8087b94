"""The download job end to end against the local HTTP source built from the real clip:
only the segment is fetched, progress is real, the file is what was asked for."""
from __future__ import annotations

import os
import time

import pytest
from bson import ObjectId

from src.media.ffmpeg import ffprobe


def _probe(path):
    data = ffprobe(path)
    streams = {s["codec_type"]: s for s in data["streams"]}
    return float(data["format"]["duration"]), streams


def _wait_status(client, user, video_id, statuses=("completed", "failed"), timeout=120):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
        seen.append(body)
        if body["status"] in statuses:
            return body, seen
        time.sleep(0.1)
    raise AssertionError(f"status stayed {seen[-1]['status']}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mp4", "dash"])
def test_clip_from_minute_five(client, auth, clean_source_server, local_sources, tmp_path, kind):
    """A 30 s clip from minute 5: right duration, height and audio; only the segment fetched;
    progress observed while it runs."""
    source_server = clean_source_server
    url = source_server.mp4_url if kind == "mp4" else source_server.dash_url
    source_server.rate_bytes_per_sec = 700_000   # so the fetch lasts a few seconds
    user = auth.user()
    video_id = auth.save_clip(user, url)

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 202
    assert r.json == {"message": "Video is currently being processed", "status": "processing"}
    final, seen = _wait_status(client, user, video_id)
    source_server.rate_bytes_per_sec = None
    assert final["status"] == "completed", final
    assert final["file_available"] is True and final["file_size_mb"] > 0
    assert final["expires_at"].endswith("Z")

    phases = [s["progress"]["current_phase"] for s in seen if s["progress"]]
    assert "downloading" in phases
    values = sorted({s["progress"]["download_progress"] for s in seen
                     if s["progress"] and 0 < s["progress"]["download_progress"] < 100})
    assert len(values) >= 2, seen
    running = [s["progress"] for s in seen if s["progress"] and s["progress"]["speed"]]
    assert running and running[-1]["speed"].endswith("x") and ":" in running[-1]["eta"]

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 200
    assert r.mimetype == "video/mp4"
    assert r.headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.mp4"'
    out = tmp_path / "clip.mp4"
    out.write_bytes(r.data)
    duration, streams = _probe(str(out))
    assert abs(duration - 30) <= 1.5
    assert streams["video"]["height"] == 720 and "audio" in streams

    files = [local_sources["mp4"]] if kind == "mp4" else local_sources["dash_files"].values()
    total = sum(os.path.getsize(path) for path in files)
    assert source_server.bytes_served() < 0.25 * total, (source_server.bytes_served(), total)


def test_new_preferences_make_a_new_file(make_app, auth_factory, source_server, tmp_path):
    app = make_app(DOWNLOAD_WAIT_SECONDS=60)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, start=60, end=66)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"resolution_preference": "720p"})
    assert r.status_code == 200
    first = app.extensions["yt"]["db"].videos.find_one()["file_path"]
    (tmp_path / "a.mp4").write_bytes(r.data)
    assert _probe(str(tmp_path / "a.mp4"))[1]["video"]["height"] == 720

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"resolution_preference": "720p"})
    assert r.status_code == 200   # same preferences: the same file, no new job
    assert app.extensions["yt"]["db"].videos.find_one()["file_path"] == first

    # 480p is not a spec resolution label, so ask for the small tier through "best" on a source
    # whose best is 720p... instead check a different container choice: webm is not offered.
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "webm"})
    assert r.status_code == 422 and r.json["code"] == "FORMAT_UNAVAILABLE"
    doc = app.extensions["yt"]["db"].videos.find_one()
    assert doc["status"] == "failed" and doc["error_message"]
    assert not os.path.exists(first)

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4"})
    assert r.status_code == 200
    assert app.extensions["yt"]["db"].videos.find_one()["status"] == "completed"


@pytest.mark.slow
def test_failed_source_marks_clip_failed_and_pool_keeps_working(make_app, auth_factory,
                                                               source_server):
    app = make_app(DOWNLOAD_WAIT_SECONDS=60, MAX_CONCURRENT_JOBS=1)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    missing = auth.save_clip(user, source_server.base_url + "/does-not-exist.mp4", 0, 5)
    r = client.post(f"/api/video/download/{missing}", headers=user["headers"])
    assert r.status_code in (422, 500) and r.json["code"] in (
        "SOURCE_HTTP_ERROR", "VIDEO_UNAVAILABLE"), r.json
    status = client.get(f"/api/video/status/{missing}", headers=user["headers"]).json
    assert status["status"] == "failed" and status["error_message"] and status["error_code"]
    folder = os.path.join(app.config["DOWNLOADS_DIR"],   # random, stored on the clip
                          app.extensions["yt"]["db"].videos.find_one(
                              {"_id": ObjectId(missing)})["folder"])
    assert not os.path.exists(folder) or not os.listdir(folder)

    too_late = auth.save_clip(user, source_server.mp4_url, 5000, 5010)
    r = client.post(f"/api/video/download/{too_late}", headers=user["headers"])
    assert r.status_code == 422 and r.json["code"] == "SEGMENT_OUT_OF_RANGE"

    fine = auth.save_clip(user, source_server.mp4_url, 10, 14)
    r = client.post(f"/api/video/download/{fine}", headers=user["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4"


def test_dead_job_is_declared_failed(client, auth, app, source_server):
    """A record left in processing by a dead process (no heartbeat) does not stay processing."""
    from datetime import datetime, timedelta, timezone
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 0, 5)
    app.extensions["yt"]["db"].videos.update_one({}, {"$set": {
        "status": "processing", "job_id": "dead-job",
        "job_claimed_at": datetime.now(timezone.utc) - timedelta(minutes=5)}})
    body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert body["status"] == "failed" and body["error_code"] == "JOB_INTERRUPTED"


def test_formats_and_resolutions_from_the_source(client, auth, source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 0, 5)
    r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
    assert r.status_code == 200, r.json
    assert r.json["video_id"] == video_id
    assert r.json["resolutions"] == ["720p"]
    assert r.json["formats"] == {"720p": ["mp4"]} and r.json["extensions"] == ["mp4"]

    r = client.post("/api/video/resolutions", json={"url": source_server.dash_url})
    assert r.status_code == 200
    assert r.json == {"video_id": None, "url": source_server.dash_url, "resolutions": ["720p"]}
    r = client.post("/api/video/resolutions", json={"url": "https://evil.example/x"})
    assert r.status_code == 400 and r.json["code"] == "INVALID_URL"
    assert client.post("/api/video/resolutions", json={}).status_code == 400

    # available_formats is filled in the background right after save
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
        if body["available_formats"]:
            break
        time.sleep(0.1)
    assert body["available_formats"] == ["720p"]


@pytest.fixture(scope="session")
def highres_mpd(local_sources):
    from scripts.highres_source import build_highres_source
    from tests.media_fixtures import SOURCES_DIR
    build_highres_source(SOURCES_DIR)
    return "hires/manifest.mpd"


@pytest.mark.slow
def test_1440p_mp4_is_reencoded_to_hevc_and_webm_is_copied(make_app, auth_factory, source_server,
                                                            highres_mpd, tmp_path):
    app = make_app(DOWNLOAD_WAIT_SECONDS=0)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    url = source_server.url(highres_mpd)
    video_id = auth.save_clip(user, url, start=20, end=22)

    prefs = {"format_preference": "mp4", "resolution_preference": "1440p",
             "quality_preset": "medium"}
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=prefs)
    assert r.status_code == 202
    final, seen = _wait_status(client, user, video_id, timeout=300)
    assert final["status"] == "completed", final
    phases = {s["progress"]["current_phase"] for s in seen if s["progress"]}
    assert {"downloading", "encoding"} <= phases, phases
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=prefs)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    (tmp_path / "hevc.mp4").write_bytes(r.data)
    duration, streams = _probe(str(tmp_path / "hevc.mp4"))
    assert streams["video"]["codec_name"] == "hevc"
    assert (streams["video"]["width"], streams["video"]["height"]) == (2560, 1440)
    assert streams["audio"]["codec_name"] == "aac" and abs(duration - 2) <= 1.5
    path = app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})["file_path"]
    # the WebM intermediate is gone: the MP4 and its thumbnail are left
    assert sorted(os.listdir(os.path.dirname(path))) == sorted([os.path.basename(path),
                                                               "thumbnail.jpg"])

    app.config["DOWNLOAD_WAIT_SECONDS"] = 120
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "webm", "resolution_preference": "1440p"})
    assert r.status_code == 200 and r.mimetype == "video/webm"
    assert r.headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.webm"'
    (tmp_path / "vp9.webm").write_bytes(r.data)
    duration, streams = _probe(str(tmp_path / "vp9.webm"))
    assert streams["video"]["codec_name"] == "vp9" and streams["video"]["height"] == 1440
    assert streams["audio"]["codec_name"] == "opus"
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["available_formats"] == ["1440p", "720p"]


def test_relative_downloads_dir_is_served(make_app, auth_factory, source_server, tmp_path,
                                          monkeypatch):
    """DOWNLOADS_DIR=./downloads (the default) is relative to the working directory, not to the
    package folder that Flask's send_file would resolve it against."""
    monkeypatch.chdir(tmp_path)
    app = make_app(DOWNLOADS_DIR="./relative-downloads", DOWNLOAD_WAIT_SECONDS=60)
    assert app.config["DOWNLOADS_DIR"] == str(tmp_path / "relative-downloads")
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 13)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and len(r.data) > 10_000


@pytest.mark.slow
def test_stalled_source_fails_the_job_instead_of_hanging(make_app, auth_factory, monkeypatch):
    """A source that sends headers and then nothing: the job fails once its wall-clock budget
    (download_service.fetch_timeout) is spent; it never stays processing."""
    import socket
    import threading

    from src.services import download_service

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port, held = listener.getsockname()[1], []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n"
                         b"Content-Length: 100000000\r\nAccept-Ranges: bytes\r\n\r\n")
            held.append(conn)  # ...and never another byte

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(download_service, "fetch_timeout", lambda start, end: 3)
    app = make_app(DOWNLOAD_WAIT_SECONDS=60)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, f"http://127.0.0.1:{port}/stalled.mp4", 10, 14)
    started = time.monotonic()
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    listener.close()
    for conn in held:
        conn.close()
    assert r.status_code == 500 and r.json["code"] == "FFMPEG_FAILED", r.json
    assert time.monotonic() - started < 45
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["status"] == "failed"


def test_a_file_gone_between_lookup_and_send_is_410(app):
    """The cleanup may delete a file between the status check and sending it: 410, not 500."""
    from src.errors import ApiError
    from src.utils.files import send_media

    with app.test_request_context():
        with pytest.raises(ApiError) as info:
            send_media(os.path.join(app.config["DOWNLOADS_DIR"], "gone.mp4"), "video/mp4")
    assert info.value.status == 410 and info.value.code == "FILE_EXPIRED"


@pytest.mark.slow
def test_a_clip_and_an_encode_on_the_embedded_stores(make_app, auth_factory, source_server,
                                                     tmp_path):
    """Without REDIS_URI — fakeredis, as a first `make run` or `make demo` starts — a clip
    downloads and an upload encodes: the per-user job lock (a redis-py Lock, whose Lua scripts
    fakeredis runs through lupa) works there too."""
    app = make_app(REDIS_URI=None, DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 300, 304)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4", r.data[:200]
    (tmp_path / "clip.mp4").write_bytes(r.data)
    duration, streams = _probe(str(tmp_path / "clip.mp4"))
    assert abs(duration - 4) <= 1.5 and streams["video"]["height"] == 720
    media = os.path.join(os.path.dirname(__file__), "media", "big_buck_bunny_720p_5s.mp4")
    with open(media, "rb") as fh:
        r = client.post("/api/encode/upload", headers=user["headers"],
                        data={"video": (fh, "clip.mp4")}, content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    r = client.post(f"/api/encode/start/{r.json['encode_id']}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 200 and r.json["message"] == "Video encoded successfully", r.json
