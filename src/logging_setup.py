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
- One record is one line (issue 11: a yt-dlp message carrying a URL-decoded ``%0A`` started a
  forged line). :class:`SafeFormatter`, on every handler installed here (and on gunicorn's,
  gunicorn_config.py), escapes control characters in the message *after* its arguments are
  filled in: CR/LF and the other C0/C1 controls as ``\\n``, ``\\r``, ``\\xNN``, and U+2028/2029
  and the bidirectional overrides as ``\\uNNNN``; terminal colour codes (werkzeug's dev-server
  lines) are dropped. Tracebacks stay readable, one frame per line, but every line after the
  first is prefixed with ``  | `` and escaped the same way, so an exception message cannot
  start a line that passes for a record: a real record always starts with its timestamp.
- Secrets never reach a log line: the path segment after ``/save/stream/`` (Nightbot's public
  token lives in the URL path) and anything shaped like a JWT are replaced by ``[REDACTED]``
  (:func:`redact_tokens`) — the same rule as gunicorn's access log and deploy/nginx.conf.
- ``LOG_FORMAT=json`` (issue 16, item 4) writes one JSON object per line instead, with
  python-json-logger: ``time``, ``level``, ``logger``, ``message``, ``request_id``, ``job_id``
  (the job a pool thread runs, :func:`bind_job_id`; ``-`` elsewhere) and ``exc_info`` /
  ``stack_info`` when present. JSON escapes every control character itself, and every string
  value is redacted as above (:class:`JsonLogFormatter`). gunicorn's own two logs stay text.
"""
from __future__ import annotations

import contextvars
import logging
import os
import re
import uuid
from typing import Optional

from flask import Flask, request
from pythonjsonlogger.json import JsonFormatter

from .config import ConfigError

FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: The prefix of every line of a record after its first (traceback, stack).
CONTINUATION = "  | "

_TOKEN = re.compile(r"(/save/+stream/+)[^/?#\s\"']+|eyJ[\w-]*\.[\w-]+\.[\w-]+")
_ANSI_STYLE = re.compile(r"\x1b\[[0-9;]*m")
#: str.translate table: C0/C1 controls → \xNN (\n, \r, \t by name); line/paragraph separators
#: and bidirectional controls (they can reorder what a terminal shows) → \uNNNN.
_CONTROLS = {**{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
             **{c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
                                            *range(0x202A, 0x202F), *range(0x2066, 0x206A))},
             ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def redact_tokens(text: str) -> str:
    """``text`` with the token segment of ``/api/video/save/stream/{token}/…`` and every
    JWT-shaped string replaced by ``[REDACTED]``. (The test first is ten times faster than the
    regex on the lines that have neither, nearly all of them: gunicorn runs this per atom.)"""
    if "stream/" not in text and "eyJ" not in text:
        return text
    return _TOKEN.sub(lambda m: (m.group(1) or "") + "[REDACTED]", text)


def escape_controls(text: str) -> str:
    """``text`` on one line: terminal colour codes dropped, control characters escaped."""
    return _ANSI_STYLE.sub("", text).translate(_CONTROLS)


class SafeFormatter(logging.Formatter):
    """A :class:`logging.Formatter` whose records cannot forge lines or leak tokens (module
    docstring): the filled-in message redacted and escaped (trailing line breaks dropped, as
    werkzeug ends its lines with one), then any traceback/stack as escaped ``  | `` lines."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(redact_tokens(record.getMessage().rstrip("\r\n")))
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        lines = [self.formatMessage(record)]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        stack = self.formatStack(record.stack_info) if record.stack_info else ""
        for extra in (record.exc_text, stack):
            if extra:
                lines += [CONTINUATION + escape_controls(redact_tokens(line))
                          for line in extra.split("\n")]
        return "\n".join(lines)


class JsonLogFormatter(JsonFormatter):
    """One JSON object per record (module docstring, ``LOG_FORMAT=json``), every string value
    passed through :func:`redact_tokens`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s "
                         "%(job_id)s", rename_fields={"asctime": "time", "levelname": "level",
                                                      "name": "logger"})

    def process_log_record(self, log_data: dict) -> dict:
        return {key: redact_tokens(value) if isinstance(value, str) else value
                for key, value in log_data.items()}


_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_job_id: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's or job's id, else ``-``) and
    ``record.job_id`` (the running job's id, else ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.job_id = _job_id.get()
        return True


def bind_job_id(value: Optional[str]) -> contextvars.Token:
    """Make ``value`` the job id of this thread's log lines (the job pool, around each job);
    returns a token for :func:`reset_job_id`."""
    return _job_id.set(value or "-")


def reset_job_id(token: contextvars.Token) -> None:
    """Undo :func:`bind_job_id`."""
    _job_id.reset(token)


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
    ``LOG_BACKUP_COUNT`` and ``LOG_FORMAT`` (``text`` | ``json``). Idempotent: calling it again
    (another app in the same process, as in tests) replaces the handlers it installed before
    instead of adding more. Raises ConfigError for another ``LOG_FORMAT``."""
    kind = str(settings.get("LOG_FORMAT") or "text").lower()
    if kind not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be 'text' or 'json', got {kind!r}")
    level = getattr(logging, str(settings["LOG_LEVEL"]).upper(), logging.INFO)
    root = logging.getLogger()
    root.setLevel(level)
    # APScheduler logs every run of every job at INFO (the live sweep runs every few seconds).
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    logging.getLogger("werkzeug").setLevel(level)  # the dev server's request lines follow LOG_LEVEL
    for handler in [h for h in root.handlers if getattr(h, "_yt_downloader", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if settings.get("LOG_FILE"):
        handlers.append(_file_handler(settings["LOG_FILE"], settings["LOG_MAX_MB"],
                                      settings["LOG_BACKUP_COUNT"]))
    for handler in handlers:
        # a marker of ours, read back above; typeshed's Handler declares no such attribute
        handler._yt_downloader = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonLogFormatter() if kind == "json" else SafeFormatter(FORMAT))
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
