"""The ``channels`` collection: an owner's settings for one YouTube channel (issue 17, item 2).

One document per (owner, channel): ``{"user_id": ObjectId, "channel_id": "UC…", "settings":
{...} (src/services/channel_service.py), "handle": str (only while the channel has a public
page name; unique over all owners), "updated_at": datetime}``. Two owners may each have settings
for the same channel (each clips it with their own token).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pymongo
import pymongo.errors

from . import object_id


class HandleTaken(Exception):
    """Another channel already has this public page name."""


def ensure_indexes(db) -> None:
    """(user_id, channel_id) unique; ``handle`` unique where present (sparse: a channel without
    a public page name has no ``handle`` field). Called by ``data.ensure_indexes``."""
    db.channels.create_index([("user_id", pymongo.ASCENDING), ("channel_id", pymongo.ASCENDING)],
                             unique=True)
    db.channels.create_index("handle", unique=True, sparse=True)


def get(db, user_id, channel_id: str) -> Optional[dict]:
    """The owner's document for ``channel_id``, or None."""
    oid = object_id(user_id)
    return db.channels.find_one({"user_id": oid, "channel_id": channel_id}) if oid else None


def put(db, user_id, channel_id: str, settings: dict, handle: Optional[str] = None) -> dict:
    """Insert or replace the owner's settings for ``channel_id`` and its public page name
    (None: none); the stored document. Raises :class:`HandleTaken` when another channel has
    ``handle`` (the unique index decides, so two owners saving it at once cannot both win)."""
    fields = {"settings": dict(settings), "updated_at": datetime.now(timezone.utc)}
    update: dict = {"$set": {**fields, "handle": handle}} if handle else \
        {"$set": fields, "$unset": {"handle": ""}}
    try:
        db.channels.update_one({"user_id": object_id(user_id), "channel_id": channel_id},
                               update, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        raise HandleTaken(handle) from None
    return {"user_id": object_id(user_id), "channel_id": channel_id, **fields,
            **({"handle": handle} if handle else {})}


def by_handle(db, handle: str) -> Optional[dict]:
    """The channel document whose public page name is ``handle``, or None."""
    return db.channels.find_one({"handle": handle}) if handle else None


def list_for_user(db, user_id, limit: int = 200) -> list[dict]:
    """The owner's channel documents, by channel id."""
    return list(db.channels.find({"user_id": object_id(user_id)})
                .sort("channel_id", pymongo.ASCENDING).limit(limit))
