"""Crash recovery: jobs left ``processing`` by a process that died (worker killed, server
restarted) end ``failed`` with JOB_INTERRUPTED and lose their partial files (DESIGN.md: a job that
was processing when its process died must not stay processing forever).

A job is dead when its heartbeat ``heartbeat:{video_id}`` (refreshed every 10 s by the owning
process, 30 s TTL, src/services/jobs.py) is gone and it was claimed longer ago than that TTL.
Every write is conditional on the record's ``job_id``, so several workers recovering at once (all
gunicorn workers start together) change each record once, and a job that is alive is never
touched. Runs at start-up (:func:`recover_at_start`) and on every cleanup run.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis
from . import download_service, encoding_service, progress_cache

log = logging.getLogger(__name__)


def recover_stale() -> int:
    """Fail every dead ``processing`` job (clips and encodes); return how many this call
    changed. Safe to run in several processes at once."""
    recovered = 0
    for doc in videos.processing(db()):
        if not progress_cache.job_is_dead(redis(), doc):
            continue
        reap = encoding_service.reap_if_dead if doc.get("source_type") == "upload" \
            else download_service.reap_if_dead
        try:
            after = reap(doc)
        except ApiError:  # deleted meanwhile: nothing left to recover
            continue
        recovered += bool(after and after.get("status") == "failed"
                          and after.get("job_id") == doc.get("job_id")
                          and after.get("error_code") == "JOB_INTERRUPTED")
    return recovered


def recover_at_start(app) -> None:
    """Recover now, and once more when a heartbeat left by the previous process must have
    expired (after a quick restart the old heartbeats still live for up to 30 s)."""
    def run():
        with app.app_context():
            try:
                count = recover_stale()
            except Exception:  # a store that is not reachable yet must not stop the start-up
                log.exception("start-up recovery failed")
                return
            if count:
                log.warning("start-up recovery: %d interrupted job(s) marked failed", count)

    run()
    scheduler = app.extensions["yt"].get("scheduler")
    if scheduler is not None:
        later = datetime.now(timezone.utc) + timedelta(
            seconds=progress_cache.HEARTBEAT_TTL_SECONDS + 5)
        scheduler.add_job(run, "date", run_date=later, id="startup-recovery")
