"""Production refusals, gunicorn's refusal of embedded stores with several workers, request ids in
logs and headers, job lines with durations, GET /api/health, the 507 disk guard,
X-Accel-Redirect."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis as redis_lib

from src.app import create_app
from src.config import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = {"APP_ENV": "production", "MONGODB_URI": "mongodb://127.0.0.1:1/ytd",
        "REDIS_URI": "redis://127.0.0.1:6379/15",
        "JWT_PUBLIC_SECRET": "Zq3v" * 11, "JWT_PRIVATE_SECRET": "Wm8k" * 11,
        "FLASK_SECRET_KEY": "c0ffee42" * 8, "CORS_ORIGINS": "https://app.example.org",
        "CORS_SUPPORTS_CREDENTIALS": True,
        "COOKIES_ENCRYPTION_KEY": "x3Iu5hA3m0W2YxJkH9p0bq3GQ7kzL1sV4nR8cT6eF2c="}


def _refusal(tmp_path, **bad) -> str:
    config = {**GOOD, "DOWNLOADS_DIR": str(tmp_path / "d"), "UPLOADS_DIR": str(tmp_path / "u"),
              "LOG_FILE": "", **bad}
    with pytest.raises(ConfigError) as info:
        create_app(config)
    return str(info.value)


@pytest.mark.parametrize("bad, variable", [
    ({"MONGODB_URI": None}, "MONGODB_URI"),
    ({"REDIS_URI": None}, "REDIS_URI"),
    ({"JWT_PUBLIC_SECRET": None}, "JWT_PUBLIC_SECRET"),
    ({"JWT_PRIVATE_SECRET": "short"}, "JWT_PRIVATE_SECRET"),
    ({"FLASK_SECRET_KEY": "your-flask-secret-here-" + "a" * 20}, "FLASK_SECRET_KEY"),
    ({"JWT_PRIVATE_SECRET": "Zq3v" * 11}, "JWT_PRIVATE_SECRET"),
    ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
])
def test_production_refuses_each_bad_setting(tmp_path, bad, variable):
    message = _refusal(tmp_path, **bad)
    assert message.startswith("APP_ENV=production refuses to start") and variable in message
    assert message.count(";") == 0          # one problem, one message


def test_production_check_passes_good_settings_and_development_is_lenient(tmp_path):
    from src.config import load_config
    from src.config_checks import check_settings

    check_settings(load_config(GOOD))                       # no exception
    check_settings(load_config({**GOOD, "APP_ENV": "development", "MONGODB_URI": None,
                                "CORS_ORIGINS": "*"}))
    assert "CORS_ORIGINS" not in _refusal(tmp_path, CORS_ORIGINS="*",
                                          CORS_SUPPORTS_CREDENTIALS=False, MONGODB_URI=None)


def test_gunicorn_refuses_embedded_store_with_two_workers(tmp_path):
    """The real gunicorn master stops before any worker starts, naming the variable."""
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "REDIS_URI")}
    env.update(GUNICORN_WORKERS="2", GUNICORN_BIND="127.0.0.1:0", LOG_FILE=str(tmp_path / "a.log"),
               APP_ENV="development")
    out = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "gunicorn_config.py",
                          "src.app:create_app()"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert "Error: MONGODB_URI is not set" in out.stderr and "GUNICORN_WORKERS=1" in out.stderr
    assert "Booting worker" not in (tmp_path / "gunicorn.log").read_text()


def test_request_id_in_header_and_log_lines(make_app, tmp_path):
    app = make_app(LOG_FILE=str(tmp_path / "logs" / "app.log"))
    client = app.test_client()
    r = client.get("/api/video/status/" + "a" * 24)          # even an error answer has one
    rid = r.headers["X-Request-ID"]
    assert len(rid) == 32
    r = client.get("/api/health", headers={"X-Request-ID": "nginx-abc.123"})
    assert r.headers["X-Request-ID"] == "nginx-abc.123"
    r = client.get("/api/health", headers={"X-Request-ID": "bad id <script>" + "x" * 80})
    assert len(r.headers["X-Request-ID"]) == 32                # replaced, not echoed
    import logging

    with app.test_request_context("/x", headers={"X-Request-ID": "req-42"}):
        app.preprocess_request()
        logging.getLogger("src.test").warning("inside a request")
    text = (tmp_path / "logs" / "app.log").read_text()
    assert "WARNING [req-42] src.test: inside a request" in text


def test_job_lines_carry_request_id_and_durations(make_app, auth_factory, source_server, tmp_path):
    app = make_app(DOWNLOAD_WAIT_SECONDS=60, LOG_FILE=str(tmp_path / "app.log"))
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 0, 3)
    r = client.post(f"/api/video/download/{video_id}",
                    headers={**user["headers"], "X-Request-ID": "dl-1"})
    assert r.status_code == 200
    app.extensions["yt"]["jobs"].shutdown(wait=True)
    lines = [ln for ln in (tmp_path / "app.log").read_text().splitlines() if "[dl-1]" in ln]
    assert any("started after" in ln and "in the queue" in ln for ln in lines), lines
    assert any(f"for video {video_id} ended (completed) after" in ln for ln in lines), lines


@pytest.mark.slow
def test_health_ok_and_503_when_a_dependency_is_down(app, client):
    r = client.get("/api/health")
    assert r.status_code == 200, r.json
    body = r.json
    assert body["status"] == "ok"
    assert {"mongodb", "redis", "ffmpeg", "disk", "jobs"} <= set(body["checks"])
    assert body["checks"]["disk"]["free_mb"]["downloads_dir"] > 0
    assert body["checks"]["jobs"]["running"] == 0 and body["checks"]["jobs"]["queued"] == 0

    app.extensions["yt"]["redis"] = redis_lib.Redis(port=1, socket_connect_timeout=0.2)
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json["status"] == "unavailable"
    assert r.json["checks"]["redis"]["ok"] is False and r.json["checks"]["redis"]["error"]
    assert r.json["checks"]["mongodb"]["ok"] is True


def test_mongodb_down_is_503(app, client):
    import pymongo

    app.extensions["yt"]["db"] = pymongo.MongoClient("mongodb://127.0.0.1:1",
                                                     serverSelectionTimeoutMS=200)["x"]
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json["checks"]["mongodb"]["ok"] is False


def test_low_disk_refuses_new_jobs_with_507(make_app, auth_factory, source_server):
    app = make_app(MIN_FREE_DISK_MB=10 ** 12)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 0, 3)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 507 and r.json == {
        "error": "The server is low on disk space; try again later",
        "code": "INSUFFICIENT_STORAGE"}
    assert app.extensions["yt"]["db"].videos.find_one()["status"] == "pending"  # not claimed
    import io
    r = client.post("/api/encode/upload", headers=user["headers"],
                    data={"video": (io.BytesIO(b"x" * 100), "a.mp4")},
                    content_type="multipart/form-data")
    assert r.status_code == 507
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json["status"] == "degraded"
    assert health.json["checks"]["disk"]["ok"] is False


def test_x_accel_redirect_hands_the_file_to_nginx(make_app, auth_factory, source_server):
    app = make_app(DOWNLOAD_WAIT_SECONDS=60, USE_X_ACCEL_REDIRECT=True)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 0, 3)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.data == b"" and r.mimetype == "video/mp4"
    doc = app.extensions["yt"]["db"].videos.find_one()
    path = doc["file_path"]
    assert doc["folder"] != video_id and path == os.path.join(  # the folder's name is random
        app.config["DOWNLOADS_DIR"], doc["folder"], os.path.basename(path))
    assert r.headers["X-Accel-Redirect"] == \
        f"/_protected/downloads/{doc['folder']}/{os.path.basename(path)}"
    assert r.headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.mp4"'
    assert os.stat(path).st_mode & 0o044 == 0o044          # nginx's user can read it
