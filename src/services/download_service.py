"""The download job: fetch only the clip's segment, with real progress (spec: Video Endpoints 3,
Core Services 1).

``request_download`` starts (or joins) the job and waits up to ``DOWNLOAD_WAIT_SECONDS``;
``run_download`` is the job itself. Files live in ``DOWNLOADS_DIR/{video_id}/{job_id}.{ext}``
(names made by the server). A record in ``processing`` whose owner process died (no heartbeat)
is declared failed, so no clip stays ``processing`` forever.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, jobs, redis, setting
from ..media import segment, source
from ..media.errors import MediaError
from . import progress_cache
from .video_service import file_available, get_owned, media_api_error

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
INTERRUPTED = ("The download was interrupted (the server restarted or the job died). "
               "Download again to retry.")


class JobCancelled(Exception):
    """The job no longer owns its record (it was declared dead and replaced)."""


def reap_if_dead(doc: dict) -> dict:
    """If ``doc`` is ``processing`` but its job has no live heartbeat (and was claimed longer ago
    than the heartbeat TTL), mark it failed with JOB_INTERRUPTED and remove its partial files.
    Returns the current document."""
    if doc.get("status") != "processing" or progress_cache.heartbeat(redis(), str(doc["_id"])):
        return doc
    claimed_at = doc.get("job_claimed_at")
    if claimed_at and claimed_at.tzinfo is None:
        claimed_at = claimed_at.replace(tzinfo=timezone.utc)
    grace = timedelta(seconds=progress_cache.HEARTBEAT_TTL_SECONDS)
    if claimed_at and datetime.now(timezone.utc) - claimed_at < grace:
        return doc
    if videos.update(db(), doc["_id"], {"status": "failed", "error_code": "JOB_INTERRUPTED",
                                        "error_message": INTERRUPTED}, job_id=doc.get("job_id")):
        _remove_partials(str(doc["_id"]), keep=None)
        log.warning("video %s: job %s had no heartbeat; marked failed", doc["_id"], doc.get("job_id"))
    return videos.get(db(), doc["_id"])


def _folder(video_id: str) -> str:
    return os.path.join(setting("DOWNLOADS_DIR"), video_id)


def _remove_partials(video_id: str, keep: Optional[str]) -> None:
    """Delete every file in the clip's folder except ``keep``; drop the folder if empty."""
    folder = _folder(video_id)
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if path != keep:
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    if not os.listdir(folder):
        os.rmdir(folder)


def request_download(video_id: str, user_id: str, prefs: dict) -> dict:
    """Serve, start or join the download of a clip.

    ``prefs``: optional ``format_preference`` (mp4|webm|best), ``resolution_preference``
    (720p…4320p|best); missing ones keep the clip's current preferences. Returns
    ``{"file": path, "ext": "mp4"|"webm"}`` when the file is ready within
    ``DOWNLOAD_WAIT_SECONDS``, else ``{"processing": True}``. Raises ApiError 404/403, and
    422/500 with the media error code when the job failed.
    """
    doc = reap_if_dead(get_owned(video_id, user_id))
    fmt = prefs.get("format_preference") or doc.get("format_preference") or "mp4"
    res = prefs.get("resolution_preference") or doc.get("resolution_preference") or "1080p"
    if _ready(doc, fmt, res):
        return {"file": doc["file_path"], "ext": doc["file_format"]}
    if doc["status"] != "processing":
        job_id = uuid.uuid4().hex
        claimed = videos.claim(db(), video_id, job_id, {
            "format_preference": fmt, "resolution_preference": res,
            "job_claimed_at": datetime.now(timezone.utc)})
        if claimed:
            progress_cache.reset_progress(redis(), video_id)
            jobs().submit(video_id, job_id, run_download)
            log.info("video %s: job %s queued (%s, %s)", video_id, job_id, fmt, res)
    return _wait(video_id, setting("DOWNLOAD_WAIT_SECONDS"))


def _ready(doc: dict, fmt: str, res: str) -> bool:
    return file_available(doc) and doc.get("file_format_preference") == fmt \
        and doc.get("file_resolution_preference") == res


