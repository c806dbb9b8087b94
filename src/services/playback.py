"""Playing a finished clip in the dashboard (issue 17, item 4): short-lived signed file URLs.

A ``<video>`` element cannot send the bearer token the download route needs, so the owner asks
``POST /api/video/play/{id}`` (private token) for a URL that carries its own proof:
``/api/video/play/{id}/file?exp={posix seconds}&sig={hex}``, where ``sig`` is
HMAC-SHA256(key, ``"{id}.{exp}"``) (RFC 2104) and the key is derived from ``FLASK_SECRET_KEY``
with HKDF-SHA256 (RFC 5869, info :data:`_HKDF_INFO`), so it is never the secret itself and
other uses of that secret cannot produce a play signature. The signature is compared with
:func:`hmac.compare_digest`. The URL is valid ``PLAY_URL_SECONDS`` (default 300) and is not
bound to a session: whoever holds it may fetch that one file until it expires, like a
pre-signed S3 URL.
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from functools import lru_cache
from typing import Optional

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..data import videos
from ..errors import ApiError
from ..extensions import db, setting
from ..utils.dates import iso
from ..utils.files import file_available
from . import video_service

_HKDF_INFO = b"yt-downloader play url v1"


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_HKDF_INFO).derive(secret.encode())


def signature(video_id: str, exp: int) -> str:
    """The hex HMAC-SHA256 of ``"{video_id}.{exp}"`` under the app's play key."""
    message = f"{video_id}.{exp}".encode()
    return hmac.new(_key(setting("FLASK_SECRET_KEY")), message, hashlib.sha256).hexdigest()


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
    return {"url": f"/api/video/play/{video_id}/file?exp={exp}&sig={signature(video_id, exp)}",
            "expires_at": iso(datetime.fromtimestamp(exp, timezone.utc))}


def signed_file(video_id: str, exp: int, sig: str, now: Optional[datetime] = None) -> tuple:
    """``(path, ext, seconds_left)`` of the clip file a play URL names. Raises ApiError 403
    INVALID_SIGNATURE (forged, or for another id), 403 URL_EXPIRED (``exp`` passed: ask
    again), 404 NOT_FOUND when the clip or its file is gone (deleted, expired by the
    cleanup)."""
    if not hmac.compare_digest(signature(video_id, exp), sig):
        raise ApiError(403, "This play link is not valid", "INVALID_SIGNATURE")
    left = exp - int((now or datetime.now(timezone.utc)).timestamp())
    if left <= 0:
        raise ApiError(403, "This play link has expired; press Play again", "URL_EXPIRED")
    doc = videos.get(db(), video_id)
    if not doc or doc.get("source_type") == "upload" or not file_available(doc):
        raise ApiError(404, "This clip's file is gone; download it again", "NOT_FOUND")
    return doc["file_path"], doc["file_format"], left
