"""Rate limits: each one trips with 429 + Retry-After in the one error shape, per key, and resets.

The app uses the real Redis (db 15) when it answers, with a key prefix of its own per test app.
"""
from __future__ import annotations

import time
import uuid

import pytest

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
HIGH = "1000/minute"
ALL = ("RATE_LIMIT_LOGIN_IP", "RATE_LIMIT_LOGIN_EMAIL", "RATE_LIMIT_REGISTER",
       "RATE_LIMIT_REGISTER_FAILED", "RATE_LIMIT_PUBLIC_TOKEN", "RATE_LIMIT_SAVE_TOKEN",
       "RATE_LIMIT_SAVE_IP", "RATE_LIMIT_STREAM_SAVE_TOKEN", "RATE_LIMIT_STREAM_SAVE_IP",
       "RATE_LIMIT_RESOLUTIONS")


def _app(make_app, name, limit="2/minute"):
    return make_app(RATE_LIMIT_ENABLED=True, **{**{n: HIGH for n in ALL}, name: limit})


def _ip(n):
    return {"REMOTE_ADDR": f"10.0.0.{n}"}


class Caller:
    """Makes the request a limit guards; ``key`` varies what the limit counts by."""

    def __init__(self, client, user, tokens):
        self.client, self.user, self.tokens = client, user, tokens

    def login_ip(self, key):
        return self.client.post("/api/auth/login", environ_base=_ip(key), json={
            "email": f"{uuid.uuid4().hex[:6]}@example.com", "password": "x"})

    def login_email(self, key):  # a different IP each time: the email is what counts
        return self.client.post("/api/auth/login", environ_base=_ip(uuid.uuid4().int % 200),
                                json={"email": f"victim{key}@example.com", "password": "x"})

    def register(self, key):
        return self.client.post("/api/auth/register", environ_base=_ip(key), json={
            "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "long enough 1"})

    def register_failed(self, key):  # a password too short: 400
        return self.client.post("/api/auth/register", environ_base=_ip(key), json={
            "email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "short"})

    def public_token(self, key):
        return self.client.get("/api/auth/token/public", environ_base=_ip(key),
                               headers=self.user["headers"])

    def save_token(self, key):
        return self.client.post("/api/video/save", environ_base=_ip(uuid.uuid4().int % 200),
                                headers={"Authorization": f"Bearer {self.tokens[key]}"},
                                json={"url": YT, "start_time": 0, "end_time": 5,
                                      "user_id": self.user["id"]})

    def save_ip(self, key):
        return self.client.post("/api/video/save", environ_base=_ip(key),
                                headers={"Authorization": f"Bearer {self.tokens[0]}"},
                                json={"url": YT, "start_time": 0, "end_time": 5,
                                      "user_id": self.user["id"]})

    def stream_token(self, key):
        return self.client.get(f"/api/video/save/stream/{self.tokens[key]}/dQw4w9WgXcQ?t=1",
                               environ_base=_ip(uuid.uuid4().int % 200))

    def stream_ip(self, key):
        return self.client.get(f"/api/video/save/stream/{self.tokens[0]}/dQw4w9WgXcQ?t=1",
                               environ_base=_ip(key))

    def resolutions(self, key):
        return self.client.post("/api/video/resolutions", environ_base=_ip(key),
                                json={"url": "ftp://nowhere"})


@pytest.mark.parametrize("setting, call", [
    ("RATE_LIMIT_LOGIN_IP", "login_ip"), ("RATE_LIMIT_LOGIN_EMAIL", "login_email"),
    ("RATE_LIMIT_REGISTER", "register"), ("RATE_LIMIT_REGISTER_FAILED", "register_failed"),
    ("RATE_LIMIT_PUBLIC_TOKEN", "public_token"),
    ("RATE_LIMIT_SAVE_TOKEN", "save_token"), ("RATE_LIMIT_SAVE_IP", "save_ip"),
    ("RATE_LIMIT_STREAM_SAVE_TOKEN", "stream_token"), ("RATE_LIMIT_STREAM_SAVE_IP", "stream_ip"),
    ("RATE_LIMIT_RESOLUTIONS", "resolutions"),
])
@pytest.mark.slow
def test_each_limit_trips_per_key(make_app, auth_factory, setting, call):
    app = _app(make_app, setting)
    client = app.test_client()
    user = auth_factory(client).user()
    tokens = [client.get("/api/auth/token/public", headers=user["headers"],
                         environ_base=_ip(100 + i)).json["token"] for i in range(2)]
    request = getattr(Caller(client, user, tokens), call)
    assert [request(0).status_code != 429 for _ in range(2)] == [True, True]
    r = request(0)
    assert r.status_code == 429, r.json
    assert r.json == {"error": r.json["error"], "code": "RATE_LIMITED"}
    assert 0 < int(r.headers["Retry-After"]) <= 61
    assert request(1).status_code != 429      # another IP / email / token is not affected


def _public_token(client, user):
    return client.get("/api/auth/token/public", headers=user["headers"]).status_code


@pytest.mark.slow
def test_limit_resets_after_its_window(make_app, auth_factory):
    app = _app(make_app, "RATE_LIMIT_PUBLIC_TOKEN", "2/2second")
    client = app.test_client()
    user = auth_factory(client).user()
    codes = [_public_token(client, user) for _ in range(3)]
    assert codes == [200, 200, 429]
    time.sleep(2.1)
    assert _public_token(client, user) == 200


def test_limits_are_off_when_disabled_and_checked_at_start(make_app, auth_factory):
    app = make_app(RATE_LIMIT_ENABLED=False, RATE_LIMIT_PUBLIC_TOKEN="1/minute")
    client = app.test_client()
    user = auth_factory(client).user()
    assert {_public_token(client, user) for _ in range(3)} == {200}
    from src.config import ConfigError
    for name in ("RATE_LIMIT_LOGIN_IP", "RATE_LIMIT_REGISTER_FAILED"):
        with pytest.raises(ConfigError, match=name):
            make_app(**{name: "lots"})


def test_embedded_mode_uses_memory_storage(make_app, auth_factory):
    app = make_app(REDIS_URI=None, RATE_LIMIT_ENABLED=True, RATE_LIMIT_PUBLIC_TOKEN="1/minute")
    client = app.test_client()
    user = auth_factory(client).user()
    assert [_public_token(client, user) for _ in range(2)] == [200, 429]
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
