"""The record side of a job, written once for clips and encodes (issue 15, item 1).

A job owns its record while ``job_id`` on it is its own and ``status`` is ``processing``
(:func:`start` claims it: ``src.data.videos.claim`` sets both). Here: starting a job
(:func:`start`), the ownership check a job makes at every progress step (:func:`check_owned`),
recording a failure with its partial files removed (:func:`fail`), failing a job whose process
died (:func:`reap_if_dead`: no heartbeat, src/services/progress_cache.py), and the request
side's wait-or-202 (:func:`wait`). What a job kind adds is only its own: which files are
partial (``clean``), what a finished record answers (``done``), which error a failure is
(``failed``).
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, jobs, redis
from ..utils.files import file_available
from . import health_service, job_limits, progress_cache
from .jobs import JobCancelled

log = logging.getLogger(__name__)

#: Seconds between looks at the record while a request waits (the pool wakes it sooner when
#: the job ends in this process: ``JobPool.wait_briefly``).
POLL_SECONDS = 0.2
INTERRUPTED = "JOB_INTERRUPTED"


def start(video_id: str, user_id: str, fields: dict, fn: Callable[[str, str], None],
          lane: str = "clip", from_statuses: Optional[tuple] = None) -> Optional[str]:
    """Claim the record for a new job and queue ``fn(video_id, job_id)`` in ``lane``: 507
    INSUFFICIENT_STORAGE first when the disk is short (src/services/health_service.py), 429
    TOO_MANY_JOBS past ``MAX_JOBS_PER_USER`` (src/services/job_limits.py), then
    ``src.data.videos.claim`` with ``fields`` (``job_claimed_at`` added) from ``from_statuses``
    (default: the restartable ones) and a fresh progress entry. Returns the new job id, or None
    when another job holds the record (join it: :func:`wait`)."""
    health_service.require_free_disk()
    job_id = uuid.uuid4().hex
    claim_fields = {**fields, "job_claimed_at": datetime.now(timezone.utc)}
    with job_limits.new_job_allowed(user_id):
        claimed = videos.claim(db(), video_id, job_id, claim_fields,
                               from_statuses=from_statuses or videos.RESTARTABLE)
    if not claimed:
        return None
    progress_cache.reset_progress(redis(), video_id)
    jobs().submit(video_id, job_id, fn, lane=lane)
    return job_id


def check_owned(video_id: str, job_id: str) -> dict:
    """The record, while job ``job_id`` owns it; else raise :class:`JobCancelled` (deleted,
    declared dead and claimed by another job, or no longer ``processing``)."""
    current = videos.get(db(), video_id)
    if not current or current.get("job_id") != job_id or current["status"] != "processing":
        raise JobCancelled(video_id)
    return current


def fail(video_id: str, job_id: Optional[str], code: str, message: str,
         clean: Callable[[dict], None], clean_first: bool = True) -> bool:
    """Record the failure ``code``/``message`` of job ``job_id`` if it still owns the record;
    ``clean(record)`` removes its partial (or stale) files and the file fields are cleared.
    ``clean_first`` (the job itself failing): the files go before the record says ``failed``,
    so a request that sees ``failed`` never finds them; else (another process declaring the
    job dead, maybe several at once) only the one whose update won cleans, after it. False
    when the job had lost the record (nothing done)."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("job_id") != job_id or doc["status"] != "processing":
        return False
    if clean_first:
        clean(doc)
    done = bool(videos.update(db(), video_id, {
        "status": "failed", "error_code": code, "error_message": message, "file_path": None,
        "file_size_bytes": None}, job_id=job_id, status="processing"))
    if done and not clean_first:
        clean(doc)
    return done


def reap_if_dead(doc: dict, message: str, clean: Callable[[dict], None], kind: str,
                 not_found: str) -> dict:
    """If ``doc`` is ``processing`` but its job is dead (no heartbeat, claimed longer ago than
    the heartbeat TTL), :func:`fail` it with JOB_INTERRUPTED and ``message`` (``kind``:
    ``video`` or ``encode``, for the log). Returns ``doc`` itself when its job is alive (or it
    has none: the status poll reads the record once), else the record as it is after the
    reaping; ApiError 404 ``not_found`` when it was deleted meanwhile."""
    if not progress_cache.job_is_dead(redis(), doc):
        return doc
    if fail(str(doc["_id"]), doc.get("job_id"), INTERRUPTED, message, clean, clean_first=False):
        log.warning("%s %s: job %s had no heartbeat; marked failed", kind, doc["_id"],
                    doc.get("job_id"))
    current = videos.get(db(), doc["_id"])
    if current is None:
        raise ApiError(404, not_found, "NOT_FOUND")
    return current


def wait(video_id: str, seconds: float, done: Callable[[dict], dict],
         failed: Callable[[dict], Exception], not_found: str) -> dict:
    """Wait up to ``seconds`` for the job of ``video_id`` to end: ``done(record)`` when it is
    ``completed`` with its file there, ``{"processing": True}`` past the time (the 202).
    Raises ``failed(record)`` for a ``failed`` one, ApiError 404 ``not_found`` when the record
    is deleted while the request waits."""
    deadline = time.monotonic() + seconds
    while True:
        doc = videos.get(db(), video_id)
        if doc is None:
            raise ApiError(404, not_found, "NOT_FOUND")
        if doc["status"] == "completed" and file_available(doc):
            return done(doc)
        if doc["status"] == "failed":
            raise failed(doc)
        if time.monotonic() >= deadline:
            return {"processing": True}
        jobs().wait_briefly(video_id, POLL_SECONDS)
