"""The ``memberships`` collection (issue 17, item 6): the moderators an owner invited.

One document per (owner, invited email): ``{_id, owner_id: ObjectId, moderator_id: ObjectId |
None (until accepted), email (normalised), invite_token_hash (SHA-256 hex of the invite token;
None once accepted), status: "invited" | "active", created_at, accepted_at}``. The invite token
itself is shown once to the owner and never stored, as for sessions (DESIGN.md, Data and state).
Indexes: (owner_id, email) unique — one invite per email and owner; ``invite_token_hash``
(unique among the invites that have one); ``moderator_id``.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import pymongo
from pymongo.errors import DuplicateKeyError

from . import object_id

INVITED, ACTIVE = "invited", "active"


class AlreadyInvited(Exception):
    """This owner already has a membership (invited or active) for this email."""


def ensure_indexes(db) -> None:
    """(owner_id, email) unique, invite_token_hash unique where set, moderator_id (called by
    ``data.ensure_indexes`` once wired there; src/services/roles.py calls it meanwhile)."""
    db.memberships.create_index([("owner_id", pymongo.ASCENDING), ("email", pymongo.ASCENDING)],
                                unique=True)
    db.memberships.create_index("invite_token_hash", unique=True, partialFilterExpression={
        "invite_token_hash": {"$type": "string"}})
    db.memberships.create_index("moderator_id")


def invite(db, owner_id, email: str, token_hash: str) -> dict:
    """Insert an invite of ``email`` (already normalised) by ``owner_id``; return the document.
    Raises :class:`AlreadyInvited` when that owner has one for this email already."""
    doc = {"owner_id": object_id(owner_id), "moderator_id": None, "email": email,
           "invite_token_hash": token_hash, "status": INVITED,
           "created_at": datetime.now(timezone.utc), "accepted_at": None}
    try:
        doc["_id"] = db.memberships.insert_one(doc).inserted_id
    except DuplicateKeyError as exc:
        raise AlreadyInvited(email) from exc
    return doc


def renew_invite(db, membership_id, token_hash: str) -> bool:
    """Give a still-pending invite a new token (the old one stops working); True when it was
    still ``invited``."""
    return db.memberships.update_one(
        {"_id": object_id(membership_id), "status": INVITED},
        {"$set": {"invite_token_hash": token_hash, "created_at": datetime.now(timezone.utc)}}
    ).modified_count == 1


def find_invite(db, token_hash: str) -> Optional[dict]:
    """The pending invite whose token has this hash, or None (unknown, or already used)."""
    return db.memberships.find_one({"invite_token_hash": token_hash, "status": INVITED})


def find_for_owner_email(db, owner_id, email: str) -> Optional[dict]:
    """The owner's membership for ``email`` (normalised), or None."""
    return db.memberships.find_one({"owner_id": object_id(owner_id), "email": email})


def accept(db, token_hash: str, moderator_id, email: str) -> Optional[dict]:
    """Turn the pending invite with this token hash into an active membership of
    ``moderator_id`` — only while it is still pending and addressed to ``email`` (the accepting
    user's, normalised), in one conditional update, so a token works once. Returns the updated
    document, or None when no pending invite matches both."""
    return db.memberships.find_one_and_update(
        {"invite_token_hash": token_hash, "status": INVITED, "email": email},
        {"$set": {"status": ACTIVE, "moderator_id": object_id(moderator_id),
                  "invite_token_hash": None, "accepted_at": datetime.now(timezone.utc)}},
        return_document=pymongo.ReturnDocument.AFTER)


def get(db, membership_id) -> Optional[dict]:
    """The membership with this id, or None (also for a malformed id)."""
    oid = object_id(membership_id)
    return db.memberships.find_one({"_id": oid}) if oid else None


def list_for_owner(db, owner_id, limit: int = 200) -> list[dict]:
    """The owner's memberships, invited and active, oldest first."""
    return list(db.memberships.find({"owner_id": object_id(owner_id)})
                .sort([("created_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .limit(limit))


def count_for_owner(db, owner_id) -> int:
    """How many memberships (invited or active) the owner has."""
    return db.memberships.count_documents({"owner_id": object_id(owner_id)})


def owners_of(db, moderator_id, limit: int = 200) -> list[dict]:
    """The active memberships in which ``moderator_id`` moderates someone, oldest first."""
    return list(db.memberships.find({"moderator_id": object_id(moderator_id),
                                     "status": ACTIVE})
                .sort([("accepted_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .limit(limit))


def remove(db, membership_id) -> bool:
    """Delete a membership (an invite withdrawn, a moderator removed or leaving); True when it
    existed."""
    oid = object_id(membership_id)
    return bool(oid) and db.memberships.delete_one({"_id": oid}).deleted_count == 1


def is_moderator(db, owner_id, user_id) -> bool:
    """True when ``user_id`` holds an active membership of ``owner_id``."""
    owner, user = object_id(owner_id), object_id(user_id)
    if owner is None or user is None:
        return False
    return db.memberships.count_documents({"owner_id": owner, "moderator_id": user,
                                           "status": ACTIVE}, limit=1) > 0
