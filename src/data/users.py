"""The ``users`` collection: ``{_id, email, password_hash, created_at, updated_at}``."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from pymongo.errors import DuplicateKeyError

from . import object_id


class EmailTaken(Exception):
    """The email is already registered (unique index on ``users.email``)."""


def create(db, email: str, password_hash: str) -> str:
    """Insert a user and return its id as a string. Raises :class:`EmailTaken`."""
    now = datetime.now(timezone.utc)
    try:
        result = db.users.insert_one({"email": email, "password_hash": password_hash,
                                      "created_at": now, "updated_at": now})
    except DuplicateKeyError as exc:
        raise EmailTaken(email) from exc
    return str(result.inserted_id)


def find_by_email(db, email: str) -> Optional[dict]:
    """The user with this (already normalised) email, or None."""
    return db.users.find_one({"email": email})


def find_by_id(db, user_id) -> Optional[dict]:
    """The user with this id, or None (also for a malformed id)."""
    oid = object_id(user_id)
    return db.users.find_one({"_id": oid}) if oid else None


def set_password_hash(db, user_id, password_hash: str, expected: Optional[str] = None) -> bool:
    """Replace the user's bcrypt hash and touch ``updated_at``; with ``expected``, only while
    the stored hash is still that one (a rehash at login must not undo a password change made
    meanwhile). Returns True when the document changed."""
    query: dict[str, Any] = {"_id": object_id(user_id)}
    if expected is not None:
        query["password_hash"] = expected
    return db.users.update_one(query, {"$set": {"password_hash": password_hash,
                                                "updated_at": datetime.now(timezone.utc)}}
                               ).modified_count == 1
