"""Crash recovery: a real kill -9 of a job's ffmpeg, a store left with dead ``processing`` jobs
recovered at start-up (several workers at once), and — with a MongoDB server that outlives the
app (``MONGODB_TEST_URI``: a real MongoDB, or the mongomock-backed wire server of
scripts/mongo_wire.py, as .ci/run starts it) — a real process killed mid-download and a real
restart."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from src import stores
from src.services import recovery_service

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONG_AGO = timedelta(minutes=10)


def _ffmpeg_children(folder: str) -> list[int]:
    """Pids of ffmpeg processes started by this process that write into ``folder`` (/proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and cmd and cmd[0].endswith(b"ffmpeg") \
                and any(folder.encode() in part for part in cmd):
            found.append(int(pid))
    return found


def test_kill_9_of_ffmpeg_mid_download_fails_the_job_cleanly(make_app, auth_factory,
                                                              clean_source_server):
    server = clean_source_server
    server.ranges = False                 # ffmpeg reads the source itself...
    server.rate_bytes_per_sec = 400_000   # ...slowly, so it is killed mid-way
    app = make_app()
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, server.mp4_url, 200, 230)
    assert client.post(f"/api/video/download/{video_id}", headers=user["headers"]).status_code \
        == 202
    folder = os.path.join(app.config["DOWNLOADS_DIR"],  # random, stored when the job is claimed
                          app.extensions["yt"]["db"].videos.find_one()["folder"])
    deadline, pids = time.monotonic() + 60, []
    while time.monotonic() < deadline and not pids:
        pids = _ffmpeg_children(folder)
        time.sleep(0.1)
    assert pids, "ffmpeg never started"
    time.sleep(1.0)
    assert any(name.endswith(".part") for name in os.listdir(folder))  # a partial file exists
    os.kill(pids[0], signal.SIGKILL)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
        if body["status"] != "processing":
            break
        time.sleep(0.1)
    assert body["status"] == "failed", body
    assert body["error_code"] == "FFMPEG_FAILED"
    assert "killed (signal 9)" in body["error_message"] and "again" in body["error_message"]
    assert not os.path.exists(folder) or os.listdir(folder) == []


def _stale_store(app):
    """A store as a killed server leaves it: two dead jobs (a clip, an encode) with partial
    files, a dead clip made before random folder names (its folder named after its id), a live
    job (heartbeat) and one claimed a moment ago (grace period). Returns ``(ids, folders)``."""
    db = app.extensions["yt"]["db"]
    downloads, uploads = app.config["DOWNLOADS_DIR"], app.config["UPLOADS_DIR"]
    old = datetime.now(timezone.utc) - LONG_AGO
    ids = {name: ObjectId() for name in ("dead_clip", "legacy_clip", "dead_encode", "live_clip",
                                         "new_clip")}
    folders = {name: os.urandom(16).hex() for name in ids}
    folders["legacy_clip"] = str(ids["legacy_clip"])
    for name in ("dead_clip", "legacy_clip", "live_clip", "new_clip"):
        os.makedirs(os.path.join(downloads, folders[name]))
        open(os.path.join(downloads, folders[name], f".{name}.mp4.x.part"), "wb").write(b"x")
        db.videos.insert_one({"_id": ids[name], "user_id": ObjectId(), "source_type": "url",
                              "status": "processing", "job_id": f"job-{name}",
                              "job_claimed_at": datetime.now(timezone.utc) if name == "new_clip"
                              else old,
                              **({} if name == "legacy_clip" else {"folder": folders[name]})})
    enc = os.path.join(uploads, folders["dead_encode"])
    os.makedirs(enc)
    open(os.path.join(enc, "source.mp4"), "wb").write(b"src")
    open(os.path.join(enc, "encoded_h264_high.mp4"), "wb").write(b"partial")
    db.videos.insert_one({"_id": ids["dead_encode"], "user_id": ObjectId(), "source_type": "upload",
                          "status": "processing", "job_id": "job-enc", "job_claimed_at": old,
                          "folder": folders["dead_encode"],
                          "input_file_path": os.path.join(enc, "source.mp4")})
    app.extensions["yt"]["redis"].set(f"heartbeat:{ids['live_clip']}", "job-live_clip", ex=30)
    return ids, folders


def test_startup_recovers_dead_jobs(make_app, monkeypatch):
    first = make_app()
    ids, folders = _stale_store(first)
    db = first.extensions["yt"]["db"]
    monkeypatch.setattr(stores, "make_mongo_db", lambda uri: db)   # the "restarted" server
    make_app(DOWNLOADS_DIR=first.config["DOWNLOADS_DIR"], UPLOADS_DIR=first.config["UPLOADS_DIR"])
    # (make_app flushed Redis, as a server restart after the heartbeats' TTL would have)
    dead = db.videos.find_one({"_id": ids["dead_clip"]})
    assert dead["status"] == "failed" and dead["error_code"] == "JOB_INTERRUPTED"
    assert "interrupted" in dead["error_message"]
    downloads = first.config["DOWNLOADS_DIR"]
    assert not os.path.exists(os.path.join(downloads, folders["dead_clip"]))
    assert db.videos.find_one({"_id": ids["legacy_clip"]})["error_code"] == "JOB_INTERRUPTED"
    assert not os.path.exists(os.path.join(downloads, folders["legacy_clip"]))
    assert os.listdir(os.path.join(downloads, folders["live_clip"]))  # alive: left alone
    enc = db.videos.find_one({"_id": ids["dead_encode"]})
    assert enc["status"] == "failed" and enc["error_code"] == "JOB_INTERRUPTED"
    assert os.listdir(os.path.join(first.config["UPLOADS_DIR"], folders["dead_encode"])) \
        == ["source.mp4"]                               # the upload stays, the partial goes
    assert db.videos.find_one({"_id": ids["new_clip"]})["status"] == "processing"  # grace


