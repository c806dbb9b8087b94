"""A channel's public clip page (issue 17, item 5): ``/c/{handle}`` and its API.

Opt-in per channel: the owner's settings (src/services/channel_service.py) turn
``public_page`` on and give the page a ``handle`` (unique over all owners). The page lists the
stream clips that owner saved from that channel's chat (src/data/videos.py
:func:`~src.data.videos.public_clips`), newest first, with search over the messages, a filter
by stream and pages, and exports them as a timestamp list, CSV or JSON.

What is public, and nothing else (:data:`PUBLIC_FIELDS`, :func:`clip_view`): the stream's
``youtube_video_id``, the clip's moment in it (``seconds``, ``time`` as H:MM:SS), its chat
``message``, the chat ``user``'s display name, when it was saved (``created_at``) and the
``url`` that opens the stream at that moment. No account ids or emails, no clip ids (they name
the clip to the chat commands and the owner's API), no file paths, no Nightbot provider ids
or login names. The stream and channel ids are YouTube's own public ids.

A channel whose page is off and a handle nobody has get the same answer (404 NOT_FOUND, one
body), so which handles exist cannot be probed from outside.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Optional

from ..data import channels, users, videos
from ..errors import ApiError
from ..extensions import db
from ..utils.dates import iso
from .channel_service import HANDLE
from .chat_service import moment_of
from .clip_views import search_words
from .stream_service import hms

#: The keys of a clip in every public answer.
PUBLIC_FIELDS = ("youtube_video_id", "seconds", "time", "message", "user", "created_at", "url")
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
#: Words of ``q`` used (more are ignored), as for the chat search.
MAX_WORDS = 10
#: Clips in one export (the newest; a channel with more exports one stream at a time).
EXPORT_MAX = 5000
#: A CSV cell starting with one of these is read as a formula by spreadsheets: it gets a
#: leading ``'`` (OWASP, "CSV Injection": = + - @, and tab and carriage return).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = ("youtube_video_id", "time", "seconds", "message", "user", "url")
#: Export format → (mimetype, file extension).
EXPORTS = {"text": ("text/plain", "txt"), "csv": ("text/csv", "csv"),
           "json": ("application/json", "json")}
NOT_FOUND = ("No public clip page with this name", "NOT_FOUND")


def channel_of(handle: str) -> dict:
    """The channel document (src/data/channels.py) whose public page is ``handle``
    (case-insensitive: handles are stored lower-case). Raises ApiError 404 NOT_FOUND — the
    same message and code — for a malformed handle, one nobody has, a channel whose page
    is off and one whose owner's account is disabled."""
    name = (handle or "").lower()
    doc = channels.by_handle(db(), name) if HANDLE.match(name) else None
    if doc is None or not (doc.get("settings") or {}).get("public_page"):
        raise ApiError(404, *NOT_FOUND)
    owner = users.find_by_id(db(), doc["user_id"])
    if owner is None or owner.get("disabled"):  # an admin disabled the account (item 6)
        raise ApiError(404, *NOT_FOUND)
    return doc


def clip_view(doc: dict) -> dict:
    """The public view of a stream clip (a document from ``videos.public_clips``), exactly
    :data:`PUBLIC_FIELDS`: ``seconds`` is the whole second of the moment (as ``time`` and
    YouTube's ``?t=`` count it), ``user`` Nightbot's ``displayName`` of whoever clipped (None
    for the token's holder), ``created_at`` ISO-8601 UTC."""
    seconds = int(moment_of(doc) or 0)
    video = doc["youtube_video_id"]
    return {"youtube_video_id": video, "seconds": seconds, "time": hms(seconds),
            "message": doc.get("additional_message"),
            "user": (doc.get("nightbot_user") or {}).get("displayName"),
            "created_at": iso(doc.get("created_at")),
            "url": f"https://youtu.be/{video}?t={seconds}"}


def _words(q: Optional[str]) -> list[str]:
    """``q``'s words as the clip list reads them (:func:`clip_views.search_words`), at most
    :data:`MAX_WORDS`."""
    return search_words(q)[:MAX_WORDS]


