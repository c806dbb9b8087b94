"""Per-channel settings of an owner (issue 17, item 2), applied to the stream saves of that
channel (src/services/stream_service.py).

A channel is a YouTube channel id (``UC`` + 22 characters), the one Nightbot names in
``Nightbot-Channel`` (``providerId``) or the save's ``?channel=``. Its settings:

- ``delay`` (seconds, None: ``STREAM_DELAY_SECONDS``), ``offset`` and ``duration`` (seconds):
  the stream save's defaults when its query does not give them;
- ``reply_template``: the chat reply, with the placeholders ``{time}`` (H:MM:SS in the
  stream, or "soon" while it is being placed), ``{id}``, ``{user}`` (the Nightbot user's
  display name) and ``{message}``; None: the built-in reply. Checked when saved: only those
  placeholders, no format specs or conversions, at most 400 characters; the rendered reply is
  one line cut under 400 characters (:func:`stream_service.fit_reply`);
- ``min_user_level``: who may clip, by Nightbot's ``userLevel`` (``everyone`` <
  ``subscriber`` (YouTube members) < ``regular`` < ``moderator`` < ``owner``, Nightbot's own
  order); a save without Nightbot's headers comes from the token's holder and is not limited;
- ``discord_webhook_url``: a Discord webhook (``https://discord.com/api/webhooks/{id}/{token}``
  or discordapp.com; or the same path on a host of ``DISCORD_WEBHOOK_HOSTS``, a stand-in for
  tests and the demo) that gets the clip notifications (item 3);
- ``webhook_url``: a generic webhook for other tools (``https://…``, or any URL on a host of
  ``WEBHOOK_HOSTS``) that gets the same events as JSON signed with ``webhook_secret``
  (``X-Signature``), a per-channel secret the server makes when the first webhook is saved and
  keeps until rotated (``POST …/webhook-secret``); where the URL points is checked again when
  sending (its addresses must be public unless the host is listed);
- ``public_page`` and ``handle``: the opt-in public page ``/c/{handle}`` (item 5); a handle
  is 3–30 of ``a-z 0-9 _ -`` (stored lower-case), unique over all owners (409 HANDLE_TAKEN),
  needed while the page is on;
- ``followup``: the Nightbot follow-up message (src/services/followup.py) on or off.
"""
from __future__ import annotations

import re
import secrets
import string
from typing import Optional
from urllib.parse import urlsplit

from ..data import channels
from ..errors import ApiError
from ..extensions import db, setting
from ..media import egress
from ..media.errors import MediaError

CHANNEL_ID = re.compile(r"^UC[\w-]{22}$")
USER_LEVELS = ("everyone", "subscriber", "regular", "moderator", "owner")
PLACEHOLDERS = ("time", "id", "user", "message")
MAX_TEMPLATE_CHARS = 400
#: A Discord webhook URL (discord.com/developers/docs/resources/webhook: ``/webhooks/{id}/{token}``
#: under ``/api``, optionally versioned); only Discord's two hosts.
DISCORD_WEBHOOK = re.compile(r"^https://(?:discord\.com|discordapp\.com)/api(?:/v\d{1,2})?"
                             r"/webhooks/\d{1,20}/[\w-]{1,100}$")
DISCORD_PATH = re.compile(r"^/api(?:/v\d{1,2})?/webhooks/\d{1,20}/[\w-]{1,100}$")
HANDLE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,29}$")
MAX_WEBHOOK_URL_CHARS = 500
DEFAULTS = {"delay": None, "offset": 60.0, "duration": 120.0, "reply_template": None,
            "min_user_level": "everyone", "discord_webhook_url": None, "webhook_url": None,
            "public_page": False, "handle": None, "followup": True}
#: Kept by the server, never taken from a PUT body.
SERVER_KEPT = ("webhook_secret",)


