"""Video information (issue 18, item 3) and labelled formats (item 4), read from one info dict.

The info is the info cache's (:func:`src.services.info_cache.get_info`): fresh or cached, the
answer is the same, because the cache keeps ``thumbnail`` and the subtitle languages in compact
form (``subtitle_exts`` / ``automatic_caption_exts``: ``{lang: [ext, …]}``, no URLs).

Sizes are shown in SI units (1 kB = 1000 bytes, K/M/G/T as the seed
reference-django-streaming-plan.md names them): ``12.3 MB`` = 12 300 000 bytes.

Geo restriction: yt-dlp's info dict has no geo field (its ``availability`` is ``private``,
``premium_only``, ``subscriber_only``, ``needs_auth``, ``unlisted`` or ``public``); the only
country list yt-dlp knows is ``GeoRestrictedError.countries``, which the YouTube extractor fills
from the player's ``availableCountries`` (or the page's ``regionsAllowed``) when the video is
*not* available from here. So a video that could be read answers ``is_geo_restricted: null``
(unknown) with null country lists, and one that could not is the 422 ``GEO_RESTRICTED`` error
whose ``details.allowed_countries`` lists them when yt-dlp gave them (:func:`geo_error`).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

from ..errors import ApiError
from ..extensions import setting
from ..media import choice, formats
from ..media.errors import GEO_RESTRICTED, MediaError

_UNITS = ("B", "kB", "MB", "GB", "TB")


def human_size(size: Optional[float]) -> Optional[str]:
    """``12_300_000`` → ``"12.3 MB"`` (SI, one decimal from kB up); None → None."""
    if size is None:
        return None
    value, unit = float(size), 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value, unit = value / 1000, unit + 1
    return f"{int(value)} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"


def hms(seconds: Optional[float]) -> Optional[str]:
    """``3725`` → ``"1:02:05"`` (``H:MM:SS``, whole seconds); None → None."""
    if seconds is None:
        return None
    total = int(round(seconds))
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _iso_timestamp(value) -> Optional[str]:
    if not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value, timezone.utc).isoformat().replace("+00:00", "Z")


def _iso_date(value) -> Optional[str]:
    """yt-dlp's ``YYYYMMDD`` → ``YYYY-MM-DD``."""
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else None


def estimated_size(info: dict) -> Optional[int]:
    """Bytes of the whole video in the formats a default clip chooses
    (:func:`src.media.choice.select_formats` with ``DEFAULT_VIDEO_FORMAT`` /
    ``DEFAULT_VIDEO_RESOLUTION``): each chosen format's ``filesize``, else
    ``filesize_approx``, else ``tbr`` (kbit/s) × duration. None when one of them is unknown or
    nothing fits."""
    try:
        plan = choice.select_formats(info, setting("DEFAULT_VIDEO_FORMAT"),
                                     setting("DEFAULT_VIDEO_RESOLUTION"))
    except (MediaError, ValueError):
        return None
    by_id = {f.get("format_id"): f for f in info.get("formats") or []}
    total = 0.0
    for format_id in plan.format_ids:
        fmt = by_id.get(format_id) or {}
        size = fmt.get("filesize") or fmt.get("filesize_approx")
        if not size and fmt.get("tbr") and info.get("duration"):
            size = fmt["tbr"] * 1000 / 8 * float(info["duration"])
        if not size:
            return None
        total += size
    return round(total)


def subtitle_languages(info: dict) -> list[dict]:
    """``[{"lang": "en", "automatic": false, "exts": ["vtt", …]}, …]``: manual subtitles first,
    then automatic captions, each sorted by language (yt-dlp's ``subtitles`` /
    ``automatic_captions``, compacted by the info cache)."""
    found = []
    for key, automatic in (("subtitle_exts", False), ("automatic_caption_exts", True)):
        for lang, exts in sorted((info.get(key) or {}).items()):
            found.append({"lang": lang, "automatic": automatic, "exts": list(exts)})
    return found


def video_info(info: dict) -> dict:
    """The video information object (``GET /api/video/info`` and the clip status'
    ``video_info``): title, uploader/channel (+ ids, URLs), ``duration`` (s) and
    ``duration_hms``, ``upload_date`` (ISO date), ``timestamp`` / ``release_timestamp`` (ISO-8601
    UTC), ``live_status``, ``thumbnail`` (its only media URL), ``filesize`` /
    ``filesize_human`` (:func:`estimated_size`), ``audio_languages`` (the formats' ``language``),
    ``subtitles`` (:func:`subtitle_languages`), ``has_subtitles``, ``availability`` and the geo
    fields (module docstring: null when unknown)."""
    size = estimated_size(info)
    subtitles = subtitle_languages(info)
    duration = info.get("duration")
    return {
        "id": info.get("id"), "title": info.get("title"),
        "uploader": info.get("uploader"), "uploader_id": info.get("uploader_id"),
        "uploader_url": info.get("uploader_url"), "channel": info.get("channel"),
        "channel_id": info.get("channel_id"), "channel_url": info.get("channel_url"),
        "duration": duration, "duration_hms": hms(duration),
        "upload_date": _iso_date(info.get("upload_date")),
        "timestamp": _iso_timestamp(info.get("timestamp")),
        "release_timestamp": _iso_timestamp(info.get("release_timestamp")),
        "live_status": info.get("live_status"), "thumbnail": info.get("thumbnail"),
        "filesize": size, "filesize_human": human_size(size),
        "audio_languages": sorted({str(f["language"]) for f in info.get("formats") or []
                                   if f.get("acodec") != "none" and f.get("language")}),
        "subtitles": subtitles, "has_subtitles": bool(subtitles),
        "availability": info.get("availability"),
        "is_geo_restricted": None, "allowed_countries": None, "blocked_countries": None,
    }


def geo_error(exc: MediaError) -> Optional[ApiError]:
    """The 422 GEO_RESTRICTED answer with ``details.allowed_countries`` when ``exc`` is a geo
    refusal whose yt-dlp ``GeoRestrictedError`` named countries; else None (answer as usual)."""
    if exc.code != GEO_RESTRICTED:
        return None
    cause: Optional[BaseException] = exc.__cause__
    for _ in range(4):  # MediaError ← DownloadError (exc_info) ← GeoRestrictedError
        if cause is None:
            break
        countries = getattr(cause, "countries", None)
        if countries:
            return ApiError(422, exc.message, GEO_RESTRICTED,
                            {"allowed_countries": sorted(str(c) for c in countries)})
        exc_info = getattr(cause, "exc_info", None)
        cause = exc_info[1] if exc_info else cause.__cause__
    return None


def format_details(info: dict, clip_seconds: Optional[float]) -> list[dict]:
    """Every format of ``info`` labelled (:func:`src.media.formats.format_detail`), sizes for
    ``clip_seconds`` of the video (the clip's share of ``duration``; None: the whole video),
    worst → best as yt-dlp sorts them."""
    duration = info.get("duration")
    scale = 1.0
    if clip_seconds is not None and duration:
        scale = min(1.0, max(0.0, clip_seconds / float(duration)))
    return [formats.format_detail(fmt, scale) for fmt in info.get("formats") or []]
