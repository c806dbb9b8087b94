"""Account administration on the ``users`` collection (issue 17, item 6): the ``role`` and
``disabled`` fields and the paged user list.

Fields added to a users document (src/data/users.py has the rest): ``role`` — ``"admin"`` or
absent (an ordinary user; ``"user"`` is stored as absent, so documents made before roles need no
migration); ``disabled`` — ``True`` or absent; ``disabled_at``. Kept apart from
src/data/users.py because only the admin service and the ``set-role`` command write them.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pymongo

from . import object_id

ADMIN = "admin"
#: What a listed user shows (never the password hash).
LISTED = {"email": 1, "role": 1, "disabled": 1, "created_at": 1}


def set_role(db, user_id, role: str) -> bool:
    """``role`` ``"admin"`` or ``"user"`` (stored as no field); True when the user exists."""
    now = datetime.now(timezone.utc)
    change: dict = {"$set": {"role": ADMIN, "updated_at": now}} if role == ADMIN \
        else {"$unset": {"role": ""}, "$set": {"updated_at": now}}
    return db.users.update_one({"_id": object_id(user_id)}, change).matched_count == 1


def set_disabled(db, user_id, disabled: bool) -> Optional[dict]:
    """Mark the user disabled (``disabled: true``, ``disabled_at``) or enabled again (both
    fields removed); return the user document after the change, or None when unknown."""
    now = datetime.now(timezone.utc)
    change = {"$set": {"disabled": True, "disabled_at": now, "updated_at": now}} if disabled \
        else {"$unset": {"disabled": "", "disabled_at": ""}, "$set": {"updated_at": now}}
    oid = object_id(user_id)
    if oid is None:
        return None
    return db.users.find_one_and_update({"_id": oid}, change,
                                        return_document=pymongo.ReturnDocument.AFTER)


def is_disabled(db, user_id) -> bool:
    """True when the user exists and is disabled."""
    oid = object_id(user_id)
    return bool(oid) and db.users.count_documents({"_id": oid, "disabled": True}, limit=1) > 0


def list_page(db, skip: int, limit: int) -> list[dict]:
    """Users oldest first (``created_at``, then ``_id``), only the :data:`LISTED` fields."""
    return list(db.users.find({}, LISTED)
                .sort([("created_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .skip(skip).limit(limit))


def count(db) -> int:
    """How many users there are."""
    return db.users.count_documents({})
