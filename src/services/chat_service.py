"""Chat commands beyond ``!clip`` (issue 17, item 1): ``!clipedit``, ``!clipdelete``, ``!recent``
and ``!clipsearch`` from Nightbot's ``$(urlfetch …)``, on "this channel's" clips.

This channel's clips are the clips the token's owner saved through the stream save
(``origin: "stream"``) for the channel named by ``?channel=UC…`` or by ``Nightbot-Channel``'s
``providerId`` (stored as ``channel_id`` by src/services/stream_service.py); with no channel
known, every stream clip of the owner. Only a public token bound to an account is accepted: an
anonymous one names no owner whose clips these are.

Who may change clips: Nightbot's ``userLevel`` (docs.nightbot.tv, urlfetch: owner, moderator,
regular, subscriber, everyone…) ``owner`` or ``moderator``; a request without ``Nightbot-User``
comes from whoever holds the owner's token (the owner's own tools, not chat) and may too.
Anyone else gets a polite refusal (200, nothing changed), as chat expects an answer, not an
error. Every reply is one line under 400 characters (Nightbot's limit).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Optional

from ..data import videos
from ..errors import ApiError
from ..extensions import db
from . import folders
from .stream_service import fit_reply, hms

log = logging.getLogger(__name__)

#: ``userLevel`` values allowed to edit or delete clips.
MANAGERS = ("owner", "moderator")
RECENT_DEFAULT = 3
RECENT_MAX = 5
SEARCH_MAX = 5
SEARCH_WORDS_MAX = 5
#: Characters of one clip's message inside a list reply (5 parts stay under 400 together).
PART_CHARS = 56


def context(claims: dict, channel: Optional[str], nightbot_user: Optional[dict],
            nightbot_channel: Optional[dict]) -> dict:
    """Who asks about which clips: ``{"user_id", "channel_id" (or None), "nightbot_user"}``.

    ``claims``: the public token's claims; ``channel``: ``?channel=`` (wins over
    ``nightbot_channel["providerId"]``); the Nightbot dicts as
    :func:`src.services.stream_service.parse_identity` gives them. Raises ApiError 403
    TOKEN_NOT_BOUND for an anonymous token."""
    if not claims.get("user_id"):
        raise ApiError(403, "Chat commands need a public token bound to your account",
                       "TOKEN_NOT_BOUND")
    return {"user_id": claims["user_id"], "nightbot_user": nightbot_user,
            "channel_id": channel or (nightbot_channel or {}).get("providerId")}


def may_manage(nightbot_user: Optional[dict]) -> bool:
    """True for the channel's owner and moderators, and for a caller that is not chat (no
    ``Nightbot-User``: it holds the owner's token)."""
    return nightbot_user is None or nightbot_user.get("userLevel") in MANAGERS


def split_id(message: Optional[str]) -> tuple[Optional[str], str]:
    """``"665f…(24 hex) better"`` → ``("665f…", "better")``; ``"better"`` → ``(None,
    "better")``. The id is the one the stream save's reply shows (a clip's 24-hex id)."""
    words = (message or "").split(maxsplit=1)
    if words and len(words[0]) == 24 and all(c in "0123456789abcdef" for c in words[0].lower()):
        return words[0].lower(), words[1].strip() if len(words) > 1 else ""
    return None, (message or "").strip()


def clip_view(doc: dict) -> dict:
    """One clip in a JSON answer: ``video_id``, ``position`` (seconds of the moment in the
    stream, None while it is being placed), ``time`` (``1:02:05``), ``message``, ``status``."""
    position = moment_of(doc)
    return {"video_id": str(doc["_id"]), "position": position,
            "time": hms(position) if position is not None else None,
            "message": doc.get("additional_message"), "status": doc.get("status"),
            "youtube_video_id": doc.get("youtube_video_id")}


def moment_of(doc: dict) -> Optional[float]:
    """The clip's moment in the stream: stored at the save (``clip_position``, from ``t``),
    else from the placed segment (``start_time`` + ``clip_offset``), else None."""
    if doc.get("clip_position") is not None:
        return float(doc["clip_position"])
    if doc.get("start_time") is None:
        return None
    return float(doc["start_time"]) + float(doc.get("clip_offset") or 0)


def _label(doc: dict) -> str:
    position = moment_of(doc)
    where = f" at {hms(position)}" if position is not None else ""
    return f"Clip{where}, id {doc['_id']}"


def _reply(text: str, done: bool, docs: list[dict]) -> dict:
    return {"message": fit_reply(text), "done": done, "clips": [clip_view(d) for d in docs]}


def _refusal(ctx: dict, verb: str) -> dict:
    user = ctx["nightbot_user"] or {}
    name = user.get("displayName") or user.get("name") or "there"
    return _reply(f"Sorry {name}, only the channel owner and moderators can {verb} clips.",
                  False, [])


