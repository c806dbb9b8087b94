"""Clips: saving them, ownership, and the format look-ups (spec: Video Endpoints 1, 5-7;
endpoint 2, the stream save, is in stream_service; showing them — status, list — in
clip_views)."""
from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

from ..data import users, videos
from ..errors import ApiError
from ..extensions import db, jobs, setting
from ..media import egress, formats, source
from ..media.audio import AUDIO_FORMATS
from ..media.errors import MediaError
from ..utils.validators import (
    YOUTUBE_HOSTS,
    InvalidSourceURL,
    is_video_id,
    parse_youtube_playlist_id,
    validate_source_url,
    youtube_id_of,
    youtube_watch_url,
)
from . import clip_extras, info_cache, info_service, public_token_service, roles

#: Media error codes that describe the video the user asked for (a 4xx), not a server failure.
USER_SIDE_CODES = {"VIDEO_UNAVAILABLE", "PRIVATE_VIDEO", "AGE_RESTRICTED", "GEO_RESTRICTED",
                   "FORMAT_UNAVAILABLE", "NOT_LIVE", "LIVE_NOT_STARTED", "SEGMENT_OUT_OF_RANGE",
                   "WAITING_FOR_VOD", "TIMESTAMP_REQUIRED", "VOD_UNAVAILABLE",
                   # issue 13, item 6: what only the video's owner (cookies) or time can change
                   "MEMBERS_ONLY", "LOGIN_REQUIRED", "PREMIERE_NOT_STARTED",
                   # issue 14: the moment already left the live window; the stream stopped
                   "LIVE_WINDOW_MISSED", "LIVE_STALLED"}
#: Media error codes that say the request itself is refused (a 400): the source tried to reach
#: a host or address the egress policy does not allow (issue 11, item 4).
REFUSED_CODES = {"SOURCE_NOT_ALLOWED"}
#: YouTube rate-limits this server (issue 13, item 6): 429 with ``Retry-After``
#: (``RATE_LIMITED_RETRY_AFTER_SECONDS``; YouTube's own text says "for up to an hour").
RETRY_LATER_CODES = {"RATE_LIMITED"}


def media_api_error(code: str, message: str) -> ApiError:
    """An ApiError for a media failure: 400 when the egress policy refused the source, 422 when
    it is about the requested video, 429 with ``Retry-After`` (seconds) when the source
    rate-limits this server, else 500 (the spec's "500: Download failed": BOT_CHECK,
    JS_RUNTIME_MISSING and other failures of the server), always with the media error's code."""
    if code in RETRY_LATER_CODES:
        return ApiError(429, message, code, headers={
            "Retry-After": str(int(setting("RATE_LIMITED_RETRY_AFTER_SECONDS")))})
    status = 400 if code in REFUSED_CODES else 422 if code in USER_SIDE_CODES else 500
    return ApiError(status, message, code)


