"""Logs (issue 11, item 6): a yt-dlp message with a URL-decoded ``%0A`` forged a log line, and
Nightbot's public token (a path segment of ``/api/video/save/stream/{token}/…``) was written to
gunicorn's and nginx's access logs. nginx's ``map`` is exercised by scripts/deploy_smoke.py.
"""
from __future__ import annotations

import importlib
import logging
import re
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from gunicorn.config import Config

from src.logging_setup import SafeFormatter
from src.media import source
from src.services import public_token_service

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[[^\]]*\] \S+: ")
FORGED = "2026-12-01 08:00:00,000 CRITICAL [-] src.app: admin logged in"


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _is_record_or_continuation(line):
    return bool(RECORD.match(line)) or line.startswith("  | ")


@pytest.fixture
def logged(make_app, tmp_path):
    """An app logging to tmp/app.log; returns (app, path)."""
    path = tmp_path / "app.log"
    return make_app(LOG_FILE=str(path), LOG_LEVEL="INFO"), path


def test_every_handler_we_install_uses_the_safe_formatter(logged):
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_yt_downloader", False)]
    assert len(ours) == 2                                       # console and LOG_FILE
    assert all(isinstance(h.formatter, SafeFormatter) for h in ours)


def test_a_yt_dlp_message_cannot_forge_a_line(logged):
    _app, path = logged
    url = unquote("https://www.youtube.com/watch?v=x%0A" + FORGED.replace(" ", "%20"))
    source._Logger().warning(f"[generic] {url}: unable to download\r\x1b[2K\u2028\x85 done")
    lines = [ln for ln in _lines(path) if "admin logged in" in ln]
    assert len(lines) == 1 and RECORD.match(lines[0]) and " INFO " in lines[0]
    assert "yt-dlp: [generic] https://www.youtube.com/watch?v=x\\n2026-12-01" in lines[0]
    assert lines[0].endswith("unable to download\\r\\x1b[2K\\u2028\\x85 done")
    assert all(_is_record_or_continuation(ln) for ln in _lines(path))


def test_a_traceback_stays_readable_and_cannot_forge_a_line(logged, auth_factory, monkeypatch):
    app, path = logged
    client = app.test_client()
    user = auth_factory(client).user()

    def broken(_user_id):
        raise ValueError(f"no tokens for\n{FORGED}\r\nsee\x1b]0;title\x07")

    monkeypatch.setattr(public_token_service, "list_tokens", broken)
    r = client.get("/api/auth/tokens/public", headers=user["headers"])
    assert r.status_code == 500 and r.json["code"] == "INTERNAL_ERROR"
    lines = _lines(path)
    start = next(i for i, ln in enumerate(lines) if ln.endswith("src.errors: unhandled error"))
    trace = lines[start + 1:]
    assert trace[0] == "  | Traceback (most recent call last):"
    assert any(ln.startswith('  |   File "') and ln.endswith(", in broken") for ln in trace)
    assert "  | ValueError: no tokens for" in trace
    assert f"  | {FORGED}\\r" in trace and "  | see\\x1b]0;title\\x07" in trace
    assert all(_is_record_or_continuation(ln) for ln in lines)


def test_the_dev_server_line_has_no_token(logged, auth_factory, fake_youtube):
    """werkzeug's request lines (``python run.py``) follow LOG_LEVEL into the app's handlers."""
    from werkzeug.serving import make_server

    app, path = logged
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.port}/api/video/save/stream/{token}/dQw4w9WgXcQ"
        for query in ("?t=5", "?t=-1"):                         # a 201 and a (coloured) 400
            try:
                urllib.request.urlopen(url + query, timeout=10).read()
            except urllib.error.HTTPError as err:
                assert err.code == 400
    finally:
        server.shutdown()
        thread.join(5)
    text = path.read_text()
    assert token not in text
    requests = [ln for ln in text.splitlines() if " werkzeug: " in ln]
    assert len(requests) == 2, requests
    assert all('"GET /api/video/save/stream/[REDACTED]/dQw4w9WgXcQ?t=' in ln for ln in requests)
    assert not any(ln.endswith("\\n") or "\\x1b" in ln for ln in requests)


