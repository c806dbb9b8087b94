"""Tokens and accounts (issue 11, item 5), each played as the review found it:

- bound public tokens survived a password change;
- only the first 72 bytes of a password counted (bcrypt);
- login skipped bcrypt for an unknown email (218 ms vs 0.5 ms: accounts could be enumerated);
- a public token with ``=`` appended passed and got a fresh rate-limit bucket;
- the registration limit counted failed attempts, so a household that mistyped five times
  could not create its account for an hour.
"""
from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from src.services import auth_service

YT = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
VIDEO_ID = "dQw4w9WgXcQ"
#: Saved clips look their formats up in the background: YouTube answers at once (unreachable).
pytestmark = pytest.mark.usefixtures("fake_youtube")


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _save(client, token, user_id, **environ):
    return client.post("/api/video/save", headers=_bearer(token), environ_base=environ,
                       json={"url": YT, "start_time": 0, "end_time": 5, "user_id": user_id})


def _login(client, email, password):
    return client.post("/api/auth/login", json={"email": email, "password": password})


# --- a password change revokes the user's bound public tokens -----------------------------

def test_a_password_change_revokes_bound_public_tokens(client, auth):
    alice, bob = auth.user(), auth.user()
    tokens = [client.get("/api/auth/token/public", headers=alice["headers"]).json["token"]
              for _ in range(2)]
    bobs = client.get("/api/auth/token/public", headers=bob["headers"]).json["token"]
    assert all(_save(client, t, alice["id"]).status_code == 201 for t in tokens)

    r = client.post("/api/auth/change-password", headers=alice["headers"], json={
        "current_password": alice["password"], "new_password": "a new long password"})
    assert r.status_code == 200
    for token in tokens:
        r = _save(client, token, alice["id"])
        assert r.status_code == 401 and r.json["code"] == "TOKEN_REVOKED"
        r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t=5")
        assert r.status_code == 401 and r.json["code"] == "TOKEN_REVOKED"
    assert _save(client, bobs, bob["id"]).status_code == 201        # another user's: untouched

    token = _login(client, alice["email"], "a new long password").json["token"]
    listed = client.get("/api/auth/tokens/public", headers=_bearer(token)).json["tokens"]
    assert [t["revoked"] for t in listed] == [True, True]
    fresh = client.get("/api/auth/token/public", headers=_bearer(token)).json["token"]
    assert _save(client, fresh, alice["id"]).status_code == 201


# --- every byte of a long password counts ------------------------------------------------

LONG = "correct horse battery staple " * 3          # 87 bytes: bcrypt alone reads 72


def test_every_byte_of_a_long_password_counts(client, auth, app):
    user = auth.user(password=LONG)
    same_start = LONG[:72] + "something else entirely"
    assert _login(client, user["email"], same_start).status_code == 401
    assert _login(client, user["email"], LONG).status_code == 200
    stored = app.extensions["yt"]["db"].users.find_one({"email": user["email"]})["password_hash"]
    assert stored.startswith("$2b$04$")                               # bcrypt at BCRYPT_ROUNDS
    assert bcrypt.checkpw(base64.b64encode(hashlib.sha256(LONG.encode()).digest()),
                          stored.encode())


@pytest.mark.parametrize("password", ["x" * 72, "ü" * 36, "pass\x00word with a NUL"])
def test_passwords_up_to_72_bytes_keep_plain_bcrypt(client, auth, app, password):
    user = auth.user(password=password)
    stored = app.extensions["yt"]["db"].users.find_one({"email": user["email"]})["password_hash"]
    assert bcrypt.checkpw(password.encode(), stored.encode())        # any bcrypt library agrees
    assert _login(client, user["email"], password[:-1] + "?").status_code == 401


def test_multibyte_passwords_over_72_bytes(client, auth):
    password = "🎬" * 19 + "!"                     # 77 bytes in UTF-8, 20 characters
    user = auth.user(password=password)
    assert _login(client, user["email"], "🎬" * 19 + "?").status_code == 401
    assert _login(client, user["email"], password).status_code == 200


def test_a_legacy_hash_logs_in_and_is_rehashed(client, auth, app):
    user = auth.user()
    users = app.extensions["yt"]["db"].users
    legacy = bcrypt.hashpw(LONG.encode()[:72], bcrypt.gensalt(4)).decode()   # the old scheme
    users.update_one({"email": user["email"]}, {"$set": {"password_hash": legacy}})

    assert _login(client, user["email"], LONG).status_code == 200
    rehashed = users.find_one({"email": user["email"]})["password_hash"]
    assert rehashed != legacy and auth_service.check_password(LONG, rehashed)
    assert not bcrypt.checkpw(LONG.encode()[:72], rehashed.encode())
    # the old scheme let any password with the same first 72 bytes in; the new hash does not
    assert _login(client, user["email"], LONG[:72] + "xyz").status_code == 401
    assert _login(client, user["email"], LONG).status_code == 200


def test_the_rehash_does_not_undo_a_password_change(app, auth):
    from src.data import users

    user = auth.user()
    db = app.extensions["yt"]["db"]
    current = db.users.find_one({"email": user["email"]})["password_hash"]
    assert not users.set_password_hash(db, user["id"], "$2b$04$new", expected="$2b$04$stale")
    assert db.users.find_one({"email": user["email"]})["password_hash"] == current


# --- an unknown email costs the same bcrypt work -----------------------------------------

