"""Showing clips (spec: Video Endpoints 3-4): the status of one, the list of a user's, and what
they link to (thumbnail and subtitle files). Saving and ownership are in
src/services/video_service.py."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis
from ..schemas import DEFAULT_PER_PAGE, MAX_GROUPS
from ..utils import signing
from ..utils.dates import iso
from ..utils.files import file_available
from . import progress_cache, roles
from .video_service import get_owned

#: Most clips in one answer of GET /api/video/list without paging (src/data/videos.py).
LIST_LIMIT = 500
#: A thumbnail URL is valid at least this long (then up to an hour more, to the next hour).
THUMBNAIL_MIN_SECONDS = 3600


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
        "title": (doc.get("video_info") or {}).get("title"),
        "channel": (doc.get("video_info") or {}).get("channel")
        or (doc.get("video_info") or {}).get("uploader"),
        "thumbnail_url": thumbnail_url(doc),
    }


def thumbnail_url(doc: dict, now: Optional[datetime] = None) -> Optional[str]:
    """The signed URL of the clip's thumbnail of its moment (checked by
    :func:`playback.signed_thumbnail`), or None when it has none (an audio clip, a clip not
    finished or expired). Its ``exp`` is the end of the whole hour after
    :data:`THUMBNAIL_MIN_SECONDS`, so the URL stays the same across an hour of list refreshes
    and the browser's cache serves the image without asking again."""
    if not doc.get("thumbnail_path") or not file_available(doc):
        return None
    soon = int((now or datetime.now(timezone.utc)).timestamp()) + THUMBNAIL_MIN_SECONDS
    exp = soon - soon % 3600 + 3600
    video_id = str(doc["_id"])
    return f"/api/video/thumbnail/{video_id}.jpg?exp={exp}&sig=" \
           f"{signing.signature('thumbnail', video_id, exp)}"


def status_view(doc: dict) -> dict:
    """The fields of GET /api/video/status/{id}: summary + formats, progress and file facts."""
    size = doc.get("file_size_bytes")
    view = {
        **summary_view(doc), "available_formats": doc.get("available_formats") or [],
        "format_preference": doc.get("format_preference"),
        "resolution_preference": doc.get("resolution_preference"),
        "file_size_mb": round(size / 1_048_576, 1) if size and file_available(doc) else None,
        "expires_at": iso(doc.get("expires_at")), "progress": None,
        "format_id": doc.get("format_id"), "video_info": doc.get("video_info"),
        "audio_bitrate": doc.get("audio_bitrate"), "subtitles_mode": doc.get("subtitles_mode"),
        "subtitles": [{"lang": s["lang"], "automatic": s["automatic"], "cues": s.get("cues"),
                       "url": f"/api/video/download/{doc['_id']}/subtitles/{s['lang']}.vtt"}
                      for s in doc.get("file_subtitles") or []] if file_available(doc) else [],
        "subtitle_errors": doc.get("subtitle_errors") or {},
        "live_window": _window_view(doc.get("live_window")),
        "formats_error": doc.get("formats_error"),
        "live_fallback": doc.get("live_fallback"),
    }
    if doc["status"] == "processing":
        view["progress"] = progress_cache.get_progress(redis(), view["video_id"]) \
            or dict(progress_cache.EMPTY_PROGRESS)
    return view


def subtitle_file(video_id: str, user_id: str, lang: str) -> str:
    """Path of the WebVTT file in ``lang`` beside the clip's finished file (issue 18). Raises
    ApiError 404/403 as :func:`get_owned`, 404 when the file has no subtitles in ``lang``
    (none asked for, left out, or the file expired)."""
    doc = get_owned(video_id, user_id)
    found = next((s for s in doc.get("file_subtitles") or [] if s["lang"] == lang), None)
    if found is None or not file_available(doc):
        raise ApiError(404, f"This clip's file has no subtitles in {lang!r}; download it with "
                            f'"subtitles": ["{lang}"] first.', "NOT_FOUND")
    return found["path"]


def _window_view(window: Optional[dict]) -> Optional[dict]:
    """A live clip's ``live_window`` (POSIX ``t0``/``t1``) as ``{"start_at", "end_at"}``
    ISO-8601 UTC (src/services/live_capture.py), else None."""
    if not window:
        return None
    return {key: iso(datetime.fromtimestamp(window[name], timezone.utc))
            for key, name in (("start_at", "t0"), ("end_at", "t1"))}


def search_words(q: Optional[str]) -> list[str]:
    """The words of a search box's ``q`` (split on white space), control characters dropped
    and the words left empty by that left out (the clip list, the public channel page)."""
    words = ("".join(ch for ch in word if ch.isprintable()) for word in (q or "").split())
    return [word for word in words if word]


def list_clips(user_id: str, query: Optional[dict] = None) -> dict:
    """GET /api/video/list: ``{"videos": [...]}`` (summary views, newest first, at most
    500) — the spec's answer when ``query`` (:class:`src.schemas.VideoListQuery`) has no
    value. With any value the clips are filtered (:func:`src.data.videos.clip_filter`; ``q``
    split into words, control characters dropped) and ``total`` is added; with ``page`` or
    ``per_page`` one page is listed and ``page``/``per_page`` are added; with
    ``group=stream`` ``groups`` (:func:`src.data.videos.stream_counts`). ``owner`` (issue 17,
    item 6) lists that user's clips instead, for an active moderator of theirs (ApiError 403
    FORBIDDEN for anyone else); it alone does not change the answer's shape."""
    given = {key: value for key, value in (query or {}).items() if value is not None}
    listed_owner = given.pop("owner", None)
    if listed_owner is not None:
        if not roles.may_list(listed_owner, user_id):
            raise ApiError(403, "You do not moderate this user's clips", "FORBIDDEN")
        user_id = listed_owner
    if not given:
        return {"videos": [summary_view(doc) for doc in videos.list_for_user(db(), user_id)]}
    found = videos.clip_filter(user_id, search_words(given.get("q")),
                               given.get("status"), given.get("channel"),
                               given.get("youtube_video_id"), given.get("since"),
                               given.get("until"))
    paged = "page" in given or "per_page" in given
    page, per_page = given.get("page", 1), given.get("per_page", DEFAULT_PER_PAGE)
    skip, limit = ((page - 1) * per_page, per_page) if paged else (0, LIST_LIMIT)
    answer: dict = {"videos": [summary_view(doc) for doc in
                               videos.find_page(db(), found, skip, limit)],
                    "total": videos.count(db(), found)}
    if paged:
        answer.update(page=page, per_page=per_page)
    if given.get("group") == "stream":
        answer["groups"] = videos.stream_counts(db(), found, MAX_GROUPS)
    return answer
