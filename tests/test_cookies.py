"""Per-owner YouTube cookies (issue 13, item 2): ``PUT/GET/DELETE /api/auth/cookies``.

What a user and an operator see: the answers (summary only, never the content), the 400 with
the line at fault, the store (ciphertext that is not the plaintext and decrypts with the key),
isolation between users, the production refusal, and that yt-dlp's own cookie jar loads what
``cookies_for`` hands to extractions.
"""
from __future__ import annotations

import base64
import logging
import re
import time

import pytest
from bson import ObjectId
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yt_dlp.cookies import YoutubeDLCookieJar

from src.app import create_app
from src.config import ConfigError
from src.services import cookies_service
from src.utils import netscape_cookies

URL = "/api/auth/cookies"
_TODAY = int(time.time()) // 86400 * 86400  # whole days: the same test ids in every xdist worker
SOON = _TODAY + 3 * 86400
LATER = _TODAY + 300 * 86400
SECRET_VALUE = "AKEyXzWnGo0V3mt9Qm0N7D8q-secret"
#: As "Get cookies.txt LOCALLY" exports a logged-in youtube.com tab (values shortened).
FILE = (
    "# Netscape HTTP Cookie File\n"
    "# http://curl.haxx.se/rfc/cookie_spec.html\n"
    "# This is a generated file!  Do not edit.\n"
    "\n"
    f".youtube.com\tTRUE\t/\tTRUE\t{LATER}\t__Secure-3PSID\t{SECRET_VALUE}\n"
    f"#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t{SOON}\tLOGIN_INFO\tAFmmF2swRQIh-login\n"
    ".youtube.com\tTRUE\t/\tFALSE\t0\tYSC\tq0dx9wW-session\n"
    f".google.com\tTRUE\t/\tTRUE\t{LATER}\tSAPISID\tmV7kq-google\n"
    f"www.example.org\tFALSE\t/\tFALSE\t{LATER}\tother\tsite-cookie-value\n"
)


@pytest.fixture
def user(auth):
    return auth.user()


def _put(client, user, text, as_text=False):
    if as_text:
        return client.put(URL, data=text.encode(), headers={**user["headers"],
                                                             "Content-Type": "text/plain"})
    return client.put(URL, json={"cookies": text}, headers=user["headers"])


def test_round_trip_json_then_text_then_delete(client, user):
    r = _put(client, user, FILE)
    assert r.status_code == 200, r.json
    assert r.json == {"domains": ["google.com", "youtube.com"], "count": 4,
                      "earliest_expiry": SOON, "ignored": 1,
                      "updated_at": r.json["updated_at"]}
    got = client.get(URL, headers=user["headers"])
    assert got.status_code == 200
    assert got.json == {"exists": True, "domains": ["google.com", "youtube.com"], "count": 4,
                        "earliest_expiry": SOON, "updated_at": got.json["updated_at"],
                        "unreadable": False}
    for secret in (SECRET_VALUE, "AFmmF2swRQIh-login", "__Secure-3PSID", "site-cookie-value"):
        assert secret not in got.get_data(as_text=True) + r.get_data(as_text=True)

    only_google = f".google.com\tTRUE\t/\tTRUE\t{LATER}\tSID\tg\r\n"  # Windows line end
    r = _put(client, user, only_google, as_text=True)  # replaces the first file
    assert r.status_code == 200 and r.json["domains"] == ["google.com"] and r.json["count"] == 1
    assert client.get(URL, headers=user["headers"]).json["earliest_expiry"] == LATER

    assert client.delete(URL, headers=user["headers"]).json == {"message": "Cookies deleted"}
    assert client.get(URL, headers=user["headers"]).json == {
        "exists": False, "domains": [], "count": 0, "earliest_expiry": None, "updated_at": None,
        "unreadable": False}
    r = client.delete(URL, headers=user["headers"])
    assert r.status_code == 404 and r.json["code"] == "NOT_FOUND"