def test_live_heartbeat_is_not_recovered_and_workers_recover_once(make_app, caplog):
    apps = [make_app() for _ in range(4)]
    ids, _ = _stale_store(apps[0])
    for app in apps[1:]:
        app.extensions["yt"]["db"] = apps[0].extensions["yt"]["db"]
        app.config.update(DOWNLOADS_DIR=apps[0].config["DOWNLOADS_DIR"],
                          UPLOADS_DIR=apps[0].config["UPLOADS_DIR"])
    barrier = threading.Barrier(len(apps))
    counts, errors = [], []

    def worker(app):
        barrier.wait()
        try:
            with app.app_context():
                counts.append(recovery_service.recover_stale())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with caplog.at_level(logging.WARNING):
        threads = [threading.Thread(target=worker, args=(app,)) for app in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    marked = [r.getMessage() for r in caplog.records if "marked failed" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in marked) == sorted(
        [f"video {ids['dead_clip']}", f"video {ids['legacy_clip']}",
         f"encode {ids['dead_encode']}"])   # once each
    db = apps[0].extensions["yt"]["db"]
    assert db.videos.find_one({"_id": ids["live_clip"]})["status"] == "processing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json",
               **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.skipif(not os.environ.get("MONGODB_TEST_URI"), reason="needs MONGODB_TEST_URI")
def test_real_restart_with_a_mongodb_server(make_app, redis_uri, clean_source_server, tmp_path):
    """A real server process is killed (SIGKILL) mid-download; a new one started on the same
    MongoDB and Redis ends the job failed and removes its partial files.

    Only the app dies: the store at ``MONGODB_TEST_URI`` keeps running, so any server will do
    (``python -m scripts.mongo_wire --port 0`` prints a URI for one; .ci/run does this)."""
    if not redis_uri:
        pytest.skip("needs the real Redis server")
    server = clean_source_server
    server.ranges, server.rate_bytes_per_sec = False, 300_000
    mongo = os.environ["MONGODB_TEST_URI"].rstrip("/") + f"/ytd_restart_{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {**os.environ, "APP_ENV": "development", "MONGODB_URI": mongo, "REDIS_URI": redis_uri,
           "PORT": str(port), "DOWNLOADS_DIR": str(tmp_path / "downloads"),
           "UPLOADS_DIR": str(tmp_path / "uploads"), "LOG_FILE": str(tmp_path / "child.log"),
           "JWT_PUBLIC_SECRET": "p" * 40, "JWT_PRIVATE_SECRET": "q" * 40,
           "FLASK_SECRET_KEY": "f" * 40, "BCRYPT_ROUNDS": "4", "RATE_LIMIT_ENABLED": "false",
           "DOWNLOAD_WAIT_SECONDS": "0", "ALLOWED_SOURCE_HOSTS": "127.0.0.1:*"}
    child = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        _call(base, "POST", "/api/auth/register",
              {"email": "r@example.com", "password": "pw123456"})
        login = _call(base, "POST", "/api/auth/login",
                      {"email": "r@example.com", "password": "pw123456"})[1]
        token, user_id = login["token"], login["user"]["id"]
        public = _call(base, "GET", "/api/auth/token/public", None, token)[1]["token"]
        video_id = _call(base, "POST", "/api/video/save", {
            "url": server.mp4_url, "start_time": 200, "end_time": 230, "user_id": user_id},
            token=public)[1]["video_id"]
        assert _call(base, "POST", f"/api/video/download/{video_id}", {}, token)[0] == 202
        downloads = tmp_path / "downloads"   # the clip's one folder, named at random
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                any(f.iterdir()) for f in downloads.glob("*") if f.is_dir()):
            time.sleep(0.1)
        (folder,) = [f for f in downloads.iterdir() if f.is_dir()]
        assert any(folder.iterdir()) and folder.name != video_id
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    app = make_app(MONGODB_URI=mongo, DOWNLOADS_DIR=str(tmp_path / "downloads"),
                   UPLOADS_DIR=str(tmp_path / "uploads"))
    # make_app flushed Redis: the dead server's heartbeat is gone, as after its 30 s TTL.
    db = app.extensions["yt"]["db"]
    doc = db.videos.find_one({"_id": ObjectId(video_id)})
    if doc["status"] == "processing":   # claimed < 30 s ago: the delayed start-up pass
        time.sleep(36)
        doc = db.videos.find_one({"_id": ObjectId(video_id)})
    assert doc["status"] == "failed" and doc["error_code"] == "JOB_INTERRUPTED"
    assert not folder.exists() or not any(folder.iterdir())
    db.client.drop_database(db.name)
