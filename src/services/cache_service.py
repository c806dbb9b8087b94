"""Sessions in Redis (``session:{token_hash}``, spec: Redis Cache Structure 1), with a copy in
each process that revocation reaches at once.

Redis value: JSON ``{"user_id", "email", "session_id"}``; it expires with the token.

Every authenticated request needs its session. Asking Redis costs a network round trip, which
is most of what a status poll costs (BENCHMARKS.md, api), so :class:`SessionCache` also keeps
sessions in the process for ``SESSION_LOCAL_CACHE_SECONDS``. Revocation stays immediate:
:meth:`SessionCache.evict` deletes the Redis keys and then publishes the token hashes on the
Redis channel ``session:revoked``; every process subscribes to it, and before answering from
its own copy a request reads whatever has arrived on that subscription (a non-blocking read: no
round trip). A message published before the logout answered is therefore seen by any request
that follows it. A process that is not (or no longer) subscribed — Redis restarted, the
connection dropped, the subscription not yet confirmed — drops its copy and asks Redis every
time until it is subscribed again.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Optional

from cachetools import TTLCache
from redis.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger("yt_downloader")

#: Redis pub/sub channel carrying the token hashes of revoked sessions (one per message).
REVOKED_CHANNEL = "session:revoked"
#: Sessions kept per process; beyond that the least recently used go first.
MAX_LOCAL_SESSIONS = 10_000
#: Seconds between two attempts to subscribe after a failure.
RESUBSCRIBE_SECONDS = 5.0


def session_key(token_hash: str) -> str:
    """The Redis key of a session: ``session:{sha256 of the token}``."""
    return f"session:{token_hash}"


class SessionCache:
    """The sessions of one app: Redis, fronted by a per-process copy kept coherent by pub/sub.

    ``redis``: the app's client (``decode_responses=True``; fakeredis works too).
    ``local_seconds``: how long a session is kept in the process (0 turns the copy off; each
    request then reads Redis). Thread-safe (gunicorn's gthread workers); after a ``fork`` the
    child starts with an empty copy and its own subscription.
    """

    def __init__(self, redis, local_seconds: float):
        self.redis = redis
        self.local_seconds = local_seconds
        self._lock = threading.Lock()
        self._entries: TTLCache[str, dict] = TTLCache(MAX_LOCAL_SESSIONS, local_seconds or 1)
        self._generation = 0  # bumped by every revocation seen; guards late inserts
        self._pubsub: Optional[PubSub] = None
        self._pid: Optional[int] = None
        self._retry_at = 0.0

    def get(self, token_hash: str) -> Optional[dict]:
        """The session ``{"user_id", "email", "session_id"}`` of a token hash, or None when
        Redis has none (expired, revoked, never cached). Raises RedisError when Redis is down."""
        subscribed = False
        if self.local_seconds > 0:
            with self._lock:
                subscribed = self._take_revocations()
                if subscribed:
                    hit = self._entries.get(token_hash)
                    if hit is not None:
                        return hit
                generation = self._generation
        raw = self.redis.get(session_key(token_hash))
        data = json.loads(raw) if raw else None
        if data is not None and subscribed:
            with self._lock:
                # a revocation seen while Redis answered may concern this very session
                if self._generation == generation and self._pid == os.getpid():
                    self._entries[token_hash] = data
        return data

    def put(self, token_hash: str, data: dict, ttl_seconds: float) -> None:
        """Store a session in Redis for ``ttl_seconds`` (at least 1). The process copy is filled
        by the next :meth:`get`, which confirms the key is still there."""
        self.redis.set(session_key(token_hash), json.dumps(data), ex=max(1, int(ttl_seconds)))

    def evict(self, token_hashes) -> None:
        """Revoke cached sessions everywhere: delete the Redis keys, then publish the hashes on
        :data:`REVOKED_CHANNEL` so every process drops its copy (this one at once)."""
        hashes = list(token_hashes)
        if not hashes:
            return
        self.redis.delete(*[session_key(h) for h in hashes])
        with self._lock:
            self._forget(hashes)
        for token_hash in hashes:
            self.redis.publish(REVOKED_CHANNEL, token_hash)

    def _forget(self, hashes) -> None:
        self._generation += 1
        for token_hash in hashes:
            self._entries.pop(token_hash, None)

    def _take_revocations(self) -> bool:
        """Apply every revocation that has arrived (caller holds the lock). True when this
        process is subscribed, i.e. its copy may be used."""
        # first use, or a forked child: the parent's socket is not ours
        if self._pid != os.getpid():
            self._pubsub, self._pid = None, os.getpid()
            self._entries.clear()
        try:
            if self._pubsub is None and not self._subscribe():
                return False
            assert self._pubsub is not None  # _subscribe set it when it returned True
            while True:
                message = self._pubsub.get_message(timeout=0)
                if message is None:  # nothing, or redis-py's own health-check PONG
                    # redis-py leaves PubSub.connection un-annotated (inferred None); a
                    # subscribed PubSub always has one
                    if not self._pubsub.connection.can_read(  # type: ignore[attr-defined]
                            timeout=0):
                        return True
                elif message["type"] == "message":
                    self._forget([message["data"]])
                elif message["type"] == "subscribe":
                    # redis-py reconnected and subscribed again on its own: whatever was
                    # published while the connection was down is lost, so is the copy
                    self._entries.clear()
                    self._generation += 1
        except (RedisError, OSError) as exc:
            log.warning("session revocations: subscription lost (%s); reading Redis until "
                        "subscribed again", exc)
            self._drop_subscription()
            return False

    def _subscribe(self) -> bool:
        """Subscribe and wait (≤ 1 s) for Redis to confirm; only then may copies be trusted."""
        if time.monotonic() < self._retry_at:
            return False
        self._retry_at = time.monotonic() + RESUBSCRIBE_SECONDS
        pubsub = self.redis.pubsub()
        self._pubsub = pubsub
        pubsub.subscribe(REVOKED_CHANNEL)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "subscribe":
                self._entries.clear()  # whatever was kept before may have missed a revocation
                self._retry_at = 0.0
                return True
        self._drop_subscription()
        return False

    def _drop_subscription(self) -> None:
        self._entries.clear()
        self._generation += 1
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
            except (RedisError, OSError):
                pass
