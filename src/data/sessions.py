"""The ``sessions`` collection: ``{_id, user_id, token_hash, created_at, expires_at}``.

Deviation from the spec's schema: the SHA-256 of the token (``token_hash``) is stored instead of
the token itself, so a leaked database does not leak usable tokens (DESIGN.md, Data and state).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from bson import ObjectId

from . import object_id


def create(db, session_id: ObjectId, user_id, token_hash: str, expires_at: datetime) -> None:
    """Insert a session with a pre-made id (the id is inside the token it belongs to)."""
    db.sessions.insert_one({"_id": session_id, "user_id": object_id(user_id),
                            "token_hash": token_hash, "created_at": datetime.now(timezone.utc),
                            "expires_at": expires_at})


def find_live(db, token_hash: str) -> Optional[dict]:
    """The session for this token hash if it has not expired, else None.

    The TTL index removes expired sessions only about once a minute, so expiry is checked here.
    """
    return db.sessions.find_one({"token_hash": token_hash,
                                 "expires_at": {"$gt": datetime.now(timezone.utc)}})


def delete(db, token_hash: str) -> None:
    """Remove one session."""
    db.sessions.delete_one({"token_hash": token_hash})


def delete_for_user(db, user_id) -> list[str]:
    """Remove every session of a user; return their token hashes (to evict them from Redis)."""
    oid = object_id(user_id)
    hashes = [s["token_hash"] for s in db.sessions.find({"user_id": oid}, {"token_hash": 1})]
    db.sessions.delete_many({"user_id": oid})
    return hashes
