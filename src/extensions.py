"""Access to the per-app stores from services and jobs (they run inside an app context).

``create_app`` puts the MongoDB database, the Redis client, the session cache and the job pool in
``app.extensions["yt"]``; nothing is created at import time.
"""
from __future__ import annotations

from flask import current_app


def db():
    """The MongoDB database of the current app."""
    return current_app.extensions["yt"]["db"]


def redis():
    """The Redis client of the current app."""
    return current_app.extensions["yt"]["redis"]


def session_cache():
    """The session cache (:class:`src.services.cache_service.SessionCache`) of the current app."""
    return current_app.extensions["yt"]["sessions"]


def jobs():
    """The job backend of the current app (:class:`src.services.jobs.JobBackend`: the
    in-process ``JobPool``, or ``CeleryBackend`` with ``JOB_BACKEND=celery``)."""
    return current_app.extensions["yt"]["jobs"]


def setting(name: str):
    """A configuration value of the current app (names as in src/config.py)."""
    return current_app.config[name]