def owner(user_id: str) -> dict:
    """The user a clip is saved for. Raises ApiError 400 (``details.user_id``) when unknown,
    403 ACCOUNT_DISABLED for an account an admin disabled (an anonymous public token names
    any user; a bound one of a disabled user is refused before, src/middleware/auth.py)."""
    user = users.find_by_id(db(), user_id)
    if not user:
        raise ApiError(400, "user_id does not name an existing user", "VALIDATION_ERROR",
                       {"user_id": ["Unknown user."]})
    if user.get("disabled"):
        raise ApiError(403, "This account is disabled", "ACCOUNT_DISABLED")
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
    PENDING_CLIPS_LIMIT. Makes no network call (the available formats are filled in the
    background) except for a ``youtube.com/clip/{id}`` URL (:func:`resolve_youtube_clip`).
    """
    clip_id = youtube_clip_id(body["url"])
    if clip_id:
        user = owner(public_token_service.check_owner(token_claims, body["user_id"]))
        url, youtube_id, start, end = resolve_youtube_clip(body["url"], clip_id, str(user["_id"]))
        _check_range(start, end)
        extra: dict = {"youtube_clip_id": clip_id}
    else:
        try:
            url, youtube_id = validate_source_url(body["url"], setting("ALLOWED_SOURCE_HOSTS"))
        except InvalidSourceURL as exc:
            raise ApiError(400, str(exc), "INVALID_URL", {"url": [str(exc)]}) from None
        start, end, extra = body["start_time"], body["end_time"], {}
        _check_range(start, end)
        user = owner(public_token_service.check_owner(token_claims, body["user_id"]))
    return new_clip(user, url, youtube_id, start, end,
                    additional_message=body.get("additional_message"),
                    clip_offset=body.get("clip_offset"), origin="api", **extra)


#: ``youtube.com/clip/{id}`` (yt-dlp's YoutubeClipIE; clip ids are ``Ugk…``, 26-36 characters).
_CLIP_PATH = re.compile(r"^/clip/([A-Za-z0-9_-]{10,64})/?$")


def youtube_clip_id(url: str) -> Optional[str]:
    """The clip id of a YouTube clip URL on a YouTube page host (www., m., music. or none),
    else None."""
    try:
        parts = urlsplit(url.strip())
    except (ValueError, AttributeError):
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    if host not in YOUTUBE_HOSTS or host == "youtu.be":
        return None
    match = _CLIP_PATH.match(parts.path)
    return match.group(1) if match else None


def resolve_youtube_clip(url: str, clip_id: str, user_id: str) -> tuple:
    """``(watch_url, youtube_id, start, end)`` of a YouTube clip: the video it was cut from and
    its section (seconds), read by yt-dlp's YoutubeClipIE through the info cache: an
    extraction at save time (the clip page names neither without it; cached under the clip
    URL, so saving the same clip again reads nothing). The saved clip is then an ordinary clip
    of the video: its format look-up and download share the video's own entry (yt-dlp gives
    the clip's info the section's ``duration``, so it is not stored as the video's). The clip's
    section replaces the body's ``start_time``/``end_time`` (the spec requires them; any valid
    pair will do).

    The page host must be in ``ALLOWED_SOURCE_HOSTS``; the extraction reads
    ``https://www.youtube.com/clip/{id}`` (the only host yt-dlp's clip extractor accepts).
    Raises ApiError 400 INVALID_URL (host, or no video/section on the page), the media
    error's status otherwise (:func:`media_api_error`)."""
    try:
        egress.Policy(setting("ALLOWED_SOURCE_HOSTS")).check_url(url.strip(), page_only=True)
    except MediaError as exc:
        raise ApiError(400, exc.message, "INVALID_URL", {"url": [exc.message]}) from None
    try:
        info = info_cache.get_info(f"https://www.youtube.com/clip/{clip_id}", user_id=user_id)
    except MediaError as exc:
        raise media_api_error(exc.code, exc.message) from None
    video_id = youtube_id_of(info)
    start, end = info.get("section_start"), info.get("section_end")
    if not video_id or start is None or end is None:
        message = "This YouTube clip does not name its video and section."
        raise ApiError(400, message, "INVALID_URL", {"url": [message]})
    return youtube_watch_url(video_id), video_id, float(start), float(end)


def fill_available_formats(video_id: str) -> None:
    """Background task: store the clip's available resolutions (``available_formats``) and its
    video information (``video_info``, :func:`src.services.info_service.video_info`; issue 18)."""
    doc = videos.get(db(), video_id)
    if not doc:
        return
    try:
        info = info_cache.get_info(doc["url"], probe=True, user_id=str(doc["user_id"]))
        resolutions = formats.available_resolutions(info)
        videos.update(db(), video_id, {"available_formats": resolutions, "formats_error": None,
                                       "video_info": info_service.video_info(info)})
    except MediaError as exc:
        videos.update(db(), video_id, {"formats_error": exc.code})


def get_owned(video_id: str, user_id: str, action: str = "read") -> dict:
    """The clip ``video_id`` if ``user_id`` may ``action`` it (read|download|edit|delete):
    its owner, or an active moderator of its owner (:func:`src.services.roles.may`, issue 17
    item 6; ``read`` also covers downloading). ApiError 404 (unknown or malformed id) or 403
    FORBIDDEN (anyone else's)."""
    doc = videos.get(db(), video_id)
    if not doc or doc.get("source_type") == "upload":  # uploads belong to /api/encode
        raise ApiError(404, "Video not found", "NOT_FOUND")
    if not roles.may(user_id, doc, action):
        raise ApiError(403, "You do not own this video", "FORBIDDEN")
    return doc


