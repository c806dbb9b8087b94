"""Gunicorn settings (spec: Deployment). Start the service with:

    gunicorn -c gunicorn_config.py "src.app:create_app()"

Environment (besides the app's own settings, read from the environment and ``.env``):
``GUNICORN_BIND`` (default ``HOST:PORT``), ``GUNICORN_WORKERS`` (2), ``GUNICORN_THREADS`` (8),
``GUNICORN_TIMEOUT`` (120 s), ``GUNICORN_GRACEFUL_TIMEOUT`` (90 s).

- ``gthread`` workers: a request waiting for a download (``DOWNLOAD_WAIT_SECONDS``) or streaming
  a file holds a thread, not a process; the worker keeps its heartbeat to the master meanwhile, so
  ``timeout`` only catches a worker that is truly stuck, not a long transfer.
- Jobs run in a pool inside each worker. On a restart they get ``graceful_timeout`` to finish;
  a job cut short is recovered by the next start (src/services/recovery_service.py).
- No ``preload_app`` and no ``max_requests``: each worker builds its own app (PyMongo clients are
  not fork-safe) and is never recycled in the middle of a job.
- The checks of src/config_checks.py run once in the master before any worker starts: a refused
  setting stops gunicorn with one ``Error:`` line naming the variable (exit code 1).
- Metrics (src/metrics.py): prometheus-client's multiprocess mode, so that any worker's
  ``/metrics`` answers for all of them. ``PROMETHEUS_MULTIPROC_DIR`` (default: a folder per bind
  address under the system's temporary directory — private to the service with systemd's
  ``PrivateTmp``) is emptied when the master starts; a dead worker's gauges are dropped.
- Logs: ``logs/access.log`` (with the ``X-Request-ID`` of each answer) and ``logs/gunicorn.log``
  next to ``LOG_FILE``; the app's own lines go to ``LOG_FILE`` (src/logging_setup.py).
  :class:`RedactingLogger` keeps Nightbot's public token (a path segment of
  ``/api/video/save/stream/{token}/…``) out of both, and escapes control characters (issue 11).
"""
import glob
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # gunicorn reads this before --chdir

from gunicorn.glogging import Logger

from src.config import ConfigError, load_config
from src.config_checks import check_settings, check_workers
from src.logging_setup import SafeFormatter, redact_tokens

_settings = load_config()


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        sys.exit(f"Error: {name} must be a whole number, got {os.environ.get(name)!r}")


bind = os.environ.get("GUNICORN_BIND") or f"{_settings['HOST']}:{_settings['PORT']}"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 8)
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 120)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 90)
keepalive = 5
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
    tempfile.gettempdir(), "yt-downloader-metrics-" + re.sub(r"[^\w.-]", "_", bind))
preload_app = False
# gunicorn ≥ 25.1 opens a control socket under $HOME by default; systemd manages this service
# and ProtectHome hides $HOME, so it is off (older versions ignore the name).
control_socket_disable = True
# nginx on the same machine sets X-Forwarded-For / -Proto; trust only loopback.
forwarded_allow_ips = "127.0.0.1,::1"

_log_dir = os.path.dirname(os.path.abspath(_settings["LOG_FILE"] or "./logs/app.log"))
os.makedirs(_log_dir, exist_ok=True)
accesslog = os.path.join(_log_dir, "access.log")
errorlog = os.path.join(_log_dir, "gunicorn.log")
loglevel = str(_settings["LOG_LEVEL"]).lower()
access_log_format = ('%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s" '
                     'rid=%({x-request-id}o)s')


class RedactingLogger(Logger):
    """gunicorn's logger without tokens (src/logging_setup.py's rule, issue 11): every text
    atom of an access line is redacted — the request line ``r``, the path ``U``, the query ``q``,
    the referer ``f``, headers and environ values such as ``{raw_uri}e`` — so any
    ``access_log_format`` (and a ``logconfig`` of one's own) stays clean; gunicorn's handlers
    of both logs get the app's :class:`SafeFormatter` (tokens redacted in error lines such as
    "Error handling request /…", control characters escaped). Everything else is gunicorn's."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: redact_tokens(value) if isinstance(value, str) else value
                for name, value in atoms.items()}

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):  # the handlers gunicorn installed
                    plain = handler.formatter
                    handler.setFormatter(SafeFormatter(plain._fmt, plain.datefmt))


logger_class = RedactingLogger


def on_starting(server):
    """Refuse unsafe or unworkable settings before any worker starts."""
    try:
        check_settings(_settings)
        check_workers(_settings, server.cfg.workers)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        server.log.error("refusing to start: %s", exc)
        sys.exit(1)
    os.makedirs(_metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(_metrics_dir, "*.db")):  # a previous master's values
        os.remove(stale)
    # Set here, in the master, not when this file is read: workers are forked after this and
    # inherit it; anything else that reads this file (tests) keeps single-process metrics.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    """A worker ended: its live gauges (jobs queued/running) no longer count."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