@pytest.fixture
def bcrypt_calls(monkeypatch):
    """Every bcrypt.checkpw call's cost (the hash's rounds) and every hashpw call."""
    calls = {"checkpw": [], "hashpw": 0}
    checkpw, hashpw = bcrypt.checkpw, bcrypt.hashpw

    def counting_checkpw(password, hashed):
        calls["checkpw"].append(int(hashed.split(b"$")[2]))
        return checkpw(password, hashed)

    def counting_hashpw(password, salt):
        calls["hashpw"] += 1
        return hashpw(password, salt)

    monkeypatch.setattr(bcrypt, "checkpw", counting_checkpw)
    monkeypatch.setattr(bcrypt, "hashpw", counting_hashpw)
    return calls


@pytest.mark.parametrize("password", ["a wrong password", "wrong " * 20])   # short and long
def test_an_unknown_email_costs_the_same_bcrypt_work(make_app, auth_factory, bcrypt_calls,
                                                     password):
    client = make_app(BCRYPT_ROUNDS=5).test_client()
    user = auth_factory(client).user()
    bcrypt_calls["checkpw"].clear()
    assert _login(client, user["email"], password).status_code == 401
    known = list(bcrypt_calls["checkpw"])
    bcrypt_calls["checkpw"].clear()
    r = _login(client, "nobody@example.com", password)
    assert r.status_code == 401 and r.json["code"] == "INVALID_CREDENTIALS"
    assert bcrypt_calls["checkpw"] == known and known and set(known) == {5}


def test_the_dummy_hash_is_made_once(client, bcrypt_calls):
    auth_service._dummy_hash.cache_clear()
    for _ in range(3):
        assert _login(client, "nobody@example.com", "some password").status_code == 401
    assert bcrypt_calls["hashpw"] == 1 and bcrypt_calls["checkpw"] == [4, 4, 4]


# --- tokens are compared on their claims ---------------------------------------------------

def _limited(make_app, auth_factory, **limits):
    app = make_app(RATE_LIMIT_ENABLED=True, **limits)
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    return client, user, token


def test_a_re_encoded_token_shares_its_save_bucket(make_app, auth_factory):
    client, user, token = _limited(make_app, auth_factory, RATE_LIMIT_SAVE_TOKEN="2/minute")
    assert _save(client, token, user["id"], REMOTE_ADDR="10.1.0.1").status_code == 201
    assert _save(client, token + "=", user["id"], REMOTE_ADDR="10.1.0.2").status_code == 201
    r = _save(client, token + "=", user["id"], REMOTE_ADDR="10.1.0.3")   # the same token
    assert r.status_code == 429 and r.json["code"] == "RATE_LIMITED"
    other = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    assert _save(client, other, user["id"], REMOTE_ADDR="10.1.0.4").status_code == 201


def test_a_re_encoded_token_shares_its_stream_bucket(make_app, auth_factory):
    client, _user, token = _limited(make_app, auth_factory,
                                    RATE_LIMIT_STREAM_SAVE_TOKEN="2/minute")
    codes = [client.get(f"/api/video/save/stream/{text}/{VIDEO_ID}?t=1",
                        environ_base={"REMOTE_ADDR": f"10.2.0.{i}"}).status_code
             for i, text in enumerate((token, token + "=", token + "="))]
    assert codes == [201, 201, 429]


def test_tokens_that_do_not_verify_share_their_callers_bucket(make_app, auth_factory):
    client, user, token = _limited(make_app, auth_factory, RATE_LIMIT_SAVE_TOKEN="2/minute")
    forged = [token[:-4] + suffix for suffix in ("AAAA", "BBBB", "CCCC")]  # 3 texts, one caller
    codes = [_save(client, text, user["id"], REMOTE_ADDR="10.3.0.1").status_code
             for text in forged]
    assert codes == [401, 401, 429]
    assert _save(client, token, user["id"], REMOTE_ADDR="10.3.0.1").status_code == 201


def test_a_re_encoded_private_token_finds_no_session(client, auth):
    user = auth.user()
    r = client.get("/api/auth/me", headers=_bearer(user["token"] + "="))
    assert r.status_code == 401


# --- registration counts successes; failures have their own, higher limit -----------------

def _register(client, email, password="long enough 1", ip="10.4.0.1"):
    return client.post("/api/auth/register", environ_base={"REMOTE_ADDR": ip},
                       json={"email": email, "password": password})


def test_mistyped_registrations_do_not_block_the_valid_one(make_app):
    client = make_app(RATE_LIMIT_ENABLED=True).test_client()    # the default limits
    assert _register(client, "taken@example.com", ip="10.4.0.9").status_code == 201
    mistakes = [_register(client, "taken@example.com").status_code for _ in range(3)] + \
        [_register(client, "new@example.com", password="short").status_code for _ in range(2)]
    assert mistakes == [409, 409, 409, 400, 400]
    assert _register(client, "new@example.com").status_code == 201        # the sixth, valid
    created = [_register(client, f"n{i}@example.com").status_code for i in range(5)]
    assert created == [201, 201, 201, 201, 429]      # 5 successful registrations per hour


def test_the_failed_limit_stops_a_flood(make_app):
    client = make_app(RATE_LIMIT_ENABLED=True).test_client()    # 30/hour failed attempts
    assert _register(client, "taken@example.com", ip="10.5.0.9").status_code == 201
    codes = [_register(client, "taken@example.com", ip="10.5.0.1").status_code
             for _ in range(31)]
    assert codes == [409] * 30 + [429]
    r = _register(client, "fresh@example.com", ip="10.5.0.1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert _register(client, "fresh@example.com", ip="10.5.0.2").status_code == 201
