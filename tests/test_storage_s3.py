"""Files in an S3-compatible bucket (issue 15, item 3: ``STORAGE_BACKEND=s3``).

boto3 talks to a real S3 API server on loopback — moto's, started by these tests (what it does
not prove: AWS's, R2's or MinIO's own behaviour — multipart thresholds, eventual listing,
lifecycle rules, R2's "auto" region — and their error texts). Each test gets its own bucket.
Everything is checked as a client sees it: status codes, the redirect's presigned URL followed
by a plain HTTP client, ffprobe of the bytes, and what the bucket and the disk hold.
"""
from __future__ import annotations

import io
import os
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.config import Config
from bson import ObjectId
from werkzeug.serving import make_server

from src.config import ConfigError
from src.media.ffmpeg import ffprobe
from src.services import cleanup_service
from tests import test_dashboard as dashboard
from tests.test_dashboard import needs_browser, save_clip

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CLIP = os.path.join(os.path.dirname(__file__), "media", "big_buck_bunny_720p_5s.mp4")
KEYS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}
driver = dashboard.driver  # headless Chromium (tests/test_dashboard.py)


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 API server on a free loopback port: ``http://127.0.0.1:{port}``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}), **KEYS)


@pytest.fixture
def bucket(s3_server):
    """A fresh bucket: ``(name, boto3 client)``."""
    name = f"clips-{uuid.uuid4().hex[:12]}"
    client = _client(s3_server)
    client.create_bucket(Bucket=name)
    return name, client


@pytest.fixture
def s3_app(make_app, s3_server, bucket):
    """``s3_app(**overrides)``: an app storing in :func:`bucket`."""
    def factory(**overrides):
        return make_app(**{"STORAGE_BACKEND": "s3", "S3_BUCKET": bucket[0],
                           "S3_ENDPOINT_URL": s3_server, "S3_ADDRESSING_STYLE": "path",
                           "S3_ACCESS_KEY_ID": KEYS["aws_access_key_id"],
                           "S3_SECRET_ACCESS_KEY": KEYS["aws_secret_access_key"],
                           **overrides})
    return factory


def _keys(bucket):
    name, client = bucket
    return sorted(item["Key"] for item in
                  client.list_objects_v2(Bucket=name).get("Contents", ()))


def _files(folder):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def _doc(app, video_id):
    return app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})


