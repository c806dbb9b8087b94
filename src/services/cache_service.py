"""Redis: the session cache ``session:{token_hash}`` (spec, Redis Cache Structure 1).

Value: JSON ``{"user_id", "email", "session_id"}``; expires with the token.
"""
from __future__ import annotations

import json
from typing import Optional


def session_key(token_hash: str) -> str:
    """The Redis key of a session: ``session:{sha256 of the token}``."""
    return f"session:{token_hash}"


def cache_session(redis, token_hash: str, data: dict, ttl_seconds: int) -> None:
    """Store a session for ``ttl_seconds`` (at least 1)."""
    redis.set(session_key(token_hash), json.dumps(data), ex=max(1, int(ttl_seconds)))


def get_session(redis, token_hash: str) -> Optional[dict]:
    """The cached session, or None when absent."""
    raw = redis.get(session_key(token_hash))
    return json.loads(raw) if raw else None


def evict_sessions(redis, token_hashes) -> None:
    """Remove cached sessions (logout, password change)."""
    keys = [session_key(h) for h in token_hashes]
    if keys:
        redis.delete(*keys)
