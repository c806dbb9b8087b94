"""The download job: fetch only the clip's segment, with real progress (spec: Video Endpoints 3,
Core Services 1).

``request_download`` starts (or joins) the job and waits up to ``DOWNLOAD_WAIT_SECONDS``;
``run_download`` is the job itself (clip lane; a ≥1440p MP4 hands its encode phase to the encode
lane, src/services/clip_encode.py). Files live in ``DOWNLOADS_DIR/{folder}/{job_id}.{ext}``
(``folder``: a random name stored on the clip at its first job, src/services/folders.py; every
name made by the server). A new job counts against ``MAX_JOBS_PER_USER``
(src/services/job_limits.py). A record in ``processing`` whose owner process died (no heartbeat)
is declared failed, so no clip stays ``processing`` forever. A media URL that answers 403/410
(an expired signed URL) is extracted again once before the job fails (:func:`run_download`).
The info comes from the shared info cache (src/services/info_cache.py, issue 13 item 5): ten
clips of one video extract once; the refused entry is dropped before that one re-extraction.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

from .. import metrics
from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis, setting
from ..media import audio, choice, guard, segment, thumbnail
from ..media.errors import MESSAGES, MediaError
from ..utils.files import file_available
from . import (
    clip_encode,
    clip_extras,
    folders,
    followup,
    info_cache,
    job_records,
    notifications,
    progress_cache,
    storage,
    vod_fallback,
)
from .jobs import JobCancelled
from .video_service import get_owned, media_api_error

log = logging.getLogger(__name__)

NOT_FOUND = "Video not found"
#: HTTP statuses of a media URL after which the job extracts the info once more: YouTube's
#: googlevideo URLs are signed and carry ``expire=`` (about 6 h); past it, or when the CDN no
#: longer honours them, they answer 403 (410 Gone from some CDNs). Issue 12, item 5.
EXPIRED_STATUSES = (403, 410)
INTERRUPTED = ("The download was interrupted (the server restarted or the job died). "
               "Download again to retry.")


def reap_if_dead(doc: dict) -> dict:
    """If ``doc`` is ``processing`` but its job is dead, mark it failed with JOB_INTERRUPTED and
    remove its partial files (:func:`job_records.reap_if_dead`). Returns the current document;
    ApiError 404 when it was deleted meanwhile."""
    return job_records.reap_if_dead(doc, INTERRUPTED, _clean, "video", NOT_FOUND)


def _clean(doc: dict) -> None:
    """A clip's partial files: its whole folder (the record describes one file at a time)."""
    folders.empty(folders.path_of(doc))


