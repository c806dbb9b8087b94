"""One extraction per video (issue 13, item 5): yt-dlp's info dict shared through Redis.

Every caller that needs a video's info — the format look-up a save starts, GET
/api/video/formats, POST /api/video/resolutions, the live look-up and the clip job — asks
:func:`get_info` instead of :func:`src.media.source.extract_info`. On real YouTube an extraction
costs seconds (pages, player JS, challenge solving) and counts against the server's standing with
YouTube; a stream with 50 ``!clip``s would otherwise extract 50 times.

Keys: ``info:{youtube_id}`` for a URL naming a YouTube video (every form
:func:`src.utils.validators.parse_youtube_video_id` reads: watch, youtu.be, shorts, live, embed,
m./music. hosts); ``info:url:{sha256(url)[:32]}`` for any other URL (a direct link, a manifest, a
channel's ``/live`` page, a ``/clip/`` URL) — the URL as given, so two spellings of one
non-YouTube URL are two entries. When the owner's cookies are used (issue 13, item 2) the key
ends ``:{sha256(cookies)[:16]}``: what a signed-in extraction sees (members-only formats, URLs
bound to that session) is never handed to another user. An info that resolves to a YouTube video
under another key (a channel's live page) is stored under ``info:{id}`` too; a clip's is not
(its ``duration`` is the section's).

Validity: until the earliest ``expire`` of its media URLs (``expire=`` in the query, or
``/expire/{t}/`` in a manifest path, as googlevideo signs them) minus ``INFO_CACHE_MARGIN_SECONDS``
— a URL handed out must stay usable for the fetch that follows; ``INFO_CACHE_SECONDS`` when no
URL says; ``LIVE_INFO_CACHE_SECONDS`` at most for a live, upcoming or just-ended stream (its
state and manifests change by the minute). The stored dict is the processed info reduced to
what this service reads (:data:`DROPPED_KEYS`, values JSON cannot hold) and at most
:data:`MAX_ENTRY_BYTES`; a larger one is used but not stored.

Concurrency: one extraction per key at a time — a Redis ``SET NX`` lock; the others wait for the
entry (or for the failure, which they share) instead of extracting too. ``RATE_LIMITED``
("This content isn't available, try again later") is tried again ``INFO_RATE_LIMIT_RETRIES``
times with doubling back-off from ``INFO_RATE_LIMIT_BACKOFF_SECONDS`` before it is raised.
A media URL answering 403/410 (expired or refused signature) → :func:`drop` the entry the info
came from, then :func:`get_info` extracts afresh (src/services/download_service.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from typing import Any, Optional

from ..extensions import redis, setting
from ..media import egress, formats, guard, source, subtitles
from ..media.errors import RATE_LIMITED, MediaError
from ..utils.validators import parse_youtube_video_id, youtube_id_of, youtube_watch_url

log = logging.getLogger(__name__)

#: Longest an extraction may hold the lock (seconds): several yt-dlp requests of at most its
#: 20 s socket timeout each, plus the rate-limit back-off. A holder that dies frees it by expiry.
LOCK_SECONDS = 180
#: Longest a caller waits for another's extraction before it extracts itself (seconds).
WAIT_SECONDS = 120
POLL_SECONDS = 0.05
#: How long a failure is kept for the callers that were waiting on it (seconds).
FAILURE_SECONDS = 15
MAX_ENTRY_BYTES = 2 * 1024 * 1024
#: Parts of yt-dlp's info nobody here reads, some of them large (YouTube's captions list runs
#: to hundreds of kilobytes); and ``cookies`` (a format's cookie values: never stored in Redis).
#: ``thumbnail`` (one URL) is kept for the video info (issue 18); the two subtitle dicts are
#: kept only as :data:`SUBTITLE_KEYS` (:func:`compact_subtitles`).
DROPPED_KEYS = {"subtitles", "automatic_captions", "requested_subtitles", "thumbnails",
                "heatmap", "chapters", "description", "tags", "categories",
                "comments", "cookies"}
#: yt-dlp's subtitle dicts → their compact ``{lang: [ext, …]}`` form (no URLs), issue 18.
SUBTITLE_KEYS = {"subtitles": "subtitle_exts", "automatic_captions": "automatic_caption_exts"}
#: … and the key of each in ``subtitle_tracks`` (not yt-dlp's: those are dropped at any depth).
TRACK_KEYS = {"subtitles": "manual", "automatic_captions": "automatic"}
LIVE_STATES = ("is_live", "is_upcoming", "post_live")
#: Where the entry an info came from is noted in the returned dict (for :func:`drop`).
ORIGIN = "_info_cache"
_EXPIRE = re.compile(r"(?:[?&]expire=|/expire/)(\d{9,11})(?:\D|$)")


def get_info(url: str, probe: bool = False, user_id: Optional[str] = None,
             live_from_start: bool = False) -> dict:
    """The processed info dict of ``url`` (shape: :func:`src.media.source.extract_info`), from
    the cache or from one extraction shared with concurrent callers.

    ``probe``: formats without a height must have been probed (listing resolutions); an entry
    stored unprobed is probed once and stored again. ``user_id``: the owner whose cookies the
    extraction uses, when they uploaded some (then the entry is theirs alone).
    ``live_from_start``: the extraction with yt-dlp's option of that name (a live YouTube
    stream's sequence-number formats, src/media/livesq.py), cached under its own key. Raises
    :class:`MediaError` as :func:`src.media.source.extract_info` does; RATE_LIMITED after the
    retries (module docstring)."""
    cookies = _owner_cookies(user_id)
    key = cache_key(url, cookies) + (":from-start" if live_from_start else "")
    r = redis()
    waited_since: Optional[float] = None
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        entry = _load(key, fresh=True)
        if entry is not None:
            return _served(key, entry, probe)
        lock = uuid.uuid4().hex
        if r.set(f"{key}:lock", lock, nx=True, ex=LOCK_SECONDS) or time.monotonic() > deadline:
            try:
                entry = _load(key, fresh=True)  # stored while this caller took the lock
                if entry is not None:
                    return _served(key, entry, probe)
                return _extract(key, url, probe, cookies, live_from_start)
            except MediaError as exc:
                r.set(f"{key}:failed", json.dumps({"code": exc.code, "message": exc.message,
                                                   "status": exc.status, "at": time.time()}),
                      ex=FAILURE_SECONDS)
                raise
            finally:
                if r.get(f"{key}:lock") == lock:
                    r.delete(f"{key}:lock")
        waited_since = waited_since or time.time()
        failed = r.get(f"{key}:failed")
        if failed and json.loads(failed)["at"] >= waited_since:
            fail = json.loads(failed)
            raise MediaError(fail["code"], fail["message"], status=fail["status"])
        time.sleep(POLL_SECONDS)


def drop(info: dict) -> None:
    """Forget the entry ``info`` came from (a media URL of it answered 403/410), unless it was
    replaced meanwhile — by another job that met the same refusal and extracted already."""
    origin = info.get(ORIGIN) or {}
    key = origin.get("key")
    if not key:
        return
    entry = _load(key)
    if entry is not None and entry["token"] == origin.get("token"):
        redis().delete(key)
        log.info("info cache: %s dropped (a media URL was refused)", key.split(":")[1])


def cache_key(url: str, cookies: Optional[str] = None) -> str:
    """``info:{youtube_id}`` or ``info:url:{sha256(url)[:32]}``, plus ``:{sha256(cookies)[:16]}``
    with cookies (module docstring)."""
    video_id = parse_youtube_video_id(url)
    key = f"info:{video_id}" if video_id else \
        "info:url:" + hashlib.sha256(url.encode()).hexdigest()[:32]
    return key + (f":{_cookie_hash(cookies)}" if cookies else "")


def _cookie_hash(cookies: str) -> str:
    return hashlib.sha256(cookies.encode()).hexdigest()[:16]


def expires_at(info: dict) -> Optional[int]:
    """The earliest ``expire`` (epoch seconds) among the media URLs of ``info``, or None."""
    found = []
    for fmt in info.get("formats") or []:
        for name in ("url", "manifest_url", "fragment_base_url"):
            match = _EXPIRE.search(str(fmt.get(name) or ""))
            if match:
                found.append(int(match[1]))
    return min(found) if found else None


def lifetime(info: dict, now: Optional[float] = None) -> float:
    """Seconds ``info`` may be served from the cache (module docstring); ≤ 0: not at all."""
    now = time.time() if now is None else now
    live = info.get("live_status") in LIVE_STATES or bool(info.get("is_live"))
    seconds = float(setting("LIVE_INFO_CACHE_SECONDS" if live else "INFO_CACHE_SECONDS"))
    expire = expires_at(info)
    if expire is not None:
        until_expiry = expire - setting("INFO_CACHE_MARGIN_SECONDS") - now
        seconds = min(seconds, until_expiry) if live else until_expiry
    return seconds


def _owner_cookies(user_id: Optional[str]) -> Optional[str]:
    """The owner's cookies (Netscape text) when they uploaded some, else None."""
    if not user_id:
        return None
    from .cookies_service import cookies_for  # issue 13, item 2; lazily: it reads the store

    return cookies_for(str(user_id))


