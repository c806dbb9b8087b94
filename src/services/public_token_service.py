"""Public tokens (spec: Two-Tier Token System 1, Authentication Endpoints 5; issue 5 item 4).

A public token asked for with a private token is *bound*: it carries the caller's ``user_id``
and saves clips only for that user. Bound tokens are recorded in ``public_tokens`` (by ``jti``) so
their owner can list and revoke them; a revoked token is refused with 401, and a password change
revokes all of them (src/services/auth_service.py). Anonymous issuance (the spec's behaviour) is
off by default since issue 11 — a stranger's anonymous token could fill any owner's pending-clip
cap — and comes back with ``ALLOW_ANONYMOUS_PUBLIC_TOKENS=true``.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from ..data import public_tokens
from ..errors import ApiError
from ..extensions import db, setting
from ..utils import token as tokens
from ..utils.dates import iso


def issue(user_id: Optional[str]) -> dict:
    """Issue a public token valid ``PUBLIC_TOKEN_HOURS`` (default 24).

    ``user_id``: the caller when authenticated with a private token (→ a bound token), or None
    (→ anonymous). Returns ``{"token", "expires_in" (seconds), "jti", "user_id"}``. Raises
    ApiError 401 ANONYMOUS_TOKENS_DISABLED when ``user_id`` is None and anonymous issuance is off.
    """
    if user_id is None and not setting("ALLOW_ANONYMOUS_PUBLIC_TOKENS"):
        raise ApiError(401, "Log in and send your private token to get a public token",
                       "ANONYMOUS_TOKENS_DISABLED")
    lifetime = timedelta(hours=setting("PUBLIC_TOKEN_HOURS"))
    claims = {"user_id": user_id} if user_id else {}
    token, expires_at, jti = tokens.issue(setting("JWT_PUBLIC_SECRET"), "public", lifetime,
                                          **claims)
    if user_id:
        public_tokens.insert(db(), jti, user_id, expires_at)
    return {"token": token, "expires_in": int(lifetime.total_seconds()), "jti": jti,
            "user_id": user_id}


def authenticate(token: str) -> dict:
    """The claims of a valid, unrevoked public token (``user_id`` present when bound).

    Raises ApiError 401 INVALID_TOKEN (forged, expired, wrong tier) or TOKEN_REVOKED.
    """
    try:
        claims = tokens.verify(token, setting("JWT_PUBLIC_SECRET"), "public")
    except tokens.TokenError as exc:
        raise ApiError(401, str(exc), "INVALID_TOKEN") from None
    if claims.get("jti") and public_tokens.is_revoked(db(), claims["jti"]):
        raise ApiError(401, "This public token has been revoked", "TOKEN_REVOKED")
    return claims


def check_owner(claims: dict, user_id: Optional[str]) -> str:
    """The user a clip saved with this token belongs to.

    A bound token saves only for its own user: ``user_id`` may be omitted (→ the token's user) and
    any other value is refused with ApiError 403 TOKEN_USER_MISMATCH. An anonymous token needs an
    explicit ``user_id`` (spec), else ApiError 400.
    """
    bound = claims.get("user_id")
    if bound:
        if user_id and str(user_id) != bound:
            raise ApiError(403, "This public token belongs to another user",
                           "TOKEN_USER_MISMATCH")
        return bound
    if not user_id:
        raise ApiError(400, "user_id is required", "VALIDATION_ERROR",
                       {"user_id": ["Missing data for required field."]})
    return str(user_id)


def list_tokens(user_id: str) -> list[dict]:
    """The user's unexpired bound tokens: ``[{"jti", "created_at", "expires_at", "revoked"}]``
    (datetimes ISO-8601 UTC), newest first. The tokens themselves are never stored or shown."""
    found = public_tokens.list_for_user(db(), user_id, datetime.now(timezone.utc))
    return [{"jti": doc["jti"], "created_at": iso(doc["created_at"]),
             "expires_at": iso(doc["expires_at"]), "revoked": doc.get("revoked_at") is not None}
            for doc in found]


def revoke(user_id: str, jti: str) -> None:
    """Revoke one of the user's tokens (idempotent). ApiError 404 when the user has none with
    this ``jti`` (another user's token counts as unknown)."""
    if public_tokens.revoke(db(), user_id, jti) is None:
        raise ApiError(404, "Public token not found", "NOT_FOUND")
