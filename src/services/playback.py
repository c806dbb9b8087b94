"""Playing a finished clip and showing its thumbnail in the dashboard (issue 17, item 4):
short-lived signed URLs (src/utils/signing.py).

A ``<video>`` element cannot send the bearer token the download route needs, so the owner asks
``POST /api/video/play/{id}`` (private token) for ``/api/video/play/{id}/file?exp=…&sig=…``,
valid ``PLAY_URL_SECONDS`` (default 300). It is not bound to a session: whoever holds it may
fetch that one file until it expires, like a pre-signed S3 URL.

The thumbnail of a clip's moment comes the same way, inside the clip list
(``thumbnail_url``, made by :func:`clip_views.thumbnail_url`):
``/api/video/thumbnail/{id}.jpg?exp=…&sig=…``; checked here.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, setting
from ..utils.dates import iso
from ..utils.files import file_available
from ..utils.signing import signature, valid
from . import video_service


def lifetime() -> int:
    """Seconds a play URL stays valid (``PLAY_URL_SECONDS``, at least 1)."""
    return max(1, int(setting("PLAY_URL_SECONDS")))


def play_url(video_id: str, user_id: str, now: Optional[datetime] = None) -> dict:
    """``{"url", "expires_at"}`` of the owner's completed clip: a signed path (module
    docstring) and its expiry (ISO-8601 UTC). Raises ApiError 404/403 as
    :func:`video_service.get_owned`, 409 FILE_NOT_READY when the clip has no finished file
    (pending, processing, failed, expired: download it first)."""
    doc = video_service.get_owned(video_id, user_id)
    if not file_available(doc):
        raise ApiError(409, "This clip has no finished file to play; download it first",
                       "FILE_NOT_READY")
    moment = now or datetime.now(timezone.utc)
    exp = int(moment.timestamp()) + lifetime()
    return {"url": f"/api/video/play/{video_id}/file?exp={exp}&sig="
                   f"{signature('play', video_id, exp)}",
            "expires_at": iso(datetime.fromtimestamp(exp, timezone.utc))}


def signed_file(video_id: str, exp: int, sig: str, now: Optional[datetime] = None) -> tuple:
    """``(path, ext, seconds_left)`` of the clip file a play URL names. Raises ApiError 403
    INVALID_SIGNATURE (forged, or for another id), 403 URL_EXPIRED (``exp`` passed: ask
    again), 404 NOT_FOUND when the clip or its file is gone (deleted, expired by the
    cleanup)."""
    doc, left = _signed_doc("play", video_id, exp, sig, now)
    if not file_available(doc):
        raise ApiError(404, "This clip's file is gone; download it again", "NOT_FOUND")
    return doc["file_path"], doc["file_format"], left


def signed_thumbnail(video_id: str, exp: int, sig: str,
                     now: Optional[datetime] = None) -> tuple[str, int]:
    """``(path, seconds_left)`` of the thumbnail a thumbnail URL names. Raises ApiError 403
    INVALID_SIGNATURE / URL_EXPIRED, 404 NOT_FOUND (the clip has no thumbnail now)."""
    doc, left = _signed_doc("thumbnail", video_id, exp, sig, now)
    if not doc.get("thumbnail_path") or not file_available(doc):
        raise ApiError(404, "This clip has no thumbnail", "NOT_FOUND")
    return doc["thumbnail_path"], left


def _signed_doc(purpose: str, video_id: str, exp: int, sig: str,
                now: Optional[datetime]) -> tuple[dict, int]:
    if not valid(purpose, video_id, exp, sig):
        raise ApiError(403, "This link is not valid", "INVALID_SIGNATURE")
    left = exp - int((now or datetime.now(timezone.utc)).timestamp())
    if left <= 0:
        raise ApiError(403, "This link has expired; ask for a new one (Play, or refresh "
                       "the list)", "URL_EXPIRED")
    doc = videos.get(db(), video_id)
    if not doc or doc.get("source_type") == "upload":
        raise ApiError(404, "This clip is gone", "NOT_FOUND")
    return doc, left
