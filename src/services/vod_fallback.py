"""A stream clip that could not be recorded live waits for the VOD instead (issue 14, item 2).

A clip saved from chat while its stream is live is recorded from the live stream at once
(src/services/live_capture.py). When that fails — the window already left the live playlist
(DVR off or too short), the stream stalled or ended, no live format we read — or its recording
expired, the clip goes back to what stream clips did before: it waits for the stream's
recording (the VOD) and is then cut from it (src/services/live_service.py places and releases
it). The reason stays on the clip as ``live_fallback`` for its status.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Optional

from ..data import videos
from ..extensions import db, setting
from . import folders

log = logging.getLogger(__name__)


def recheck_delay(checks: int) -> float:
    """Seconds until the next look at a stream clip checked ``checks`` times: exponential
    back-off, ``LIVE_RECHECK_INITIAL_SECONDS`` doubling up to ``LIVE_RECHECK_MAX_SECONDS``."""
    return min(setting("LIVE_RECHECK_MAX_SECONDS"),
               setting("LIVE_RECHECK_INITIAL_SECONDS") * 2 ** min(checks, 40))


def to_vod(doc: dict, code: str, message: str, job_id: Optional[str] = None) -> bool:
    """Send a stream clip whose live recording failed (``job_id``: its job, while it owns the
    record) or whose recording failed or expired (``job_id`` None: from that status) back to
    waiting for the VOD, as if it had never been recorded: files removed, ``live_window``
    cleared, ``live_phase`` ``waiting_for_vod`` with its next check after
    :func:`recheck_delay` (the resolver's sweep releases it when the recording is
    published), the reason kept as ``live_fallback`` ``{"code", "message"}`` (shown in its
    status). Returns False when the record changed meanwhile (nothing done)."""
    folders.empty(folders.path_of(doc))
    checks = int(doc.get("live_checks") or 0)
    done = videos.update(db(), doc["_id"], {
        "status": "pending", "live_window": None, "live_phase": "waiting_for_vod",
        "live_checks": checks + 1,
        "next_check_at": datetime.now(timezone.utc) + timedelta(seconds=recheck_delay(checks)),
        "file_path": None, "file_size_bytes": None,
        "error_code": None, "error_message": None,
        "live_fallback": {"code": code, "message": message}},
        job_id=job_id, status="processing" if job_id else doc["status"])
    if done:
        log.info("video %s: live recording failed (%s); waiting for the VOD", doc["_id"], code)
    return done
