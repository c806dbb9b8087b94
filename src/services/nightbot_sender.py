"""The sender of Nightbot follow-ups (issue 14, item 4; the messages: src/services/followup.py).

Redis (shared by every process): ``followup:msg:{id}`` a queued message and ``followup:queue``
(sorted set, id → due time, POSIX seconds); ``followup:slot:{channel}`` held for
``NIGHTBOT_MESSAGE_INTERVAL_SECONDS`` (default Nightbot's 5) from the end of each request to the
channel (SET NX PX), so requests to one channel are that far apart across processes. A sender
claims a message by removing it from the queue (ZREM answers 1 to one process only): each
message is posted at most once, and a process dying mid-post loses it rather than repeating it.
Posts go through the egress guard with one allow-list (:class:`ResponsePolicy`): Nightbot's API
host, which must resolve to public addresses, plus ``NIGHTBOT_RESPONSE_HOSTS``. 5xx, 429 and no
answer are retried with back-off (or ``Retry-After``) at most :data:`MAX_ATTEMPTS` times and
never after the URL's validity; any other answer ends the message.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Optional
from urllib.parse import urlsplit

import urllib3
from flask import Flask
from redis.exceptions import RedisError

from ..extensions import redis, setting
from ..media import egress, guard
from ..media.errors import MediaError
from ..utils.outbound import retry_after, where
from .background_sender import BackgroundSender, sender_for

log = logging.getLogger(__name__)

NIGHTBOT_HOST = "api.nightbot.tv"
SEND_PATH = "/1/channel/send/"
MAX_URL_CHARS = 2048
QUEUE = "followup:queue"
#: Posts per message at most (the first and the retries after a 5xx, a 429 or no answer).
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = 1.0  # before the first retry; doubled for each further one
MAX_BACKOFF_SECONDS = 60.0
RETRY_AFTER_MAX = 300.0
IDLE_SECONDS = 30.0  # a sender with nothing queued for this long ends its thread
TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)


class ResponsePolicy(egress.Policy):
    """The egress policy of the follow-up posts: ``api.nightbot.tv`` (which must resolve to
    public addresses) plus ``extra`` (``NIGHTBOT_RESPONSE_HOSTS`` entries, as in
    :func:`src.media.egress.parse_rules`; listed exactly, so they may be local). Raises
    ValueError naming the setting of an unusable entry."""

    def __init__(self, extra):
        entries = extra.split(",") if isinstance(extra, str) else list(extra or ())
        self.extra = egress.parse_rules(entries, "NIGHTBOT_RESPONSE_HOSTS")
        super().__init__([NIGHTBOT_HOST, *entries])

    def listed_exactly(self, host: str) -> bool:
        return any(rule.host == host and not rule.wildcard for rule in self.extra)

    def admits(self, url) -> bool:
        """True for a printable URL of at most :data:`MAX_URL_CHARS` that is
        ``https://api.nightbot.tv/1/channel/send/<token>`` or names an ``extra`` host."""
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not url.isprintable() \
                or " " in url:
            return False
        try:
            scheme, host, port = self.check_url(url)
        except MediaError:
            return False
        if any(rule.matches(host, port, scheme) for rule in self.extra):
            return True
        path = urlsplit(url).path
        return (scheme, host, port) == ("https", NIGHTBOT_HOST, 443) \
            and path.startswith(SEND_PATH) and len(path) > len(SEND_PATH)


def policy() -> ResponsePolicy:
    """The follow-ups' egress policy under the app's ``NIGHTBOT_RESPONSE_HOSTS``."""
    return ResponsePolicy(setting("NIGHTBOT_RESPONSE_HOSTS"))


def _pending(app: Flask) -> bool:
    return bool(app.extensions["yt"]["redis"].zcard(QUEUE))


def sender(app: Flask) -> BackgroundSender:
    """The app's sender in this process (src/services/background_sender.py; made on first
    use): it posts due messages with :func:`send_due` and ends its thread after
    :data:`IDLE_SECONDS` with nothing queued."""
    return sender_for(app, "followup", lambda app: BackgroundSender(
        app, "nightbot-followup", lambda stopping: send_due(stopping), _pending, IDLE_SECONDS))


def init_app(app: Flask) -> None:
    """Make the app's sender, and start it when messages wait (queued before a restart)."""
    found = sender(app)
    try:
        if app.extensions["yt"]["redis"].zcard(QUEUE):
            found.wake()
    except RedisError:
        log.warning("Nightbot follow-up: queue not read at start", exc_info=True)


