"""Shared pytest fixtures: ``app``, ``client``, ``auth`` (account helpers), ``redis_uri``.
Media fixtures (the local HTTP source built from the real clip) live in tests/media_fixtures.py.

Redis: the real server when it answers, fakeredis otherwise: ``TEST_REDIS_URI`` when set, else
a database of redis://127.0.0.1:6379 that no other test run holds (:func:`_claim_redis_db`), so
two suites on one machine (or two pytest-xdist workers) never flush each other's keys.
MongoDB: mongomock, or a real server when ``MONGODB_TEST_URI`` is set.

No test reaches the network (tests/network_guard.py), and yt-dlp never contacts YouTube: an
extraction of a YouTube URL that no test registered with ``fake_youtube`` fails as it would
offline (:func:`_youtube_offline`).
"""
from __future__ import annotations

import os
import time
import urllib.parse
import uuid

import pytest
import redis as redis_lib
import yt_dlp
from pymongo.errors import PyMongoError
from yt_dlp.networking.exceptions import TransportError

from src.app import create_app
from src.services import nightbot_sender, notify_sender

pytest_plugins = ["tests.network_guard", "tests.media_fixtures", "tests.youtube_fakes"]

REDIS_SERVER = "redis://127.0.0.1:6379"
#: The key that marks a Redis database as held by a test run (its value: the run's id).
RUN_KEY = "ytd-test-run"
RUN_ID = uuid.uuid4().hex
RUN_KEY_SECONDS = 1800  # renewed by every app a test makes; a killed run's hold lapses


def _claim_redis_db() -> str | None:
    """``TEST_REDIS_URI`` when set; else the URI of the first database (15 down to 1) of the
    local Redis that no live test run holds, held by setting :data:`RUN_KEY` (NX, with an
    expiry); None when Redis does not answer (→ fakeredis)."""
    try:
        if os.environ.get("TEST_REDIS_URI"):
            uri = os.environ["TEST_REDIS_URI"]
            redis_lib.Redis.from_url(uri, socket_connect_timeout=1).ping()
            return uri
        for number in range(15, 0, -1):
            uri = f"{REDIS_SERVER}/{number}"
            held = redis_lib.Redis.from_url(uri, socket_connect_timeout=1).set(
                RUN_KEY, RUN_ID, nx=True, ex=RUN_KEY_SECONDS)
            if held:
                return uri
    except redis_lib.RedisError:
        return None
    raise RuntimeError("every Redis database 1-15 is held by another test run")


@pytest.fixture(scope="session")
def redis_uri():
    """The real Redis test database this run holds, else None (→ fakeredis)."""
    uri = _claim_redis_db()
    yield uri
    if uri and not os.environ.get("TEST_REDIS_URI"):
        client = redis_lib.Redis.from_url(uri)
        if client.get(RUN_KEY) == RUN_ID.encode():
            client.flushdb()


_YOUTUBE_HOSTS = ("youtube.com", "youtu.be", "youtube-nocookie.com")


@pytest.fixture(autouse=True)
def _youtube_offline(monkeypatch):
    """yt-dlp's extraction of a YouTube URL fails as on a machine without internet, unless a
    test registers the page with ``fake_youtube`` (which replaces this); other URLs (the local
    sources) are extracted by yt-dlp for real."""
    from tests.youtube_fakes import as_download_error  # a plugin: imported after rewriting

    real = yt_dlp.YoutubeDL.extract_info

    def extract_info(self, url, *args, **kwargs):
        host = (urllib.parse.urlsplit(str(url)).hostname or "").lower()
        if any(host == name or host.endswith("." + name) for name in _YOUTUBE_HOSTS):
            raise as_download_error(TransportError(f"[Errno 101] Network is unreachable: {url}"))
        return real(self, url, *args, **kwargs)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", extract_info)


