"""The ``deliveries`` collection: clip notifications to a channel's Discord and generic webhooks
(issue 17, item 3; the sending: src/services/notify_sender.py).

One document per (clip, event, target): ``{"_id": ObjectId (the delivery id), "user_id":
ObjectId (the clip's owner), "channel_id": "UC…", "video_id": str, "event": "saved" | "ready"
| "failed", "target": "discord" | "webhook", "status": "queued" | "sending" | "delivered" |
"failed", "attempts": int (posts started), "last_error": str | None, "next_attempt_at":
datetime (when a queued one is due), "lease_until": datetime (while sending), "created_at",
"updated_at", "delivered_at"}``. No URL and no secret is stored: the sender reads the channel's
webhook when it posts (a URL carries its token), and ``last_error`` names a host at most.

Claims are atomic (:func:`claim_next_due`, one ``find_one_and_update`` on the server), so two
processes never post the same delivery at once; mongomock (the embedded store, one process) does
a find then an update, so claims in this process are also serialized by a lock.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Optional

import pymongo
import pymongo.errors
from pymongo import ReturnDocument

from . import object_id

EVENTS = ("saved", "ready", "failed")
TARGETS = ("discord", "webhook")
STATUSES = ("queued", "sending", "delivered", "failed")
MAX_ERROR_CHARS = 300

_claim_lock = threading.Lock()
_indexed: set = set()


def ensure_indexes(db) -> None:
    """(video_id, event, target) unique — an event is queued once per clip and target; (status,
    next_attempt_at) for the sender's claims; (user_id, channel_id, updated_at) for the list.
    Idempotent; called by ``data.ensure_indexes`` (and lazily by the service until then)."""
    db.deliveries.create_index([("video_id", pymongo.ASCENDING), ("event", pymongo.ASCENDING),
                                ("target", pymongo.ASCENDING)], unique=True)
    db.deliveries.create_index([("status", pymongo.ASCENDING),
                                ("next_attempt_at", pymongo.ASCENDING)])
    db.deliveries.create_index([("user_id", pymongo.ASCENDING), ("channel_id", pymongo.ASCENDING),
                                ("updated_at", pymongo.DESCENDING)])


def ensure_indexes_once(db) -> None:
    """:func:`ensure_indexes` the first time this process sees ``db`` (cheap afterwards)."""
    key = id(db)
    if key not in _indexed:
        ensure_indexes(db)
        _indexed.add(key)


def queue(db, user_id, channel_id: str, video_id: str, event: str, target: str,
          now: datetime) -> Optional[str]:
    """Queue ``event`` of clip ``video_id`` for ``target``, due at ``now`` (aware UTC); its id,
    or None when that event was already queued for this clip and target (the unique index
    decides, so two processes cannot both queue it)."""
    doc = {"user_id": object_id(user_id), "channel_id": channel_id, "video_id": str(video_id),
           "event": event, "target": target, "status": "queued", "attempts": 0,
           "last_error": None, "next_attempt_at": now, "created_at": now, "updated_at": now}
    try:
        return str(db.deliveries.insert_one(doc).inserted_id)
    except pymongo.errors.DuplicateKeyError:
        return None


def claim_next_due(db, now: datetime, lease_seconds: float) -> Optional[dict]:
    """The queued delivery due longest ago (``next_attempt_at`` ≤ ``now``), now ``sending``
    with ``attempts`` + 1 and ``lease_until`` = now + ``lease_seconds``; None when none is
    due. Atomic: one process gets it."""
    with _claim_lock:
        return db.deliveries.find_one_and_update(
            {"status": "queued", "next_attempt_at": {"$lte": now}},
            {"$set": {"status": "sending", "updated_at": now,
                      "lease_until": now + timedelta(seconds=lease_seconds)},
             "$inc": {"attempts": 1}},
            sort=[("next_attempt_at", pymongo.ASCENDING)], return_document=ReturnDocument.AFTER)


def _finish(db, delivery_id, fields: dict, now: datetime) -> bool:
    result = db.deliveries.update_one(
        {"_id": object_id(delivery_id), "status": "sending"},
        {"$set": {**fields, "updated_at": now}, "$unset": {"lease_until": ""}})
    return result.modified_count == 1


def mark_delivered(db, delivery_id, now: datetime) -> bool:
    """A sending delivery arrived; False when it was not ``sending`` (nothing changed)."""
    return _finish(db, delivery_id, {"status": "delivered", "last_error": None,
                                     "delivered_at": now}, now)


def mark_failed(db, delivery_id, error: str, now: datetime) -> bool:
    """A sending delivery given up with ``error`` (cut to :data:`MAX_ERROR_CHARS`; never a URL
    path: the caller names hosts only)."""
    return _finish(db, delivery_id, {"status": "failed", "last_error": error[:MAX_ERROR_CHARS]},
                   now)


def mark_retry(db, delivery_id, error: str, due: datetime, now: datetime) -> bool:
    """A sending delivery queued again for ``due`` after ``error``."""
    return _finish(db, delivery_id, {"status": "queued", "last_error": error[:MAX_ERROR_CHARS],
                                     "next_attempt_at": due}, now)


def fail_stale(db, now: datetime, error: str) -> int:
    """Every ``sending`` delivery whose lease ended (its process died mid-post) becomes
    ``failed`` with ``error``: it may have arrived, and a delivery is posted at most once.
    Returns how many."""
    result = db.deliveries.update_many(
        {"status": "sending", "lease_until": {"$lt": now}},
        {"$set": {"status": "failed", "last_error": error[:MAX_ERROR_CHARS], "updated_at": now},
         "$unset": {"lease_until": ""}})
    return result.modified_count


def next_due(db) -> Optional[datetime]:
    """When the earliest queued delivery is due, or None when none is queued."""
    doc = db.deliveries.find_one({"status": "queued"}, {"next_attempt_at": 1},
                                 sort=[("next_attempt_at", pymongo.ASCENDING)])
    return doc["next_attempt_at"] if doc else None


def unfinished(db) -> int:
    """How many deliveries are queued or sending."""
    return db.deliveries.count_documents({"status": {"$in": ["queued", "sending"]}})


def get(db, delivery_id) -> Optional[dict]:
    """The delivery with this id, or None."""
    oid = object_id(delivery_id)
    return db.deliveries.find_one({"_id": oid}) if oid else None


def list_recent(db, user_id, channel_id: str, limit: int = 50) -> list[dict]:
    """The owner's deliveries for ``channel_id``, the last changed first, at most ``limit``."""
    return list(db.deliveries.find({"user_id": object_id(user_id), "channel_id": channel_id})
                .sort([("updated_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .limit(limit))
