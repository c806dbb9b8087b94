"""Placing live-stream clips in their video, in the background (issue 5, items 2-3).

A stream clip saved without ``t`` stores the request time (``clip_moment_at``) and waits in
``pending`` with ``live_phase`` ``resolving`` (first look-up) or ``waiting_for_vod``. A resolver
reads the video's live facts from its info (src/services/info_cache.py, one extraction shared
with the video's other look-ups) and places the clip:

    moment = request time − release_timestamp − delay      (seconds into the stream)
    start  = max(0, moment − offset);  end = start + duration

``delay`` is the viewers' latency (query ``delay``, default ``STREAM_DELAY_SECONDS``).
While yt-dlp reports ``is_live``/``post_live`` the clip keeps waiting and is re-checked with
exponential back-off (``LIVE_RECHECK_INITIAL_SECONDS`` doubling up to
``LIVE_RECHECK_MAX_SECONDS``, for at most ``LIVE_VOD_MAX_WAIT_HOURS``); ``was_live`` releases
it (``live_phase`` None, downloadable). A video that never was live fails TIMESTAMP_REQUIRED.
For the video id ``live`` the URL is the channel's ``/live`` page, which yt-dlp resolves to the
current stream (``UserNotLive`` → NOT_LIVE); the clip then takes that video's id and URL.

Re-checks need no thread per clip: one APScheduler job per process sweeps MongoDB for due clips
every ``LIVE_SWEEP_SECONDS`` and claims each atomically (a lease on ``next_check_at``), so several
processes never check the same clip at once and a restart loses nothing.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Optional

from ..data import videos
from ..extensions import db, jobs, redis, setting
from ..media import errors as media_errors
from ..media import source
from ..media.errors import MediaError
from ..utils.validators import youtube_watch_url
from . import followup, info_cache, live_capture, notifications, video_service, vod_fallback

log = logging.getLogger(__name__)

PHASES = videos.LIVE_PHASES
LEASE_SECONDS = 300
SWEEP_BATCH = 100
#: Look-up failures worth another try later (the source or the VOD may come back).
RETRYABLE = {media_errors.SOURCE_HTTP_ERROR, media_errors.BOT_CHECK, media_errors.UNKNOWN_ERROR,
             media_errors.RATE_LIMITED,
             media_errors.FORMAT_UNAVAILABLE, media_errors.JS_RUNTIME_MISSING}
FACTS_TTL_SECONDS = 12 * 3600


def channel_live_url(channel_id: str) -> str:
    """The page yt-dlp resolves to a channel's current live stream."""
    return f"https://www.youtube.com/channel/{channel_id}/live"


def place(moment_at: datetime, started_epoch: float, delay: float, offset: float,
          duration: float) -> tuple[float, float]:
    """(start, end) in seconds of the video for a clip requested at ``moment_at`` (UTC) in a
    stream that started at ``started_epoch`` (yt-dlp ``release_timestamp``), viewers ``delay``
    seconds behind, keeping ``offset`` seconds before the moment and ``duration`` in all."""
    if moment_at.tzinfo is None:
        moment_at = moment_at.replace(tzinfo=timezone.utc)
    moment = moment_at.timestamp() - float(started_epoch) - (delay or 0)
    start = max(0.0, moment - (offset or 0))
    return start, start + float(duration)


def cached_facts(youtube_id: Optional[str] = None, channel_id: Optional[str] = None,
                 max_age: Optional[float] = None) -> Optional[dict]:
    """The last live facts read for a video (or for a channel's current stream), or None; with
    ``max_age`` (seconds) only if read that recently. Never makes a network call."""
    key = f"live:channel:{channel_id}" if channel_id else f"live:video:{youtube_id}"
    raw = redis().get(key) if (youtube_id or channel_id) else None
    facts = json.loads(raw) if raw else None
    if facts and max_age is not None and _now().timestamp() - facts["read_at"] > max_age:
        return None
    return facts


