"""Health of the service and its dependencies (issue 4: ``GET /api/health``; issue 16: the
``/livez`` and ``/readyz`` probes), and the free-disk guard that refuses new jobs (507) when
``DOWNLOADS_DIR``/``UPLOADS_DIR`` run short of space.

Sizes are MiB (``free_mb``, rounded to 0.1 like the spec's ``_mb`` fields).
"""
from __future__ import annotations

import json
import logging
import shutil
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Optional

from flask import current_app

from ..data import videos
from ..errors import ApiError
from ..extensions import db, jobs, redis, setting
from ..media import ytdlp_runtime
from ..media.ffmpeg import FFMPEG, FFPROBE
from ..utils import netscape_cookies
from . import storage

log = logging.getLogger(__name__)


def free_mb(path: str) -> float:
    """Free space (MiB, for unprivileged users) on the filesystem that holds ``path``."""
    return shutil.disk_usage(path).free / 1_048_576


def require_free_disk() -> None:
    """Refuse a new job when a media folder has less than ``MIN_FREE_DISK_MB`` free.

    Raises ApiError 507 INSUFFICIENT_STORAGE (RFC 4918's status for "cannot store what is needed").
    """
    minimum = setting("MIN_FREE_DISK_MB")
    for name in ("DOWNLOADS_DIR", "UPLOADS_DIR"):
        free = free_mb(setting(name))
        if free < minimum:
            log.warning("refusing a new job: %s has %.0f MiB free (MIN_FREE_DISK_MB=%g)",
                        name, free, minimum)
            raise ApiError(507, "The server is low on disk space; try again later",
                           "INSUFFICIENT_STORAGE")


def _probe(check) -> dict:
    try:
        return {"ok": True, **(check() or {})}
    except Exception as exc:  # a dependency that is down, whatever the client library raises
        log.warning("health: %s failed: %s", getattr(check, "__name__", check), exc)
        # the endpoint is public: hosts, ports and paths stay in the log outside development
        detail = f"{type(exc).__name__}: {exc}"[:200] if setting("APP_ENV") == "development" \
            else type(exc).__name__
        return {"ok": False, "error": detail}


def _disk() -> dict:
    minimum = setting("MIN_FREE_DISK_MB")
    folders = {name.lower(): round(free_mb(setting(name)), 1)
               for name in ("DOWNLOADS_DIR", "UPLOADS_DIR")}
    return {"ok": all(v >= minimum for v in folders.values()), "free_mb": folders,
            "min_free_mb": minimum}


def _ffmpeg() -> dict:
    missing = [name for name in (FFMPEG, FFPROBE) if not shutil.which(name)]
    if missing:
        raise FileNotFoundError(f"not found: {', '.join(missing)}")
    return {}


def _storage() -> dict:
    """Where finished files go: ``{"backend": "local"}``, or ``{"backend": "s3", "bucket"}``
    after a HeadBucket (raises when the bucket cannot be reached or read)."""
    store = storage.bucket()
    if store is None:
        return {"backend": "local"}
    store.client.head_bucket(Bucket=store.name)
    return {"backend": "s3", "bucket": store.name}


def _jobs() -> dict:
    return {**jobs().stats(), "processing_all_workers": videos.count_processing(db())}


#: How long the health check waits for the PO-token provider's ``/ping`` (a loopback service).
POT_PING_TIMEOUT = 2.0


def _ytdlp() -> dict:
    """yt-dlp imports and, unless ``YTDLP_JS_RUNTIME=none``, its JS runtime is found (without
    one yt-dlp solves no YouTube challenge and drops formats: issue 13, item 1)."""
    from yt_dlp.version import __version__

    runtime = ytdlp_runtime.runtime_info()
    body: dict = {"version": __version__, "js_runtime": runtime and {
        "name": runtime["name"], "version": runtime["version"]}}
    if ytdlp_runtime.current().js_runtime.strip().lower() != "none" and not (
            runtime and runtime["supported"]):
        body.update(ok=False, error="no supported JavaScript runtime found (YTDLP_JS_RUNTIME)")
    return body


