"""Shared pytest fixtures: ``app``, ``client``, ``auth`` (account helpers), ``redis_uri``.
Media fixtures (the local HTTP source built from the real clip) live in tests/media_fixtures.py.

Redis: the real server at ``TEST_REDIS_URI`` (default redis://127.0.0.1:6379/15) when it answers,
fakeredis otherwise. MongoDB: mongomock, or a real server when ``MONGODB_TEST_URI`` is set.
"""
from __future__ import annotations

import os
import time
import uuid

import pytest
import redis as redis_lib
from pymongo.errors import PyMongoError

from src.app import create_app

pytest_plugins = ["tests.media_fixtures", "tests.youtube_fakes"]

TEST_REDIS_URI = os.environ.get("TEST_REDIS_URI", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_uri():
    """The real Redis test database when it answers, else None (→ fakeredis)."""
    try:
        redis_lib.Redis.from_url(TEST_REDIS_URI, socket_connect_timeout=1).ping()
        return TEST_REDIS_URI
    except redis_lib.RedisError:
        return None


@pytest.fixture
def make_app(tmp_path, redis_uri):
    """Factory for apps with test settings; ``make_app(**overrides)``. Each app gets empty stores."""
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
            app.extensions["yt"]["redis"].flushdb()
        apps.append(app)
        return app

    yield factory
    for app in apps:
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
        """Register and log in a new user; return {"id", "email", "password", "token", "headers"}."""
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

    def download(self, user, video_id, resolution="720p", timeout=90):
        """``POST /api/video/download/{id}`` (mp4 at ``resolution``) asked again while it
        answers 202 (the job runs), at most ``timeout`` seconds; the last answer."""
        body = {"format_preference": "mp4", "resolution_preference": resolution}
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