def _wait(video_id: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        doc = videos.get(db(), video_id)
        if doc["status"] == "completed" and file_available(doc):
            return {"file": doc["file_path"], "ext": doc["file_format"]}
        if doc["status"] == "failed":
            raise media_api_error(doc.get("error_code") or "UNKNOWN_ERROR",
                                  doc.get("error_message") or "Download failed")
        if time.monotonic() >= deadline:
            return {"processing": True}
        time.sleep(POLL_SECONDS)


def resolve_segment(doc: dict, info: dict) -> tuple[float, float]:
    """The clip's (start, end) in seconds of the video.

    A stream clip saved without ``t`` is placed from the stream's start time: moment = request
    time − (``release_timestamp`` or ``timestamp``, epoch seconds from yt-dlp's info);
    start = max(0, moment − offset); end = start + duration. The end is clamped to the video's
    duration. Raises MediaError NOT_LIVE (no start time) or SEGMENT_OUT_OF_RANGE.
    """
    start, end = doc.get("start_time"), doc.get("end_time")
    if start is None:
        began = info.get("release_timestamp") or info.get("timestamp")
        if not began:
            raise MediaError("NOT_LIVE", "This video has no stream start time, so the moment "
                                         "cannot be placed. Save the clip with ?t=SECONDS.")
        moment_at = doc["clip_moment_at"]
        if moment_at.tzinfo is None:
            moment_at = moment_at.replace(tzinfo=timezone.utc)
        start = max(0.0, moment_at.timestamp() - began - (doc.get("clip_offset") or 0))
        end = start + doc["clip_duration"]
    duration = info.get("duration")
    if duration:
        if start >= duration:
            raise MediaError("SEGMENT_OUT_OF_RANGE", f"The clip starts at {start:.0f} s but the "
                                                     f"video lasts only {duration:.0f} s.")
        end = min(end, float(duration))
    return float(start), float(end)


def run_download(video_id: str, job_id: str) -> None:
    """The job: extract info, pick formats, fetch the segment, record the file or the failure."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("job_id") != job_id:
        return
    started = time.monotonic()

    def on_progress(values: dict) -> None:
        current = videos.get(db(), video_id)
        if not current or current.get("job_id") != job_id or current["status"] != "processing":
            raise JobCancelled(video_id)
        progress_cache.set_progress(redis(), video_id, {"current_phase": "downloading", **values})
        progress_cache.beat(redis(), video_id, job_id)

    try:
        info = source.extract_info(doc["url"])
        start, end = resolve_segment(doc, info)
        plan = source.select_formats(info, doc["format_preference"], doc["resolution_preference"])
        if plan.needs_encode:
            raise MediaError("FORMAT_UNAVAILABLE", "This resolution exists only as WebM; MP4 "
                                                   "above 1080p is not available yet. Ask for webm.")
        videos.update(db(), video_id, {"start_time": start, "end_time": end}, job_id=job_id)
        progress_cache.set_progress(redis(), video_id, {"current_phase": "downloading"})
        os.makedirs(_folder(video_id), exist_ok=True)
        out_path = os.path.join(_folder(video_id), f"{job_id}.{plan.container}")
        summary = segment.fetch_segment(plan, start, end, out_path, on_progress=on_progress)
    except JobCancelled:
        log.warning("video %s: job %s lost ownership; stopped", video_id, job_id)
        return
    except MediaError as exc:
        _fail(video_id, job_id, exc.code, exc.message)
        return
    except Exception:
        log.exception("video %s: job %s failed unexpectedly", video_id, job_id)
        _fail(video_id, job_id, "UNKNOWN_ERROR", "Unexpected error while downloading the clip.")
        return
    now = datetime.now(timezone.utc)
    done = videos.update(db(), video_id, {
        "status": "completed", "file_path": out_path, "file_format": plan.container,
        "file_format_preference": doc["format_preference"],
        "file_resolution_preference": doc["resolution_preference"],
        "file_size_bytes": summary["size_bytes"], "width": summary.get("width"),
        "height": summary.get("height"), "completed_at": now,
        "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))}, job_id=job_id)
    if done:
        _remove_partials(video_id, keep=out_path)
        progress_cache.set_progress(redis(), video_id, {"download_progress": 100, "eta": "00:00"})
    log.info("video %s: job %s completed in %.1f s (%d bytes)", video_id, job_id,
             time.monotonic() - started, summary["size_bytes"])


def _fail(video_id: str, job_id: str, code: str, message: str) -> None:
    """Record a failure; the clip's folder is emptied (a previous file included: the record
    describes one file at a time)."""
    if videos.update(db(), video_id, {"status": "failed", "error_code": code, "error_message": message,
                                      "file_path": None, "file_size_bytes": None}, job_id=job_id):
        _remove_partials(video_id, keep=None)
    log.warning("video %s: job %s failed: %s %s", video_id, job_id, code, message)

