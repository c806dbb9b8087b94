"""Clip notifications to a channel's Discord and generic webhooks (issue 17, item 3).

What is sent when: a stream clip saved from chat (:func:`clip_saved`, called by the stream
save) queues ``saved``; its outcome (:func:`clip_outcome`, called where the Nightbot follow-up
is: a finished download, a failed job, a stream clip that could not be placed) queues
``ready`` or ``failed``. Each goes to every webhook the clip owner's settings of the clip's
channel have (``discord_webhook_url``, ``webhook_url``: src/services/channel_service.py);
nothing is queued without one, or for a clip without a channel. The same event of a clip is
queued once per target (a second download of a clip sends no second ``ready``).

Queuing is one read of the clip and its channel and one insert per target
(src/data/deliveries.py); the post is the background sender's (src/services/notify_sender.py:
retries, back-off, the egress guard), so the chat reply is never delayed, and these functions
never raise (a failure is logged). What the messages say: src/services/notify_payloads.py.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Optional

from flask import Flask, current_app

from ..data import channels, deliveries, videos
from ..errors import ApiError
from ..extensions import db
from . import channel_service, notify_sender

log = logging.getLogger(__name__)

#: The settings field of each target.
TARGET_FIELDS = {"discord": "discord_webhook_url", "webhook": "webhook_url"}
LIST_LIMIT = 50


def clip_saved(video_id: str) -> None:
    """Queue the ``saved`` notification of clip ``video_id`` (see the module). Never raises."""
    _queue(video_id, lambda doc: "saved")


def clip_outcome(video_id: str) -> None:
    """Queue ``ready`` once the clip is ``completed``, ``failed`` once it failed (nothing in
    another status), read from the stored clip. Never raises."""
    _queue(video_id, lambda doc: {"completed": "ready", "failed": "failed"}.get(
        doc.get("status") or ""))


def _queue(video_id: str, event_of) -> None:
    try:
        store = db()
        doc = videos.get(store, video_id)
        if doc is None:
            return
        event, channel_id = event_of(doc), doc.get("channel_id")
        if not event or not channel_id or not doc.get("user_id"):
            return
        saved = channels.get(store, doc["user_id"], channel_id)
        settings = (saved or {}).get("settings") or {}
        targets = [target for target, name in TARGET_FIELDS.items() if settings.get(name)]
        if not targets:
            return
        deliveries.ensure_indexes_once(store)
        now = datetime.now(timezone.utc)
        queued = [target for target in targets if deliveries.queue(
            store, doc["user_id"], channel_id, str(video_id), event, target, now)]
        if queued:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            notify_sender.sender(app).wake()
    except Exception:
        log.exception("video %s: clip notification not queued", video_id)


def init_app(app: Flask) -> None:
    """Start this process's sender when deliveries wait (:func:`notify_sender.init_app`)."""
    notify_sender.init_app(app)


def recent(user_id: str, channel_id: str) -> list[dict]:
    """The owner's last :data:`LIST_LIMIT` deliveries for ``channel_id``, the last changed
    first: ``[{"delivery_id", "video_id", "event", "target", "status", "attempts",
    "last_error", "updated_at"}]``. Raises ApiError 400 for a malformed channel id."""
    if not channel_service.CHANNEL_ID.match(channel_id or ""):
        raise ApiError(400, "channel_id must be a YouTube channel id (UC + 22 characters)",
                       "VALIDATION_ERROR", {"channel_id": ["UC + 22 characters."]})
    store = db()
    deliveries.ensure_indexes_once(store)
    return [_view(item) for item in deliveries.list_recent(store, user_id, channel_id,
                                                           LIST_LIMIT)]


def _view(item: dict) -> dict:
    updated: Optional[datetime] = item.get("updated_at")
    if updated is not None and updated.tzinfo is None:
        updated = updated.replace(tzinfo=timezone.utc)
    return {"delivery_id": str(item["_id"]), "video_id": item["video_id"],
            "event": item["event"], "target": item["target"], "status": item["status"],
            "attempts": item.get("attempts", 0), "last_error": item.get("last_error"),
            "updated_at": updated}
