"""Two machines that share no folder (issue 15, items 2 and 3): the API (this process's test
client) and a ``celery worker`` subprocess each have their own ``DOWNLOADS_DIR`` and
``UPLOADS_DIR``; only the bucket (moto's S3 API server on loopback, started here), the store
(scripts/mongo_wire.py, a TEST DOUBLE) and the real Redis join them. A clip the worker makes is
handed out by the API from the bucket, an upload the API received is encoded by the worker from
the bucket, and at the end every object is named by a record and neither side keeps a file."""
from __future__ import annotations

import io
import os
import time
import urllib.request
import uuid

import boto3
import pytest
import redis as redis_lib
from botocore.config import Config

from scripts.mongo_wire import MongoWireServer
from src.app import create_app
from src.media.ffmpeg import ffprobe
from src.services import storage
from tests.conftest import RUN_ID, RUN_KEY, RUN_KEY_SECONDS, Auth
from tests.test_celery_jobs import BODY, Worker, _wait_end

pytestmark = pytest.mark.slow
CLIP = os.path.join(os.path.dirname(__file__), "media", "big_buck_bunny_720p_5s.mp4")


def _files(folder) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


@pytest.fixture(scope="module")
def machines(source_server, tmp_path_factory, redis_uri):
    """``{"app", "worker", "s3", "bucket", "worker_dirs"}``."""
    if not redis_uri:
        pytest.skip("needs a Redis server (broker, heartbeats, locks)")
    from moto.server import ThreadedMotoServer

    client = redis_lib.Redis.from_url(redis_uri, decode_responses=True, socket_timeout=5)
    client.flushdb()
    client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)
    base = tmp_path_factory.mktemp("two-machines")
    s3_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3_server.start()
    host, port = s3_server.get_host_and_port()
    endpoint, bucket = f"http://{host}:{port}", f"clips-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="k", aws_secret_access_key="s",
                      config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=bucket)
    worker, app = None, None
    with MongoWireServer() as wire:
        settings = {
            "APP_ENV": "development", "MONGODB_URI": f"{wire.uri}/ytd_two",
            "REDIS_URI": redis_uri, "JOB_BACKEND": "celery", "CELERY_BROKER_URL": redis_uri,
            "JWT_PUBLIC_SECRET": "two-public-secret-" + "x" * 20,
            "JWT_PRIVATE_SECRET": "two-private-secret-" + "y" * 20,
            "FLASK_SECRET_KEY": "two-flask-secret", "BCRYPT_ROUNDS": "4",
            "ALLOWED_SOURCE_HOSTS": "127.0.0.1:*", "DOWNLOAD_WAIT_SECONDS": "0",
            "RATE_LIMIT_ENABLED": "false", "MAX_JOBS_PER_USER": "0", "MIN_FREE_DISK_MB": "10",
            "RATE_LIMIT_KEY_PREFIX": f"ytd-two-{uuid.uuid4().hex[:8]}",
            "STORAGE_BACKEND": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": endpoint,
            "S3_ADDRESSING_STYLE": "path", "S3_ACCESS_KEY_ID": "k",
            "S3_SECRET_ACCESS_KEY": "s"}
        worker_dirs = {"DOWNLOADS_DIR": str(base / "worker" / "downloads"),
                       "UPLOADS_DIR": str(base / "worker" / "uploads")}
        try:
            worker = Worker("w1", {**os.environ, **settings, **worker_dirs,
                                   "LOG_FILE": str(base / "worker.app.log")},
                            base / "worker.log")
            app = create_app({**settings, "TESTING": True, "LOG_FILE": str(base / "api.log"),
                              "DOWNLOADS_DIR": str(base / "api" / "downloads"),
                              "UPLOADS_DIR": str(base / "api" / "uploads")})
            worker.wait_ready()
            yield {"app": app, "worker": worker, "s3": s3, "bucket": bucket,
                   "worker_dirs": worker_dirs}
        finally:
            if worker is not None:
                worker.stop()
            if app is not None:
                app.extensions["yt"]["scheduler"].shutdown(wait=False)
                app.extensions["yt"]["jobs"].shutdown(wait=False)
            s3_server.stop()
            client.flushdb()
            client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)


def _keys(machines) -> list[str]:
    listed = machines["s3"].list_objects_v2(Bucket=machines["bucket"]).get("Contents", ())
    return sorted(item["Key"] for item in listed)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read()


def test_a_clip_and_an_encode_cross_machines_through_the_bucket(machines, source_server,
                                                                tmp_path):
    app = machines["app"]
    client = app.test_client()
    auth = Auth(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 60, 66)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=BODY)
    assert r.status_code == 202, r.json
    assert _wait_end(client, user, video_id)["status"] == "completed"
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=BODY)
    assert r.status_code == 302
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(_get(r.headers["Location"]))
    assert abs(float(ffprobe(str(clip))["format"]["duration"]) - 6) <= 1

    r = client.post("/api/encode/upload", headers=user["headers"], data={
        "video": (io.BytesIO(open(CLIP, "rb").read()), "mine.mp4")},
        content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    encode_id = r.json["encode_id"]
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code in (200, 202), r.json
    body = _wait_encode(client, user, encode_id)
    assert body["status"] == "completed", body
    r = client.post(f"/api/encode/download/{encode_id}?link=true", headers=user["headers"])
    assert r.status_code == 200
    encoded = tmp_path / "encoded.mp4"
    encoded.write_bytes(_get(r.json["url"]))
    [video] = [s for s in ffprobe(str(encoded))["streams"] if s["codec_type"] == "video"]
    assert video["codec_name"] == "h264"

    # every object is a record's file; neither machine keeps a copy
    videos = app.extensions["yt"]["db"].videos
    named = {ref for doc in videos.find({}) for ref in storage.files_of(doc)}
    assert {f"s3://{machines['bucket']}/{key}" for key in _keys(machines)} == named
    assert len(named) == 4  # clip, its thumbnail, the upload, its encode
    for folder in (*machines["worker_dirs"].values(), app.config["DOWNLOADS_DIR"],
                   app.config["UPLOADS_DIR"]):
        assert _files(folder) == [], folder


def _wait_encode(client, user, encode_id, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/encode/status/{encode_id}", headers=user["headers"]).json
        if body["status"] not in ("processing", "pending") or time.monotonic() > deadline:
            return body
        time.sleep(0.3)
