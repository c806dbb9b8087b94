"""Decorators that authenticate a request and put the caller in ``flask.g``.

``private_token_required`` → ``g.current_user = {"user_id", "email", "session_id", "token_hash"}``.
``private_token_optional`` → the same, or ``g.current_user = None`` without a bearer token.
``public_token_required`` → ``g.public_token = claims`` (``user_id`` present for a bound token).
The token comes from ``Authorization: Bearer <token>`` (spec, Authentication Header).
"""
from __future__ import annotations

from functools import wraps

from flask import g, request

from ..errors import ApiError
from ..services import auth_service, public_token_service


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


def public_token_required(view):
    """Allow only requests with a valid public token."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.public_token = public_token_service.authenticate(bearer_token())
        return view(*args, **kwargs)

    return wrapper


def public_token_in_path(view):
    """Allow only requests whose ``token`` path parameter is a valid public token (Nightbot URLs
    cannot send headers)."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        g.public_token = public_token_service.authenticate(kwargs.get("token", ""))
        return view(*args, **kwargs)

    return wrapper
