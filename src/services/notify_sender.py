"""The sender of clip notifications (issue 17, item 3; what is queued:
src/services/notifications.py, what is said: src/services/notify_payloads.py, where it may go:
src/services/notify_policy.py, the queue: src/data/deliveries.py).

One daemon thread per process and app (:class:`Sender`, like the Nightbot follow-ups'
src/services/nightbot_sender.py), started when a delivery is queued here or waits at start, ended
after :data:`IDLE_SECONDS` with nothing queued. Any process's sender may post any delivery; a
claim is atomic, and a delivery whose process died mid-post (its lease ended) is marked failed,
never posted again: at most once.

Every post goes through the egress guard (src/media/guard.py) with its target's policy
(:mod:`src.services.notify_policy`), no redirect followed, time-outs, the answer read up to
:data:`MAX_ANSWER_BYTES`. A 2xx is
delivered; a 429 is retried after Discord's ``retry_after`` (body) or ``Retry-After``; a 5xx or
no answer after :data:`BACKOFF_SECONDS`; at most :data:`MAX_ATTEMPTS` posts; any other answer
(a 4xx, a refused address) fails at once with its reason — except Discord's 413 for a clip
attached under ``DISCORD_FILE_LIMIT_MB`` (a server with a lower limit), which is sent again at
once with a link instead of the file. Logs name the host only: a Discord
webhook's path is its token.
"""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Optional
from urllib.parse import urlsplit

import urllib3
from flask import Flask

from ..data import channels, deliveries, videos
from ..extensions import db, setting
from ..media import egress, guard
from ..utils.outbound import retry_after, where
from . import notify_payloads, notify_policy
from .background_sender import BackgroundSender, sender_for

log = logging.getLogger(__name__)

#: Posts per delivery at most (the first and the retries after a 5xx, a 429 or no answer).
MAX_ATTEMPTS = 5
#: Seconds before retry n (1-based) after a 5xx or no answer.
BACKOFF_SECONDS = (10.0, 30.0, 120.0, 600.0)
LEASE_SECONDS = 300.0  # longer than any post (time-outs below): after it, the post was lost
IDLE_SECONDS = 15.0
MAX_ANSWER_BYTES = 64 * 1024
TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)


class Answer(NamedTuple):
    """What a post got: ``status`` (None: no answer), seconds to wait (429), why (no URL)."""

    status: Optional[int]
    retry_after: Optional[float]
    reason: str


def _pending(app: Flask) -> bool:
    return bool(deliveries.unfinished(app.extensions["yt"]["db"]))


def sender(app: Flask) -> BackgroundSender:
    """The app's sender in this process (src/services/background_sender.py; made on first
    use): it posts due messages with :func:`send_due` and ends its thread after
    :data:`IDLE_SECONDS` with nothing queued."""
    return sender_for(app, "clip_notify", lambda app: BackgroundSender(
        app, "clip-notify", lambda stopping: send_due(stopping), _pending, IDLE_SECONDS))


def init_app(app: Flask) -> None:
    """Make the app's sender, and start it when deliveries wait (queued before a restart)."""
    resume_waiting(app)


def resume_waiting(app: Flask) -> None:
    """Wake this process's sender when deliveries are unfinished: at start, and from each
    cleanup run (src/services/cleanup_service.py), so deliveries a dead process left queued
    are sent within an interval even when no new clip wakes a sender. Never raises."""
    try:
        store = app.extensions["yt"]["db"]
        deliveries.ensure_indexes_once(store)
        if deliveries.unfinished(store):
            sender(app).wake()
    except Exception:
        log.warning("clip notifications: queue not read", exc_info=True)


def send_due(stopping: Optional[threading.Event] = None) -> Optional[float]:
    """Post the deliveries due now that this process claims; the seconds until the next one
    is due, or None when none is queued."""
    store = db()
    now = datetime.now(timezone.utc)
    if deliveries.fail_stale(store, now, "Interrupted while sending (the server stopped); "
                                         "not sent again, it may have arrived."):
        log.warning("clip notifications: deliveries interrupted mid-post marked failed")
    for _ in range(20):
        if stopping is not None and stopping.is_set():
            return 0.0
        claimed = deliveries.claim_next_due(store, datetime.now(timezone.utc), LEASE_SECONDS)
        if claimed is None:
            break
        try:
            _deliver(store, claimed)
        except Exception:
            log.exception("clip notifications: delivery %s", claimed["_id"])
            deliveries.mark_failed(store, claimed["_id"], "Internal error while sending.",
                                   datetime.now(timezone.utc))
    due = deliveries.next_due(store)
    if due is None:
        return None
    if due.tzinfo is None:
        due = due.replace(tzinfo=timezone.utc)
    return max(0.0, (due - datetime.now(timezone.utc)).total_seconds())


