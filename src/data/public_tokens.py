"""The ``public_tokens`` collection: public tokens bound to a user, for listing and revocation.

One document per bound token: ``{"jti", "user_id": ObjectId, "created_at", "expires_at",
"revoked_at": None | datetime}``. Anonymous tokens have no owner who could list or revoke them,
so they are not stored. A TTL index on ``expires_at`` removes records once the token has expired.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pymongo

from . import object_id


def ensure_indexes(db) -> None:
    """``jti`` unique, ``user_id``, TTL on ``expires_at`` (called by ``data.ensure_indexes``)."""
    db.public_tokens.create_index("jti", unique=True)
    db.public_tokens.create_index("user_id")
    db.public_tokens.create_index("expires_at", expireAfterSeconds=0)


def insert(db, jti: str, user_id: str, expires_at: datetime) -> None:
    """Record a newly issued bound token."""
    db.public_tokens.insert_one({"jti": jti, "user_id": object_id(user_id),
                                 "created_at": datetime.now(timezone.utc),
                                 "expires_at": expires_at, "revoked_at": None})


def is_revoked(db, jti: str) -> bool:
    """True when a token with this ``jti`` was revoked."""
    return db.public_tokens.count_documents({"jti": jti, "revoked_at": {"$ne": None}},
                                            limit=1) > 0


def list_for_user(db, user_id: str, now: datetime) -> list[dict]:
    """The user's tokens that have not expired yet (revoked ones included), newest first."""
    return list(db.public_tokens.find({"user_id": object_id(user_id), "expires_at": {"$gt": now}})
                .sort([("created_at", pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
                .limit(200))  # MongoDB keeps milliseconds: ties are broken by insertion order


def revoke_for_user(db, user_id: str) -> int:
    """Mark every unrevoked token of the user revoked (a password change); return how many."""
    return db.public_tokens.update_many(
        {"user_id": object_id(user_id), "revoked_at": None},
        {"$set": {"revoked_at": datetime.now(timezone.utc)}}).modified_count


def revoke(db, user_id: str, jti: str) -> Optional[dict]:
    """Mark the user's token ``jti`` revoked; return the document, or None when the user has no
    such token (someone else's is treated as unknown)."""
    found = db.public_tokens.find_one({"jti": jti, "user_id": object_id(user_id)})
    if found and found.get("revoked_at") is None:
        found["revoked_at"] = datetime.now(timezone.utc)
        db.public_tokens.update_one({"_id": found["_id"]},
                                    {"$set": {"revoked_at": found["revoked_at"]}})
    return found