def request_download(video_id: str, user_id: str, prefs: dict) -> dict:
    """Serve, start or join the download of a clip.

    ``prefs``: optional ``format_preference`` (mp4|webm|best, or mp3|m4a|opus for an audio
    clip, issue 18), ``resolution_preference`` (720p…4320p|best), ``quality_preset``
    (lossless|high|medium, for the ≥1440p MP4 re-encode), ``format_id`` (issue 18: exactly
    these yt-dlp formats, ``V`` or ``V+A``, no format logic; checked against the video's
    formats first — 400 FORMAT_ID_UNAVAILABLE), ``audio_bitrate`` (kbit/s, audio clips),
    ``subtitles`` (languages) and ``subtitles_mode`` (embed|sidecar; checked first — 400
    SUBTITLES_UNAVAILABLE / VALIDATION_ERROR, src/services/clip_extras.py);
    missing ones keep the clip's current preferences (a body naming a format or resolution
    preference but no ``format_id`` returns to the format logic). Returns
    ``{"file": path, "ext": "mp4"|"webm"|"mp3"|"m4a"|"opus"}`` when the file is ready within
    ``DOWNLOAD_WAIT_SECONDS``, else ``{"processing": True}``. Raises ApiError 404/403, 429
    TOO_MANY_JOBS (``MAX_JOBS_PER_USER``; joining the running job is never refused), 507
    INSUFFICIENT_STORAGE, and 422/500 with the media error code when the job failed (409 for a
    live clip: its failure is final, a new job cannot record the moment again).
    """
    doc = reap_if_dead(get_owned(video_id, user_id))
    if doc.get("live_window") and doc.get("origin") == "stream" \
            and doc["status"] in ("failed", "expired"):
        # a stream clip recorded live (a dead job, an expired file): the VOD has it too
        vod_fallback.to_vod(doc, doc.get("error_code") or "FILE_EXPIRED",
                            doc.get("error_message") or "The live recording expired.")
        doc = get_owned(video_id, user_id)
    if doc.get("live_window"):  # a live clip (src/services/live_capture.py): its one job
        if doc["status"] == "expired":
            raise ApiError(410, "This live clip's file has expired, and its moment has left "
                                "the live stream", "FILE_EXPIRED")
        if doc["status"] == "failed":  # final (409: the clip's state, not the request)
            raise ApiError(409, doc.get("error_message") or "Recording the live clip failed",
                           doc.get("error_code") or "UNKNOWN_ERROR")
        return _wait(video_id, setting("DOWNLOAD_WAIT_SECONDS"))
    if doc.get("live_phase") in videos.LIVE_PHASES:
        raise media_api_error("WAITING_FOR_VOD", MESSAGES["WAITING_FOR_VOD"])
    fmt = prefs.get("format_preference") or doc.get("format_preference") or "mp4"
    res = prefs.get("resolution_preference") or doc.get("resolution_preference") or "1080p"
    preset = prefs.get("quality_preset") or doc.get("quality_preset") \
        or setting("HIGHRES_MP4_PRESET")
    format_id = _format_id(doc, prefs)
    options = _options(doc, prefs, fmt)
    if _ready(doc, fmt, res, preset) and doc.get("file_format_id") == format_id \
            and doc.get("file_options", {}) == options:
        return {"file": doc["file_path"], "ext": doc["file_format"]}
    if doc["status"] != "processing":
        if options.get("subtitles"):
            try:
                info = info_cache.get_info(doc["url"], user_id=str(doc["user_id"]))
            except MediaError as exc:
                raise media_api_error(exc.code, exc.message) from None
            clip_extras.check_subtitles(info, options["subtitles"], options["subtitles_mode"],
                                        fmt)
        # the owner's job cap (active_jobs counts the owner's records), also for a moderator
        job_id = job_records.start(video_id, str(doc["user_id"]), {
            "format_preference": fmt, "resolution_preference": res, "quality_preset": preset,
            "format_id": format_id, "folder": doc.get("folder") or folders.new_name(),
            **options}, run_download)
        if job_id:
            log.info("video %s: job %s queued (%s, %s)", video_id, job_id, fmt, res)
    return _wait(video_id, setting("DOWNLOAD_WAIT_SECONDS"))


def _format_id(doc: dict, prefs: dict):
    """The ``format_id`` this request asks for (see :func:`request_download`), checked against
    the video's formats (the info cache: usually no extraction). Raises ApiError 400
    FORMAT_ID_UNAVAILABLE with the reason, or the media error of the look-up."""
    if prefs.get("format_id"):
        format_id = prefs["format_id"]
    elif prefs.get("format_preference") or prefs.get("resolution_preference"):
        return None
    else:
        format_id = doc.get("format_id")
    if not format_id or (doc.get("file_format_id") == format_id and file_available(doc)):
        return format_id
    try:
        choice.plan_for_format_id(info_cache.get_info(doc["url"], user_id=str(doc["user_id"])),
                                  format_id)
    except MediaError as exc:
        if exc.code == "FORMAT_UNAVAILABLE":
            raise ApiError(400, exc.message, "FORMAT_ID_UNAVAILABLE",
                           {"format_id": [exc.message]}) from None
        raise media_api_error(exc.code, exc.message) from None
    return format_id


