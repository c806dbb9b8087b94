"""Per-user cap on running + queued jobs (issue 11: "no one user can starve the rest").

``MAX_JOBS_PER_USER`` (0 = no cap) bounds a user's clips and encodes in ``processing`` together,
counted from the store, so it holds across gunicorn workers. Starting one more is 429
``TOO_MANY_JOBS`` with ``Retry-After``; joining a job that already runs for the same clip or
upload is not a new job and is never refused (the callers check only before a claim).

The count and the claim run under a per-user Redis lock, so concurrent requests of one user
cannot all pass the count before any of them claims. A job whose process died (no heartbeat,
src/services/progress_cache.py) is not counted: its record still says ``processing`` until it is
reaped, but it holds nothing.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager

from redis.exceptions import LockError

from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis, setting
from . import progress_cache

log = logging.getLogger(__name__)

#: Seconds a refused client is told to wait (``Retry-After``): about the length of a short clip
#: job; a job's real end is better watched through its status.
RETRY_AFTER_SECONDS = 30
#: How long one user's check-and-claim may hold the lock, and how long another waits for it.
LOCK_SECONDS = 10


def active_jobs(user_id: str) -> int:
    """The user's clips and encodes that are running or queued (``processing`` with a live
    job)."""
    return sum(1 for doc in videos.processing_for_user(db(), user_id)
               if not progress_cache.job_is_dead(redis(), doc))


@contextmanager
def new_job_allowed(user_id: str):
    """Run the body (the claim of a new job) only while ``user_id`` is under
    ``MAX_JOBS_PER_USER``; the count and the body are serialised per user across processes.

    Raises ApiError 429 ``TOO_MANY_JOBS`` with a ``Retry-After`` header (seconds) when the user
    already has that many jobs, or when their lock could not be had within ``LOCK_SECONDS``.
    """
    cap = setting("MAX_JOBS_PER_USER")
    if not cap:
        yield
        return
    lock = redis().lock(f"jobs:user:{user_id}", timeout=LOCK_SECONDS,
                        blocking_timeout=LOCK_SECONDS)
    if not lock.acquire():
        raise _too_many(f"Too many requests starting jobs at once; try again in "
                        f"{RETRY_AFTER_SECONDS} s")
    try:
        count = active_jobs(user_id)
        if count >= cap:
            log.info("user %s refused a new job: %d running or queued (MAX_JOBS_PER_USER=%d)",
                     user_id, count, cap)
            raise _too_many(f"You already have {count} jobs running or queued (at most {cap}); "
                            f"try again when one has finished")
        yield
    finally:
        try:
            lock.release()
        except LockError:  # expired meanwhile (a store that stalled): nothing to release
            pass


def _too_many(message: str) -> ApiError:
    return ApiError(429, message, "TOO_MANY_JOBS",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