def _target(ctx: dict, clip_id: Optional[str]) -> dict:
    """The clip named by ``clip_id``, or this channel's newest. ApiError 404 NOT_FOUND."""
    if clip_id:
        doc = videos.stream_clip(db(), ctx["user_id"], ctx["channel_id"], clip_id)
        if doc is None:
            raise ApiError(404, f"No clip {clip_id} in this channel", "NOT_FOUND")
        return doc
    newest = videos.stream_clips(db(), ctx["user_id"], ctx["channel_id"], 1)
    if not newest:
        raise ApiError(404, "No clip saved in this channel yet", "NOT_FOUND")
    return newest[0]


def edit(ctx: dict, message: Optional[str]) -> dict:
    """``[id] text``: the clip's message becomes ``text`` (the newest clip without an id).
    Records ``message_edited_by`` (the Nightbot user). Raises ApiError 404 NOT_FOUND."""
    if not may_manage(ctx["nightbot_user"]):
        return _refusal(ctx, "edit")
    clip_id, text = split_id(message)
    if not text:
        return _reply("Give the new message: !clipedit [id] new message", False, [])
    doc = _target(ctx, clip_id)
    videos.update(db(), doc["_id"], {"additional_message": text,
                                     "message_edited_by": ctx["nightbot_user"]})
    doc["additional_message"] = text
    return _reply(f"{_label(doc)}, now says: {text}", True, [doc])


def delete(ctx: dict, message: Optional[str]) -> dict:
    """``[id]``: remove the clip (the newest without an id) — its record and its folder with
    every file in it, so it is gone from lists and from disk. Raises ApiError 404 NOT_FOUND
    (also when another request deleted it first)."""
    if not may_manage(ctx["nightbot_user"]):
        return _refusal(ctx, "delete")
    doc = _target(ctx, split_id(message)[0])
    if not videos.delete(db(), doc["_id"]):
        raise ApiError(404, f"No clip {doc['_id']} in this channel", "NOT_FOUND")
    folders.empty(folders.path_of(doc))
    who = ctx["nightbot_user"] or {}
    log.info("chat: clip %s deleted by %s (%s)", doc["_id"], who.get("name") or "the token "
             "holder", who.get("userLevel") or "not chat")
    said = doc.get("additional_message")
    return _reply(f"{_label(doc)}, deleted" + (f": {said}" if said else ""), True, [doc])


def _parts(docs: list[dict]) -> str:
    parts = []
    for doc in docs:
        position = moment_of(doc)
        said = " ".join((doc.get("additional_message") or "(no message)").split())
        if len(said) > PART_CHARS:
            said = said[:PART_CHARS - 1] + "…"
        parts.append(f"{hms(position) if position is not None else '(placing)'} {said}")
    return " | ".join(parts)


def recent(ctx: dict, message: Optional[str]) -> dict:
    """``[n]``: the newest n clips (default 3, at most 5) as ``1:02:05 message`` parts."""
    words = (message or "").split()
    count = RECENT_DEFAULT
    if words and words[0].isdigit():
        count = max(1, min(RECENT_MAX, int(words[0])))
    docs = videos.stream_clips(db(), ctx["user_id"], ctx["channel_id"], count)
    if not docs:
        return _reply("No clips saved in this channel yet.", True, [])
    return _reply(f"Last {len(docs)} clip{'s' if len(docs) > 1 else ''}: {_parts(docs)}",
                  True, docs)


def search(ctx: dict, message: Optional[str]) -> dict:
    """``words``: this channel's clips whose message contains every word (case-insensitive,
    literal), newest first, at most 5 (``| …`` when there are more)."""
    words = (message or "").split()[:SEARCH_WORDS_MAX]
    if not words:
        return _reply("Give words to search for: !clipsearch words", False, [])
    found = videos.stream_clips(db(), ctx["user_id"], ctx["channel_id"], SEARCH_MAX + 1, words)
    asked = " ".join(words)
    asked = asked if len(asked) <= PART_CHARS else asked[:PART_CHARS - 1] + "…"
    if not found:
        return _reply(f"No clip matches '{asked}'.", True, [])
    docs = found[:SEARCH_MAX]
    more = " | …" if len(found) > SEARCH_MAX else ""
    return _reply(f"Clips matching '{asked}': {_parts(docs)}{more}", True, docs)


#: Command name (the route's last path part) → its function.
COMMANDS: dict[str, Callable[[dict, Optional[str]], dict]] = {
    "edit": edit, "delete": delete, "recent": recent, "search": search}


def error_text(message: str, code: str) -> str:
    """A refused chat command as one line, e.g. ``Clip command failed: No clip saved in this
    channel yet (NOT_FOUND)``, under 400 characters."""
    return fit_reply(f"Clip command failed: {message} ({code})")
