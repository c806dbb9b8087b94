"""Authentication endpoints, token tiers and sessions, as a client sees them."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import jwt


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def test_register_login_me_logout(client, auth, app):
    r = client.post("/api/auth/register",
                    json={"email": "Ann@Example.com", "password": "longpass1"})
    assert r.status_code == 201
    assert r.json["message"] == "User registered successfully"
    user_id = r.json["user_id"]

    r = client.post("/api/auth/login", json={"email": "ann@example.com", "password": "longpass1"})
    assert r.status_code == 200
    assert r.json["message"] == "Login successful"
    assert r.json["user"] == {"id": user_id, "email": "ann@example.com"}
    token = r.json["token"]
    headers = {"Authorization": f"Bearer {token}"}

    assert client.get("/api/auth/me", headers=headers).json == {
        "user": {"id": user_id, "email": "ann@example.com"}}

    db, redis = app.extensions["yt"]["db"], app.extensions["yt"]["redis"]
    stored_user = db.users.find_one({"email": "ann@example.com"})
    assert stored_user["password_hash"].startswith("$2")
    session = db.sessions.find_one({"token_hash": _hash(token)})
    assert session and str(session["user_id"]) == user_id
    assert db.sessions.count_documents({"token": {"$exists": True}}) == 0
    assert redis.get(f"session:{_hash(token)}") is not None
    assert token not in str(list(db.sessions.find()))

    r = client.post("/api/auth/logout", headers=headers)
    assert r.status_code == 200 and r.json == {"message": "Logout successful"}
    assert redis.get(f"session:{_hash(token)}") is None
    assert db.sessions.count_documents({}) == 0
    r = client.get("/api/auth/me", headers=headers)
    assert r.status_code == 401 and r.json["code"] == "SESSION_REVOKED"


def test_register_validation_and_duplicates(client):
    for body in ({}, {"email": "x@example.com"}, {"email": "not-an-email", "password": "longpass1"},
                 {"email": "x@example.com", "password": "short"},
                 {"email": 5, "password": "longpass1"}):
        r = client.post("/api/auth/register", json=body)
        assert r.status_code == 400, body
        assert r.json["code"] == "VALIDATION_ERROR" and r.json["details"], body
    r = client.post("/api/auth/register", data="{not json", content_type="application/json")
    assert r.status_code == 400 and set(r.json) >= {"error", "code"}

    assert client.post("/api/auth/register",
                       json={"email": "dup@example.com", "password": "longpass1"}
                       ).status_code == 201
    r = client.post("/api/auth/register",
                    json={"email": "DUP@example.com", "password": "other-pass"})
    assert r.status_code == 409 and r.json["code"] == "EMAIL_EXISTS"


def test_login_errors(client, auth):
    user = auth.user()
    r = client.post("/api/auth/login", json={"email": user["email"]})
    assert r.status_code == 400
    for body in ({"email": user["email"], "password": "wrong password"},
                 {"email": "nobody@example.com", "password": user["password"]}):
        r = client.post("/api/auth/login", json=body)
        assert r.status_code == 401 and r.json == {"error": "Invalid email or password",
                                                   "code": "INVALID_CREDENTIALS"}


def test_change_password_revokes_every_session(client, auth):
    user = auth.user()
    second = client.post("/api/auth/login", json={"email": user["email"],
                                                  "password": user["password"]}).json["token"]
    body = {"current_password": "wrong-password", "new_password": "brand new pass"}
    r = client.post("/api/auth/change-password", json=body, headers=user["headers"])
    assert r.status_code == 401 and r.json["code"] == "INVALID_CREDENTIALS"
    r = client.post("/api/auth/change-password", headers=user["headers"],
                    json={"current_password": user["password"], "new_password": "short"})
    assert r.status_code == 400

    r = client.post("/api/auth/change-password", headers=user["headers"],
                    json={"current_password": user["password"], "new_password": "brand new pass"})
    assert r.status_code == 200
    assert r.json == {"message": "Password changed successfully. Please login again."}
    for token in (user["token"], second):
        assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 401
    assert client.post("/api/auth/login", json={"email": user["email"],
                                                "password": user["password"]}).status_code == 401
    assert client.post("/api/auth/login", json={"email": user["email"],
                                                "password": "brand new pass"}).status_code == 200


def test_public_token(client, auth, app):
    user = auth.user()
    r = client.get("/api/auth/token/public", headers=user["headers"])
    assert r.status_code == 200 and r.json["expires_in"] == 86400
    claims = jwt.decode(r.json["token"], app.config["JWT_PUBLIC_SECRET"], algorithms=["HS256"])
    assert claims["type"] == "public" and claims["user_id"] == user["id"]
    assert 86000 < claims["exp"] - datetime.now(timezone.utc).timestamp() <= 86400


def test_token_tiers_and_forgeries(client, auth, app):
    user = auth.user()
    public = auth.public_headers(user)
    # a public token on a private endpoint
    assert client.get("/api/auth/me", headers=public).status_code == 401
    # a private token on a public-token endpoint
    body = {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "start_time": 1, "end_time": 5,
            "user_id": user["id"]}
    assert client.post("/api/video/save", json=body, headers=user["headers"]).status_code == 401
    assert client.post("/api/video/save", json=body, headers=public).status_code == 201

    now = datetime.now(timezone.utc)
    claims = jwt.decode(user["token"], app.config["JWT_PRIVATE_SECRET"], algorithms=["HS256"])
    forged = [
        jwt.encode(claims, "not-the-secret", algorithm="HS256"),                  # wrong key
        jwt.encode(claims, None, algorithm="none"),                               # alg: none
        jwt.encode({**claims, "exp": now - timedelta(seconds=5)},
                   app.config["JWT_PRIVATE_SECRET"], algorithm="HS256"),          # expired
        jwt.encode({**claims, "type": "public"},
                   app.config["JWT_PRIVATE_SECRET"], algorithm="HS256"),          # wrong type
        jwt.encode(claims, app.config["JWT_PUBLIC_SECRET"], algorithm="HS256"),   # public key
        user["token"][:-3] + "abc",                                               # bad signature
        "garbage",
    ]
    for token in forged:
        r = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.json["code"] in ("INVALID_TOKEN", "SESSION_REVOKED")
    # a validly signed token whose session never existed
    ghost = jwt.encode({**claims, "session_id": "0" * 24, "jti": "other"},
                       app.config["JWT_PRIVATE_SECRET"], algorithm="HS256")
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {ghost}"}
                      ).status_code == 401
    for header in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        r = client.get("/api/auth/me", headers=header)
        assert r.status_code == 401 and r.json["code"] == "MISSING_TOKEN"


def test_session_survives_redis_eviction(client, auth, app):
    """MongoDB is the source of truth: a session missing from Redis is found and re-cached."""
    user = auth.user()
    redis = app.extensions["yt"]["redis"]
    redis.delete(f"session:{_hash(user['token'])}")
    assert client.get("/api/auth/me", headers=user["headers"]).status_code == 200
    assert redis.ttl(f"session:{_hash(user['token'])}") > 6 * 86400


def test_expired_session_in_store_is_refused(client, auth, app):
    user = auth.user()
    db, redis = app.extensions["yt"]["db"], app.extensions["yt"]["redis"]
    db.sessions.update_one({"token_hash": _hash(user["token"])},
                           {"$set": {"expires_at": datetime.now(timezone.utc) - timedelta(1)}})
    redis.delete(f"session:{_hash(user['token'])}")
    assert client.get("/api/auth/me", headers=user["headers"]).status_code == 401


def test_deeply_nested_json_is_a_400_not_a_500(make_app):
    app = make_app(RATE_LIMIT_ENABLED=True)
    client = app.test_client()
    for path in ("/api/auth/login", "/api/auth/register", "/api/video/resolutions"):
        r = client.post(path, data="[" * 60_000, content_type="application/json")  # < 64 KiB
        assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR", (path, r.json)