def formats_for(video_id: str, user_id: str, detail: bool = False) -> dict:
    """Formats of a stored clip (document id) or of a YouTube video (11-char id).

    Returns ``{"video_id", "resolutions", "extensions", "formats"}`` (spec, Video Endpoints 6)
    plus ``audio_formats`` and ``subtitles`` (what an audio clip and the subtitle options may
    ask for, issue 18);
    with ``detail`` also ``details``: every format labelled, sizes for the clip's duration (a
    stored clip) or the whole video (a YouTube id) (:func:`info_service.format_details`).
    Raises ApiError 404/403 for a document id, 400 for an id of neither form or
    SOURCE_NOT_ALLOWED, 422/500 on other media errors.
    """
    if is_video_id(video_id):
        url, shown_id, seconds = youtube_watch_url(video_id), video_id, None
    elif len(video_id) == 24:
        doc = get_owned(video_id, user_id)
        url, shown_id = doc["url"], doc.get("youtube_video_id") or video_id
        start, end = doc.get("start_time"), doc.get("end_time")
        seconds = end - start if start is not None and end is not None else None
    else:
        raise ApiError(400, "Expected a video document id or an 11-character YouTube id",
                       "INVALID_ID")
    try:
        info = info_cache.get_info(url, probe=True, user_id=user_id)
    except MediaError as exc:
        raise media_api_error(exc.code, exc.message) from None
    by_resolution = formats.formats_by_resolution(info)
    answer = {"video_id": shown_id, "resolutions": list(by_resolution),
              "extensions": sorted({ext for exts in by_resolution.values() for ext in exts}),
              "formats": by_resolution,
              "audio_formats": list(AUDIO_FORMATS) if any(
                  f.get("acodec") != "none" for f in info.get("formats") or []) else [],
              "subtitles": _offered_subtitles(info)}
    if detail:
        answer["details"] = info_service.format_details(info, seconds)
    return answer


def _offered_subtitles(info: dict) -> list:
    """:func:`info_service.subtitle_languages` a download can ask for: those with a track we
    read (:func:`clip_extras.tracks_of`; manual subtitles hide automatic ones of a language)."""
    offered = clip_extras.tracks_of(info)
    return [s for s in info_service.subtitle_languages(info)
            if s["lang"] in offered and offered[s["lang"]][1] == s["automatic"]]


def _public_info(url: str, probe: bool) -> tuple:
    """``(url, youtube_id, info, playlist)`` of a URL anyone may look up: ``info`` of a video,
    or ``playlist`` (:func:`src.media.source.playlist_info`, the other None) for a YouTube
    playlist page. Raises ApiError 400 INVALID_URL (the page URL is refused) or
    SOURCE_NOT_ALLOWED (a redirect, API call or format of the page is), 422 GEO_RESTRICTED
    with ``details.allowed_countries`` when yt-dlp knows them, 422/500 on other media errors."""
    try:
        url, youtube_id = validate_source_url(url, setting("ALLOWED_SOURCE_HOSTS"),
                                              allow_playlist=True)
    except InvalidSourceURL as exc:
        raise ApiError(400, str(exc), "INVALID_URL", {"url": [str(exc)]}) from None
    try:
        if youtube_id is None and parse_youtube_playlist_id(url):
            return url, None, None, source.playlist_info(url)
        return url, youtube_id, info_cache.get_info(url, probe=probe), None
    except MediaError as exc:
        raise info_service.geo_error(exc) or media_api_error(exc.code, exc.message) from None


def resolutions_for(url: str) -> dict:
    """Public resolution look-up for a URL (spec, Video Endpoints 7); a playlist page lists its
    entries instead (``playlist``, no resolutions). Errors as :func:`_public_info`."""
    url, youtube_id, info, playlist = _public_info(url, probe=True)
    if playlist is not None:
        return {"video_id": None, "url": url, "resolutions": [], "playlist": playlist}
    return {"video_id": youtube_id, "url": url, "resolutions": formats.available_resolutions(info)}


def info_for(url: str) -> dict:
    """Public video information for a URL (GET /api/video/info, issue 18):
    :func:`info_service.video_info` plus ``video_id`` (YouTube id or None) and ``url``; a
    playlist page gives only ``video_id`` (None), ``url`` and ``playlist``. Errors:
    :func:`_public_info`."""
    url, youtube_id, info, playlist = _public_info(url, probe=False)
    if playlist is not None:
        return {"video_id": None, "url": url, "playlist": playlist}
    return {**info_service.video_info(info), "video_id": youtube_id, "url": url}
