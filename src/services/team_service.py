"""Moderator invites (issue 17, item 6): an owner invites an email, the invitee accepts after
logging in with that email, and then moderates the owner's clips (src/services/roles.py says
what that allows).

The invite token is 32 random bytes (:func:`secrets.token_urlsafe`), shown once in the answer
to the owner — who passes it on, e.g. as the accept link — and stored only as its SHA-256, like
session tokens. It works once, only for a logged-in user whose (normalised) email is the invited
one, and for :data:`INVITE_DAYS` days. Inviting an email again while its invite is pending makes
a new token (the old one stops working); an active moderator cannot be invited again.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from ..data import members, users
from ..errors import ApiError
from ..extensions import db
from ..utils.dates import iso
from .auth_service import normalise_email

#: Memberships (pending and active) one owner may have.
MAX_MEMBERS = 50
#: Days an invite can be accepted.
INVITE_DAYS = 7


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment):
    return moment.replace(tzinfo=timezone.utc) if moment and moment.tzinfo is None else moment


def _email_of(user_id) -> str | None:
    user = users.find_by_id(db(), user_id)
    return user["email"] if user else None


def invite(owner_id: str, email: str, base_url: str) -> dict:
    """Invite ``email`` to moderate ``owner_id``'s clips. Returns ``{"invite_id", "email",
    "token" (shown only here), "accept_url" (the dashboard's Team view with the token in the
    fragment, which browsers never send to a server), "expires_at"}``. Raises ApiError 409
    SELF_INVITE (your own email), ALREADY_MODERATOR (that email moderates for you already),
    TEAM_FULL (:data:`MAX_MEMBERS`)."""
    database = db()
    email = normalise_email(email)
    if email == _email_of(owner_id):
        raise ApiError(409, "You cannot invite yourself", "SELF_INVITE")
    token = secrets.token_urlsafe(32)
    existing = members.find_for_owner_email(database, owner_id, email)
    if existing and existing["status"] == members.ACTIVE:
        raise ApiError(409, f"{email} already moderates your clips", "ALREADY_MODERATOR")
    if existing and members.renew_invite(database, existing["_id"], _hash(token)):
        invite_id = existing["_id"]
    else:
        if members.count_for_owner(database, owner_id) >= MAX_MEMBERS:
            raise ApiError(409, f"At most {MAX_MEMBERS} moderators and invites", "TEAM_FULL")
        try:
            invite_id = members.invite(database, owner_id, email, _hash(token))["_id"]
        except members.AlreadyInvited:  # a concurrent invite of the same email
            raise ApiError(409, f"{email} was invited just now", "ALREADY_INVITED") from None
    expires = datetime.now(timezone.utc) + timedelta(days=INVITE_DAYS)
    return {"invite_id": str(invite_id), "email": email, "token": token,
            "accept_url": f"{base_url.rstrip('/')}/#team?invite={token}",
            "expires_at": iso(expires)}


def accept(user_id: str, user_email: str, token: str) -> dict:
    """Accept an invite as the logged-in user ``user_id`` (whose email is ``user_email``).
    Returns the membership as :func:`owner_view`. Raises ApiError 404 NOT_FOUND (unknown,
    expired or already used token), 403 INVITE_EMAIL_MISMATCH (the invite is for another
    email: log in with that one)."""
    database = db()
    token_hash = _hash(token)
    found = members.find_invite(database, token_hash)
    cutoff = datetime.now(timezone.utc) - timedelta(days=INVITE_DAYS)
    if not found or _aware(found["created_at"]) < cutoff:
        raise ApiError(404, "Unknown, expired or already used invite", "NOT_FOUND")
    email = normalise_email(user_email)
    if found["email"] != email:
        raise ApiError(403, "This invite is for another email address; log in with that one",
                       "INVITE_EMAIL_MISMATCH")
    accepted = members.accept(database, token_hash, user_id, email)
    if accepted is None:  # used by a concurrent request
        raise ApiError(404, "Unknown, expired or already used invite", "NOT_FOUND")
    return owner_view(accepted)


def moderator_view(doc: dict) -> dict:
    """An active membership as its owner sees it: ``membership_id``, ``moderator_id``,
    ``email``, ``accepted_at``."""
    return {"membership_id": str(doc["_id"]), "moderator_id": str(doc["moderator_id"]),
            "email": doc["email"], "accepted_at": iso(doc.get("accepted_at"))}


def invite_view(doc: dict) -> dict:
    """A pending invite as its owner sees it (never the token): ``membership_id``,
    ``email``, ``created_at``, ``expires_at``."""
    created = _aware(doc.get("created_at"))
    return {"membership_id": str(doc["_id"]), "email": doc["email"], "created_at": iso(created),
            "expires_at": iso(created + timedelta(days=INVITE_DAYS)) if created else None}


def owner_view(doc: dict) -> dict:
    """An active membership as its moderator sees it: ``membership_id``, ``owner_id``,
    ``email`` (the owner's), ``accepted_at``."""
    return {"membership_id": str(doc["_id"]), "owner_id": str(doc["owner_id"]),
            "email": _email_of(doc["owner_id"]), "accepted_at": iso(doc.get("accepted_at"))}


def team(user_id: str) -> dict:
    """GET /api/team: ``{"moderators": [...], "invites": [...], "owners": [...]}`` — who
    moderates my clips, my pending invites, and whose clips I moderate."""
    database = db()
    mine = members.list_for_owner(database, user_id)
    return {"moderators": [moderator_view(d) for d in mine if d["status"] == members.ACTIVE],
            "invites": [invite_view(d) for d in mine if d["status"] == members.INVITED],
            "owners": [owner_view(d) for d in members.owners_of(database, user_id)]}


def remove(user_id: str, membership_id: str) -> str:
    """Remove a membership: its owner withdraws an invite or removes a moderator, or the
    moderator leaves. Effective at once (every clip check reads the membership). Returns
    ``"removed"`` or ``"left"``. Raises ApiError 404 NOT_FOUND when the membership is neither
    the caller's as owner nor as moderator (someone else's is treated as unknown)."""
    database = db()
    doc = members.get(database, membership_id)
    if doc and str(doc["owner_id"]) == str(user_id):
        outcome = "removed"
    elif doc and doc.get("moderator_id") is not None and str(doc["moderator_id"]) == str(user_id):
        outcome = "left"
    else:
        raise ApiError(404, "Membership not found", "NOT_FOUND")
    if not members.remove(database, doc["_id"]):
        raise ApiError(404, "Membership not found", "NOT_FOUND")
    return outcome