def _read_facts(doc: dict) -> dict:
    """Live facts for the clip's video, from a fresh cache entry or from the shared info
    (src/services/info_cache.py: live and upcoming streams are kept there only
    ``LIVE_INFO_CACHE_SECONDS``, so a re-check sees the stream's new state)."""
    channel_id = doc.get("live_channel_id") if not doc.get("youtube_video_id") else None
    fresh = cached_facts(doc.get("youtube_video_id"), channel_id,
                         max_age=setting("LIVE_INFO_CACHE_SECONDS"))
    if fresh:
        return fresh
    info = info_cache.get_info(doc["url"], user_id=str(doc["user_id"]))
    facts = {"video_id": info.get("id"), **{key: info.get(key) for key in source.LIVE_KEYS},
             "read_at": _now().timestamp()}
    for key in filter(None, [f"live:video:{facts['video_id']}",
                             channel_id and f"live:channel:{channel_id}"]):
        redis().set(key, json.dumps(facts), ex=FACTS_TTL_SECONDS)
    return facts


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_clip(video_id: str) -> Optional[str]:
    """Background task: look the clip's stream up once and move it on. Returns the new
    ``live_phase`` (None once released or failed). Failures are recorded on the clip
    (``status`` failed, ``error_code``/``error_message``); retryable ones are re-scheduled."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("live_phase") not in PHASES:
        return None
    try:
        facts = _read_facts(doc)
    except MediaError as exc:
        if exc.code in RETRYABLE:
            return _wait_more(doc, {}, exc)
        return _fail(doc, exc.code, exc.message)
    status, started = facts.get("live_status"), facts.get("release_timestamp")
    update: dict = {}
    if doc.get("live_channel_id") and not doc.get("youtube_video_id"):
        update = {"youtube_video_id": facts["video_id"],
                  "url": youtube_watch_url(facts["video_id"])}
    if status == "is_upcoming":
        return _fail(doc, media_errors.LIVE_NOT_STARTED, None)
    if status not in ("is_live", "post_live", "was_live"):
        return _fail(doc, media_errors.TIMESTAMP_REQUIRED, None)
    if not started:
        return _fail(doc, media_errors.TIMESTAMP_REQUIRED, "The stream's start time is unknown; "
                                                           "save the clip with ?t=SECONDS.")
    start, end = place(doc["clip_moment_at"], started, doc.get("clip_delay") or 0,
                       doc.get("clip_offset") or 0, doc["clip_duration"])
    update.update(start_time=start, end_time=end,
                  stream_started_at=datetime.fromtimestamp(started, timezone.utc))
    if status == "is_live" and not doc.get("live_fallback"):
        reason = _record_live({**doc, **update}, update)
        if reason is None:
            return None  # recording from the live stream now
        update["live_fallback"] = reason
    if status != "was_live":
        return _wait_more(doc, update, None)
    _release(doc, update)
    return None


def _record_live(doc: dict, placed: dict) -> Optional[dict]:
    """Start recording the clip from its live stream (src/services/live_capture.py); None when
    it started, else the reason it could not (``{"code", "message"}``, the VOD fallback's)."""
    try:
        info = info_cache.get_info(doc["url"], user_id=str(doc["user_id"]))
    except MediaError as exc:
        return {"code": exc.code, "message": exc.message}
    return live_capture.start_stream_capture(doc, info, placed)


def _wait_more(doc: dict, update: dict, error: Optional[MediaError]) -> Optional[str]:
    checks = int(doc.get("live_checks") or 0)
    created = doc["created_at"] if doc["created_at"].tzinfo else \
        doc["created_at"].replace(tzinfo=timezone.utc)
    if _now() - created > timedelta(hours=setting("LIVE_VOD_MAX_WAIT_HOURS")):
        if error is not None:
            return _fail(doc, error.code, error.message)
        return _fail(doc, media_errors.VOD_UNAVAILABLE, None)
    delay = vod_fallback.recheck_delay(checks)
    phase = "waiting_for_vod" if update.get("start_time") is not None or \
        doc.get("start_time") is not None else doc["live_phase"]
    videos.update(db(), doc["_id"], {**update, "live_phase": phase, "live_checks": checks + 1,
                                     "next_check_at": _now() + timedelta(seconds=delay),
                                     "live_last_error": error.code if error else None})
    return phase


def _release(doc: dict, update: dict) -> None:
    """The VOD is ready: the clip becomes an ordinary pending clip."""
    videos.update(db(), doc["_id"], {**update, "live_phase": None, "next_check_at": None})
    # the formats of the VOD, not of the live stream
    jobs().submit_light(video_service.fill_available_formats, str(doc["_id"]))
    log.info("video %s: stream clip placed at %.0f-%.0f s", doc["_id"], update["start_time"],
             update["end_time"])


def _fail(doc: dict, code: str, message: Optional[str]) -> Optional[str]:
    message = message or media_errors.MESSAGES.get(code) or media_errors.MESSAGES["UNKNOWN_ERROR"]
    videos.fail_pending(db(), doc["_id"], {"status": "failed", "error_code": code,
                                           "error_message": message, "live_phase": None,
                                           "next_check_at": None})
    log.info("video %s: stream clip failed: %s", doc["_id"], code)
    followup.notify_outcome(str(doc["_id"]))
    notifications.clip_outcome(str(doc["_id"]))
    return None


def sweep(now: Optional[datetime] = None) -> int:
    """Claim the clips whose re-check is due and queue :func:`check_clip` for each on the job
    pool's light lane. Returns how many were queued (at most ``SWEEP_BATCH`` per call)."""
    now = now or _now()
    queued = 0
    while queued < SWEEP_BATCH:
        doc = videos.lease_due_check(db(), PHASES, now,
                                     now + timedelta(seconds=LEASE_SECONDS))
        if not doc:
            break
        jobs().submit_light(check_clip, str(doc["_id"]))
        queued += 1
    return queued


def init_app(app) -> None:
    """Start this process's sweeper (APScheduler ``BackgroundScheduler``, one interval job of
    ``LIVE_SWEEP_SECONDS``) and keep it in ``app.extensions["yt"]["scheduler"]``."""
    from apscheduler.schedulers.background import BackgroundScheduler

    def run_sweep():
        with app.app_context():
            sweep()

    scheduler = BackgroundScheduler(daemon=True, timezone=timezone.utc)
    scheduler.add_job(run_sweep, "interval", seconds=app.config["LIVE_SWEEP_SECONDS"],
                      id="live-sweep", max_instances=1, coalesce=True)
    scheduler.start()
    app.extensions["yt"]["scheduler"] = scheduler


def schedule_first_check(video_id: str) -> None:
    """Queue the first look-up of a freshly saved stream clip (no network call here)."""
    jobs().submit_light(check_clip, video_id)