def _pot_reachable(base_url: str) -> bool:
    """GET ``{base_url}/ping`` (the bgutil provider's health route) answers JSON within
    :data:`POT_PING_TIMEOUT`; no proxy (the plugin calls it without one, too)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(base_url + "/ping", timeout=POT_PING_TIMEOUT) as response:
            json.loads(response.read(65536))
        return True
    except (OSError, ValueError):
        return False


def _cookies_file() -> dict:
    """``YTDLP_COOKIES_FILE``: set, present, valid, and its earliest expiry (ISO 8601 UTC, or
    None when all are session cookies) — never a path, a name or a value."""
    path = ytdlp_runtime.current().cookies_file
    status: dict = {"configured": bool(path), "present": False, "earliest_expiry": None}
    if not path:
        return status
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return status
    status["present"] = True
    try:
        expiry = netscape_cookies.summary(text)["earliest_expiry"]
    except netscape_cookies.CookiesFormatError as exc:
        return {**status, "valid": False, "error": str(exc)}
    status["valid"] = True
    if expiry:
        status["earliest_expiry"] = datetime.fromtimestamp(expiry, timezone.utc).isoformat()
    return status


def _proxy_scheme(url: Optional[str]) -> Optional[str]:
    return (urllib.parse.urlsplit(url).scheme or None) if url else None


def _ytdlp_details() -> dict:
    """:func:`_ytdlp` plus what real YouTube needs (issue 13, item 8): the ``yt-dlp-ejs``
    version, the PO-token provider (configured, reachable), the server cookies file and the
    proxy (configured, scheme only — a proxy URL may hold credentials)."""
    settings = ytdlp_runtime.current()
    pot = settings.pot_provider_url
    proxy = current_app.config.get("YTDLP_PROXY")
    return {**_ytdlp(), "ejs_version": ytdlp_runtime.ejs_version(),
            "pot_provider": {"configured": bool(pot),
                             "reachable": _pot_reachable(pot) if pot else False},
            "cookies_file": _cookies_file(),
            "proxy": {"configured": bool(proxy), "scheme": _proxy_scheme(proxy)}}


def ready() -> tuple[dict, int]:
    """Readiness (``GET /readyz``): can this process take work now? MongoDB and Redis answer a
    ping, ffmpeg/ffprobe are on PATH, both media folders have ``MIN_FREE_DISK_MB`` free, the
    bucket answers (``STORAGE_BACKEND=s3``, :func:`_storage`) and
    yt-dlp imports with its JS runtime found (unless ``YTDLP_JS_RUNTIME=none``).
    Returns ``({"status": "ready" | "unavailable", "failing": [names],
    "checks": {...}}, 200 | 503)``; each check as in :func:`health`. Liveness is the route
    alone (``/livez`` calls nothing): a load balancer takes an unready worker out of rotation,
    a supervisor restarts only one that does not answer."""
    checks = {
        "mongodb": _probe(lambda: db().command("ping") and None),
        "redis": _probe(lambda: redis().ping() and None),
        "ffmpeg": _probe(_ffmpeg),
        "disk": _probe(_disk),
        "storage": _probe(_storage),
        "yt_dlp": _probe(_ytdlp),
    }
    failing = [name for name, check in checks.items() if not check["ok"]]
    return ({"status": "unavailable" if failing else "ready", "failing": failing,
             "checks": checks}, 503 if failing else 200)


def health() -> tuple[dict, int]:
    """Check MongoDB (ping), Redis (ping), ffmpeg/ffprobe on PATH, free disk and the job pool.

    Returns ``(body, status)``: 200 with ``status: "ok"``, 200 ``"degraded"`` when only the disk
    is short (downloads of finished files still work, new jobs get 507) or the bucket does not
    answer (``storage``, :func:`_storage`), 503 ``"unavailable"``
    when MongoDB, Redis or ffmpeg is down. Body: ``{"status", "checks": {"mongodb", "redis",
    "ffmpeg", "disk", "storage", "jobs", "yt_dlp"}}``; each check has ``ok`` and, when
    failing, ``error``.
    ``yt_dlp`` (:func:`_ytdlp_details`): ``version``, ``js_runtime`` (``{name, version}`` or
    None), ``ejs_version``, ``pot_provider`` ``{configured, reachable}``, ``cookies_file``
    ``{configured, present, valid?, earliest_expiry}``, ``proxy`` ``{configured, scheme}``;
    not ok (→ ``degraded``) when no JS runtime is found though one is configured.
    ``jobs``: ``running`` and ``queued`` in this process (also per lane: ``lanes.clip`` and
    ``lanes.encode``, src/services/jobs.py), ``processing_all_workers`` in the store.
    """
    checks: dict[str, Any] = {
        "mongodb": _probe(lambda: db().command("ping") and None),
        "redis": _probe(lambda: redis().ping() and None),
        "ffmpeg": _probe(_ffmpeg),
        "disk": _probe(_disk),
        "storage": _probe(_storage),
    }
    checks["jobs"] = _probe(_jobs)
    checks["yt_dlp"] = _probe(_ytdlp_details)
    embedded = [name for name in ("MONGODB_URI", "REDIS_URI") if not setting(name)]
    if embedded:
        checks["embedded"] = embedded
    down = [name for name in ("mongodb", "redis", "ffmpeg") if not checks[name]["ok"]]
    if down:
        return {"status": "unavailable", "checks": checks}, 503
    status = "ok" if all(checks[name]["ok"] for name in ("disk", "storage", "jobs", "yt_dlp")) \
        else "degraded"
    return {"status": status, "checks": checks}, 200
