"""MongoDB access: the only package that touches collections (DESIGN.md, Shape)."""
from __future__ import annotations

from typing import Optional

import pymongo
from bson import ObjectId
from bson.errors import InvalidId


def object_id(value) -> Optional[ObjectId]:
    """``value`` as an ObjectId, or None when it is not a valid 24-hex id (never raises)."""
    if isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(str(value))
    except (InvalidId, TypeError):
        return None


def ensure_indexes(db) -> None:
    """Create the indexes of the spec's Database Schema (idempotent), plus ``public_tokens``.

    users.email unique; sessions.token_hash unique, sessions.user_id, TTL on sessions.expires_at;
    videos.user_id, videos.status, videos.expires_at; cookies.user_id unique (issue 13);
    channels (user_id, channel_id) unique (issue 17); memberships (owner_id, email) unique
    (issue 17, item 6); deliveries (video_id, event, target) unique (issue 17, item 3).
    """
    from . import channels, cookies, deliveries, members, public_tokens  # (import object_id)

    db.users.create_index("email", unique=True)
    db.sessions.create_index("token_hash", unique=True)
    db.sessions.create_index("user_id")
    db.sessions.create_index("expires_at", expireAfterSeconds=0)
    db.videos.create_index([("user_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)])
    db.videos.create_index("status")
    db.videos.create_index("expires_at")
    public_tokens.ensure_indexes(db)
    cookies.ensure_indexes(db)
    channels.ensure_indexes(db)
    members.ensure_indexes(db)
    deliveries.ensure_indexes(db)