def _deliver(store, item: dict) -> None:
    """One claimed delivery: build it from the clip and the channel's current settings, post,
    record the outcome."""
    did, target = item["_id"], item["target"]
    doc = videos.get(store, item["video_id"])
    saved = channels.get(store, item["user_id"], item["channel_id"])
    settings = (saved or {}).get("settings") or {}
    url = settings.get("discord_webhook_url" if target == "discord" else "webhook_url")
    now = datetime.now(timezone.utc)
    if doc is None:
        deliveries.mark_failed(store, did, "The clip was deleted before it was sent.", now)
        return
    if not url:
        deliveries.mark_failed(store, did, "The channel has no such webhook any more.", now)
        return
    rules = notify_policy.policy(target)
    if not rules.admits(url):  # type: ignore[attr-defined]
        deliveries.mark_failed(store, did, f"Refused: {where(url)} is not an allowed "
                                           f"{target} host.", now)
        return
    if target == "discord":
        limit_mb = float(setting("DISCORD_FILE_LIMIT_MB"))
        body, content_type, attached = notify_payloads.discord_request(
            item["event"], doc, int(limit_mb * 1024 * 1024))
        headers = {"Content-Type": content_type}
    else:
        attached = False
        body = notify_payloads.webhook_body(item["event"], doc, str(did), item["channel_id"])
        headers = {"Content-Type": "application/json", "X-Webhook-Event":
                   f"clip.{item['event']}", "X-Webhook-Delivery": str(did),
                   "X-Signature": notify_payloads.signature(settings.get("webhook_secret")
                                                            or "", body)}
    answer = _post(rules, url, body, headers)
    if target == "discord" and answer.status == 413 and attached:  # a lower limit: link it
        body, content_type, _ = notify_payloads.discord_request(item["event"], doc, 0)
        answer = _post(rules, url, body, {"Content-Type": content_type})
    _record(store, item, answer, where(url))


def _record(store, item: dict, answer: Answer, host: str) -> None:
    """The delivery's state after ``answer`` (see the module's rules)."""
    did, attempt, now = item["_id"], item["attempts"], datetime.now(timezone.utc)
    about = f"clip {item['video_id']}: {item['event']} to {item['target']} at {host}"
    status = answer.status
    if status is not None and 200 <= status < 300:
        deliveries.mark_delivered(store, did, now)
        log.info("%s delivered (HTTP %s)", about, status)
        return
    reason = answer.reason or (f"HTTP {status} from {host}" if status else
                               f"No answer from {host}")
    retryable = status is None or status == 429 or status >= 500
    if not retryable:
        deliveries.mark_failed(store, did, reason, now)
        log.warning("%s failed: %s", about, reason)
        return
    if attempt >= MAX_ATTEMPTS:
        deliveries.mark_failed(store, did, f"Gave up after {attempt} attempts: {reason}", now)
        log.warning("%s given up after %d attempts: %s", about, attempt, reason)
        return
    delay = answer.retry_after if status == 429 and answer.retry_after is not None else \
        BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
    deliveries.mark_retry(store, did, f"{reason}; retry {attempt + 1} of {MAX_ATTEMPTS}",
                          now + timedelta(seconds=delay), now)
    log.info("%s: %s; retry in %.1f s", about, reason, delay)


def _post(rules: egress.Policy, url: str, body: bytes, headers: dict) -> Answer:
    """POST ``body`` to ``url`` through the egress guard under ``rules`` (no redirect followed,
    :data:`TIMEOUT`, the answer read up to :data:`MAX_ANSWER_BYTES`)."""
    host = where(url)
    with guard.session(rules) as session:
        proxy = urlsplit(session.proxy_url)
        http = urllib3.ProxyManager(f"http://{proxy.hostname}:{proxy.port}", proxy_headers=
                                    urllib3.make_headers(
                                        proxy_basic_auth=f"{proxy.username}:{proxy.password}"))
        try:
            response = http.request("POST", url, body=body, headers=headers, timeout=TIMEOUT,
                                    retries=False, redirect=False, preload_content=False)
            try:
                data = response.read(MAX_ANSWER_BYTES, decode_content=False)
                refused = session.refused()  # plain http: the guard's 403 is an answer
                if refused is not None:
                    return Answer(403, None, f"Refused: {refused.message}")
                return _answer(response.status, response.headers.get("Retry-After"), data,
                               host)
            finally:
                response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            refused = session.refused()
            if refused is not None:
                return Answer(403, None, f"Refused: {refused.message}")
            return Answer(None, None, f"No answer from {host} ({type(exc).__name__})")
        finally:
            http.clear()


def _answer(status: int, retry_header: Optional[str], data: bytes, host: str) -> Answer:
    """Read Discord's error body (``{"message", "retry_after" (seconds)}``) when it has one."""
    found: dict = {}
    try:
        parsed = json.loads(data) if data else {}
        found = parsed if isinstance(parsed, dict) else {}
    except ValueError:
        pass
    wait = found.get("retry_after")
    delay = min(max(0.0, float(wait)), notify_policy.RETRY_AFTER_MAX) if \
        isinstance(wait, (int, float)) and not isinstance(wait, bool) else \
        retry_after(retry_header, notify_policy.RETRY_AFTER_MAX)
    reason = ""
    if not 200 <= status < 300:
        said = found.get("message")
        said = "".join(ch for ch in said if ch.isprintable())[:120] if isinstance(said, str) \
            else ""
        reason = f"HTTP {status} from {host}" + (f": {said}" if said else "")
    return Answer(status, delay, reason)