def send_due(stopping: Optional[threading.Event] = None) -> Optional[float]:
    """Post the messages due now that this process claims; return the seconds until the next
    one is due, or None when the queue is empty."""
    store = redis()
    for msg_id in store.zrangebyscore(QUEUE, "-inf", time.time(), start=0, num=20):
        if stopping is not None and stopping.is_set():
            return 0.0
        if store.zrem(QUEUE, msg_id):  # claimed: no other sender holds it now
            _deliver(store, msg_id)
    head = store.zrange(QUEUE, 0, 0, withscores=True)
    return max(0.0, head[0][1] - time.time()) if head else None


def _deliver(store, msg_id: str) -> None:
    """One claimed message: wait for the channel's slot (re-queued), post, then done, retry
    (re-queued with back-off or ``Retry-After``) or given up."""
    key = f"followup:msg:{msg_id}"
    raw = store.get(key)
    if not raw:
        return
    msg = json.loads(raw)
    if time.time() >= msg["expires_at"]:
        store.delete(key)
        log.info("video %s: Nightbot follow-up not sent: the response URL expired",
                 msg["video_id"])
        return
    interval_ms = int(float(setting("NIGHTBOT_MESSAGE_INTERVAL_SECONDS")) * 1000)
    slot = "followup:slot:" + hashlib.sha256(msg["channel"].encode()).hexdigest()[:32]
    if not store.set(slot, msg_id, nx=True, px=max(1, interval_ms)):
        store.zadd(QUEUE, {msg_id: time.time() + max(store.pttl(slot), 50) / 1000})
        return
    status, retry_after = _post(msg)
    # the channel's next request starts at least the interval after this one ended
    store.set(slot, msg_id, px=max(1, interval_ms, int((retry_after or 0) * 1000)))
    msg["attempt"] += 1
    about = f"video {msg['video_id']}: Nightbot follow-up to {where(msg['url'])}"
    if status is not None and 200 <= status < 300:
        store.delete(key)
        log.info("%s sent (HTTP %s)", about, status)
        return
    if status is not None and status != 429 and status < 500:
        store.delete(key)
        log.warning("%s given up: HTTP %s", about, status)
        return
    delay = retry_after if status == 429 and retry_after else \
        min(BACKOFF_SECONDS * 2 ** (msg["attempt"] - 1), MAX_BACKOFF_SECONDS)
    due = time.time() + delay
    if msg["attempt"] >= MAX_ATTEMPTS or due >= msg["expires_at"]:
        store.delete(key)
        log.warning("%s given up after %d attempt(s): %s", about, msg["attempt"],
                    f"HTTP {status}" if status else "no answer")
        return
    store.set(key, json.dumps(msg), keepttl=True)
    store.zadd(QUEUE, {msg_id: due})
    log.info("%s: %s; retry in %.1f s", about, f"HTTP {status}" if status else "no answer",
             delay)


def _post(msg: dict) -> tuple[Optional[int], Optional[float]]:
    """POST ``{"message": text}`` as JSON to the message's URL through the egress guard (no
    redirect followed). Returns ``(status, Retry-After seconds or None)``; status None when
    no answer came; 403 when the guard refused the connection."""
    rules = policy()
    if not rules.admits(msg["url"]):
        return 403, None
    with guard.session(rules) as session:
        proxy = urlsplit(session.proxy_url)
        http = urllib3.ProxyManager(f"http://{proxy.hostname}:{proxy.port}", proxy_headers=
                                    urllib3.make_headers(
                                        proxy_basic_auth=f"{proxy.username}:{proxy.password}"))
        try:
            response = http.request(
                "POST", msg["url"], body=json.dumps({"message": msg["text"]}).encode(),
                headers={"Content-Type": "application/json"}, timeout=TIMEOUT, retries=False,
                redirect=False, preload_content=False)
            try:
                response.read(4096, decode_content=False)
                return response.status, retry_after(response.headers.get("Retry-After"),
                                                    RETRY_AFTER_MAX)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            refused = session.refused()
            if refused is not None:
                log.warning("Nightbot follow-up: %s", refused.message)
                return 403, None
            log.info("Nightbot follow-up: no answer from %s: %s", where(msg["url"]),
                     type(exc).__name__)
            return None, None
        finally:
            http.clear()


