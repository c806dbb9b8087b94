"""Public tokens: bound vs anonymous, cross-user 403, listing, revocation → 401, anonymous off
by default (issue 11) and on with ALLOW_ANONYMOUS_PUBLIC_TOKENS=true."""
from __future__ import annotations

import jwt
import pytest

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


@pytest.fixture
def anonymous(make_app, auth_factory):
    """A client of an app that issues anonymous public tokens (the spec's behaviour), + Auth."""
    client = make_app(ALLOW_ANONYMOUS_PUBLIC_TOKENS=True).test_client()
    return client, auth_factory(client)


def _save(client, token, **body):
    return client.post("/api/video/save", json={"url": YT, "start_time": 0, "end_time": 10, **body},
                       headers={"Authorization": f"Bearer {token}"})


def test_bound_token_saves_only_for_its_user(client, auth):
    alice, bob = auth.user(), auth.user()
    issued = client.get("/api/auth/token/public", headers=alice["headers"]).json
    claims = jwt.decode(issued["token"], options={"verify_signature": False})
    assert claims["user_id"] == alice["id"] and claims["jti"] == issued["jti"]
    assert issued["user_id"] == alice["id"] and issued["expires_in"] == 86400
    assert _save(client, issued["token"], user_id=alice["id"]).status_code == 201
    r = _save(client, issued["token"], user_id=bob["id"])
    assert r.status_code == 403 and r.json["code"] == "TOKEN_USER_MISMATCH"
    r = client.get(f"/api/video/save/stream/{issued['token']}/dQw4w9WgXcQ?user_id={bob['id']}")
    assert r.status_code == 403
    r = client.get(f"/api/video/save/stream/{issued['token']}/dQw4w9WgXcQ?t=5")  # user implied
    assert r.status_code == 201


def test_anonymous_token_as_in_the_spec(anonymous):
    client, auth = anonymous
    user = auth.user()
    issued = client.get("/api/auth/token/public").json
    assert issued["user_id"] is None
    assert "user_id" not in jwt.decode(issued["token"], options={"verify_signature": False})
    assert _save(client, issued["token"], user_id=user["id"]).status_code == 201
    r = client.get("/api/auth/token/public", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401


def test_list_and_revoke(anonymous):
    client, auth = anonymous
    alice, bob = auth.user(), auth.user()
    first = client.get("/api/auth/token/public", headers=alice["headers"]).json
    second = client.get("/api/auth/token/public", headers=alice["headers"]).json
    client.get("/api/auth/token/public", headers=bob["headers"])
    assert client.get("/api/auth/token/public").status_code == 200  # anonymous: nobody's
    listed = client.get("/api/auth/tokens/public", headers=alice["headers"]).json["tokens"]
    assert [t["jti"] for t in listed] == [second["jti"], first["jti"]]
    assert not any(t["revoked"] for t in listed) and listed[0]["expires_at"].endswith("Z")
    assert "token" not in listed[0]

    # bob cannot revoke alice's token; alice can, and it is refused from then on
    r = client.delete(f"/api/auth/tokens/public/{first['jti']}", headers=bob["headers"])
    assert r.status_code == 404
    r = client.delete(f"/api/auth/tokens/public/{first['jti']}", headers=alice["headers"])
    assert r.status_code == 200
    r = _save(client, first["token"], user_id=alice["id"])
    assert r.status_code == 401 and r.json["code"] == "TOKEN_REVOKED"
    r = client.get(f"/api/video/save/stream/{first['token']}/dQw4w9WgXcQ?t=1")
    assert r.status_code == 401 and r.json["code"] == "TOKEN_REVOKED"
    assert _save(client, second["token"], user_id=alice["id"]).status_code == 201
    listed = client.get("/api/auth/tokens/public", headers=alice["headers"]).json["tokens"]
    assert [t["revoked"] for t in listed] == [False, True]
    assert client.get("/api/auth/tokens/public").status_code == 401


def test_anonymous_issuance_is_off_by_default(client, auth):
    r = client.get("/api/auth/token/public")
    assert r.status_code == 401 and r.json["code"] == "ANONYMOUS_TOKENS_DISABLED"
    user = auth.user()
    r = client.get("/api/auth/token/public", headers=user["headers"])
    assert r.status_code == 200 and r.json["user_id"] == user["id"]
