"""Clips: saving them, showing them, and the format look-ups (spec: Video Endpoints 1, 4-7;
endpoint 2, the stream save, is in stream_service)."""
from __future__ import annotations

from typing import Optional

from ..data import users, videos
from ..errors import ApiError
from ..extensions import db, jobs, redis, setting
from ..media import formats, source
from ..media.errors import MediaError
from ..utils.dates import iso
from ..utils.files import file_available
from ..utils.validators import (InvalidSourceURL, is_video_id, validate_source_url,
                                youtube_watch_url)
from . import progress_cache, public_token_service

#: Media error codes that describe the video the user asked for (a 4xx), not a server failure.
USER_SIDE_CODES = {"VIDEO_UNAVAILABLE", "PRIVATE_VIDEO", "AGE_RESTRICTED", "GEO_RESTRICTED",
                   "FORMAT_UNAVAILABLE", "NOT_LIVE", "LIVE_NOT_STARTED", "SEGMENT_OUT_OF_RANGE",
                   "WAITING_FOR_VOD", "TIMESTAMP_REQUIRED", "VOD_UNAVAILABLE"}
#: Media error codes that say the request itself is refused (a 400): the source tried to reach
#: a host or address the egress policy does not allow (issue 11, item 4).
REFUSED_CODES = {"SOURCE_NOT_ALLOWED"}


def media_api_error(code: str, message: str) -> ApiError:
    """An ApiError for a media failure: 400 when the egress policy refused the source, 422 when
    it is about the requested video, else 500 (the spec's "500: Download failed"), always with
    the media error's code."""
    status = 400 if code in REFUSED_CODES else 422 if code in USER_SIDE_CODES else 500
    return ApiError(status, message, code)


def owner(user_id: str) -> dict:
    """The user a clip is saved for. Raises ApiError 400 (``details.user_id``) when unknown."""
    user = users.find_by_id(db(), user_id)
    if not user:
        raise ApiError(400, "user_id does not name an existing user", "VALIDATION_ERROR",
                       {"user_id": ["Unknown user."]})
    return user


def _check_range(start: float, end: float) -> None:
    errors = {}
    if end <= start:
        errors["end_time"] = ["Must be greater than start_time."]
    elif end - start > setting("MAX_VIDEO_DURATION"):
        errors["end_time"] = [f"The clip may last at most {setting('MAX_VIDEO_DURATION'):g} s."]
    if errors:
        raise ApiError(400, "Invalid time range", "VALIDATION_ERROR", errors)


def new_clip(user: dict, url: str, youtube_id: Optional[str], start, end,
             fill_formats: bool = True, **extra) -> str:
    """Insert a pending clip for ``user`` (a users document); return its id. The available
    formats are looked up in the background (``fill_formats``). Raises ApiError 429
    PENDING_CLIPS_LIMIT when the user already has ``MAX_PENDING_CLIPS_PER_USER`` pending clips."""
    limit = setting("MAX_PENDING_CLIPS_PER_USER")
    if limit and videos.count_pending(db(), user["_id"]) >= limit:
        raise ApiError(429, f"Too many pending clips (at most {limit}); download or wait for "
                            "some first", "PENDING_CLIPS_LIMIT")
    doc = {
        "user_id": user["_id"], "source_type": "youtube" if youtube_id else "url", "url": url,
        "youtube_video_id": youtube_id, "start_time": start, "end_time": end,
        "status": "pending", "file_path": None, "error_message": None, "error_code": None,
        "format_preference": setting("DEFAULT_VIDEO_FORMAT"),
        "resolution_preference": setting("DEFAULT_VIDEO_RESOLUTION"),
        "available_formats": [], "file_size_bytes": None, "expires_at": None, **extra,
    }
    video_id = videos.insert(db(), doc)
    if fill_formats:
        jobs().submit_light(fill_available_formats, video_id)
    return video_id


def save_clip(body: dict, token_claims: dict) -> str:
    """Validate and store a clip request (POST /api/video/save); return its id.

    ``body``: url, start_time, end_time (seconds), user_id, additional_message, clip_offset.
    ``token_claims``: the public token's claims (a bound token saves only for its ``user_id``).
    Raises ApiError 400 on a bad URL, range or unknown user, 403 TOKEN_USER_MISMATCH, 429
    PENDING_CLIPS_LIMIT. Makes no network call: the available formats are filled in the
    background.
    """
    try:
        url, youtube_id = validate_source_url(body["url"], setting("ALLOWED_SOURCE_HOSTS"))
    except InvalidSourceURL as exc:
        raise ApiError(400, str(exc), "INVALID_URL", {"url": [str(exc)]}) from None
    _check_range(body["start_time"], body["end_time"])
    user = owner(public_token_service.check_owner(token_claims, body["user_id"]))
    return new_clip(user, url, youtube_id, body["start_time"], body["end_time"],
                     additional_message=body.get("additional_message"),
                     clip_offset=body.get("clip_offset"), origin="api")


