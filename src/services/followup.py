"""Nightbot follow-up: one chat message when a clip saved from chat is ready or failed (issue 14,
item 4).

What Nightbot documents (docs.nightbot.tv/variables/urlfetch, "Advanced Usage"): each
``$(urlfetch URL)`` request carries ``Nightbot-Response-Url``, "a response link where responses
can be sent with a POST request without prior authorization. See /channel/send in the API
docs", e.g. ``https://api.nightbot.tv/1/channel/send/TVRRM05U…``. The API reference, "Send
channel message" (api-docs.nightbot.tv; github.com/nightbot/api-docs,
includes/channel/_post_send.md): ``POST``, body ``message`` (string, required, "Maximum length:
400 characters"), "as a URL encoded string or JSON (using the appropriate Content-Type
header)"; answer ``{"status": 200}``; "rate limited to 1 request per 5 seconds. If exceeded a
HTTP 429 'Too Many Requests' response is returned"; any other non-200 is an error
``{"status", "message"}`` (includes/_errors.md). How long a response URL stays valid is not
documented anywhere we found: ``NIGHTBOT_RESPONSE_URL_SECONDS`` (default 600) is our assumption,
after which nothing is sent; a URL that expired sooner answers a 4xx, on which we give up.

The URL lets anyone post into the channel's chat: it is a secret (never logged, only its host),
and a stranger chooses it (the stream save takes a public token in its path), so only
``https://api.nightbot.tv/1/channel/send/…`` is kept, or a host of ``NIGHTBOT_RESPONSE_HOSTS``
(tests, the demo's stand-in); the post goes through the egress guard with that one allow-list
(:class:`src.services.nightbot_sender.ResponsePolicy`), which also refuses a Nightbot name
resolving to a private address.

Redis (shared by every process): ``followup:url:{video_id}`` the kept URL, TTL = its validity
(:func:`remember`); :func:`notify` queues the message for the background sender
(src/services/nightbot_sender.py: spacing per channel, retries, at most once).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Optional

from flask import current_app
from redis.exceptions import RedisError

from ..data import videos
from ..extensions import db, redis, setting
from ..media.errors import MESSAGES
from . import nightbot_sender, stream_service

log = logging.getLogger(__name__)


def remember(video_id: str, response_url: Optional[str], channel_key: str,
             received_at: float) -> bool:
    """Keep ``response_url`` (the stream save's ``Nightbot-Response-Url``) for the clip
    ``video_id`` until ``received_at`` (POSIX seconds, when the request came) +
    ``NIGHTBOT_RESPONSE_URL_SECONDS``. ``channel_key``: the chat's channel (Nightbot-Channel's
    ``providerId``), whose messages are spaced (empty: one shared key). No network call.
    Returns False — nothing kept — when the follow-up is off (``NIGHTBOT_FOLLOWUP``), there is
    no URL, it is refused (:meth:`~src.services.nightbot_sender.ResponsePolicy.admits`),
    already expired, or Redis fails."""
    if not response_url or not setting("NIGHTBOT_FOLLOWUP"):
        return False
    url = response_url.strip()
    if not nightbot_sender.policy().admits(url):
        log.info("video %s: Nightbot response URL refused (host %s)", video_id,
                 nightbot_sender.where(url))
        return False
    expires_at = received_at + float(setting("NIGHTBOT_RESPONSE_URL_SECONDS"))
    ttl_ms = int((expires_at - time.time()) * 1000)
    if ttl_ms <= 0:
        return False
    kept = {"url": url, "channel": channel_key or "-", "expires_at": expires_at}
    try:
        redis().set(f"followup:url:{video_id}", json.dumps(kept), px=ttl_ms)
    except RedisError as exc:
        log.warning("video %s: Nightbot response URL not kept: %s", video_id, exc)
        return False
    return True


def notify(video_id: str, text: str) -> None:
    """Queue ``text`` (one line, cut under Nightbot's 400 characters) for the clip's kept
    response URL, if one is kept and not expired; the URL is used up, so a clip gets one
    message. Redis only — the post is the background sender's (:class:`Sender`). Never
    raises: a failure is logged."""
    try:
        store = redis()
        raw = store.getdel(f"followup:url:{video_id}")
        if not raw or not setting("NIGHTBOT_FOLLOWUP"):
            return
        kept, now = json.loads(raw), time.time()
        if kept["expires_at"] <= now:
            return
        msg_id = secrets.token_hex(8)
        message = {**kept, "video_id": video_id, "text": chat_line(text), "attempt": 0}
        ttl_ms = int((kept["expires_at"] - now) * 1000) + 60_000
        pipe = store.pipeline()
        pipe.set(f"followup:msg:{msg_id}", json.dumps(message), px=ttl_ms)
        pipe.zadd(nightbot_sender.QUEUE, {msg_id: now})
        pipe.execute()
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        nightbot_sender.sender(app).wake()
    except Exception:
        log.exception("video %s: Nightbot follow-up not queued", video_id)


def notify_outcome(video_id: str) -> None:
    """:func:`notify` the clip's outcome when a response URL is kept for it: :func:`ready_text`
    once ``completed``, :func:`failed_text` once ``failed`` (nothing in another status). One
    Redis look-up when none is kept; never raises."""
    try:
        if not redis().exists(f"followup:url:{video_id}"):
            return
        doc = videos.get(db(), video_id)
        if doc and doc.get("status") in ("completed", "failed"):
            notify(video_id, ready_text(doc) if doc["status"] == "completed"
                   else failed_text(doc))
    except Exception:
        log.exception("video %s: Nightbot follow-up not queued", video_id)


def chat_line(text: str) -> str:
    """``text`` for chat: control characters dropped, one line under 400 characters
    (:func:`stream_service.fit_reply`), no leading ``/`` or ``.`` (a chat command on Twitch)."""
    kept = "".join(ch if ch.isprintable() else " " for ch in text)
    return stream_service.fit_reply(kept.lstrip("/. "))


def _clip(doc: dict) -> str:
    """``Clip 1:02:05`` — the moment the save's reply showed: ``clip_position``, else
    ``start_time`` + ``clip_offset`` (the resolver's start is moment − offset) — or ``Clip``."""
    position = doc.get("clip_position")
    if position is None and doc.get("start_time") is not None:
        position = float(doc["start_time"]) + float(doc.get("clip_offset") or 0)
    return "Clip" if position is None else f"Clip {stream_service.hms(position)}"


def ready_text(doc: dict) -> str:
    """``Clip 1:02:05 ready: https://host/#clips`` (``PUBLIC_BASE_URL`` + the dashboard's list),
    or ``Clip 1:02:05 ready, id 665f…: download it from the dashboard`` without that setting."""
    base = setting("PUBLIC_BASE_URL")
    if base:
        return chat_line(f"{_clip(doc)} ready: {str(base).rstrip('/')}/#clips")
    return chat_line(f"{_clip(doc)} ready, id {doc['_id']}: download it from the dashboard")


def failed_text(doc: dict) -> str:
    """``Clip 1:02:05 failed: <error_message>`` (else the code's message, else the code)."""
    code = doc.get("error_code") or "UNKNOWN_ERROR"
    reason = doc.get("error_message") or MESSAGES.get(code) or code
    return chat_line(f"{_clip(doc)} failed: {reason}")