def _extract(key: str, url: str, probe: bool, cookies: Optional[str],
             live_from_start: bool = False) -> dict:
    """Extract (retrying RATE_LIMITED), store, return the stored form."""
    kwargs: dict = {"cookies": cookies} if cookies else {}
    if live_from_start:
        kwargs["live_from_start"] = True
    retries = int(setting("INFO_RATE_LIMIT_RETRIES"))
    for attempt in range(retries + 1):
        try:
            info = source.extract_info(url, probe=probe, **kwargs)
            break
        except MediaError as exc:
            if exc.code != RATE_LIMITED or attempt >= retries:
                raise
            pause = setting("INFO_RATE_LIMIT_BACKOFF_SECONDS") * 2 ** attempt
            log.info("info cache: rate-limited by the source; trying again in %.1f s", pause)
            time.sleep(pause)
    info.update(compact_subtitles(info))
    entry = _store(key, info, probe)
    alias = None if live_from_start else _video_key(key, info, cookies)
    if alias:
        _store(alias, _as_video(info), probe)
    return _info_of(key, entry) if entry else info


def _store(key: str, info: dict, probed: bool) -> Optional[dict]:
    """Store ``info`` under ``key`` for :func:`lifetime`; return the entry (None: too large or
    too short-lived to store)."""
    entry = {"info": storable(info), "probed": probed, "token": uuid.uuid4().hex,
             "extracted_at": time.time()}
    text = json.dumps(entry, separators=(",", ":"))
    seconds = int(lifetime(info))
    if len(text) > MAX_ENTRY_BYTES or seconds <= 0:
        log.info("info cache: %s not stored (%d bytes, %d s)", key.split(":")[1], len(text),
                 seconds)
        return None
    redis().set(key, text, ex=seconds)
    return json.loads(text)