@pytest.fixture
def make_app(tmp_path, redis_uri):
    """Factory for apps with test settings; ``make_app(**overrides)``. Each app gets empty
    stores."""
    apps = []

    def factory(**overrides):
        mongo_uri = os.environ.get("MONGODB_TEST_URI")
        if mongo_uri:
            mongo_uri = mongo_uri.rstrip("/") + f"/ytd_test_{uuid.uuid4().hex[:8]}"
        config = {
            "APP_ENV": "development", "MONGODB_URI": mongo_uri, "REDIS_URI": redis_uri,
            "JWT_PUBLIC_SECRET": "test-public-secret-" + "x" * 20,
            "JWT_PRIVATE_SECRET": "test-private-secret-" + "y" * 20,
            "FLASK_SECRET_KEY": "test-flask-secret", "BCRYPT_ROUNDS": 4,
            "DOWNLOADS_DIR": str(tmp_path / "downloads"), "UPLOADS_DIR": str(tmp_path / "uploads"),
            "ALLOWED_SOURCE_HOSTS": "youtube.com,www.youtube.com,m.youtube.com,"
                                    "music.youtube.com,youtu.be,127.0.0.1:*",
            "DOWNLOAD_WAIT_SECONDS": 0, "TESTING": True, "LOG_FILE": str(tmp_path / "app.log"),
            "RATE_LIMIT_ENABLED": False,  # tests/test_rate_limits.py turns them on
            "RATE_LIMIT_KEY_PREFIX": f"ytd-test-{uuid.uuid4().hex[:8]}", **overrides,
        }
        app = create_app(config)
        if redis_uri:
            store = app.extensions["yt"]["redis"]
            store.flushdb()
            store.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        nightbot_sender.sender(app).stop()
        notify_sender.sender(app).stop()
        app.extensions["yt"]["scheduler"].shutdown(wait=False)
        app.extensions["yt"]["jobs"].shutdown(wait=True)
        if os.environ.get("MONGODB_TEST_URI"):
            db = app.extensions["yt"]["db"]
            try:
                db.client.drop_database(db.name)
            except PyMongoError:  # a test pointed the app at a store that is down on purpose
                pass


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


class Auth:
    """Account helpers for tests: register + log in, and ready-made headers."""

    def __init__(self, client):
        self.client = client

    def user(self, email=None, password="correct horse 1"):
        """Register and log in a new user; return {"id", "email", "password", "token",
        "headers"}."""
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        r = self.client.post("/api/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.json
        r = self.client.post("/api/auth/login", json={"email": email, "password": password})
        assert r.status_code == 200, r.json
        token = r.json["token"]
        return {"id": r.json["user"]["id"], "email": email, "password": password, "token": token,
                "headers": {"Authorization": f"Bearer {token}"}}

    def save_clip(self, user, url, start=300, end=330):
        """Save a clip for ``user`` through POST /api/video/save; return its id."""
        r = self.client.post("/api/video/save", headers=self.public_headers(user), json={
            "url": url, "start_time": start, "end_time": end, "user_id": user["id"]})
        assert r.status_code == 201, r.json
        return r.json["video_id"]

    def download(self, user, video_id, resolution="720p", timeout=90, body=None):
        """``POST /api/video/download/{id}`` (``body``, else mp4 at ``resolution``) asked again
        while it answers 202 (the job runs), at most ``timeout`` seconds; the last answer."""
        body = body or {"format_preference": "mp4", "resolution_preference": resolution}
        path = f"/api/video/download/{video_id}"
        r = self.client.post(path, headers=user["headers"], json=body)
        deadline = time.monotonic() + timeout
        while r.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = self.client.post(path, headers=user["headers"], json=body)
        return r

    def public_headers(self, user=None):
        """Headers with a public token: bound to ``user`` when given, else anonymous (needs
        ``ALLOW_ANONYMOUS_PUBLIC_TOKENS=True``)."""
        r = self.client.get("/api/auth/token/public", headers=user["headers"] if user else {})
        assert r.status_code == 200, r.json
        return {"Authorization": f"Bearer {r.json['token']}"}


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def auth_factory():
    """``auth_factory(client)`` → :class:`Auth` for a client of an app made with ``make_app``."""
    return Auth


@pytest.fixture
def bound(client, auth):
    """A new user and a public token bound to them: ``(user, token)``."""
    user = auth.user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    return user, token


@pytest.fixture
def serve_app():
    """``serve_app(app)`` → the base URL of ``app`` served on 127.0.0.1 (a free port), threaded.
    Over HTTP, as ``st run`` does (schemathesis' WSGI transport cannot send the ignored_auth
    check's probes: it hands werkzeug's test client a ``max_redirects`` argument)."""
    import threading

    from werkzeug.serving import make_server

    servers = []

    def start(app):
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