def list_clips(handle: str, q: Optional[str] = None, youtube_video_id: Optional[str] = None,
               page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> dict:
    """GET /api/public/channels/{handle}/clips: ``{"handle", "channel_id", "clips": [public
    views, newest first], "total", "page", "per_page"}``. ``q``: words each found in the
    message (case-insensitive, literal); ``youtube_video_id``: one stream; ``page`` from 1,
    ``per_page`` 1–:data:`MAX_PER_PAGE` (the route's schema checks both). Raises ApiError 404
    (:func:`channel_of`)."""
    doc = channel_of(handle)
    per_page = max(1, min(MAX_PER_PAGE, per_page))
    found, total = videos.public_clips(db(), doc["user_id"], doc["channel_id"], _words(q),
                                       youtube_video_id, (max(1, page) - 1) * per_page,
                                       per_page)
    return {"handle": doc["handle"], "channel_id": doc["channel_id"],
            "clips": [clip_view(clip) for clip in found], "total": total,
            "page": max(1, page), "per_page": per_page}


def by_stream(clips: list[dict]) -> list[list[dict]]:
    """Public views (newest first) grouped by stream, each group sorted by moment; the
    stream with the newest clip first."""
    groups: dict[str, list[dict]] = {}
    for clip in clips:  # dicts keep insertion order: the newest clip's stream comes first
        groups.setdefault(clip["youtube_video_id"], []).append(clip)
    return [sorted(group, key=lambda c: (c["seconds"], c["created_at"] or ""))
            for group in groups.values()]


def _one_line(text: Optional[str]) -> str:
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text or "").split())


def as_text(groups: list[list[dict]]) -> str:
    """One line per clip, ``H:MM:SS message`` (the message on one line), in moment order,
    a blank line between streams — for pasting into a video description, where YouTube makes
    the times links. YouTube turns such a list into chapters only when its first time is
    0:00 (and there are at least three, ten seconds apart); no 0:00 line is invented here:
    a list of clips is not a list of chapters, and a made-up first entry would be a lie."""
    blocks = ["\n".join(f"{clip['time']} {_one_line(clip['message'])}".rstrip()
                        for clip in group) for group in groups]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def safe_cell(value):
    """A CSV cell that no spreadsheet runs as a formula: a string starting with one of
    :data:`FORMULA_START` gets a leading ``'`` (OWASP, "CSV Injection"; it also applies to a
    stream id that starts with ``-``: the ``url`` column has it unchanged). Numbers and None
    (an empty cell) stay."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def as_csv(groups: list[list[dict]]) -> str:
    """RFC 4180 CSV (the csv module: quoted where needed, CRLF) with :data:`CSV_HEADER`, the
    rows in :func:`by_stream` order, every cell through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for group in groups:
        for clip in group:
            writer.writerow([safe_cell(clip[name]) for name in CSV_HEADER])
    return out.getvalue()


def export(handle: str, fmt: str, q: Optional[str] = None,
           youtube_video_id: Optional[str] = None) -> tuple[str, str, str]:
    """GET /api/public/channels/{handle}/export: ``(body, mimetype, file name)`` for ``fmt``
    ``text`` (:func:`as_text`), ``csv`` (:func:`as_csv`) or ``json`` (``{"handle",
    "channel_id", "clips": [...]}`` in the same order). The newest :data:`EXPORT_MAX`
    matching clips (``q`` and ``youtube_video_id`` as in :func:`list_clips`), grouped by
    stream and sorted by moment (:func:`by_stream`). The file is ``clips-{handle}.{ext}``
    (``clips-{handle}-{youtube_video_id}.{ext}`` for one stream). Raises ApiError 404
    (:func:`channel_of`), 400 for an unknown ``fmt``."""
    if fmt not in EXPORTS:
        raise ApiError(400, "format must be text, csv or json", "VALIDATION_ERROR",
                       {"format": ["One of text, csv, json."]})
    doc = channel_of(handle)
    found, _ = videos.public_clips(db(), doc["user_id"], doc["channel_id"], _words(q),
                                   youtube_video_id, 0, EXPORT_MAX)
    groups = by_stream([clip_view(clip) for clip in found])
    if fmt == "text":
        body = as_text(groups)
    elif fmt == "csv":
        body = as_csv(groups)
    else:
        body = json.dumps({"handle": doc["handle"], "channel_id": doc["channel_id"],
                           "clips": [clip for group in groups for clip in group]},
                          ensure_ascii=False, indent=1) + "\n"
    mimetype, ext = EXPORTS[fmt]
    name = f"clips-{doc['handle']}" + (f"-{youtube_video_id}" if youtube_video_id else "")
    return body, mimetype, f"{name}.{ext}"