def fill_available_formats(video_id: str) -> None:
    """Background task: store the clip's available resolutions (``available_formats``)."""
    doc = videos.get(db(), video_id)
    if not doc:
        return
    try:
        resolutions = formats.available_resolutions(source.extract_info(doc["url"], probe=True))
        videos.update(db(), video_id, {"available_formats": resolutions, "formats_error": None})
    except MediaError as exc:
        videos.update(db(), video_id, {"formats_error": exc.code})


def get_owned(video_id: str, user_id: str) -> dict:
    """The video ``video_id`` if ``user_id`` owns it. ApiError 404 (unknown or malformed id) or
    403 (someone else's)."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("source_type") == "upload":  # uploads belong to /api/encode
        raise ApiError(404, "Video not found", "NOT_FOUND")
    if str(doc["user_id"]) != str(user_id):
        raise ApiError(403, "You do not own this video", "FORBIDDEN")
    return doc


def summary_view(doc: dict) -> dict:
    """The fields of a clip in GET /api/video/list."""
    return {
        "video_id": str(doc["_id"]), "url": doc.get("url"),
        "youtube_video_id": doc.get("youtube_video_id"),
        "start_time": doc.get("start_time"), "end_time": doc.get("end_time"),
        "status": doc["status"], "created_at": iso(doc.get("created_at")),
        "file_available": file_available(doc), "additional_message": doc.get("additional_message"),
        "error_message": doc.get("error_message"), "error_code": doc.get("error_code"),
        "phase": doc.get("live_phase") if doc["status"] in ("pending", "failed") else None,
        "nightbot_user": doc.get("nightbot_user"),
    }


def status_view(doc: dict) -> dict:
    """The fields of GET /api/video/status/{id}: summary + formats, progress and file facts."""
    size = doc.get("file_size_bytes")
    view = {
        **summary_view(doc), "available_formats": doc.get("available_formats") or [],
        "format_preference": doc.get("format_preference"),
        "resolution_preference": doc.get("resolution_preference"),
        "file_size_mb": round(size / 1_048_576, 1) if size and file_available(doc) else None,
        "expires_at": iso(doc.get("expires_at")), "progress": None,
    }
    if doc["status"] == "processing":
        view["progress"] = progress_cache.get_progress(redis(), view["video_id"]) \
            or dict(progress_cache.EMPTY_PROGRESS)
    return view


def list_clips(user_id: str) -> list[dict]:
    """The user's clips, newest first, as summary views."""
    return [summary_view(doc) for doc in videos.list_for_user(db(), user_id)]


def formats_for(video_id: str, user_id: str) -> dict:
    """Formats of a stored clip (document id) or of a YouTube video (11-char id).

    Returns ``{"video_id", "resolutions", "extensions", "formats"}`` (spec, Video Endpoints 6).
    Raises ApiError 404/403 for a document id, 400 for an id of neither form or
    SOURCE_NOT_ALLOWED, 422/500 on other media errors.
    """
    if is_video_id(video_id):
        url, shown_id = youtube_watch_url(video_id), video_id
    elif len(video_id) == 24:
        doc = get_owned(video_id, user_id)
        url, shown_id = doc["url"], doc.get("youtube_video_id") or video_id
    else:
        raise ApiError(400, "Expected a video document id or an 11-character YouTube id",
                       "INVALID_ID")
    try:
        info = source.extract_info(url, probe=True)
    except MediaError as exc:
        raise media_api_error(exc.code, exc.message) from None
    by_resolution = formats.formats_by_resolution(info)
    return {"video_id": shown_id, "resolutions": list(by_resolution),
            "extensions": sorted({ext for exts in by_resolution.values() for ext in exts}),
            "formats": by_resolution}


def resolutions_for(url: str) -> dict:
    """Public resolution look-up for a URL (spec, Video Endpoints 7). Raises ApiError 400
    INVALID_URL (the page URL is refused) or SOURCE_NOT_ALLOWED (a redirect, API call or format
    of the page is), 422/500 on other media errors."""
    try:
        url, youtube_id = validate_source_url(url, setting("ALLOWED_SOURCE_HOSTS"))
    except InvalidSourceURL as exc:
        raise ApiError(400, str(exc), "INVALID_URL", {"url": [str(exc)]}) from None
    try:
        info = source.extract_info(url, probe=True)
    except MediaError as exc:
        raise media_api_error(exc.code, exc.message) from None
    return {"video_id": youtube_id, "url": url, "resolutions": formats.available_resolutions(info)}
