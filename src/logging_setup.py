"""Logging (spec: Configuration ``LOG_LEVEL``/``LOG_FILE``, Logs): one format everywhere, a
rotating ``LOG_FILE``, and a request id on every line.

- ``LOG_FILE`` rotates at ``LOG_MAX_MB`` MiB keeping ``LOG_BACKUP_COUNT`` old files. Several
  gunicorn workers write the same file, so the handler is concurrent-log-handler's
  ``ConcurrentRotatingFileHandler`` (a lock file next to the log serialises writes and rotation;
  the standard RotatingFileHandler would rotate once per process and lose lines).
  An empty ``LOG_FILE`` logs to stderr only.
- The request id comes from a sane incoming ``X-Request-ID`` header (from nginx, for example) or
  is a new random hex id; it is returned in the ``X-Request-ID`` response header and shown as
  ``[id]`` on every log line of the request. Jobs carry the id of the request that started them
  (:func:`bind_request_id`); lines outside any request show ``[-]``.
"""
from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from typing import Optional

from flask import Flask, request

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's or job's id, else ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


def current_request_id() -> str:
    """The id of the request (or job) this thread works for, ``-`` outside any."""
    return _request_id.get()


def bind_request_id(value: Optional[str]) -> contextvars.Token:
    """Make ``value`` the id shown on this thread's log lines; returns a token for
    :func:`reset_request_id`."""
    return _request_id.set(value or "-")


def reset_request_id(token: contextvars.Token) -> None:
    """Undo :func:`bind_request_id` (``token`` is what it returned)."""
    _request_id.reset(token)


def _file_handler(path: str, max_mb: float, backups: int) -> logging.Handler:
    from concurrent_log_handler import ConcurrentRotatingFileHandler

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return ConcurrentRotatingFileHandler(path, maxBytes=int(max_mb * 1024 * 1024),
                                         backupCount=backups, encoding="utf-8")


def configure_logging(settings: dict) -> None:
    """Set the root logger's level and handlers from ``LOG_LEVEL``, ``LOG_FILE``, ``LOG_MAX_MB``,
    ``LOG_BACKUP_COUNT``. Idempotent: calling it again (another app in the same process, as in
    tests) replaces the handlers it installed before instead of adding more."""
    level = getattr(logging, str(settings["LOG_LEVEL"]).upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO (the live sweep runs every few seconds).
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    logging.getLogger("werkzeug").setLevel(level)  # the dev server's request lines follow LOG_LEVEL
    for handler in [h for h in root.handlers if getattr(h, "_yt_downloader", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler()]
    if settings.get("LOG_FILE"):
        handlers.append(_file_handler(settings["LOG_FILE"], settings["LOG_MAX_MB"],
                                      settings["LOG_BACKUP_COUNT"]))
    for handler in handlers:
        handler._yt_downloader = True
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)


def init_app(app: Flask) -> None:
    """Give every request an id: taken from a sane ``X-Request-ID`` header or made here, bound
    to the log lines of the request and echoed in the response header."""

    @app.before_request
    def _bind():
        incoming = request.headers.get(HEADER, "")
        rid = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.environ["yt.request_id"] = rid
        request.environ["yt.request_id_token"] = bind_request_id(rid)

    @app.after_request
    def _echo(response):
        rid = request.environ.get("yt.request_id")
        if rid:
            response.headers[HEADER] = rid
        return response

    @app.teardown_request
    def _unbind(_exc):
        token = request.environ.pop("yt.request_id_token", None)
        if token is not None:
            try:
                reset_request_id(token)
            except ValueError:  # created in another context (should not happen)
                bind_request_id(None)
