"""Editing and deleting a clip through the API (issue 17, item 6): ``PATCH`` and ``DELETE
/api/video/{video_id}``, for the clip's owner and the owner's moderators
(:func:`src.services.roles.may` with ``edit`` / ``delete``).

Chat has its own ``!clipedit`` / ``!clipdelete`` (src/services/chat_service.py), decided by
Nightbot's ``userLevel``; these are the same changes for a logged-in account.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db, setting
from . import folders, storage
from .clip_views import summary_view
from .video_service import get_owned

log = logging.getLogger(__name__)


def edit_message(video_id: str, user_id: str, message: Optional[str]) -> dict:
    """Replace the clip's ``additional_message`` (None clears it) and record who changed it
    (``message_edited_by: {"user_id"}``). Returns the clip's summary (as in the clip list).
    Raises ApiError 404/403 as :func:`src.services.video_service.get_owned`."""
    doc = get_owned(video_id, user_id, action="edit")
    text = message.strip() if isinstance(message, str) else None
    changes = {"additional_message": text or None,
               "message_edited_by": {"user_id": str(user_id)}}
    videos.update(db(), doc["_id"], changes)
    return summary_view({**doc, **changes})


def _inside_downloads(path: str) -> bool:
    base = os.path.realpath(setting("DOWNLOADS_DIR"))
    return os.path.realpath(path).startswith(base + os.sep)


def delete_clip(video_id: str, user_id: str) -> None:
    """Remove the clip: its record, then the files it names (file, thumbnail, subtitles: paths
    under ``DOWNLOADS_DIR`` only, or objects in the bucket) and its folder with anything else
    in it (src/services/folders.py). Raises ApiError 404/403 as
    :func:`src.services.video_service.get_owned`, 409 CLIP_PROCESSING while a job works on it
    (wait for it to end: its files would be written after the delete), 404 when another request
    deleted it first."""
    doc = get_owned(video_id, user_id, action="delete")
    busy = ApiError(409, "This clip is being processed; delete it once it has finished",
                    "CLIP_PROCESSING")
    if doc["status"] == "processing":
        raise busy
    if not videos.delete(db(), doc["_id"], unless_status="processing"):
        if videos.get(db(), doc["_id"]):  # a job claimed it just now
            raise busy
        raise ApiError(404, "Video not found", "NOT_FOUND")
    storage.delete(ref for ref in storage.files_of(doc)
                   if storage.is_object(ref) or _inside_downloads(ref))
    folders.empty(folders.path_of(doc))
    owner = "their own" if str(doc["user_id"]) == str(user_id) else f"{doc['user_id']}'s"
    log.info("clip %s deleted by %s (%s clip)", doc["_id"], user_id, owner)
