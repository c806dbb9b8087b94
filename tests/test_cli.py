"""The operator commands (``flask --app src.app …``, src/cli.py) and the probes (``/livez``,
``/readyz``), through Flask's CLI runner and the test client: what an operator sees."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import redis as redis_lib
from bson import ObjectId


def _run(app, *args, input=None):
    result = app.test_cli_runner().invoke(args=list(args), input=input)
    return result, (json.loads(result.stdout.strip().splitlines()[-1])
                    if result.exit_code == 0 else None)


def test_create_user_then_login(app, client):
    result, body = _run(app, "create-user", "Streamer@Example.com", "--password", "long enough 1")
    assert result.exit_code == 0, result.output
    assert body["email"] == "streamer@example.com" and ObjectId.is_valid(body["user_id"])
    r = client.post("/api/auth/login", json={"email": "streamer@example.com",
                                             "password": "long enough 1"})
    assert r.status_code == 200 and r.json["user"]["id"] == body["user_id"]
    # the password may come from the prompt (asked twice)
    result, body = _run(app, "create-user", "other@example.com", input="secret pass\nsecret pass\n")
    assert result.exit_code == 0 and body["email"] == "other@example.com"


def test_create_user_refusals(app):
    assert _run(app, "create-user", "taken@example.com", "--password", "long enough 1")[0] \
        .exit_code == 0
    result, _ = _run(app, "create-user", "taken@example.com", "--password", "long enough 1")
    assert result.exit_code == 1 and "already registered" in result.output
    result, _ = _run(app, "create-user", "short@example.com", "--password", "short")
    assert result.exit_code == 1 and "password" in result.output
    result, _ = _run(app, "create-user", "not-an-email", "--password", "long enough 1")
    assert result.exit_code == 1 and "email" in result.output
    assert app.extensions["yt"]["db"].users.count_documents({}) == 1


def test_revoke_sessions_logs_out_everywhere(app, client, auth):
    user = auth.user()
    other = auth.user()
    public = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    assert client.get("/api/auth/me", headers=user["headers"]).status_code == 200
    result, body = _run(app, "revoke-sessions", user["email"])
    assert result.exit_code == 0, result.output
    assert body == {"user_id": user["id"], "sessions": 1, "public_tokens": 1}
    assert client.get("/api/auth/me", headers=user["headers"]).status_code == 401
    r = client.post("/api/video/save", headers={"Authorization": f"Bearer {public}"},
                    json={"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "start_time": 1,
                          "end_time": 5})
    assert r.status_code == 401
    assert client.get("/api/auth/me", headers=other["headers"]).status_code == 200
    result, _ = _run(app, "revoke-sessions", "nobody@example.com")
    assert result.exit_code == 1 and "no user" in result.output


def test_reap_and_cleanup(app):
    db = app.extensions["yt"]["db"]
    long_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    video_id = db.videos.insert_one({
        "user_id": ObjectId(), "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "source_type": "youtube", "status": "processing", "job_id": "dead-job",
        "claimed_at": long_ago, "created_at": long_ago, "start_time": 1, "end_time": 5,
        "format_preference": "mp4", "resolution_preference": "720p"}).inserted_id
    result, body = _run(app, "reap")
    assert result.exit_code == 0 and body == {"recovered": 1}, result.output
    doc = db.videos.find_one({"_id": video_id})
    assert doc["status"] == "failed" and doc["error_code"] == "JOB_INTERRUPTED"
    result, body = _run(app, "cleanup")
    assert result.exit_code == 0 and set(body) == {"recovered", "expired", "swept", "seconds"}
    assert body["recovered"] == 0


def test_ensure_indexes_sweep_live_and_ytdlp(app):
    result, body = _run(app, "ensure-indexes")
    assert result.exit_code == 0 and {"users", "sessions", "videos"} <= set(body["collections"])
    # the warning says when a command used a database of its own (the embedded store)
    embedded = not app.config.get("MONGODB_URI")
    assert ("warning: MONGODB_URI is not set" in result.stderr) == embedded
    result, body = _run(app, "sweep-live")
    assert result.exit_code == 0 and body == {"checked": 0}
    from yt_dlp.version import __version__

    result, body = _run(app, "ytdlp")
    assert result.exit_code == 0 and body["yt_dlp"] == __version__
    # the same as `ytdlp version`, which also names the JS runtime and the EJS scripts
    result, version = _run(app, "ytdlp", "version")
    assert result.exit_code == 0 and version == body
    import yt_dlp_ejs

    assert body["js_runtime"]["name"] == "deno" and body["ejs"] == yt_dlp_ejs.version
    result = app.test_cli_runner().invoke(args=["ytdlp", "--help"])
    assert result.exit_code == 0 and {"version", "update"} <= set(result.output.split())


@pytest.mark.slow
def test_flask_command_line_lists_the_commands(tmp_path):
    """The real ``flask --app src.app`` entry point finds the factory and the commands."""
    env = {**os.environ, "APP_ENV": "development", "DOWNLOADS_DIR": str(tmp_path / "d"),
           "UPLOADS_DIR": str(tmp_path / "u"), "LOG_FILE": str(tmp_path / "app.log")}
    out = subprocess.run([sys.executable, "-m", "flask", "--app", "src.app", "--help"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in ("create-user", "cleanup", "reap", "revoke-sessions", "ensure-indexes",
                 "sweep-live", "ytdlp", "set-role"):
        assert name in out.stdout


@pytest.mark.slow
def test_probes(make_app):
    app = make_app()
    client = app.test_client()
    r = client.get("/livez")
    assert r.status_code == 200 and r.json == {"status": "alive"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["status"] == "ready" and r.json["failing"] == []
    assert set(r.json["checks"]) == {"mongodb", "redis", "ffmpeg", "disk", "storage",
                                    "yt_dlp"}
    # Redis down: not ready (503 naming it), but still alive
    healthy_redis = app.extensions["yt"]["redis"]
    app.extensions["yt"]["redis"] = redis_lib.Redis(port=1, socket_connect_timeout=0.2)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["redis"]
    assert client.get("/livez").status_code == 200
    app.extensions["yt"]["redis"] = healthy_redis
    # a disk below MIN_FREE_DISK_MB
    full = make_app(MIN_FREE_DISK_MB=10 ** 12)
    r = full.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["disk"]
