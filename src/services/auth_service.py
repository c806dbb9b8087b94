"""Accounts, sessions and tokens (spec: Authentication System, Authentication Endpoints).

Private tokens belong to a session stored in MongoDB (``sessions``) and cached in Redis
(``session:{token_hash}``); only the SHA-256 of a token is ever stored.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import bcrypt
from bson import ObjectId

from ..data import sessions, users
from ..errors import ApiError
from ..extensions import db, session_cache, setting
from ..utils import token as tokens

# bcrypt reads at most 72 bytes of a password; bcrypt ≥ 5 raises on longer input instead of
# ignoring the rest, so we cut explicitly (the classic bcrypt behaviour).
_BCRYPT_MAX_BYTES = 72


def _secret_bytes(password: str) -> bytes:
    return password.encode("utf-8")[:_BCRYPT_MAX_BYTES]


def hash_password(password: str) -> str:
    """bcrypt hash of a password (cost ``BCRYPT_ROUNDS``, default 12), as text."""
    return bcrypt.hashpw(_secret_bytes(password),
                         bcrypt.gensalt(rounds=setting("BCRYPT_ROUNDS"))).decode()


def check_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches the bcrypt ``password_hash``."""
    return bcrypt.checkpw(_secret_bytes(password), password_hash.encode())


def normalise_email(email: str) -> str:
    """Emails are compared case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def register(email: str, password: str) -> str:
    """Create an account; return the user id. Raises ApiError 409 when the email is taken."""
    try:
        return users.create(db(), normalise_email(email), hash_password(password))
    except users.EmailTaken:
        raise ApiError(409, "Email already registered", "EMAIL_EXISTS") from None


def login(email: str, password: str) -> tuple[str, dict]:
    """Check credentials and open a session; return (private token, {"id", "email"}).

    Raises ApiError 401 INVALID_CREDENTIALS (same answer for an unknown email and a wrong
    password, so accounts cannot be enumerated).
    """
    user = users.find_by_email(db(), normalise_email(email))
    if not user or not check_password(password, user["password_hash"]):
        raise ApiError(401, "Invalid email or password", "INVALID_CREDENTIALS")
    user_id = str(user["_id"])
    session_id = ObjectId()
    token, expires_at, _ = tokens.issue(
        setting("JWT_PRIVATE_SECRET"), "private", timedelta(days=setting("PRIVATE_TOKEN_DAYS")),
        user_id=user_id, session_id=str(session_id))
    token_hash = tokens.token_hash(token)
    sessions.create(db(), session_id, user_id, token_hash, expires_at)
    _cache(token_hash, user_id, user["email"], str(session_id), expires_at)
    return token, {"id": user_id, "email": user["email"]}


def _cache(token_hash: str, user_id: str, email: str, session_id: str, expires_at: datetime):
    ttl = (expires_at - datetime.now(timezone.utc)).total_seconds()
    session_cache().put(token_hash, {"user_id": user_id, "email": email, "session_id": session_id},
                        ttl)


def authenticate_private(token: str) -> dict:
    """Resolve a private token to ``{"user_id", "email", "session_id", "token_hash"}``.

    The session cache (this process's copy, then Redis) is the fast path; on a miss the MongoDB
    session is checked and re-cached. Raises
    ApiError 401 for a forged/expired/wrong-tier token or a revoked session.
    """
    try:
        claims = tokens.verify(token, setting("JWT_PRIVATE_SECRET"), "private")
    except tokens.TokenError as exc:
        raise ApiError(401, str(exc), "INVALID_TOKEN") from None
    token_hash = tokens.token_hash(token)
    cached = session_cache().get(token_hash)
    if cached is None:
        session = sessions.find_live(db(), token_hash)
        user = users.find_by_id(db(), session["user_id"]) if session else None
        if not user:
            raise ApiError(401, "Session expired or revoked; please log in again",
                           "SESSION_REVOKED")
        expires_at = session["expires_at"]
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        cached = {"user_id": str(user["_id"]), "email": user["email"],
                  "session_id": str(session["_id"])}
        _cache(token_hash, cached["user_id"], user["email"], cached["session_id"], expires_at)
        if not sessions.find_live(db(), token_hash):  # revoked while we were re-caching it
            session_cache().evict([token_hash])
            raise ApiError(401, "Session expired or revoked; please log in again",
                           "SESSION_REVOKED")
    if cached["user_id"] != claims.get("user_id"):
        raise ApiError(401, "Invalid token", "INVALID_TOKEN")
    return {**cached, "token_hash": token_hash}


def logout(token_hash: str) -> None:
    """Revoke one session (MongoDB and Redis)."""
    sessions.delete(db(), token_hash)
    session_cache().evict([token_hash])


def change_password(user_id: str, current_password: str, new_password: str) -> None:
    """Set a new password and revoke every session of the user.

    Raises ApiError 401 when ``current_password`` is wrong, 400 when the new one equals it.
    """
    user = users.find_by_id(db(), user_id)
    if not user or not check_password(current_password, user["password_hash"]):
        raise ApiError(401, "Current password is incorrect", "INVALID_CREDENTIALS")
    if current_password == new_password:
        raise ApiError(400, "New password must differ from the current one", "VALIDATION_ERROR",
                       {"new_password": ["Must differ from the current password."]})
    users.set_password_hash(db(), user_id, hash_password(new_password))
    session_cache().evict(sessions.delete_for_user(db(), user_id))
