"""The per-process session copy (src/services/cache_service.py) as clients see it: two apps on
one Redis stand for two gunicorn workers; revocation through one must reach the other at once.

Each app has its own (mongomock) database, so the second app knows a session only through Redis
and its own copy — a request it answers after revocation can only succeed from a stale copy.
"""
from __future__ import annotations

import hashlib

import pytest
import redis as redis_lib

pytestmark = pytest.mark.usefixtures("real_redis")


@pytest.fixture
def real_redis(redis_uri):
    if not redis_uri:
        pytest.skip("needs the local Redis server (several apps share it)")


@pytest.fixture
def workers(make_app, auth_factory):
    """Two apps on the same Redis ("workers"), a user logged in through the first one."""
    first, second = make_app(), make_app()
    user = auth_factory(first.test_client()).user()
    return first.test_client(), second.test_client(), user


def _key(token):
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


def test_the_other_worker_answers_from_its_copy(workers, redis_uri):
    first, second, user = workers
    assert second.get("/api/auth/me", headers=user["headers"]).status_code == 200
    # the key disappears without a revocation message (e.g. an operator's DEL): the copy answers
    redis_lib.Redis.from_url(redis_uri).delete(_key(user["token"]))
    r = second.get("/api/auth/me", headers=user["headers"])
    assert r.status_code == 200 and r.json["user"]["email"] == user["email"]


def test_logout_revokes_the_copy_of_every_worker_at_once(workers):
    first, second, user = workers
    assert second.get("/api/auth/me", headers=user["headers"]).status_code == 200
    assert first.post("/api/auth/logout", headers=user["headers"]).status_code == 200
    r = second.get("/api/auth/me", headers=user["headers"])
    assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"
    r = first.get("/api/auth/me", headers=user["headers"])
    assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"


def test_password_change_revokes_every_session_in_every_worker(workers, auth_factory):
    first, second, user = workers
    other = first.post("/api/auth/login", json={"email": user["email"],
                                                 "password": user["password"]}).json["token"]
    for token in (user["token"], other):
        assert second.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
    r = first.post("/api/auth/change-password", headers=user["headers"],
                   json={"current_password": user["password"], "new_password": "another pass 2"})
    assert r.status_code == 200, r.json
    for token in (user["token"], other):
        r = second.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"


def test_a_lost_subscription_drops_the_copy(workers, redis_uri):
    first, second, user = workers
    assert second.get("/api/auth/me", headers=user["headers"]).status_code == 200
    server = redis_lib.Redis.from_url(redis_uri)
    assert server.client_kill_filter(_type="pubsub") >= 2  # both workers' subscriptions
    # revoked while nobody listens: the message is lost for the second worker
    assert first.post("/api/auth/logout", headers=user["headers"]).status_code == 200
    r = second.get("/api/auth/me", headers=user["headers"])
    assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"


def test_without_a_copy_every_request_reads_redis(make_app, auth_factory, redis_uri):
    first, second = make_app(), make_app(SESSION_LOCAL_CACHE_SECONDS=0)
    user = auth_factory(first.test_client()).user()
    client = second.test_client()
    assert client.get("/api/auth/me", headers=user["headers"]).status_code == 200
    redis_lib.Redis.from_url(redis_uri).delete(_key(user["token"]))
    r = client.get("/api/auth/me", headers=user["headers"])
    assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"


def test_negative_setting_is_refused(make_app):
    from src.config import ConfigError

    with pytest.raises(ConfigError, match="SESSION_LOCAL_CACHE_SECONDS"):
        make_app(SESSION_LOCAL_CACHE_SECONDS=-1)
