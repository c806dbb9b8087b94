"""Bench-only app factories for gunicorn (``bench.app:service()``, ``bench.app:bare()``).

The service has no MongoDB server here (none can be installed), so it runs on mongomock, which
lives inside one process. Under gunicorn with 2 workers a user registered through one worker
would be unknown to the other. Benchmarks therefore prepare their data once in the driver
process (through the real API, on an app built with the same settings), dump the collections
with :func:`dump`, and every worker loads that dump at start (``BENCH_SEED``). Redis is the real
shared server (``REDIS_URI``), as in production. The service itself is unchanged.

``BENCH_SEGMENT_CONNECTIONS=0`` turns off the ranged fetch (``segment.CONNECTIONS``), so the
clip benchmark can show the previous behaviour (ffmpeg reading the URLs) in the same run.
"""
from __future__ import annotations

import os

from bson import json_util
from flask import Flask

COLLECTIONS = ("users", "sessions", "videos")


def service():
    """The real app (``src.app.create_app``), plus the seeded documents of ``BENCH_SEED``."""
    from src.app import create_app
    from src.media import segment

    if os.environ.get("BENCH_SEGMENT_CONNECTIONS"):
        segment.CONNECTIONS = int(os.environ["BENCH_SEGMENT_CONNECTIONS"])
    app = create_app()
    if os.environ.get("BENCH_SEED"):
        load(app, os.environ["BENCH_SEED"])
    return app


def bare():
    """A bare Flask app with one JSON endpoint of the same size as a clip status."""
    app = Flask(__name__)
    body = {"video_id": "0" * 24, "status": "completed", "file_available": True,
            "file_size_mb": 2.2, "progress": None, "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:30:00Z", "error": None}

    @app.get("/status")
    def status():
        return body

    return app


def dump(app, path: str) -> None:
    """Write the app's seeded collections to ``path`` (MongoDB extended JSON)."""
    db = app.extensions["yt"]["db"]
    data = {name: list(db[name].find()) for name in COLLECTIONS}
    with open(path, "w") as fh:
        fh.write(json_util.dumps(data))


def load(app, path: str) -> None:
    """Insert the documents of a :func:`dump` into this process's database."""
    db = app.extensions["yt"]["db"]
    with open(path) as fh:
        data = json_util.loads(fh.read())
    for name, docs in data.items():
        if docs:
            db[name].insert_many(docs)


def prepare(settings: dict, path: str, clip_url: str | None = None,
            completed_file: str | None = None) -> dict:
    """Create the benchmark's data through the API of a driver-side app built with
    ``settings`` (the workers' environment), then :func:`dump` it to ``path``.

    Registers and logs in a user; with ``clip_url`` also saves a clip of it (300-330 s), and with
    ``completed_file`` marks that clip completed with that file (mp4, 720p). Returns
    ``{"token": private token, "public": public token, "user_id", "video_id" or None}``.
    """
    from datetime import datetime, timedelta, timezone

    from src.app import create_app

    app = create_app(dict(settings))
    client = app.test_client()
    email, password = "bench@example.com", "correct horse 1"
    assert client.post("/api/auth/register", json={"email": email, "password": password}
                       ).status_code == 201
    login = client.post("/api/auth/login", json={"email": email, "password": password}).json
    public = client.get("/api/auth/token/public",
                        headers={"Authorization": f"Bearer {login['token']}"}).json["token"]
    out = {"token": login["token"], "public": public, "user_id": login["user"]["id"],
           "video_id": None}
    if clip_url:
        r = client.post("/api/video/save", headers={"Authorization": f"Bearer {public}"},
                        json={"url": clip_url, "start_time": 300, "end_time": 330,
                              "user_id": out["user_id"]})
        assert r.status_code == 201, r.json
        out["video_id"] = r.json["video_id"]
    if completed_file:
        from bson import ObjectId

        now = datetime.now(timezone.utc)
        videos = app.extensions["yt"]["db"]["videos"]
        videos.update_one({"_id": ObjectId(out["video_id"])}, {"$set": {
            "status": "completed", "file_path": completed_file, "file_format": "mp4",
            "format_preference": "mp4", "resolution_preference": "720p",
            "file_format_preference": "mp4", "file_resolution_preference": "720p",
            "file_size_bytes": os.path.getsize(completed_file), "completed_at": now,
            "expires_at": now + timedelta(hours=1)}})
    dump(app, path)
    app.extensions["yt"]["jobs"].shutdown(wait=True)
    return out
