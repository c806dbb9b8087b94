"""Saving a clip of a live stream from chat (spec: Video Endpoints 2; issue 5, items 1-3).

Nightbot's ``$(urlfetch URL)`` sends a GET with ``Nightbot-User`` and ``Nightbot-Channel``
headers (URL-encoded query strings: ``name``, ``displayName``, ``provider``, ``providerId``,
``userLevel``) and shows the response body in chat as-is, so such requests get a plain-text
reply under 400 characters (:func:`text_reply`, :func:`error_text`). Nothing here makes a network
call: the moment is placed in the stream by src/services/live_service.py in the background;
the reply shows the clip's time in the stream only when it is already known (``t`` given, or the
stream's start time read recently for an earlier clip).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Optional
from urllib.parse import parse_qs

from ..errors import ApiError
from ..extensions import setting
from ..utils.validators import is_video_id, youtube_watch_url
from . import (
    channel_service,
    followup,
    live_service,
    notifications,
    public_token_service,
    video_service,
)

MAX_REPLY_CHARS = 399
IDENTITY_FIELDS = ("name", "displayName", "provider", "providerId", "userLevel")
#: How old a cached channel → stream mapping may be to show a time in the reply (seconds).
CHANNEL_HINT_MAX_AGE = 600
#: ``!clip -30 what a play``: a leading ``+N``/``-N`` word (whole seconds, at most 4 digits)
#: moves the moment later/earlier (issue 17, item 1; streamsnip's delay correction). A longer
#: number stays part of the message.
SHIFT_WORD = re.compile(r"^([+-]\d{1,4})(?:\s+|$)")


def split_shift(message: Optional[str]) -> tuple[float, Optional[str]]:
    """``"-20 nice"`` → ``(-20.0, "nice")``; ``"nice"`` → ``(0.0, "nice")``; ``"+5"`` →
    ``(5.0, None)``. A message that is only the shift word, or None, gives None. Nightbot's
    ``$(querystring)`` percent-encodes ``+`` (a bare ``+`` in a URL query is a space)."""
    if not message:
        return 0.0, message
    text = message.strip()
    found = SHIFT_WORD.match(text)
    if not found:
        return 0.0, message
    rest = text[found.end():].strip()
    return float(found.group(1)), rest or None


def parse_identity(header: Optional[str]) -> Optional[dict]:
    """A ``Nightbot-User``/``Nightbot-Channel`` header (``name=x&displayName=X&provider=youtube
    &providerId=UC…&userLevel=moderator``) as a dict of the known fields (each cut to 100
    characters), or None when absent or empty. Source: docs.nightbot.tv, urlfetch."""
    if not header:
        return None
    values = parse_qs(header, keep_blank_values=True)
    found = {key: values[key][0][:100] for key in IDENTITY_FIELDS if key in values}
    return found or None


def save_stream_clip(video_ref: str, query: dict, requested_at: datetime, token_claims: dict,
                     nightbot_user: Optional[dict] = None,
                     nightbot_channel: Optional[dict] = None,
                     response_url: Optional[str] = None) -> dict:
    """Store a clip of ``video_ref`` (an 11-character YouTube id, or ``live`` for the channel's
    current stream) at ``requested_at`` (UTC, the request time).

    ``query``: user_id, message, offset, duration, t, delay, channel (seconds for numbers).
    A leading ``±N`` word of ``message`` (:func:`split_shift`) moves the moment by N seconds
    and is not stored. With ``t`` the segment is known now: moment = max(0, t + N),
    start = max(0, moment − offset), end = start + duration.
    Without it the clip waits for the background resolver (``live_phase`` ``resolving``).
    Returns ``{"video_id", "youtube_video_id" (None for an unresolved ``live``), "position"
    (seconds into the stream, or None when not known yet), "message" (as stored)}``. The
    clip's ``channel_id`` is ``channel`` or Nightbot-Channel's ``providerId`` (the chat
    commands, src/services/chat_service.py, find "this channel's" clips by it).
    ``response_url``: Nightbot-Response-Url, kept for the clip's follow-up message
    (src/services/followup.py; None: no follow-up). The owner's settings for the channel
    (src/services/channel_service.py) give ``offset``/``duration``/``delay`` when the query
    does not, the reply's template (returned as ``template``, with ``user``), who may clip and
    whether the follow-up is sent. Raises ApiError 400 (bad id, duration over
    ``MAX_VIDEO_DURATION``, unknown user, ``live`` without a channel), 403 TOKEN_USER_MISMATCH
    or CLIP_NOT_ALLOWED (the Nightbot user's level is below the channel's minimum), 429
    PENDING_CLIPS_LIMIT.
    """
    channel_id = query.get("channel") or (nightbot_channel or {}).get("providerId")
    shift, message = split_shift(query.get("message"))
    if video_ref != "live" and not is_video_id(video_ref):
        raise ApiError(400, "video_id must be an 11-character YouTube video id or 'live'",
                       "INVALID_URL")
    if video_ref == "live" and not channel_id:
        raise ApiError(400, "'live' needs the channel: send Nightbot-Channel or ?channel=UC…",
                       "CHANNEL_REQUIRED", {"channel": ["Missing channel id."]})
    user = video_service.owner(public_token_service.check_owner(token_claims, query["user_id"]))
    settings = channel_service.for_stream(str(user["_id"]), channel_id)
    if not channel_service.may_clip(settings, nightbot_user):
        raise ApiError(403, f"Only {settings['min_user_level']}s and above may clip in this "
                            "channel", "CLIP_NOT_ALLOWED")
    offset, duration, delay = (query[key] if query.get(key) is not None else settings[key]
                               for key in ("offset", "duration", "delay"))
    if delay is None:
        delay = setting("STREAM_DELAY_SECONDS")
    if duration > setting("MAX_VIDEO_DURATION"):
        raise ApiError(400, "Clip is too long", "VALIDATION_ERROR",
                       {"duration": [f"At most {setting('MAX_VIDEO_DURATION'):g} s."]})
    if not settings["followup"]:
        response_url = None
    youtube_id = None if video_ref == "live" else video_ref
    start = end = position = None
    if query.get("t") is not None:
        position = max(0.0, query["t"] + shift)
        start = max(0.0, position - offset)
        end = start + duration
    # Without t the shift moves the moment the background resolver places (clip_moment_at).
    moment_at = requested_at + timedelta(seconds=shift)
    extra = {"additional_message": message, "clip_offset": offset,
             "clip_duration": duration, "clip_delay": delay, "clip_moment_at": moment_at,
             "clip_shift": shift, "origin": "stream", "nightbot_user": nightbot_user,
             "nightbot_channel": nightbot_channel, "channel_id": channel_id,
             "clip_position": position}
    if start is None:
        # The first check is queued in this process right away; the lease makes the sweep pick
        # the clip up if that check is lost (restart) or crashes.
        extra.update(live_phase="resolving", live_checks=0,
                     next_check_at=requested_at + timedelta(seconds=live_service.LEASE_SECONDS),
                     live_channel_id=channel_id if youtube_id is None else None)
        position = _known_position(youtube_id, channel_id, moment_at, delay)
    if youtube_id:
        url = youtube_watch_url(youtube_id)
    else:
        assert channel_id  # "live" without a channel was refused above
        url = live_service.channel_live_url(channel_id)
    video_id = video_service.new_clip(user, url, youtube_id, start, end,
                                      fill_formats=youtube_id is not None and start is not None,
                                      **extra)
    followup.remember(video_id, response_url, channel_id or "", requested_at.timestamp())
    notifications.clip_saved(video_id)  # issue 17: the channel's webhooks (queued only)
    if start is None:
        live_service.schedule_first_check(video_id)
    return {"video_id": video_id, "youtube_video_id": youtube_id, "position": position,
            "message": message, "template": settings["reply_template"],
            "user": (nightbot_user or {}).get("displayName") or (nightbot_user or {}).get("name")}


def _known_position(youtube_id: Optional[str], channel_id: Optional[str],
                    requested_at: datetime, delay: float) -> Optional[float]:
    """The moment in the stream from cached live facts only (no network), else None."""
    facts = live_service.cached_facts(youtube_id) if youtube_id else \
        live_service.cached_facts(channel_id=channel_id, max_age=CHANNEL_HINT_MAX_AGE)
    if not facts or not facts.get("release_timestamp") or \
            facts.get("live_status") not in ("is_live", "post_live", "was_live"):
        return None
    start, _ = live_service.place(requested_at, facts["release_timestamp"], delay, 0, 0)
    return start


def hms(seconds: float) -> str:
    """``3725.4`` → ``"1:02:05"`` (H:MM:SS, as YouTube shows a time in a video)."""
    total = int(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def fit_reply(text: str) -> str:
    """``text`` on one line (whitespace runs → one space), cut with "…" to under 400
    characters (Nightbot's reply limit, docs.nightbot.tv)."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_REPLY_CHARS else text[:MAX_REPLY_CHARS - 1] + "…"


def text_reply(saved: dict, message: Optional[str] = None) -> str:
    """The chat reply for a saved clip, under 400 characters, e.g.
    ``Clip saved at 1:02:05, id 665f…: what a play``, or the channel's ``saved["template"]``
    rendered (src/services/channel_service.py). The message shown is ``saved["message"]``
    (the stored one, without a ``±N`` word) when present, else ``message``."""
    message = saved["message"] if "message" in saved else message
    if saved.get("template"):  # the channel's own (src/services/channel_service.py)
        when = hms(saved["position"]) if saved.get("position") is not None else "soon"
        return fit_reply(channel_service.render(saved["template"], {
            "time": when, "id": saved["video_id"], "user": saved.get("user"),
            "message": message}))
    where = f"at {hms(saved['position'])}" if saved.get("position") is not None else \
        "(its time in the stream is being placed)"
    reply = f"Clip saved {where}, id {saved['video_id']}"
    return fit_reply(f"{reply}: {message}" if message else reply)


def error_text(message: str, code: str) -> str:
    """The chat reply for a refused request, e.g. ``Clip not saved: Token has expired
    (INVALID_TOKEN)``, under 400 characters."""
    return fit_reply(f"Clip not saved: {message} ({code})")
