"""Attacks that the security review (issue 11) found refused — kept refused.

Each test plays the attacker through the API as a client would: forged and misused tokens,
another user's ids on every id route, NoSQL operators in JSON bodies, page URLs built to confuse
URL parsers or to name local files and ffmpeg pseudo-protocols, and header injection through a
file name. The fixed holes have their own files beside this one.
"""
from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

MEDIA = Path(__file__).resolve().parent.parent / "media" / "big_buck_bunny_720p_5s.mp4"
YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _save(client, headers, user_id, url=YT):
    return client.post("/api/video/save", headers=headers, json={
        "url": url, "start_time": 10, "end_time": 20, "user_id": user_id})


@pytest.fixture
def public_claims(client, auth, app):
    """A user, a public token bound to them, and its decoded claims."""
    user = auth.user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    return user, token, jwt.decode(token, app.config["JWT_PUBLIC_SECRET"], algorithms=["HS256"])


def test_forged_public_tokens_cannot_save(client, app, public_claims):
    user, token, claims = public_claims
    secret = app.config["JWT_PUBLIC_SECRET"]
    forged = [
        jwt.encode(claims, None, algorithm="none"),                               # alg: none
        jwt.encode(claims, "not-the-secret", algorithm="HS256"),                  # wrong key
        jwt.encode({**claims, "exp": int(time.time()) - 10}, secret, algorithm="HS256"),  # expired
        jwt.encode({**claims, "type": "private"}, secret, algorithm="HS256"),     # wrong tier
        jwt.encode(claims, app.config["JWT_PRIVATE_SECRET"], algorithm="HS256"),  # private key
        user["token"],                                                            # a private token
        token[:-2],                                                               # cut signature
    ]
    for bad in forged:
        r = _save(client, _bearer(bad), user["id"])
        assert r.status_code == 401, (bad, r.json)
        assert set(r.json) == {"error", "code"}
    assert client.get("/api/video/list", headers=user["headers"]).json["videos"] == []


def test_a_public_token_is_not_a_private_one(client, public_claims):
    _user, token, _claims = public_claims
    for path in ("/api/video/list", "/api/auth/me", "/api/auth/tokens/public"):
        r = client.get(path, headers=_bearer(token))
        assert r.status_code == 401 and r.json["code"] in ("INVALID_TOKEN", "SESSION_REVOKED")


def test_revoked_public_token_cannot_save(client, public_claims):
    user, token, claims = public_claims
    assert client.delete(f"/api/auth/tokens/public/{claims['jti']}",
                         headers=user["headers"]).status_code == 200
    r = _save(client, _bearer(token), user["id"])
    assert r.status_code == 401 and r.json["code"] == "TOKEN_REVOKED"
    r = client.get(f"/api/video/save/stream/{token}/dQw4w9WgXcQ?t=30&format=json")
    assert r.status_code == 401


def test_another_users_ids_are_refused_on_every_id_route(client, auth):
    alice, mallory = auth.user(), auth.user()
    clip = auth.save_clip(alice, YT, 10, 20)
    with open(MEDIA, "rb") as fh:
        r = client.post("/api/encode/upload", headers=alice["headers"],
                        data={"video": (fh, "alice.mp4")}, content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    upload = r.json["encode_id"]
    attempts = [
        ("POST", f"/api/video/download/{clip}", {}),
        ("GET", f"/api/video/status/{clip}", None),
        ("GET", f"/api/video/formats/{clip}", None),
        ("POST", f"/api/encode/start/{upload}",
         {"video_codec": "h264", "quality_preset": "medium"}),
        ("GET", f"/api/encode/status/{upload}", None),
        ("POST", f"/api/encode/download/{upload}", None),
    ]
    for method, path, body in attempts:
        r = client.open(path, method=method, headers=mallory["headers"], json=body)
        assert r.status_code == 403 and r.json["code"] == "FORBIDDEN", (path, r.json)
    # Mallory's own list shows none of it, and Alice's records are untouched.
    assert client.get("/api/video/list", headers=mallory["headers"]).json["videos"] == []
    assert client.get(f"/api/video/status/{clip}",
                      headers=alice["headers"]).json["status"] == "pending"
    assert client.get(f"/api/encode/status/{upload}",
                      headers=alice["headers"]).json["status"] == "pending"
    # A bound public token cannot save into someone else's account either.
    mallory_token = client.get("/api/auth/token/public", headers=mallory["headers"]).json["token"]
    r = _save(client, _bearer(mallory_token), alice["id"])
    assert r.status_code == 403 and r.json["code"] == "TOKEN_USER_MISMATCH"


@pytest.mark.parametrize("body", [
    {"email": {"$ne": None}, "password": {"$ne": None}},
    {"email": {"$gt": ""}, "password": "x" * 12},
    {"email": "a@example.com", "password": {"$regex": ".*"}},
    {"email": ["a@example.com"], "password": "x" * 12},
])
def test_nosql_operators_in_login_are_a_400(client, auth, body):
    auth.user("a@example.com")
    r = client.post("/api/auth/login", json=body)
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert "token" not in r.json


def test_nosql_operators_in_ids_and_user_id_are_refused(client, auth):
    alice = auth.user()
    r = _save(client, auth.public_headers(alice), {"$ne": None})
    assert r.status_code == 400
    for video_id in ('{"$ne":null}', "[$ne]=1", "0" * 24):
        r = client.get(f"/api/video/status/{video_id}", headers=alice["headers"])
        assert r.status_code in (400, 404), (video_id, r.json)


@pytest.mark.parametrize("url", [
    "https://www.youtube.com@evil.example/watch?v=dQw4w9WgXcQ",     # userinfo
    "https://evil.example\\@www.youtube.com/watch?v=dQw4w9WgXcQ",  # backslash confusion
    "https://www.youtube.com.evil.example/watch?v=dQw4w9WgXcQ",     # suffix
    "https://evilyoutube.com/watch?v=dQw4w9WgXcQ",                  # prefix
    "https://www.youtube.com%2F@evil.example/watch?v=dQw4w9WgXcQ",  # encoded slash
    "https://[::1]/watch?v=dQw4w9WgXcQ",                            # an address
    "file:///etc/passwd",
    "concat:/etc/passwd|/etc/hosts",
    "ffconcat:/etc/passwd",
    "subfile,,start,0,end,0,,:/etc/passwd",
    "javascript:alert(1)",
    "//www.youtube.com/watch?v=dQw4w9WgXcQ",                        # no scheme
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ\r\nX-Evil: 1",     # header injection
])
@pytest.mark.slow
def test_page_urls_that_confuse_parsers_or_name_files_are_refused(client, auth, url):
    user = auth.user()
    r = _save(client, auth.public_headers(user), user["id"], url)
    assert r.status_code == 400, (url, r.json)
    r = client.post("/api/video/resolutions", json={"url": url})
    assert r.status_code == 400, (url, r.json)
    assert client.get("/api/video/list", headers=user["headers"]).json["videos"] == []


@pytest.mark.slow
def test_file_names_cannot_inject_headers(client, auth):
    user = auth.user()
    with open(MEDIA, "rb") as fh:
        r = client.post("/api/encode/upload", headers=user["headers"],
                        data={"video": (fh, 'évil\x07%0d%0aSet-Cookie: x=1.mp4')},
                        content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    encode_id = r.json["encode_id"]
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    deadline = time.monotonic() + 120
    while r.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)
        r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    if r.status_code == 200 and r.mimetype == "application/json":
        r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    assert "Set-Cookie" not in r.headers
    disposition = r.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
