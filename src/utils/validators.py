"""Input rules that are not plain schema types: source URLs and YouTube video ids."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from ..media import egress

YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
                 "youtu.be", "www.youtube-nocookie.com", "youtube-nocookie.com"}
VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
_PATH_ID_RE = re.compile(r"^/(?:shorts|live|embed|v|e)/([A-Za-z0-9_-]{11})(?:[/?#]|$)")


class InvalidSourceURL(ValueError):
    """The URL is not an admissible video source; the message says why."""


def is_video_id(value: str) -> bool:
    """True for an 11-character YouTube video id (letters, digits, ``-``, ``_``)."""
    return bool(VIDEO_ID_RE.match(value or ""))


def youtube_watch_url(video_id: str) -> str:
    """The canonical watch URL of a YouTube video id."""
    return f"https://www.youtube.com/watch?v={video_id}"


def youtube_id_of(info: dict) -> Optional[str]:
    """The YouTube video id an extracted info names: its ``display_id`` (a clip's or a
    channel's live page's info carries the video's id there), else its ``id``, when either is
    an 11-character video id; else None."""
    return next((v for v in (info.get("display_id"), info.get("id"))
                 if isinstance(v, str) and is_video_id(v)), None)


def parse_youtube_video_id(url: str) -> Optional[str]:
    """The video id of a YouTube URL (watch, shorts, live, embed and youtu.be forms), else None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host not in YOUTUBE_HOSTS:
        return None
    if host == "youtu.be":
        candidate = parts.path.lstrip("/").split("/")[0]
        return candidate if is_video_id(candidate) else None
    if parts.path in ("/watch", "/watch/"):
        candidate = (parse_qs(parts.query).get("v") or [""])[0]
        return candidate if is_video_id(candidate) else None
    match = _PATH_ID_RE.match(parts.path)
    return match.group(1) if match else None


_PLAYLIST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{10,64}$")


def parse_youtube_playlist_id(url: str) -> Optional[str]:
    """The list id of a YouTube playlist page (``youtube.com/playlist?list=ID`` on a YouTube
    host), else None. A watch URL with ``&list=`` is a video, not a playlist page."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host not in YOUTUBE_HOSTS or host == "youtu.be" or parts.path.rstrip("/") != "/playlist":
        return None
    candidate = (parse_qs(parts.query).get("list") or [""])[0]
    return candidate if _PLAYLIST_ID_RE.match(candidate) else None


def validate_source_url(url: str, allowed_hosts: Iterable[str],
                        allow_playlist: bool = False) -> tuple[str, Optional[str]]:
    """Check a clip's source URL; return (url, youtube_video_id or None).

    Rules: scheme http or https; no user info (``https://youtube.com@evil.com`` tricks); the
    hostname must equal one of ``allowed_hosts`` exactly (``ALLOWED_SOURCE_HOSTS``; no suffix
    matching, so ``youtube.com.evil.com`` and ``evilyoutube.com`` fail) and the port must be the
    scheme's default unless that entry names it (``127.0.0.1:8765``, ``host:*``) — the egress
    policy's page rule, :class:`src.media.egress.Policy`; a YouTube URL must carry a parseable
    video id — or, with ``allow_playlist`` (the look-ups, not a save), be a playlist page
    (:func:`parse_youtube_playlist_id`). Raises :class:`InvalidSourceURL` (and ValueError for
    an unusable entry).
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidSourceURL("URL is required")
    url = url.strip()
    if len(url) > 2048:
        raise InvalidSourceURL("URL is too long")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError as exc:
        raise InvalidSourceURL("URL is malformed") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSourceURL("URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidSourceURL("URL must not contain user credentials")
    host = egress.normalize_host(parts.hostname or "")
    scheme = parts.scheme.lower()
    port = parts.port or egress.DEFAULT_PORTS[scheme]
    policy = egress.Policy(allowed_hosts)
    if not host or not any(rule.host == host for rule in policy.page):
        raise InvalidSourceURL(f"Host '{host or '?'}' is not an allowed video source")
    if not policy.allows(host, port, scheme, page_only=True):
        raise InvalidSourceURL(f"Port {port} of host '{host}' is not an allowed video source")
    video_id = parse_youtube_video_id(url)
    if host in YOUTUBE_HOSTS and video_id is None \
            and not (allow_playlist and parse_youtube_playlist_id(url)):
        raise InvalidSourceURL("Not a YouTube video URL (no video id found)")
    return url, video_id