def template_errors(template: Optional[str]) -> list[str]:
    """Why ``template`` cannot be a reply template (empty list: it can)."""
    if template is None:
        return []
    if len(template) > MAX_TEMPLATE_CHARS:
        return [f"At most {MAX_TEMPLATE_CHARS} characters."]
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        return [f"Not a template: {exc}; write {{{{ and }}}} for braces."]
    errors = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            errors.append(f"Unknown placeholder {{{name}}}; use "
                          + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + ".")
        elif spec or conversion:
            errors.append(f"{{{name}}} takes no format or conversion.")
    return errors


def render(template: str, values: dict) -> str:
    """``template`` (checked by :func:`template_errors`) with ``values`` for its
    placeholders (missing ones: empty)."""
    return template.format_map({name: str(values.get(name) or "") for name in PLACEHOLDERS})


def view(channel_id: str, doc: Optional[dict]) -> dict:
    """The API's view: ``{"channel_id", "saved": bool, **settings, "webhook_secret"}``
    (defaults when unsaved; the secret is None until a webhook was saved)."""
    stored = (doc or {}).get("settings") or {}
    return {"channel_id": channel_id, "saved": doc is not None,
            **{key: stored.get(key, default) for key, default in DEFAULTS.items()},
            "webhook_secret": stored.get("webhook_secret")}


def _listed(url: str, name: str) -> bool:
    """Whether ``url``'s scheme, host and port match an entry of the setting ``name``."""
    try:
        scheme, host, port = egress.split_url(url)
    except MediaError:
        return False
    return any(rule.matches(host, port, scheme)
               for rule in egress.parse_rules(setting(name), name))


def discord_url_ok(url: str) -> bool:
    """A Discord webhook URL (:data:`DISCORD_WEBHOOK`), or its path on a host of
    ``DISCORD_WEBHOOK_HOSTS`` (a stand-in)."""
    return bool(DISCORD_WEBHOOK.match(url)) or (
        _listed(url, "DISCORD_WEBHOOK_HOSTS") and bool(DISCORD_PATH.match(urlsplit(url).path))
        and not urlsplit(url).query)


def webhook_url_ok(url: str) -> bool:
    """A generic webhook URL: printable, at most :data:`MAX_WEBHOOK_URL_CHARS`, https without
    user info — or any http(s) URL on a host of ``WEBHOOK_HOSTS``. (Its addresses are checked
    when sending: the egress guard.)"""
    if len(url) > MAX_WEBHOOK_URL_CHARS or not url.isprintable() or " " in url:
        return False
    if _listed(url, "WEBHOOK_HOSTS"):
        return True
    try:
        scheme, _host, _port = egress.split_url(url)
    except MediaError:
        return False
    return scheme == "https"


def get(user_id: str, channel_id: str) -> dict:
    """The owner's settings for ``channel_id`` (:func:`view`). Raises ApiError 400 for a
    malformed channel id."""
    _check_id(channel_id)
    return view(channel_id, channels.get(db(), user_id, channel_id))


def list_channels(user_id: str) -> list[dict]:
    """Every channel the owner saved settings for (:func:`view` each)."""
    return [view(doc["channel_id"], doc) for doc in channels.list_for_user(db(), user_id)]


def put(user_id: str, channel_id: str, body: dict) -> dict:
    """Replace the owner's settings for ``channel_id`` with ``body`` (missing fields: the
    defaults; an empty template or webhook: none); returns :func:`view`. Raises ApiError 400
    VALIDATION_ERROR naming each bad field (the template's placeholders, a webhook that is
    not Discord's, a duration over
    ``MAX_VIDEO_DURATION``) — the schema checked types and ranges first."""
    _check_id(channel_id)
    settings = {key: body.get(key, default) for key, default in DEFAULTS.items()}
    for key in ("reply_template", "discord_webhook_url", "webhook_url", "handle"):
        value = settings[key]  # an emptied form field clears it
        if isinstance(value, str) and not value.strip():
            settings[key] = None
    if settings["handle"]:
        settings["handle"] = settings["handle"].strip().lower()
    errors = _errors(settings)
    if errors:
        raise ApiError(400, "Invalid channel settings", "VALIDATION_ERROR", errors)
    before = channels.get(db(), user_id, channel_id)
    kept = ((before or {}).get("settings") or {}).get("webhook_secret")
    if settings["webhook_url"] or settings["discord_webhook_url"] or kept:
        settings["webhook_secret"] = kept or secrets.token_hex(32)
    return _store(user_id, channel_id, settings)


