"""Health of the service and its dependencies (issue 4: ``GET /api/health``; issue 16: the
``/livez`` and ``/readyz`` probes), and the free-disk guard that refuses new jobs (507) when ``DOWNLOADS_DIR``/``UPLOADS_DIR`` run short of space.

Sizes are MiB (``free_mb``, rounded to 0.1 like the spec's ``_mb`` fields).
"""
from __future__ import annotations

import logging
import shutil

from ..errors import ApiError
from ..extensions import db, jobs, redis, setting
from ..media.ffmpeg import FFMPEG, FFPROBE

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


def _jobs() -> dict:
    return {**jobs().stats(), "processing_all_workers": db().videos.count_documents(
        {"status": "processing"})}


def _ytdlp() -> dict:
    from yt_dlp.version import __version__

    return {"version": __version__}


def ready() -> tuple[dict, int]:
    """Readiness (``GET /readyz``): can this process take work now? MongoDB and Redis answer a
    ping, ffmpeg/ffprobe are on PATH, both media folders have ``MIN_FREE_DISK_MB`` free and
    yt-dlp imports. Returns ``({"status": "ready" | "unavailable", "failing": [names],
    "checks": {...}}, 200 | 503)``; each check as in :func:`health`. Liveness is the route
    alone (``/livez`` calls nothing): a load balancer takes an unready worker out of rotation,
    a supervisor restarts only one that does not answer."""
    checks = {
        "mongodb": _probe(lambda: db().command("ping") and None),
        "redis": _probe(lambda: redis().ping() and None),
        "ffmpeg": _probe(_ffmpeg),
        "disk": _probe(_disk),
        "yt_dlp": _probe(_ytdlp),
    }
    failing = [name for name, check in checks.items() if not check["ok"]]
    return ({"status": "unavailable" if failing else "ready", "failing": failing,
             "checks": checks}, 503 if failing else 200)


def health() -> tuple[dict, int]:
    """Check MongoDB (ping), Redis (ping), ffmpeg/ffprobe on PATH, free disk and the job pool.

    Returns ``(body, status)``: 200 with ``status: "ok"``, 200 ``"degraded"`` when only the disk
    is short (downloads of finished files still work, new jobs get 507), 503 ``"unavailable"``
    when MongoDB, Redis or ffmpeg is down. Body: ``{"status", "checks": {"mongodb", "redis",
    "ffmpeg", "disk", "jobs"}}``; each check has ``ok`` and, when failing, ``error``.
    ``jobs``: ``running`` and ``queued`` in this process (also per lane: ``lanes.clip`` and
    ``lanes.encode``, src/services/jobs.py), ``processing_all_workers`` in the store.
    """
    checks = {
        "mongodb": _probe(lambda: db().command("ping") and None),
        "redis": _probe(lambda: redis().ping() and None),
        "ffmpeg": _probe(_ffmpeg),
        "disk": _probe(_disk),
    }
    checks["jobs"] = _probe(_jobs)
    embedded = [name for name in ("MONGODB_URI", "REDIS_URI") if not setting(name)]
    if embedded:
        checks["embedded"] = embedded
    down = [name for name in ("mongodb", "redis", "ffmpeg") if not checks[name]["ok"]]
    if down:
        return {"status": "unavailable", "checks": checks}, 503
    status = "ok" if checks["disk"]["ok"] and checks["jobs"]["ok"] else "degraded"
    return {"status": status, "checks": checks}, 200
