"""Accounts, sessions and tokens (spec: Authentication System, Authentication Endpoints).

Private tokens belong to a session stored in MongoDB (``sessions``) and cached in Redis
(``session:{token_hash}``); only the SHA-256 of a token is ever stored.

Passwords (issue 11, item 5) are bcrypt hashes at cost ``BCRYPT_ROUNDS``:

- bcrypt reads at most 72 bytes (bcrypt ≥ 5 raises beyond). A password of at most 72 UTF-8 bytes
  is given to bcrypt as it is: a standard hash, byte for byte what it was before this rule.
  A longer one is pre-hashed, SHA-256 then base64 (44 ASCII bytes, no NUL), so every byte
  counts. Only long passwords are pre-hashed: almost every hash stays plain bcrypt that any
  library verifies and nothing needs migrating, and an unsalted SHA-256 of a password (a common
  leaked format, which would let leaked hashes be tested against ours) sits inside bcrypt only
  for the rare long password.
- No pepper (an HMAC key outside the database): rotating or losing it would lock every
  long-password account out, and bcrypt's per-hash salt already defeats precomputed tables.
- Legacy hashes: before this rule a password over 72 bytes was hashed from its first 72 bytes.
  Such a password that fails the new form is checked in that old form; a match logs in and
  rehashes it in the new form. So a wrong password over 72 bytes costs two bcrypt checks.
- An unknown email is checked against a dummy hash at the same cost (made once per process),
  so login spends the same bcrypt time, and the same number of checks, whether the email exists
  or not (before: 218 ms vs 0.5 ms, which told accounts apart).
- A password change revokes every session and every bound public token of the user.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Optional

import bcrypt
from bson import ObjectId

from ..data import public_tokens, sessions, users
from ..errors import ApiError
from ..extensions import db, session_cache, setting
from ..utils import token as tokens

_BCRYPT_MAX_BYTES = 72


def _bcrypt_inputs(password: str) -> list[bytes]:
    """What bcrypt is given for ``password``, the current form first: the UTF-8 bytes when they
    fit in 72, else base64(SHA-256(bytes)) and then the legacy form, the first 72 bytes."""
    raw = password.encode("utf-8")
    if len(raw) <= _BCRYPT_MAX_BYTES:
        return [raw]
    return [base64.b64encode(hashlib.sha256(raw).digest()), raw[:_BCRYPT_MAX_BYTES]]


def hash_password(password: str) -> str:
    """bcrypt hash of a password (cost ``BCRYPT_ROUNDS``, default 12), as text; a password over
    72 bytes is pre-hashed (module docstring)."""
    return bcrypt.hashpw(_bcrypt_inputs(password)[0],
                         bcrypt.gensalt(rounds=setting("BCRYPT_ROUNDS"))).decode()


def _matching_form(password: str, password_hash: str) -> Optional[int]:
    """0 when ``password`` matches ``password_hash`` in the current form, 1 in the legacy form
    (a hash of its first 72 bytes), None when it does not match."""
    for form, secret in enumerate(_bcrypt_inputs(password)):
        if bcrypt.checkpw(secret, password_hash.encode()):
            return form
    return None


def check_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches the bcrypt ``password_hash`` (either form)."""
    return _matching_form(password, password_hash) is not None


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    """A hash of a random secret at cost ``rounds``: what an unknown email is checked against."""
    return bcrypt.hashpw(secrets.token_urlsafe(32).encode(), bcrypt.gensalt(rounds)).decode()


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

    Raises ApiError 401 INVALID_CREDENTIALS (same answer, and the same bcrypt work, for an
    unknown email and a wrong password, so accounts cannot be enumerated), 403
    ACCOUNT_DISABLED for the right password of a disabled account (issue 17, item 6; checked
    again once the session exists, so a login racing the disable keeps nothing). A legacy hash
    that matches is replaced by one in the current form.
    """
    user = users.find_by_email(db(), normalise_email(email))
    stored = user["password_hash"] if user else _dummy_hash(setting("BCRYPT_ROUNDS"))
    form = _matching_form(password, stored)
    if not user or form is None:
        raise ApiError(401, "Invalid email or password", "INVALID_CREDENTIALS")
    if user.get("disabled"):  # issue 17, item 6 (said only to who knows the password)
        raise ApiError(403, "This account is disabled", "ACCOUNT_DISABLED")
    if form:  # the legacy form: rehash, unless the password was changed meanwhile
        users.set_password_hash(db(), user["_id"], hash_password(password), expected=stored)
    user_id = str(user["_id"])
    session_id = ObjectId()
    token, expires_at, _ = tokens.issue(
        setting("JWT_PRIVATE_SECRET"), "private", timedelta(days=setting("PRIVATE_TOKEN_DAYS")),
        user_id=user_id, session_id=str(session_id))
    token_hash = tokens.token_hash(token)
    sessions.create(db(), session_id, user_id, token_hash, expires_at)
    if _disabled(user_id):  # disabled meanwhile: its revocation may have missed this session
        sessions.delete(db(), token_hash)
        raise ApiError(403, "This account is disabled", "ACCOUNT_DISABLED")
    _cache(token_hash, user_id, user["email"], str(session_id), expires_at)
    return token, {"id": user_id, "email": user["email"]}


def _disabled(user_id: str) -> bool:
    """True when the account is disabled now (src/services/roles.py disables: the flag first,
    then the sessions go)."""
    user = users.find_by_id(db(), user_id)
    return bool(user and user.get("disabled"))


def _cache(token_hash: str, user_id: str, email: str, session_id: str, expires_at: datetime):
    ttl = (expires_at - datetime.now(timezone.utc)).total_seconds()
    session_cache().put(token_hash, {"user_id": user_id, "email": email, "session_id": session_id},
                        ttl)


def authenticate_private(token: str) -> dict:
    """Resolve a private token to ``{"user_id", "email", "session_id", "token_hash"}``.

    The session cache (this process's copy, then Redis) is the fast path; on a miss the MongoDB
    session is checked and re-cached. Raises
    ApiError 401 for a forged/expired/wrong-tier token or a revoked session (ACCOUNT_DISABLED
    when the session outlived its account's disabling by a moment).
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
        if not session or not user:  # no user without a session
            raise ApiError(401, "Session expired or revoked; please log in again",
                           "SESSION_REVOKED")
        if user.get("disabled"):  # its sessions are being revoked (src/services/roles.py)
            raise ApiError(401, "This account is disabled", "ACCOUNT_DISABLED")
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
    """Set a new password and revoke every session and every bound public token of the user
    (issue 11: a token given to Nightbot must not outlive the password that issued it).

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
    public_tokens.revoke_for_user(db(), user_id)