def rotate_webhook_secret(user_id: str, channel_id: str) -> dict:
    """A new ``webhook_secret`` for the owner's channel (the old one stops verifying at
    once); returns :func:`view`. Raises ApiError 400 for a malformed id, 404 NOT_FOUND when
    the channel has no saved settings."""
    _check_id(channel_id)
    doc = channels.get(db(), user_id, channel_id)
    if doc is None:
        raise ApiError(404, "This channel has no settings yet; save them first", "NOT_FOUND")
    settings = {**doc["settings"], "webhook_secret": secrets.token_hex(32)}
    return _store(user_id, channel_id, settings)


def _store(user_id: str, channel_id: str, settings: dict) -> dict:
    try:
        doc = channels.put(db(), user_id, channel_id, settings, handle=settings.get("handle"))
    except channels.HandleTaken:
        raise ApiError(409, "Another channel already uses this public page name",
                       "HANDLE_TAKEN", {"handle": ["Taken; choose another."]}) from None
    return view(channel_id, doc)


def _errors(settings: dict) -> dict:
    """Each bad field of ``settings`` with its reasons (the schema checked types first)."""
    errors: dict = {}
    if template_errors(settings["reply_template"]):
        errors["reply_template"] = template_errors(settings["reply_template"])
    url = settings["discord_webhook_url"]
    if url is not None and not discord_url_ok(url):
        errors["discord_webhook_url"] = ["A Discord webhook URL: https://discord.com/api/"
                                         "webhooks/{id}/{token}."]
    if settings["webhook_url"] is not None and not webhook_url_ok(settings["webhook_url"]):
        errors["webhook_url"] = [f"An https URL of at most {MAX_WEBHOOK_URL_CHARS} characters, "
                                 "without user name or password."]
    handle = settings["handle"]
    if handle is not None and not HANDLE.match(handle):
        errors["handle"] = ["3 to 30 of a-z, 0-9, _ and -, starting with a letter or digit."]
    elif settings["public_page"] and not handle:
        errors["handle"] = ["A public page needs a name (handle)."]
    if settings["duration"] > setting("MAX_VIDEO_DURATION"):
        errors["duration"] = [f"At most {setting('MAX_VIDEO_DURATION'):g} s."]
    return errors


def for_stream(user_id: str, channel_id: Optional[str]) -> dict:
    """The settings a stream save of ``channel_id`` (None: unknown) uses: the owner's, else
    the defaults (:data:`DEFAULTS`)."""
    doc = channels.get(db(), user_id, channel_id) if channel_id and \
        CHANNEL_ID.match(channel_id) else None
    return view(channel_id or "", doc)


def may_clip(settings: dict, nightbot_user: Optional[dict]) -> bool:
    """Whether the Nightbot user may clip under ``settings["min_user_level"]``; a request
    without ``Nightbot-User`` (the token's holder) always may. An unknown ``userLevel``
    counts as ``everyone``."""
    if nightbot_user is None:
        return True
    level = nightbot_user.get("userLevel")
    rank = USER_LEVELS.index(level) if level in USER_LEVELS else 0
    return rank >= USER_LEVELS.index(settings["min_user_level"])


def _check_id(channel_id: str) -> None:
    if not CHANNEL_ID.match(channel_id or ""):
        raise ApiError(400, "channel_id must be a YouTube channel id (UC + 22 characters)",
                       "VALIDATION_ERROR", {"channel_id": ["UC + 22 characters."]})
