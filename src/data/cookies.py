"""The ``cookies`` collection: one owner's YouTube cookies, encrypted (issue 13, item 2).

One document per user: ``{"user_id": ObjectId, "ciphertext": str (a Fernet token), "domains":
[str], "earliest_expiry": epoch seconds | None, "count": int, "updated_at": datetime}``. The
plaintext is never stored; the other fields are what ``GET /api/auth/cookies`` shows.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from . import object_id


def ensure_indexes(db) -> None:
    """``user_id`` unique (called by ``data.ensure_indexes``)."""
    db.cookies.create_index("user_id", unique=True)


def put(db, user_id: str, ciphertext: str, summary: dict) -> dict:
    """Insert or replace the user's cookies; ``summary`` is ``{"domains", "earliest_expiry",
    "count"}``. Returns the stored document without its ciphertext."""
    fields = {"ciphertext": ciphertext, "domains": list(summary["domains"]),
              "earliest_expiry": summary["earliest_expiry"], "count": summary["count"],
              "updated_at": datetime.now(timezone.utc)}
    db.cookies.update_one({"user_id": object_id(user_id)}, {"$set": fields}, upsert=True)
    return {k: v for k, v in fields.items() if k != "ciphertext"}


def get(db, user_id: str) -> Optional[dict]:
    """The user's cookies document (with its ciphertext), or None."""
    oid = object_id(user_id)
    return db.cookies.find_one({"user_id": oid}) if oid else None


def delete(db, user_id: str) -> bool:
    """Remove the user's cookies; True when there were some."""
    oid = object_id(user_id)
    return bool(oid) and db.cookies.delete_one({"user_id": oid}).deleted_count == 1
