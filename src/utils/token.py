"""JWT issue/verify with PyJWT, algorithm pinned to HS256 (spec, Two-Tier Token System).

Public tokens: signed with ``JWT_PUBLIC_SECRET``, ``type: public``. Private tokens: signed with
``JWT_PRIVATE_SECRET``, ``type: private``, carrying ``user_id`` and ``session_id``. Because the two
tiers use different secrets *and* a ``type`` claim, a token of one tier never verifies as the other.

One token has several texts that verify: PyJWT's base64url decoding pads its input, so a ``=``
appended to a token still passes (issue 11). Tokens are therefore compared on their verified
claims — ``jti`` for rate-limit buckets (src/middleware/rate_limits.py) and public-token
revocation — never on their text. The one place the text counts is the session lookup: a
session is found by the SHA-256 of the exact text login returned (:func:`token_hash`), so another
text of a private token finds no session and is refused (401), which fails closed.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import jwt

ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, forged, of the wrong tier, or expired."""


def token_hash(token: str) -> str:
    """SHA-256 hex digest of a bearer token: what the stores keep instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue(secret: str, token_type: str, lifetime: timedelta,
          **claims) -> tuple[str, datetime, str]:
    """Sign a token of ``token_type`` valid for ``lifetime``; return (token, expires_at UTC, jti).

    Every token carries ``jti`` (unique id), ``iat`` and ``exp``.
    """
    now = datetime.now(timezone.utc)
    expires_at, jti = now + lifetime, uuid.uuid4().hex
    payload = {**claims, "type": token_type, "jti": jti, "iat": now, "exp": expires_at}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), expires_at, jti


def verify(token: str, secret: str, token_type: str) -> dict:
    """Return the claims of a valid token of ``token_type``.

    Only HS256 is accepted (so ``alg: none`` and algorithm-confusion tokens fail); ``exp`` is
    required. Raises :class:`TokenError` with a human message. Signatures already checked are
    remembered (bounded LRU; expiry is still checked on every call), which halves the cost of
    authenticating a polling client (BENCHMARKS.md, api).
    """
    try:
        claims = _decode(token, secret)
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("Token has expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("Invalid token") from exc
    if claims["exp"] <= datetime.now(timezone.utc).timestamp():
        raise TokenError("Token has expired")
    if claims.get("type") != token_type:
        raise TokenError(f"A {token_type} token is required")
    return dict(claims)


@lru_cache(maxsize=4096)
def _decode(token: str, secret: str) -> dict:
    return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "type"]})
