"""Body limits per route (issue 11, item 3): the attack was a 40 MiB JSON body to
``POST /api/auth/login`` that grew the process by 361 MiB before the 400.

Every route but the upload takes at most ``MAX_REQUEST_BODY_KB`` (64 KiB); a declared
``Content-Length`` over it is 413 before a byte is read, and a chunked body without one is cut
off at the limit while it streams. The wsgi input streams below count what the app read.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from src.services import auth_service

CLIP = Path(__file__).resolve().parent.parent / "media" / "big_buck_bunny_720p_5s.mp4"
MIB = 1024 * 1024


class CountingStream(io.BytesIO):
    """A wsgi.input of ``size`` bytes (a JSON string body) that counts the bytes read from it."""

    def __init__(self, size: int):
        head, tail = b'{"email": "a@example.com", "password": "', b'"}'
        super().__init__(head + b"x" * (size - len(head) - len(tail)) + tail)
        self.read_bytes = 0

    def _count(self, data):
        self.read_bytes += len(data)
        return data

    def read(self, size=-1):
        return self._count(super().read(size))

    def read1(self, size=-1):
        return self._count(super().read1(size))

    def readline(self, size=-1):
        return self._count(super().readline(size))

    def readinto(self, buffer):
        n = super().readinto(buffer)
        self.read_bytes += n
        return n


@pytest.fixture
def views_run(monkeypatch):
    """Counts calls of the login service: a refused body must never reach the view."""
    calls = []
    real = auth_service.login
    monkeypatch.setattr(auth_service, "login", lambda *a: calls.append(a) or real(*a))
    return calls


def _login(client, stream, **kwargs):
    return client.post("/api/auth/login", input_stream=stream,
                       content_type="application/json", **kwargs)


def test_a_1_mib_json_body_is_413_before_it_is_read(client, views_run):
    stream = CountingStream(MIB)
    r = _login(client, stream, content_length=MIB)
    assert r.status_code == 413
    assert r.json == {"error": "The request body is larger than 64 KiB",
                      "code": "REQUEST_TOO_LARGE"}
    assert stream.read_bytes == 0 and views_run == []
    assert r.headers["X-Request-ID"]            # the answer went through the app's hooks


@pytest.mark.parametrize("method, path", [
    ("post", "/api/auth/register"), ("post", "/api/video/save"),
    ("post", "/api/video/resolutions"), ("post", "/api/encode/start/" + "0" * 24),
    ("get", "/api/video/list"), ("post", "/api/no/such/route"),
])
def test_every_other_route_has_the_small_limit(client, method, path):
    stream = CountingStream(200 * 1024)    # small for an upload, too big for anything else
    r = getattr(client, method)(path, input_stream=stream, content_length=200 * 1024,
                                content_type="application/json")
    assert r.status_code == 413 and r.json["code"] == "REQUEST_TOO_LARGE", (path, r.json)
    assert stream.read_bytes == 0


def test_a_chunked_body_is_cut_off_at_the_limit(client, views_run):
    stream = CountingStream(MIB)
    r = _login(client, stream, headers={"Transfer-Encoding": "chunked"},
               environ_overrides={"wsgi.input_terminated": True})   # as gunicorn sets it
    assert r.status_code == 413 and r.json["code"] == "REQUEST_TOO_LARGE"
    assert 0 < stream.read_bytes <= 64 * 1024 + 1 and views_run == []


def test_bodies_under_the_limit_are_read(client, auth, views_run):
    user = auth.user()
    body = f'{{"email": "{user["email"]}", "password": "{user["password"]}"}}'.encode()
    r = _login(client, io.BytesIO(body), headers={"Transfer-Encoding": "chunked"},
               environ_overrides={"wsgi.input_terminated": True})
    assert r.status_code == 200 and r.json["token"]                  # chunked, small: read
    stream = CountingStream(60 * 1024)
    r = _login(client, stream, content_length=60 * 1024)
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"   # parsed, then refused
    assert stream.read_bytes == 60 * 1024


def test_the_limit_is_a_setting(make_app):
    client = make_app(MAX_REQUEST_BODY_KB=256).test_client()
    r = _login(client, CountingStream(200 * 1024), content_length=200 * 1024)
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    r = _login(client, CountingStream(300 * 1024), content_length=300 * 1024)
    assert r.status_code == 413 and r.json["error"].endswith("256 KiB")


@pytest.fixture
def small_uploads(make_app, auth_factory):
    """An app whose upload limit is just above the 1.0 MiB test clip, and a user of it."""
    app = make_app(MAX_UPLOAD_SIZE_MB=1.01)
    client = app.test_client()
    return app, client, auth_factory(client).user()


def _upload(client, user, data, **kwargs):
    kwargs.setdefault("headers", user["headers"])
    return client.post("/api/encode/upload", data={"video": (io.BytesIO(data), "clip.mp4")},
                       content_type="multipart/form-data", **kwargs)


def test_an_upload_just_under_the_limit_still_works(small_uploads):
    app, client, user = small_uploads
    data = CLIP.read_bytes()
    assert 1.0 * MIB < len(data) < 1.01 * MIB
    r = _upload(client, user, data)
    assert r.status_code == 201, r.json
    assert os.path.getsize(app.extensions["yt"]["db"].videos.find_one()["input_file_path"]) \
        == len(data)


def test_an_oversized_upload_keeps_its_own_answer(small_uploads):
    app, client, user = small_uploads
    for kwargs in ({}, {"headers": {**user["headers"], "Transfer-Encoding": "chunked"},
                        "environ_overrides": {"wsgi.input_terminated": True}}):
        r = _upload(client, user, os.urandom(3 * MIB), **kwargs)   # over limit + 1 MiB slack
        assert r.status_code == 400, kwargs
        assert r.json == {"error": "File is larger than 1.01 MB", "code": "FILE_TOO_LARGE"}
    assert not any(files for _, _, files in os.walk(app.config["UPLOADS_DIR"]))
