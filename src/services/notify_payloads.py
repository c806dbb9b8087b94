"""What a clip notification says (issue 17, item 3): the Discord message and the generic
webhook's signed JSON, built from the clip's stored document when the delivery is posted
(src/services/notify_sender.py), so a clip placed or finished meanwhile shows its latest state.

Discord (discord.com/developers/docs/resources/webhook#execute-webhook, and …/resources/message
"Embed Limits", "Allowed Mentions Object", "Uploading Files"): ``saved`` and ``failed`` are JSON
``{"embeds": [embed], "allowed_mentions": {"parse": []}}``; ``ready`` is
``multipart/form-data`` with ``payload_json`` and ``files[0]`` the clip (when clip + thumbnail
fit in ``DISCORD_FILE_LIMIT_MB``, else a link in the text) and ``files[1]`` the thumbnail,
which the embed shows as ``attachment://thumbnail.jpg`` (the ``attachments`` array ties
``files[n]`` to its name). ``allowed_mentions.parse = []``: a chat message saying ``@everyone``
pings nobody. Embed limits kept: title 256, description 4096, field value 1024 characters.

Generic webhook: ``POST`` of compact JSON ``{"event": "clip.saved" | "clip.ready" |
"clip.failed", "delivery_id", "sent_at" (ISO 8601 UTC), "channel_id", "clip": {...}}`` with
``X-Signature: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`` (:func:`signature`), the
scheme GitHub's webhooks use, so receivers' usual check works.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
from datetime import datetime, timezone
from typing import Optional

import urllib3

from ..extensions import setting
from ..media.errors import MESSAGES
from ..utils.files import file_available
from . import storage, stream_service

TITLES = {"saved": "Clip saved", "ready": "Clip ready", "failed": "Clip failed"}
COLORS = {"saved": 0x3B82F6, "ready": 0x22C55E, "failed": 0xEF4444}
THUMBNAIL_NAME = "thumbnail.jpg"
NO_MENTIONS: dict = {"parse": []}


def moment(doc: dict) -> Optional[float]:
    """The clip's moment in the stream (seconds): ``clip_position``, else ``start_time`` +
    ``clip_offset`` (the start is the moment minus the offset); None while it is placed."""
    position = doc.get("clip_position")
    if position is None and doc.get("start_time") is not None:
        position = float(doc["start_time"]) + float(doc.get("clip_offset") or 0)
    return None if position is None else float(position)


def chat_user(doc: dict) -> Optional[str]:
    """The Nightbot user's display name (else name), or None for a save without Nightbot."""
    user = doc.get("nightbot_user") or {}
    return user.get("displayName") or user.get("name") or None


def watch_link(doc: dict) -> Optional[str]:
    """``https://youtu.be/{id}?t={seconds}`` (the moment), or without ``t`` while it is not
    known; None when the stream's video id is not known yet."""
    youtube_id = doc.get("youtube_video_id")
    if not youtube_id:
        return None
    at = moment(doc)
    return f"https://youtu.be/{youtube_id}" + (f"?t={int(at)}" if at is not None else "")


def error_text(doc: dict) -> str:
    """The failure's message (else the code's standard message, else the code)."""
    code = doc.get("error_code") or "UNKNOWN_ERROR"
    return doc.get("error_message") or MESSAGES.get(code) or code


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def embed(event: str, doc: dict) -> dict:
    """The Discord embed of ``event`` for the clip ``doc``."""
    title = TITLES[event]
    video_title = (doc.get("video_info") or {}).get("title")
    if video_title:
        title = f"{title}: {video_title}"
    at = moment(doc)
    found: dict = {"title": _cut(title, 256), "color": COLORS[event], "fields": [
        {"name": "Time in stream", "value": stream_service.hms(at) if at is not None
         else "being placed", "inline": True},
        {"name": "Chat user", "value": _cut(chat_user(doc) or "—", 1024), "inline": True}]}
    text = error_text(doc) if event == "failed" else doc.get("additional_message")
    if text:
        found["description"] = _cut(text, 4096)
    link = watch_link(doc)
    if link:
        found["url"] = link
    return found


def dashboard_link(doc: dict) -> str:
    """Where to get a clip too large to attach: ``PUBLIC_BASE_URL`` + ``/#clips``, or a
    sentence naming the clip's id without that setting."""
    base = setting("PUBLIC_BASE_URL")
    if base:
        return f"{str(base).rstrip('/')}/#clips"
    return f"Download it from the dashboard (clip id {doc['_id']})."


def discord_request(event: str, doc: dict, limit_bytes: int) -> tuple[bytes, str, bool]:
    """``(body, Content-Type, clip attached)`` of the Discord message of ``event``: JSON, or
    for ``ready`` with a file or thumbnail multipart (``payload_json`` + ``files[n]``). The clip
    is attached when it is on disk and clip + thumbnail are at most ``limit_bytes``; else the embed
    carries :func:`dashboard_link`."""
    card = embed(event, doc)
    payload: dict = {"embeds": [card], "allowed_mentions": NO_MENTIONS}
    files: list[tuple[str, bytes, str]] = []
    if event == "ready":
        thumb = doc.get("thumbnail_path")
        picture = storage.read(thumb) if thumb else None
        clip_path = doc.get("file_path") if file_available(doc) else None
        size = storage.size(clip_path)
        if clip_path and size is not None and size + len(picture or b"") <= limit_bytes:
            name = "clip." + str(doc.get("file_format") or clip_path.rsplit(".", 1)[-1])
            data = storage.read(clip_path)
            if data is not None:
                files.append((name, data, mimetypes.guess_type(name)[0]
                              or "application/octet-stream"))
        if not files:
            link = dashboard_link(doc)
            card["fields"].append({"name": "File", "value": _cut(
                f"Too large to attach here: {link}" if size is not None else link, 1024)})
        if picture is not None:
            files.append((THUMBNAIL_NAME, picture, "image/jpeg"))
            card["image"] = {"url": f"attachment://{THUMBNAIL_NAME}"}
    if not files:
        return json.dumps(payload).encode(), "application/json", False
    payload["attachments"] = [{"id": n, "filename": name} for n, (name, _, _) in
                              enumerate(files)]
    fields: list = [("payload_json", (None, json.dumps(payload), "application/json"))]
    fields += [(f"files[{n}]", part) for n, part in enumerate(files)]
    body, content_type = urllib3.encode_multipart_formdata(fields)
    return body, content_type, files[0][0] != THUMBNAIL_NAME


def webhook_body(event: str, doc: dict, delivery_id: str, channel_id: str,
                 now: Optional[datetime] = None) -> bytes:
    """The generic webhook's body (compact JSON, the bytes :func:`signature` signs)."""
    at = moment(doc)
    sent_at = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({
        "event": f"clip.{event}", "delivery_id": delivery_id, "sent_at": sent_at,
        "channel_id": channel_id, "clip": {
            "video_id": str(doc["_id"]), "youtube_video_id": doc.get("youtube_video_id"),
            "time": stream_service.hms(at) if at is not None else None, "seconds": at,
            "message": doc.get("additional_message"), "user": chat_user(doc),
            "status": doc.get("status"), "error_code": doc.get("error_code")}},
        separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body keyed with secret>`` (the ``X-Signature`` header)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