def _fetch(url, headers=None):
    """GET ``url`` with a plain HTTP client (a browser following the redirect)."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                timeout=30) as answer:
        return answer.status, answer.headers, answer.read()  # names case-insensitive


def _clip(app, auth_factory, source_server, tmp_path):
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 14)
    return client, auth, user, video_id


def test_a_clip_is_an_object_and_downloads_by_a_presigned_redirect(
        s3_app, bucket, auth_factory, source_server, tmp_path):
    app = s3_app()
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    r = auth.download(user, video_id)
    assert r.status_code == 302, r.json
    assert r.headers["Cache-Control"] == "no-store"
    doc = _doc(app, video_id)
    folder = doc["folder"]
    assert _keys(bucket) == sorted([f"downloads/{folder}/{doc['job_id']}.mp4",
                                    f"downloads/{folder}/{doc['job_id']}-thumbnail.jpg"])
    assert doc["file_path"] == f"s3://{bucket[0]}/downloads/{folder}/{doc['job_id']}.mp4"
    assert _files(app.config["DOWNLOADS_DIR"]) == []  # the scratch copy is gone
    status, headers, data = _fetch(r.headers["Location"])
    assert status == 200 and headers["Content-Disposition"] == \
        f'attachment; filename="video_{video_id}.mp4"'
    assert headers["Content-Type"] == "video/mp4"
    out = tmp_path / "clip.mp4"
    out.write_bytes(data)
    assert len(data) == doc["file_size_bytes"]
    assert abs(float(ffprobe(str(out))["format"]["duration"]) - 4) < 0.6
    # the status and the list read the record, not the bucket
    status_body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status_body["file_available"] is True
    [item] = client.get("/api/video/list", headers=user["headers"]).json["videos"]
    r = client.get(item["thumbnail_url"])
    assert r.status_code == 302
    status, headers, data = _fetch(r.headers["Location"])
    assert headers["Content-Type"] == "image/jpeg" and data[:2] == b"\xff\xd8"
    # the presigned URL is signed: changing the key is refused by the bucket
    forged = r.headers["Location"].replace(".jpg", ".mp4")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _fetch(forged)
    assert refused.value.code == 403


def test_proxy_mode_streams_with_range_and_attachment(s3_app, bucket, auth_factory,
                                                      source_server, tmp_path):
    app = s3_app(S3_DOWNLOAD_MODE="proxy")
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    r = auth.download(user, video_id)
    assert r.status_code == 200, r.json
    assert r.headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.mp4"'
    assert r.mimetype == "video/mp4"
    whole = r.data
    assert len(whole) == _doc(app, video_id)["file_size_bytes"]
    play = client.post(f"/api/video/play/{video_id}", headers=user["headers"]).json["url"]
    r = client.get(play, headers={"Range": "bytes=100-299"})
    assert r.status_code == 206 and r.data == whole[100:300]
    assert r.headers["Content-Range"] == f"bytes 100-299/{len(whole)}"
    assert r.headers["Content-Disposition"].startswith("inline;")
    assert r.headers["Cache-Control"].startswith("private, max-age=")
    r = client.get(play, headers={"Range": f"bytes={len(whole) + 10}-"})
    assert r.status_code == 416 and r.json["code"] == "ERROR"
    etag = client.get(play).headers["ETag"]
    assert client.get(play, headers={"If-None-Match": etag}).status_code == 304
    # an object deleted behind the app's back: 410, never a 500
    name, s3 = bucket
    s3.delete_object(Bucket=name, Key=_doc(app, video_id)["file_path"].split("/", 3)[3])
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 410 and r.json["code"] == "FILE_EXPIRED"


def test_a_new_download_replaces_the_old_object(s3_app, bucket, auth_factory, source_server,
                                               tmp_path):
    app = s3_app()
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    assert auth.download(user, video_id).status_code == 302
    first = _keys(bucket)
    r = auth.download(user, video_id, body={"format_preference": "m4a"})
    assert r.status_code == 302
    doc = _doc(app, video_id)
    assert _keys(bucket) == [f"downloads/{doc['folder']}/{doc['job_id']}.m4a"]
    assert not set(first) & set(_keys(bucket))
    status, headers, data = _fetch(r.headers["Location"])
    assert headers["Content-Disposition"] == f'attachment; filename="clip_{video_id}.m4a"'
    out = tmp_path / "clip.m4a"
    out.write_bytes(data)
    assert [s["codec_type"] for s in ffprobe(str(out))["streams"]] == ["audio"]


def test_an_upload_is_encoded_from_the_bucket(s3_app, bucket, auth_factory, tmp_path):
    """The upload goes to the bucket (a worker elsewhere can fetch it), the encode reads it
    from there and stores its output there; the disk keeps nothing."""
    app = s3_app(DOWNLOAD_WAIT_SECONDS=120, S3_KEY_PREFIX="ytd/")
    client = app.test_client()
    user = auth_factory(client).user()
    r = client.post("/api/encode/upload", headers=user["headers"], data={
        "video": (io.BytesIO(open(CLIP, "rb").read()), "my clip.mp4")},
        content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    encode_id = r.json["encode_id"]
    folder = _doc(app, encode_id)["folder"]
    assert _keys(bucket) == [f"ytd/uploads/{folder}/source.mp4"]
    assert _files(app.config["UPLOADS_DIR"]) == []
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 200, r.json
    output = f"ytd/uploads/{folder}/{_doc(app, encode_id)['job_id']}-encoded_h264_medium.mp4"
    assert _keys(bucket) == [output, f"ytd/uploads/{folder}/source.mp4"]
    assert _files(app.config["UPLOADS_DIR"]) == []  # neither the copy of the source nor output
    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 302
    status, headers, data = _fetch(r.headers["Location"])
    assert headers["Content-Disposition"] == 'attachment; filename="my_clip_h264_medium.mp4"'
    out = tmp_path / "encoded.mp4"
    out.write_bytes(data)
    [video] = [s for s in ffprobe(str(out))["streams"] if s["codec_type"] == "video"]
    assert video["codec_name"] == "h264" and video["height"] == 720
    # expiry deletes the objects, and the record stays as the spec's deviation says
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(encode_id)}, {"$set": {
        "expires_at": datetime.now(timezone.utc) - timedelta(minutes=1)}})
    with app.app_context():
        removed = cleanup_service.expire_due()
    assert sorted(r for r in removed if r.startswith("s3://")) == [f"s3://{bucket[0]}/{output}",
                               f"s3://{bucket[0]}/ytd/uploads/{folder}/source.mp4"]
    assert _keys(bucket) == []
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 410 and r.json["code"] == "UPLOAD_EXPIRED"


def test_cleanup_expires_clip_objects_and_sweeps_only_orphans(s3_app, bucket, auth_factory,
                                                              source_server, tmp_path):
    app = s3_app()
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    assert auth.download(user, video_id).status_code == 302
    name, s3 = bucket
    kept = _keys(bucket)
    folder = _doc(app, video_id)["folder"]
    # an object of a job that died between upload and record, one no record owns, and one
    # outside our key layout (not ours: never touched)
    s3.put_object(Bucket=name, Key=f"downloads/{folder}/deadjob.mp4", Body=b"partial")
    s3.put_object(Bucket=name, Key=f"downloads/{'0' * 32}/x.mp4", Body=b"orphan")
    s3.put_object(Bucket=name, Key="someone-else/notes.txt", Body=b"keep")
    s3.create_multipart_upload(Bucket=name, Key=f"downloads/{folder}/killed.mp4")
    with app.app_context():
        assert cleanup_service.sweep_objects() == []  # younger than ORPHAN_MAX_AGE_MINUTES
        later = datetime.now(timezone.utc) + timedelta(days=1)
        swept = cleanup_service.sweep_objects(now=later)
    assert sorted(swept) == [f"s3://{name}/downloads/{'0' * 32}/x.mp4",
                             f"s3://{name}/downloads/{folder}/deadjob.mp4"]
    assert _keys(bucket) == sorted([*kept, "someone-else/notes.txt"])
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "expires_at": datetime.now(timezone.utc) - timedelta(minutes=1)}})
    with app.app_context():
        assert sorted(cleanup_service.expire_due()) == [f"s3://{name}/{k}" for k in kept]
    assert _keys(bucket) == ["someone-else/notes.txt"]
    body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert body["status"] == "expired" and body["file_available"] is False
    assert auth.download(user, video_id).status_code == 302  # downloads again: a new object


def test_a_bucket_that_is_down_fails_the_job_with_a_code(make_app, auth_factory,
                                                         source_server, tmp_path):
    """Nothing listens on the endpoint: the clip ends failed STORAGE_UNAVAILABLE (never stuck
    processing, no scratch file left), an upload is refused 503 with nothing kept, and the
    health check says why."""
    app = make_app(STORAGE_BACKEND="s3", S3_BUCKET="clips-down",
                   S3_ENDPOINT_URL="http://127.0.0.1:9", S3_ADDRESSING_STYLE="path",
                   S3_ACCESS_KEY_ID="k", S3_SECRET_ACCESS_KEY="s",
                   DOWNLOAD_WAIT_SECONDS=60)  # one request waits for the job's end
    app.extensions["yt"]["bucket"]._client = boto3.client(  # one attempt, not five: faster
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}), **KEYS)
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 500 and r.json["code"] == "STORAGE_UNAVAILABLE"
    body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert body["status"] == "failed" and body["error_code"] == "STORAGE_UNAVAILABLE"
    assert _files(app.config["DOWNLOADS_DIR"]) == []
    r = client.post("/api/encode/upload", headers=user["headers"], data={
        "video": (io.BytesIO(open(CLIP, "rb").read()), "a.mp4")},
        content_type="multipart/form-data")
    assert r.status_code == 503 and r.json["code"] == "STORAGE_UNAVAILABLE"
    assert _files(app.config["UPLOADS_DIR"]) == []
    assert app.extensions["yt"]["db"].videos.count_documents({"source_type": "upload"}) == 0
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json["status"] == "degraded"
    assert health.json["checks"]["storage"]["ok"] is False
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "storage" in ready.json["failing"]


def test_storage_settings_are_checked(make_app):
    with pytest.raises(ConfigError, match="S3_BUCKET"):
        make_app(STORAGE_BACKEND="s3")
    with pytest.raises(ConfigError, match="STORAGE_BACKEND"):
        make_app(STORAGE_BACKEND="ftp")
    with pytest.raises(ConfigError, match="S3_DOWNLOAD_MODE"):
        make_app(STORAGE_BACKEND="s3", S3_BUCKET="b-1", S3_DOWNLOAD_MODE="stream")
    with pytest.raises(ConfigError, match="S3_KEY_PREFIX"):
        make_app(STORAGE_BACKEND="s3", S3_BUCKET="b-1", S3_KEY_PREFIX="../x/")


def test_health_names_the_bucket(s3_app, bucket):
    client = s3_app().test_client()
    assert client.get("/api/health").json["checks"]["storage"] == {
        "ok": True, "backend": "s3", "bucket": bucket[0]}
    assert client.get("/readyz").status_code == 200


def test_link_answers_the_presigned_url_and_the_page_policy_admits_the_bucket(
        s3_app, s3_server, auth_factory, source_server, tmp_path):
    app = s3_app()
    client, auth, user, video_id = _clip(app, auth_factory, source_server, tmp_path)
    assert auth.download(user, video_id).status_code == 302
    r = client.post(f"/api/video/download/{video_id}?link=true", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.json["url"].startswith(f"{s3_server}/") and r.json["expires_at"].endswith("Z")
    status, headers, data = _fetch(r.json["url"])
    assert data[4:8] == b"ftyp"
    policy = client.get("/").headers["Content-Security-Policy"]
    assert f"img-src 'self' data: blob: https://*.ytimg.com {s3_server}" in policy
    assert f"media-src 'self' blob: {s3_server}" in policy
    assert "connect-src 'self';" in policy  # scripts still talk to this origin only
    proxied = s3_app(S3_DOWNLOAD_MODE="proxy").test_client()
    assert s3_server not in proxied.get("/").headers["Content-Security-Policy"]


@needs_browser
def test_the_dashboard_shows_plays_and_downloads_a_clip_from_the_bucket(
        driver, s3_app, auth_factory, source_server, tmp_path):
    """In a real browser: the thumbnail and the player follow their redirects to presigned
    URLs (the page's policy admits the bucket), Download saves the file the bucket serves under
    its own name, and the console stays free of errors."""
    app = s3_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    downloads = tmp_path / "browser-downloads"
    downloads.mkdir()
    try:
        page = dashboard.Page(driver, base, downloads)
        user = page.register(dashboard.email())
        video_id = save_clip(base, user, source_server.mp4_url, 40, 44, "from the bucket")
        card = f'#clips-list li.clip[data-id="{video_id}"]'
        page.el("#clips-refresh").click()
        page.visible(f"{card} button[data-role=download]").click()
        path = page.wait_download(f"video_{video_id}.mp4", timeout=90)
        assert abs(float(ffprobe(str(path))["format"]["duration"]) - 4) < 0.6
        page.el("#clips-refresh").click()
        page.wait(lambda: page.el(card).get_attribute("data-status") == "completed", 20,
                  "completed")
        picture = page.visible(f"{card} img[data-role=thumbnail]")
        page.wait(lambda: page.drv.execute_script(
            "return arguments[0].complete && arguments[0].naturalHeight", picture) == 360, 20,
            "the thumbnail decoded from the bucket")
        page.el(f"{card} button[data-role=play]").click()
        video = page.visible(f"{card} video[data-role=player]")
        page.wait(lambda: page.drv.execute_script(
            "return arguments[0].readyState >= 1 && arguments[0].duration", video), 30,
            "the player read the clip from the bucket")
        assert page.console_errors() == []
    finally:
        driver.execute_script("sessionStorage.clear()")
        server.shutdown()