def _options(doc: dict, prefs: dict, fmt: str) -> dict:
    """The request's issue-18 options, the clip's stored ones where the body names none:
    ``audio_bitrate`` (audio clips only), ``subtitles`` (a sorted list), ``subtitles_mode``
    (when there are subtitles; default :func:`clip_extras.default_mode`). Compared with the
    file's (``file_options``) to tell whether the file on disk is the one asked for."""
    options: dict = {}
    if fmt in audio.AUDIO_FORMATS:
        options["audio_bitrate"] = prefs.get("audio_bitrate") or doc.get("audio_bitrate")
    langs = prefs["subtitles"] if prefs.get("subtitles") is not None \
        else doc.get("subtitles") or []
    if langs:
        options["subtitles"] = sorted(set(langs))
        options["subtitles_mode"] = prefs.get("subtitles_mode") or doc.get("subtitles_mode") \
            or clip_extras.default_mode(fmt)
    return options


def _ready(doc: dict, fmt: str, res: str, preset: str) -> bool:
    """True when the clip's file was made for these preferences (the preset matters only for a
    re-encoded ≥1440p MP4)."""
    return file_available(doc) and doc.get("file_format_preference") == fmt \
        and doc.get("file_resolution_preference") == res \
        and doc.get("file_quality_preset") in (None, preset)


def _wait(video_id: str, seconds: float) -> dict:
    return job_records.wait(
        video_id, seconds, done=lambda doc: {"file": doc["file_path"], "ext": doc["file_format"]},
        failed=lambda doc: media_api_error(doc.get("error_code") or "UNKNOWN_ERROR",
                                           doc.get("error_message") or "Download failed"),
        not_found=NOT_FOUND)


def resolve_segment(doc: dict, info: dict) -> tuple[float, float]:
    """The clip's (start, end) in seconds of the video, the end clamped to its duration.

    A stream clip saved without ``t`` is placed by the background resolver
    (src/services/live_service.py); until then it cannot be downloaded. Raises MediaError
    WAITING_FOR_VOD (422: still resolving or waiting for the stream's recording),
    TIMESTAMP_REQUIRED (the moment could not be placed) or SEGMENT_OUT_OF_RANGE.
    """
    if doc.get("live_phase") in videos.LIVE_PHASES:
        raise MediaError("WAITING_FOR_VOD")
    start, end = doc.get("start_time"), doc.get("end_time")
    if start is None or end is None:
        raise MediaError("TIMESTAMP_REQUIRED", "The clip's moment in the stream could not be "
                                               "placed; save it again with ?t=SECONDS.")
    duration = info.get("duration")
    if duration:
        if start >= duration:
            raise MediaError("SEGMENT_OUT_OF_RANGE", f"The clip starts at {start:.0f} s but the "
                                                     f"video lasts only {duration:.0f} s.")
        end = min(end, float(duration))
    return float(start), float(end)


def fetch_timeout(start: float, end: float) -> float:
    """Wall seconds a segment fetch may take before the job fails: 5 min plus 4 s per second
    of clip (a source slower than a quarter of real time is treated as stalled)."""
    return 300 + 4 * (end - start)