def _load(key: str, fresh: bool = False) -> Optional[dict]:
    """The entry under ``key``; with ``fresh`` only while :func:`lifetime` under the current
    settings still admits it (the Redis expiry was set from the settings at store time)."""
    raw = redis().get(key)
    entry = json.loads(raw) if raw else None
    if entry and fresh and time.time() >= entry["extracted_at"] + lifetime(
            entry["info"], entry["extracted_at"]):
        return None
    return entry


def _info_of(key: str, entry: dict) -> dict:
    info = entry["info"]
    info[ORIGIN] = {"key": key, "token": entry["token"]}
    return info


def _served(key: str, entry: dict, probe: bool) -> dict:
    """The info of a stored entry; with ``probe``, an unprobed entry's formats are probed (no
    new extraction) and it is stored again for the rest of its lifetime."""
    if not probe or entry["probed"]:
        return _info_of(key, entry)
    info = entry["info"]
    with guard.session(egress.current()) as session:
        formats.probe_missing(info, session)
    entry.update(info=info, probed=True)
    remaining = redis().ttl(key)
    if remaining and remaining > 0:
        redis().set(key, json.dumps(entry, separators=(",", ":")), ex=remaining)
    return _info_of(key, entry)


def _video_key(key: str, info: dict, cookies: Optional[str]) -> Optional[str]:
    """``info:{id}`` of the YouTube video ``info`` resolved to when ``key`` is another key
    (a channel's ``/live`` page), else None. Not for a clip's info: yt-dlp replaced its
    ``duration`` by the section's (``YoutubeDL.process_video_result``), which would clamp
    every other clip of the video."""
    if not str(info.get("extractor_key") or "").startswith("Youtube") \
            or info.get("section_start") is not None or info.get("section_end") is not None:
        return None
    video_id = youtube_id_of(info)
    alias = f"info:{video_id}" + (f":{_cookie_hash(cookies)}" if cookies else "") \
        if video_id else None
    return alias if alias != key else None