BAD_FILES = [
    ("# Netscape HTTP Cookie File\n\n.youtube.com\tTRUE\t/\tTRUE\t1\tSID\n", 3,
     "expected 7 tab-separated fields"),
    (f".youtube.com\tTRUE\t/\tTRUE\t{LATER}\tA\tb\n.youtube.com  TRUE  /  TRUE  1  SID  v\n", 2,
     "found 1"),
    (f".youtube.com\tTRUE\t/\tTRUE\tnext-week\tSID\t{SECRET_VALUE}\n", 1, "expires field"),
    (f"# c\n.youtube.com\tyes\t/\tTRUE\t{LATER}\tSID\tv\n", 2, "include subdomains"),
    (f".youtube.com\tTRUE\t/\tTRUE\t{LATER}\tSID\tv\n#\n.youtube.com\tTRUE\tnot-a-path\tTRUE"
     f"\t{LATER}\tSID\tv\n", 3, "path field"),
    (f".youtube.com\tTRUE\t/\tTRUE\t{LATER}\tSID\tcafé\n", 1, "U+00E9"),
    ('[{"domain": ".youtube.com", "name": "SID", "value": "v"}]', 1, "JSON"),
    (f"#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t{LATER}\tSID\n", 1, "found 6"),
]


@pytest.mark.parametrize("text,line,reason", BAD_FILES)
@pytest.mark.parametrize("as_text", [False, True])
def test_a_wrong_line_is_refused_with_its_number(client, user, text, line, reason, as_text):
    r = _put(client, user, text, as_text=as_text)
    assert r.status_code == 400
    assert r.json["code"] == "INVALID_COOKIES"
    assert r.json["details"]["line"] == line
    assert f"line {line}: " in r.json["error"] and reason in r.json["error"]
    assert SECRET_VALUE not in r.get_data(as_text=True)  # a value is never echoed
    assert client.get(URL, headers=user["headers"]).json["exists"] is False


@pytest.mark.parametrize("text,reason", [
    ("", "no cookie lines"),
    ("# Netscape HTTP Cookie File\n# nothing else\n\n", "no cookie lines"),
    (f".example.org\tTRUE\t/\tFALSE\t{LATER}\tid\tv\n", "no cookie for youtube.com"),
    (f".notyoutube.com\tTRUE\t/\tFALSE\t{LATER}\tid\tv\n", "no cookie for youtube.com"),
])
def test_a_file_without_youtube_cookies_is_refused(client, user, text, reason):
    r = _put(client, user, text)
    assert r.status_code == 400 and r.json["code"] == "INVALID_COOKIES"
    assert reason in r.json["error"] and "line" not in r.json["details"]


