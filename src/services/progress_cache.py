"""Redis: job progress ``progress:{video_id}`` (JSON, 1 h TTL) and job heartbeats.

Progress fields follow the spec (Redis Cache Structure 2): ``current_phase``
(initializing | downloading | encoding), ``download_progress`` and ``encoding_progress`` (0-100),
``speed`` ("2.3x"), ``eta`` ("MM:SS"), ``fps``.

A heartbeat ``heartbeat:{video_id}`` = job id, with a short TTL, is refreshed by the process that
owns a job (queued or running). A record in ``processing`` whose heartbeat has expired belongs to
a process that died: its job can be declared dead and restarted.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Optional

PROGRESS_TTL_SECONDS = 3600
HEARTBEAT_TTL_SECONDS = 30

EMPTY_PROGRESS = {"current_phase": "initializing", "download_progress": 0, "encoding_progress": 0,
                  "speed": None, "eta": None, "fps": 0}


def set_progress(redis, video_id: str, progress_data: dict) -> dict:
    """Merge ``progress_data`` into the stored progress, reset the 1 h TTL, return the result."""
    key = f"progress:{video_id}"
    raw = redis.get(key)
    merged = {**EMPTY_PROGRESS, **(json.loads(raw) if raw else {}), **progress_data}
    redis.set(key, json.dumps(merged), ex=PROGRESS_TTL_SECONDS)
    return merged


def reset_progress(redis, video_id: str, phase: str = "initializing") -> None:
    """Start from an empty progress record in ``phase``."""
    redis.set(f"progress:{video_id}", json.dumps({**EMPTY_PROGRESS, "current_phase": phase}),
              ex=PROGRESS_TTL_SECONDS)


def get_progress(redis, video_id: str) -> Optional[dict]:
    """The current progress, or None."""
    raw = redis.get(f"progress:{video_id}")
    return json.loads(raw) if raw else None


def beat(redis, video_id: str, job_id: str, ttl: int = HEARTBEAT_TTL_SECONDS) -> None:
    """Refresh the heartbeat of the job that owns ``video_id`` for ``ttl`` seconds (a job
    queued in a Celery broker: the longest wait for a worker, src/services/celery_backend.py)."""
    redis.set(f"heartbeat:{video_id}", job_id, ex=ttl)


def heartbeat(redis, video_id: str) -> Optional[str]:
    """The job id whose heartbeat is live for ``video_id``, or None."""
    return redis.get(f"heartbeat:{video_id}")


def clear_heartbeat(redis, video_id: str, job_id: str) -> None:
    """Remove the heartbeat if it is still ``job_id``'s."""
    if redis.get(f"heartbeat:{video_id}") == job_id:
        redis.delete(f"heartbeat:{video_id}")


def job_is_dead(redis, doc: dict, now: Optional[datetime] = None) -> bool:
    """True when ``doc`` is ``processing`` without a live heartbeat and was claimed more than the
    heartbeat TTL ago (or has no claim time): its owning process died."""
    if doc.get("status") != "processing" or heartbeat(redis, str(doc["_id"])):
        return False
    claimed = doc.get("job_claimed_at")
    if claimed is None:
        return True
    if claimed.tzinfo is None:
        claimed = claimed.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return now - claimed >= timedelta(seconds=HEARTBEAT_TTL_SECONDS)