def _as_video(info: dict) -> dict:
    """The info of a channel's live page as the video's own (its id and watch URL)."""
    video_id = youtube_id_of(info)
    return {**info, "id": video_id, "webpage_url": youtube_watch_url(video_id or "")}


def compact_subtitles(info: dict) -> dict:
    """``{"subtitle_exts": {lang: [ext, …]}, "automatic_caption_exts": {…}, "subtitle_tracks":
    {"manual": {lang: entry}, "automatic": {…}}}`` from yt-dlp's ``subtitles`` /
    ``automatic_captions`` (``{lang: [{"ext", "url", …}, …]}``): the languages and formats, so
    a cached info answers what a fresh one does, and per language only the one entry a clip
    would fetch (:func:`src.media.subtitles.best_track`; issue 18) — YouTube lists six formats
    for each of a hundred or more caption languages. An info without them (already compact)
    keeps what it has."""
    compact: dict = {}
    tracks_kept: dict = {}
    for raw, kept in SUBTITLE_KEYS.items():
        tracks = info.get(raw)
        if isinstance(tracks, dict):
            tracks = {str(lang): [t for t in entries if isinstance(t, dict)]
                      for lang, entries in tracks.items()
                      if lang != "live_chat" and isinstance(entries, list)}
            compact[kept] = {lang: [str(t["ext"]) for t in entries if t.get("ext")]
                             for lang, entries in tracks.items()}
            tracks_kept[TRACK_KEYS[raw]] = {lang: _entry(best) for lang, entries in tracks.items()
                                if (best := subtitles.best_track(entries)) is not None}
        elif kept in info:
            compact[kept] = info[kept]
    if tracks_kept:
        compact["subtitle_tracks"] = tracks_kept
    elif "subtitle_tracks" in info:
        compact["subtitle_tracks"] = info["subtitle_tracks"]
    return compact


def _entry(track: dict) -> dict:
    """What a clip job needs of one subtitle entry."""
    return {key: track[key] for key in ("ext", "url", "http_headers") if key in track}


def storable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of yt-dlp's info: dicts, lists and scalars kept (tuples as lists), keys
    in :data:`DROPPED_KEYS` or starting ``__`` dropped, anything else (functions, objects)
    dropped. Depth is bounded (yt-dlp's info nests a few levels only)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if depth > 12:
        return None
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            if not isinstance(key, str) or key in DROPPED_KEYS or key.startswith("__") \
                    or key == ORIGIN:
                continue
            if _json_safe(item):
                kept[key] = storable(item, depth + 1)
        return kept
    if isinstance(value, (list, tuple)):
        return [storable(item, depth + 1) for item in value if _json_safe(item)]
    return None


def _json_safe(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, dict, list, tuple))