# --- gunicorn ------------------------------------------------------------------------------

@pytest.fixture
def gunicorn_logger(tmp_path, monkeypatch):
    """gunicorn_config.py's logger class, set up as gunicorn does, logging to tmp files."""
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "app.log"))
    config = importlib.import_module("gunicorn_config")

    def make(access_log_format=config.access_log_format):
        cfg = Config()
        cfg.set("accesslog", str(tmp_path / "access.log"))
        cfg.set("errorlog", str(tmp_path / "gunicorn.log"))
        cfg.set("access_log_format", access_log_format)
        cfg.set("logger_class", config.logger_class)
        return cfg.logger_class(cfg)

    made = []
    yield lambda *a: made.append(make(*a)) or made[-1]
    for logger in made:
        for log in (logger.error_log, logger.access_log):
            for handler in [h for h in log.handlers if getattr(h, "_gunicorn", False)]:
                log.removeHandler(handler)
                handler.close()


TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0eXBlIjoicHVibGljIn0.c2lnbmF0dXJlLXBhcnQ"


def _access(logger, raw_uri, status="201 CREATED", referer="-"):
    path, _, query = raw_uri.partition("?")
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": raw_uri, "PATH_INFO": path,
               "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.7",
               "HTTP_USER_AGENT": "Nightbot-URL-Fetcher/0.0.3", "HTTP_REFERER": referer}
    req = SimpleNamespace(headers=[("USER-AGENT", "Nightbot-URL-Fetcher/0.0.3"),
                                   ("REFERER", referer)])
    resp = SimpleNamespace(status=status, headers=[("X-Request-ID", "rid-7")], sent=57)
    logger.access(resp, req, environ, timedelta(milliseconds=12))


def test_gunicorn_access_log_redacts_the_stream_token(gunicorn_logger, tmp_path):
    logger = gunicorn_logger()
    assert logger.cfg.logger_class.__name__ == "RedactingLogger"
    _access(logger, f"/api/video/save/stream/{TOKEN}/dQw4w9WgXcQ?t=5&message=gg")
    _access(logger, "/api/video/status/665f1c2e9b1e8a0012345678", status="200 OK")
    lines = _lines(tmp_path / "access.log")
    assert lines == [
        '10.0.0.7 "GET /api/video/save/stream/[REDACTED]/dQw4w9WgXcQ?t=5&message=gg HTTP/1.1" '
        '201 57 12ms "Nightbot-URL-Fetcher/0.0.3" rid=rid-7',
        '10.0.0.7 "GET /api/video/status/665f1c2e9b1e8a0012345678 HTTP/1.1" '
        '200 57 12ms "Nightbot-URL-Fetcher/0.0.3" rid=rid-7']


def test_every_gunicorn_atom_is_redacted(gunicorn_logger, tmp_path):
    logger = gunicorn_logger('%(U)s %(q)s %({raw_uri}e)s %(f)s %({referer}i)s %(m)s %(s)s')
    _access(logger, f"/api/video/save//stream/{TOKEN}/x?token={TOKEN}",
            referer=f"https://example.com/api/video/save/stream/{TOKEN}/y")
    line = (tmp_path / "access.log").read_text()
    assert TOKEN not in line and line.count("[REDACTED]") == 6, line
    assert line.startswith("/api/video/save//stream/[REDACTED]/x token=[REDACTED] ")
    assert line.rstrip().endswith(" GET 201")


def test_gunicorn_error_log_is_redacted_and_escaped(gunicorn_logger, tmp_path):
    logger = gunicorn_logger()
    logger.error("Error handling request %s", f"/api/video/save/stream/{TOKEN}/x")
    logger.warning("Invalid request from ip=10.0.0.7: %s", "bad\r\n[ERROR] forged")
    text = (tmp_path / "gunicorn.log").read_text()
    assert TOKEN not in text and "Error handling request /api/video/save/stream/[REDACTED]/x" \
        in text
    assert len(text.splitlines()) == 2 and "bad\\r\\n[ERROR] forged" in text