def test_other_content_types_sizes_and_json_shape(app, client, user):
    r = client.put(URL, data=FILE, headers={**user["headers"], "Content-Type": "text/csv"})
    assert r.status_code == 415 and r.json["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = client.put(URL, json={"file": FILE}, headers=user["headers"])
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert set(r.json["details"]) == {"cookies", "file"}
    r = client.put(URL, data=b"\xff\xfe.youtube.com", headers={
        **user["headers"], "Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json["code"] == "INVALID_COOKIES"
    padded = "#" * 40_000 + "\n" + FILE  # under the 64 KiB body limit, over 30 000 characters
    for as_text in (False, True):
        r = _put(client, user, padded, as_text=as_text)
        assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR", r.json
    limit = app.config["MAX_REQUEST_BODY_KB"] * 1024
    r = _put(client, user, "#" * int(limit) + "\n" + FILE, as_text=True)
    assert r.status_code == 413 and r.json["code"] == "REQUEST_TOO_LARGE"


def test_the_store_holds_ciphertext_that_decrypts_with_the_key(make_app, auth_factory):
    key = Fernet.generate_key().decode()
    app = make_app(COOKIES_ENCRYPTION_KEY=key)
    client = app.test_client()
    user = auth_factory(client).user()
    assert _put(client, user, FILE).status_code == 200
    doc = app.extensions["yt"]["db"].cookies.find_one({"user_id": ObjectId(user["id"])})
    assert set(doc) == {"_id", "user_id", "ciphertext", "domains", "earliest_expiry", "count",
                        "updated_at"}
    for secret in (SECRET_VALUE, "LOGIN_INFO", "youtube.com\tTRUE"):
        assert secret not in doc["ciphertext"]
    plain = Fernet(key.encode()).decrypt(doc["ciphertext"].encode()).decode()
    assert plain.startswith("# Netscape HTTP Cookie File\n")
    assert f".youtube.com\tTRUE\t/\tTRUE\t{LATER}\t__Secure-3PSID\t{SECRET_VALUE}\n" in plain
    assert "example.org" not in plain  # other sites are not kept
    assert (doc["domains"], doc["count"], doc["earliest_expiry"]) == (
        ["google.com", "youtube.com"], 4, SOON)


def test_without_a_key_development_derives_one_from_the_flask_secret(app, client, user):
    assert _put(client, user, FILE).status_code == 200
    doc = app.extensions["yt"]["db"].cookies.find_one({"user_id": ObjectId(user["id"])})
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"yt-downloader cookies encryption v1").derive(b"test-flask-secret")
    plain = Fernet(base64.urlsafe_b64encode(derived)).decrypt(doc["ciphertext"].encode())
    assert SECRET_VALUE.encode() in plain


def test_the_start_warns_when_the_key_is_derived(make_app, caplog):
    with caplog.at_level(logging.WARNING):
        make_app()
    assert any("COOKIES_ENCRYPTION_KEY is not set" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        make_app(COOKIES_ENCRYPTION_KEY=Fernet.generate_key().decode())
    assert not any("COOKIES_ENCRYPTION_KEY" in r.getMessage() for r in caplog.records)


def test_cookies_for_gives_the_owner_a_file_yt_dlp_loads(app, client, user, tmp_path):
    assert _put(client, user, FILE).status_code == 200
    with app.app_context():
        text = cookies_service.cookies_for(user["id"])
        assert cookies_service.cookies_for(str(ObjectId())) is None
        assert cookies_service.cookies_for("not-an-id") is None
        assert cookies_service.cookies_for(None) is None
    path = tmp_path / "cookies.txt"
    path.write_text(text)
    jar = YoutubeDLCookieJar(str(path))
    jar.load()
    loaded = {(c.domain, c.name): c for c in jar}
    assert set(loaded) == {(".youtube.com", "__Secure-3PSID"), (".youtube.com", "LOGIN_INFO"),
                           (".youtube.com", "YSC"), (".google.com", "SAPISID")}
    assert loaded[(".youtube.com", "__Secure-3PSID")].value == SECRET_VALUE
    assert "\n#HttpOnly_.youtube.com\tTRUE\t/\tTRUE\t" in text  # kept (yt-dlp drops the flag)
    assert loaded[(".youtube.com", "YSC")].expires is None  # a session cookie
    header = jar.get_cookie_header("https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    assert f"__Secure-3PSID={SECRET_VALUE}" in header and "SAPISID" not in header


def test_other_users_neither_see_nor_delete_them(app, client, auth, user):
    assert _put(client, user, FILE).status_code == 200
    other = auth.user()
    assert client.get(URL, headers=other["headers"]).json["exists"] is False
    assert client.delete(URL, headers=other["headers"]).status_code == 404
    assert client.get(URL, headers=user["headers"]).json["exists"] is True
    with app.app_context():
        assert cookies_service.cookies_for(other["id"]) is None
        assert SECRET_VALUE in cookies_service.cookies_for(user["id"])


def test_a_replaced_key_makes_them_unreadable_and_unused(make_app, auth_factory, caplog):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = make_app(COOKIES_ENCRYPTION_KEY=first)
    client = app.test_client()
    user = auth_factory(client).user()
    assert _put(client, user, FILE).status_code == 200
    app.config["COOKIES_ENCRYPTION_KEY"] = second  # a restart with another key
    with caplog.at_level(logging.WARNING):
        r = client.get(URL, headers=user["headers"])
        with app.app_context():
            assert cookies_service.cookies_for(user["id"]) is None
    assert r.json["exists"] is True and r.json["unreadable"] is True
    assert r.json["domains"] == ["google.com", "youtube.com"]
    warnings = [rec.getMessage() for rec in caplog.records if "do not decrypt" in rec.getMessage()]
    assert warnings and all(SECRET_VALUE not in w for w in warnings)
    app.config["COOKIES_ENCRYPTION_KEY"] = f"{second}, {first}"  # rotation: new first, old kept
    assert client.get(URL, headers=user["headers"]).json["unreadable"] is False
    with app.app_context():
        assert SECRET_VALUE in cookies_service.cookies_for(user["id"])


def test_401_without_a_valid_private_token(client, auth):
    public = auth.public_headers(auth.user())
    for headers in ({}, {"Authorization": "Bearer nope"}, public):
        for method in ("get", "put", "delete"):
            r = getattr(client, method)(URL, json={"cookies": FILE}, headers=headers)
            assert r.status_code == 401, (method, headers)
            assert r.json["code"] in ("MISSING_TOKEN", "INVALID_TOKEN")


def test_logout_keeps_the_cookies(client, auth, user):
    assert _put(client, user, FILE).status_code == 200
    assert client.post("/api/auth/logout", headers=user["headers"]).status_code == 200
    again = auth.client.post("/api/auth/login", json={"email": user["email"],
                                                      "password": user["password"]}).json
    headers = {"Authorization": f"Bearer {again['token']}"}
    assert client.get(URL, headers=headers).json["exists"] is True


PRODUCTION = {"APP_ENV": "production", "MONGODB_URI": "mongodb://127.0.0.1:1/x",
              "REDIS_URI": "redis://127.0.0.1:1/0", "JWT_PUBLIC_SECRET": "p" * 8 + "Q" * 40,
              "JWT_PRIVATE_SECRET": "r" * 8 + "S" * 40, "FLASK_SECRET_KEY": "f" * 8 + "G" * 40}


def test_production_refuses_to_start_without_a_key(tmp_path):
    with pytest.raises(ConfigError, match="COOKIES_ENCRYPTION_KEY is not set") as refused:
        create_app({**PRODUCTION, "LOG_FILE": str(tmp_path / "a.log")})
    assert str(refused.value).startswith("APP_ENV=production refuses to start: ")
    assert "MONGODB_URI" not in str(refused.value)  # the only fault of this configuration


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize("key", ["not-a-key", base64.urlsafe_b64encode(b"short").decode(),
                                 base64.urlsafe_b64encode(b"k" * 32).decode() + ",oops"])
def test_a_malformed_key_stops_the_start(tmp_path, env, key):
    with pytest.raises(ConfigError, match="COOKIES_ENCRYPTION_KEY must be Fernet keys"):
        create_app({**PRODUCTION, "APP_ENV": env, "COOKIES_ENCRYPTION_KEY": key,
                    "LOG_FILE": str(tmp_path / "a.log")})


def test_openapi_documents_the_three_operations(client):
    doc = client.get("/openapi.json").json["paths"][URL]
    assert set(doc) == {"get", "put", "delete"}
    for operation in doc.values():
        assert operation["security"] == [{"bearer": []}] and "401" in operation["responses"]
    body = doc["put"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/plain"}
    assert body["text/plain"]["schema"]["pattern"] == netscape_cookies.PATTERN
    assert {"400", "413", "415"} <= set(doc["put"]["responses"])
    assert "404" in doc["delete"]["responses"]


# --- the parser on its own (what the runtime helper's /api/health summary uses) ---------------

def test_summary_of_a_server_cookies_file():
    assert netscape_cookies.summary(FILE) == {
        "domains": ["google.com", "www.example.org", "youtube.com"], "earliest_expiry": SOON,
        "count": 5}
    assert netscape_cookies.summary(".youtube.com\tTRUE\t/\tFALSE\t0\tYSC\tx") == {
        "domains": ["youtube.com"], "earliest_expiry": None, "count": 1}
    with pytest.raises(ValueError, match="line 2: "):
        netscape_cookies.summary("# ok\nbroken\n")


def _accepted(text: str) -> bool:
    try:
        return any(netscape_cookies.in_family(c) for c in netscape_cookies.parse(text))
    except netscape_cookies.CookiesFormatError:
        return False


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.from_regex(netscape_cookies.PATTERN), st.integers(0, 10**6),
       st.sampled_from(list("\t\n\r #H_.TF/0x") + ["\ufeff", "é", "\x00", "\u2028"]),
       st.booleans())
@pytest.mark.slow
def test_the_documented_pattern_is_exactly_what_the_route_accepts(text, where, char, insert):
    """The OpenAPI ``pattern`` (what schemathesis generates from) and the parser agree on
    generated files and on each with one character inserted or replaced."""
    assert _accepted(text)
    at = where % (len(text) + 1)
    changed = text[:at] + char + text[at + (0 if insert else 1):]
    assert _accepted(changed) == bool(re.match(netscape_cookies.PATTERN, changed))
