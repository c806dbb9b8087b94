"""The ``channels`` collection: an owner's settings for one YouTube channel (issue 17, item 2).

One document per (owner, channel): ``{"user_id": ObjectId, "channel_id": "UC…", "settings":
{...} (src/services/channel_service.py), "updated_at": datetime}``. Two owners may each have
settings for the same channel (each clips it with their own token).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pymongo

from . import object_id


def ensure_indexes(db) -> None:
    """(user_id, channel_id) unique (called by ``data.ensure_indexes``)."""
    db.channels.create_index([("user_id", pymongo.ASCENDING), ("channel_id", pymongo.ASCENDING)],
                             unique=True)


def get(db, user_id, channel_id: str) -> Optional[dict]:
    """The owner's document for ``channel_id``, or None."""
    oid = object_id(user_id)
    return db.channels.find_one({"user_id": oid, "channel_id": channel_id}) if oid else None


def put(db, user_id, channel_id: str, settings: dict) -> dict:
    """Insert or replace the owner's settings for ``channel_id``; the stored document."""
    fields = {"settings": dict(settings), "updated_at": datetime.now(timezone.utc)}
    db.channels.update_one({"user_id": object_id(user_id), "channel_id": channel_id},
                           {"$set": fields}, upsert=True)
    return {"user_id": object_id(user_id), "channel_id": channel_id, **fields}


def list_for_user(db, user_id, limit: int = 200) -> list[dict]:
    """The owner's channel documents, by channel id."""
    return list(db.channels.find({"user_id": object_id(user_id)})
                .sort("channel_id", pymongo.ASCENDING).limit(limit))
