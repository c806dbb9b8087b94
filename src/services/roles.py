"""Who may do what (issue 17, item 6): the owner of a clip, the owner's moderators, and admins.

Clips (:func:`may`): the owner may do anything with their clips; an *active* moderator of the
owner (an invite the moderator accepted, src/services/team_service.py) may ``read``, ``download``,
``edit`` (its message) and ``delete`` them; nobody else may do anything. Moderators manage no
account settings of the owner: the token, cookie and channel routes act on the caller's own id
(``g.current_user``), never on a clip's owner, so a moderator calling them changes only their own
account. This is enforced here, in the services, not in the routes: every clip route reaches the
clip through :func:`src.services.video_service.get_owned`, which asks :func:`may`.

Admins: a users document with ``role: "admin"`` (set by ``flask --app src.app set-role``, never
by the API). An admin lists users and disables or enables an account. Disabling is immediate:
the flag is set first, then every session of the user is deleted and evicted from the session
cache (as ``revoke-sessions`` and a password change do, src/cli.py, auth_service) and every public
token bound to the user is revoked. Login refuses a disabled account (403 ACCOUNT_DISABLED) and
re-checks the flag after opening its session, so a login racing the disable cannot keep a
session; a public token of a disabled user is refused by the middleware (src/middleware/auth.py)
even if it was issued during the disable. Source of the roles: the seed
reference-django-streaming-plan.md ("Rôles : utilisateur simple / … / modérateur / admin").
"""
from __future__ import annotations

from typing import Optional

from ..data import members, public_tokens, sessions, user_admin, users
from ..errors import ApiError
from ..extensions import db, session_cache
from ..utils.dates import iso

#: What an active moderator may do with the owner's clips (``read`` covers status, formats,
#: subtitles, play and download — download_service asks with the default action).
MODERATOR_ACTIONS = ("read", "download", "edit", "delete")
ROLES = ("admin", "user")


def may(user_id: str, doc: dict, action: str = "read") -> bool:
    """True when ``user_id`` may ``action`` (read|download|edit|delete) the clip ``doc`` (a
    videos document): its owner always, an active moderator of its owner for
    :data:`MODERATOR_ACTIONS` (:func:`may_list`: not while the owner is disabled), nobody
    else. Raises ValueError for another action (a
    programming error, not a request's)."""
    if action not in MODERATOR_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if str(doc.get("user_id")) == str(user_id):
        return True
    return may_list(str(doc.get("user_id")), user_id)


def may_list(owner_id: str, user_id: str) -> bool:
    """True when ``user_id`` may list ``owner_id``'s clips: themselves, or an active
    moderator of that owner while the owner's account is not disabled (a disabled account's
    clips are out of everyone's reach, its team's too)."""
    if str(owner_id) == str(user_id):
        return True
    return members.is_moderator(db(), owner_id, user_id) \
        and not user_admin.is_disabled(db(), owner_id)


def is_admin(user_id: str) -> bool:
    """True when the user exists, has ``role: "admin"`` and is not disabled."""
    user = users.find_by_id(db(), user_id)
    return user is not None and user.get("role") == user_admin.ADMIN \
        and not user.get("disabled")


def require_admin(user_id: str) -> None:
    """Raise ApiError 403 FORBIDDEN unless ``user_id`` is an admin (:func:`is_admin`)."""
    if not is_admin(user_id):
        raise ApiError(403, "Only administrators may do this", "FORBIDDEN")


def user_view(doc: dict) -> dict:
    """A user as the admin list shows it: ``{"id", "email", "role" ("admin"|"user"),
    "disabled", "created_at" (ISO-8601 UTC)}`` — never the password hash."""
    return {"id": str(doc["_id"]), "email": doc.get("email"),
            "role": doc.get("role") or "user", "disabled": bool(doc.get("disabled")),
            "created_at": iso(doc.get("created_at"))}


def list_users(page: int, per_page: int) -> dict:
    """One page of users, oldest first: ``{"users": [...], "total", "page", "per_page"}``."""
    found = user_admin.list_page(db(), (page - 1) * per_page, per_page)
    return {"users": [user_view(doc) for doc in found], "total": user_admin.count(db()),
            "page": page, "per_page": per_page}


def revoke_everything(user_id: str) -> tuple[int, int]:
    """Delete every session of the user (MongoDB, then the Redis cache and every process's
    copy, src/services/cache_service.py) and revoke every public token bound to them; return
    ``(sessions, public tokens)`` revoked."""
    hashes = sessions.delete_for_user(db(), user_id)
    session_cache().evict(hashes)
    return len(hashes), public_tokens.revoke_for_user(db(), str(user_id))


def disable(admin_id: str, user_id: str) -> dict:
    """Disable an account at once: ``disabled: true``, then :func:`revoke_everything`. Returns
    :func:`user_view` plus ``sessions_revoked`` and ``public_tokens_revoked``. Raises ApiError
    409 CANNOT_DISABLE_SELF (an admin locking themselves out would leave no one to undo it),
    404 NOT_FOUND for an unknown user. Idempotent otherwise."""
    if str(admin_id) == str(user_id):
        raise ApiError(409, "You cannot disable your own account", "CANNOT_DISABLE_SELF")
    doc = user_admin.set_disabled(db(), user_id, True)
    if doc is None:
        raise ApiError(404, "User not found", "NOT_FOUND")
    revoked_sessions, revoked_tokens = revoke_everything(user_id)
    return {**user_view(doc), "sessions_revoked": revoked_sessions,
            "public_tokens_revoked": revoked_tokens}


def enable(user_id: str) -> dict:
    """Enable a disabled account again (it logs in anew; revoked tokens stay revoked). Returns
    :func:`user_view` with zero revocations. Raises ApiError 404 NOT_FOUND."""
    doc = user_admin.set_disabled(db(), user_id, False)
    if doc is None:
        raise ApiError(404, "User not found", "NOT_FOUND")
    return {**user_view(doc), "sessions_revoked": 0, "public_tokens_revoked": 0}


def set_role(email: str, role: str) -> Optional[dict]:
    """Give the user with ``email`` (normalised by the caller) ``role`` (``admin``|``user``);
    return :func:`user_view` after the change, or None when no user has that email. Raises
    ValueError for another role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    user = users.find_by_email(db(), email)
    if not user:
        return None
    user_admin.set_role(db(), user["_id"], role)
    return user_view(users.find_by_id(db(), user["_id"]) or user)


def is_disabled(user_id: Optional[str]) -> bool:
    """True when ``user_id`` names a disabled account (the middleware's check of a bound public
    token's user)."""
    return bool(user_id) and user_admin.is_disabled(db(), user_id)