def run_download(video_id: str, job_id: str) -> None:
    """The job: extract info, pick formats, fetch the segment, record the file or the failure.

    A media URL that answers 403 or 410 (:data:`EXPIRED_STATUSES`: a signed URL that expired
    between extraction and fetch, or one the CDN no longer honours) makes the job extract the
    info once more and fetch again with the fresh URLs before it fails; either way one outcome
    is recorded, and no partial file is left (the fetch removes its own)."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("job_id") != job_id:
        return
    started = time.monotonic()

    def on_progress(values: dict) -> None:
        job_records.check_owned(video_id, job_id)
        progress_cache.set_progress(redis(), video_id, {"current_phase": "downloading", **values})
        progress_cache.beat(redis(), video_id, job_id)

    try:
        with guard.metered() as meter:  # what the sources sent for this clip (src/metrics.py)
            try:
                fetched = _extract_and_fetch(video_id, doc, job_id, on_progress)
            except MediaError as exc:
                if exc.status not in EXPIRED_STATUSES:
                    raise
                log.info("video %s: job %s: a media URL answered HTTP %s; extracting the info "
                         "again for fresh URLs", video_id, job_id, exc.status)
                on_progress({"download_progress": 0.0, "speed": None, "fps": 0.0, "eta": None})
                fetched = _extract_and_fetch(video_id, doc, job_id, on_progress)
        metrics.CLIP_FETCHED.observe(meter.received)
    except JobCancelled:
        log.warning("video %s: job %s lost ownership; stopped", video_id, job_id)
        return
    except MediaError as exc:
        fail(video_id, job_id, exc.code, exc.message)
        return
    except Exception:
        log.exception("video %s: job %s failed unexpectedly", video_id, job_id)
        fail(video_id, job_id, "UNKNOWN_ERROR", "Unexpected error while downloading the clip.")
        return
    if fetched is None:  # the encode phase runs in the encode lane and records the end
        return
    out_path, summary, extras = fetched
    metrics.CLIP_FILE.observe(os.path.getsize(out_path))
    finish(video_id, job_id, doc, out_path, summary["width"], summary["height"], extras=extras)
    log.info("video %s: job %s fetched in %.1f s", video_id, job_id, time.monotonic() - started)


def _extract_and_fetch(video_id: str, doc: dict, job_id: str, on_progress):
    """One info look-up (the info cache: the owner's entry, else one extraction) and one fetch
    of the clip's segment: ``(out_path, fetch_segment's summary)`` when the file is there, None
    when the ≥1440p MP4 path handed the encode phase to the encode lane. A media URL answering
    :data:`EXPIRED_STATUSES` drops the cache entry the info came from before the error goes
    up, so the retry extracts afresh. Raises MediaError (``.status`` set for an HTTP error),
    JobCancelled."""
    info = info_cache.get_info(doc["url"], user_id=str(doc["user_id"]))
    try:
        return _fetch(video_id, doc, job_id, on_progress, info)
    except MediaError as exc:
        if exc.status in EXPIRED_STATUSES:
            info_cache.drop(info)
        raise


def _fetch(video_id: str, doc: dict, job_id: str, on_progress, info: dict):
    """The fetch half of :func:`_extract_and_fetch` for one ``info``."""
    start, end = resolve_segment(doc, info)
    if doc["format_preference"] in audio.AUDIO_FORMATS:
        plan = audio.select_audio(info, doc["format_preference"], doc.get("audio_bitrate"))
    elif doc.get("format_id"):
        plan = choice.plan_for_format_id(info, doc["format_id"])
    else:
        plan = choice.select_formats(info, doc["format_preference"], doc["resolution_preference"])
    videos.update(db(), video_id, {"start_time": start, "end_time": end}, job_id=job_id)
    progress_cache.set_progress(redis(), video_id, {"current_phase": "downloading"})
    folder = folders.path_of(doc)
    os.makedirs(folder, exist_ok=True)
    out_path = os.path.join(folder, f"{job_id}.{plan.container}")
    extras = clip_extras.prepare(doc, info, plan, start, end, out_path)
    if plan.needs_encode:
        clip_encode.fetch_and_hand_off(doc, plan, start, end, out_path, on_progress, job_id,
                                       fetch_timeout(start, end), extras, finish=finish,
                                       fail=fail)
        return None
    summary = segment.fetch_segment(plan, start, end, out_path, on_progress=on_progress,
                                    timeout=fetch_timeout(start, end), on_cut=extras.on_cut)
    return out_path, summary, extras


def finish(video_id: str, job_id: str, doc: dict, out_path: str, width, height,
           encoded: bool = False, extras=None) -> None:
    """Record the clip's finished file ``out_path`` (``width`` × ``height``; ``encoded``: made
    by the ≥1440p re-encode, so the quality preset matters; ``extras``: its
    :class:`~src.services.clip_extras.Extras`, whose subtitle files stay beside it) while
    ``job_id`` owns the record, then empty its folder of everything else (a previous file
    included). ``doc``: the record as the job read it (its preferences, and the files of an
    earlier download, which are deleted once the new ones are recorded). With
    ``STORAGE_BACKEND=s3`` the file, thumbnail and subtitles go to the bucket first
    (src/services/storage.py); a bucket that refuses them fails the clip STORAGE_UNAVAILABLE."""
    now = datetime.now(timezone.utc)
    sidecars = extras.sidecars if extras else []
    picture = _thumbnail(doc, out_path)
    size = os.path.getsize(out_path)
    try:
        refs = storage.publish(doc, [out_path, picture, *(s["path"] for s in sidecars)])
    except OSError as exc:
        log.warning("video %s: job %s could not store its file: %s", video_id, job_id, exc)
        fail(video_id, job_id, "STORAGE_UNAVAILABLE",
             "The clip was made but could not be stored; download it again.")
        return
    done = videos.update(db(), video_id, {
        "thumbnail_path": refs.get(picture) if picture else None,
        "status": "completed", "file_path": refs[out_path],
        "file_format": out_path.rsplit(".", 1)[1],
        "file_format_preference": doc["format_preference"],
        "file_resolution_preference": doc["resolution_preference"],
        "file_quality_preset": doc.get("quality_preset") if encoded else None,
        "file_format_id": doc.get("format_id"),
        "file_options": _options(doc, {}, doc["format_preference"]),
        "file_subtitles": [{**{key: s[key] for key in ("lang", "automatic", "cues")},
                            "path": refs[s["path"]]} for s in sidecars],
        "subtitle_errors": extras.errors if extras else {},
        "file_size_bytes": size, "width": width, "height": height,
        "completed_at": now,
        "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))}, job_id=job_id)
    if not done:  # another job owns the record now: what this one stored is nobody's
        storage.delete(r for r in refs.values() if storage.is_object(r))
        return
    storage.release(refs)
    storage.delete(r for r in storage.files_of(doc) if storage.is_object(r) and r not in
                   refs.values())  # the earlier download's objects (local ones: emptied next)
    folders.empty(os.path.dirname(out_path), keep=[p for p, r in refs.items() if p == r])
    progress_cache.set_progress(redis(), video_id, {"download_progress": 100, "eta": "00:00"})
    log.info("video %s: job %s completed (%s)", video_id, job_id, refs[out_path])
    followup.notify_outcome(video_id)  # Nightbot's follow-up, if the save asked for one
    notifications.clip_outcome(video_id)  # issue 17: the channel's webhooks


def _thumbnail(doc: dict, out_path: str) -> Optional[str]:
    """The clip's thumbnail (src/media/thumbnail.py) beside its file, or None (an audio clip,
    no frame): the frame of its moment — ``clip_offset`` seconds in for a clip saved from chat
    or live (its moment is that far after its start), else its first frame."""
    if out_path.rsplit(".", 1)[-1] in audio.AUDIO_FORMATS:
        return None
    window = doc.get("live_window")
    if window:
        length = window["t1"] - window["t0"]
    elif doc.get("start_time") is not None and doc.get("end_time") is not None:
        length = doc["end_time"] - doc["start_time"]
    else:
        length = None
    return thumbnail.grab(out_path, float(doc.get("clip_offset") or 0), length)


def fail(video_id: str, job_id: str, code: str, message: str) -> None:
    """Record a failure; the clip's folder is emptied first (:func:`job_records.fail`)."""
    if job_records.fail(video_id, job_id, code, message, _clean):
        log.warning("video %s: job %s failed: %s %s", video_id, job_id, code, message)
        followup.notify_outcome(video_id)
        notifications.clip_outcome(video_id)
