"""Decorators that authenticate a request and put the caller in ``flask.g``.

``private_token_required`` → ``g.current_user = {"user_id", "email", "session_id", "token_hash"}``.
``private_token_optional`` → the same, or ``g.current_user = None`` without a bearer token.
``public_token_required`` → ``g.public_token = claims`` (``user_id`` present for a bound token).
A bound public token of a disabled account is refused (401 ACCOUNT_DISABLED, issue 17 item 6):
disabling revokes the user's tokens, and this also stops one issued while it happened.
The token comes from ``Authorization: Bearer <token>`` (spec, Authentication Header).
"""
from __future__ import annotations

from functools import wraps

from flask import g, request

from ..errors import ApiError
from ..services import auth_service, public_token_service, roles


def bearer_token() -> str:
    """The bearer token of the request. Raises ApiError 401 when the header is missing."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Missing bearer token (Authorization: Bearer <token>)", "MISSING_TOKEN")
    return token.strip()


def private_token_required(view):
    """Allow only requests with a valid private token of a live session."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.current_user = auth_service.authenticate_private(bearer_token())
        return view(*args, **kwargs)

    return wrapper


def private_token_optional(view):
    """Authenticate a private token when one is sent (401 if it is bad); let anonymous callers
    through with ``g.current_user = None``."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        sent = request.headers.get("Authorization", "").strip()
        g.current_user = auth_service.authenticate_private(bearer_token()) if sent else None
        return view(*args, **kwargs)

    return wrapper


def _public_claims(token: str) -> dict:
    """The claims of a valid public token whose bound user (if any) is not disabled."""
    claims = public_token_service.authenticate(token)
    if roles.is_disabled(claims.get("user_id")):
        raise ApiError(401, "This account is disabled", "ACCOUNT_DISABLED")
    return claims


def public_token_required(view):
    """Allow only requests with a valid public token."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.public_token = _public_claims(bearer_token())
        return view(*args, **kwargs)

    return wrapper


def public_token_in_path(view):
    """Allow only requests whose ``token`` path parameter is a valid public token (Nightbot URLs
    cannot send headers)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.public_token = _public_claims(kwargs.get("token", ""))
        return view(*args, **kwargs)

    return wrapper
