"""Reading a video page with yt-dlp: the only module that runs yt-dlp's extraction.

:func:`extract_info` returns yt-dlp's processed info dict (formats sorted worst → best by
yt-dlp's default format sort; shared through src/services/info_cache.py), and the rest works on
that dict: listing resolutions for GET /api/video/formats and POST /api/video/resolutions (spec
"Video Endpoints" 6 and 7, "YouTubeService.get_available_formats": ≥720p, highest first) in
:mod:`src.media.formats`, which also probes formats that come without a height; choosing the
streams to fetch in :mod:`src.media.choice`, with yt-dlp's own format selector on the
already-extracted formats (:func:`selector_ydl`, no network). :func:`playlist_info` lists a
playlist page's entries without extracting them. A DASH manifest yt-dlp cannot read (a
SegmentList of byte ranges, issue 12) is read by :mod:`src.media.mpd` instead; yt-dlp's own
MPD parsing is bounded by :func:`src.media.mpdparse.check_size` (it would expand a hostile
SegmentTimeline without limit).

Egress (issue 11, item 4; :mod:`src.media.egress`): the page URL must be on a page host; yt-dlp
makes every request through the guard proxy (:mod:`src.media.guard`), so its redirects and API
calls are checked at connect time, and a failure after a refusal is SOURCE_NOT_ALLOWED. The
result is checked by name too: ``webpage_url`` must be a page URL, and a format whose ``url``,
``manifest_url``, ``fragment_base_url`` or fragment URLs are not allowed is dropped (none left →
SOURCE_NOT_ALLOWED), so nothing downstream is handed a URL the policy refuses.
"""
from __future__ import annotations

import logging
import threading
import urllib.parse
from typing import Optional

import yt_dlp
from yt_dlp.extractor.common import InfoExtractor

from src.media import egress, fragments, guard, mpd, mpdparse, ytdlp_runtime
from src.media.errors import (
    FORMAT_UNAVAILABLE,
    SOURCE_NOT_ALLOWED,
    VIDEO_UNAVAILABLE,
    MediaError,
    classify,
    with_warnings,
)
from src.media.formats import probe_missing

log = logging.getLogger(__name__)

def _bounded_mpd_periods(parse):
    """yt-dlp's ``_parse_mpd_periods`` behind :func:`src.media.mpdparse.check_size`: a hostile
    SegmentTimeline ``r`` is refused before yt-dlp expands it (the ValueError is an extractor
    crash, classified FORMAT_UNAVAILABLE; our own reader then refuses it with its reason)."""
    def bounded(self, mpd_doc, *args, **kwargs):
        mpdparse.check_size(mpd_doc)
        return parse(self, mpd_doc, *args, **kwargs)

    bounded.bounded = True  # type: ignore[attr-defined]  # a mark on the function object
    return bounded


if not getattr(InfoExtractor._parse_mpd_periods, "bounded", False):
    InfoExtractor._parse_mpd_periods = _bounded_mpd_periods(InfoExtractor._parse_mpd_periods)


class _Logger:
    """Route yt-dlp's console output to logging (it would print to stderr otherwise), keeping
    the warnings of this extraction (at most 50): yt-dlp reports a missing JavaScript runtime
    only as a warning, so a failure it explains is told by them
    (:func:`src.media.errors.with_warnings`), whatever ``LOG_LEVEL`` is."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def debug(self, msg):
        log.debug("%s", msg)

    info = debug

    def warning(self, msg):
        if len(self.warnings) < 50:
            self.warnings.append(str(msg))
        log.info("yt-dlp: %s", msg)

    def error(self, msg):
        log.info("yt-dlp: %s", msg)


def _ydl_params(timeout: float = 20, proxy: Optional[str] = None,
                cookiefile: Optional[str] = None, live_from_start: bool = False) -> dict:
    """YoutubeDL parameters: quiet, no cache, our logger, plus the JS runtime, extractor args and
    ``cookiefile`` of :func:`src.media.ytdlp_runtime.ydl_params` (issue 13); ``live_from_start``:
    yt-dlp's option of that name (a live YouTube stream's sequence-number formats; it drops
    every other live format, so it is asked for only for those, src/media/livesq.py)."""
    params = {"quiet": True, "no_warnings": True, "noprogress": True, "noplaylist": True,
              # a playlist's entries are listed, never extracted one by one (issue 18)
              "extract_flat": "in_playlist", "playlistend": MAX_PLAYLIST_ENTRIES,
              "socket_timeout": timeout, "cachedir": False, "logger": _Logger(),
              # permissive, so that processing never fails; select_formats does the real choice
              "format": "bv*+ba/b/bv*/ba", **ytdlp_runtime.ydl_params(cookiefile)}
    if proxy:
        params["proxy"] = proxy  # then yt-dlp ignores the environment's proxies and no_proxy
    if live_from_start:
        params["live_from_start"] = True
    return params


def _extract(url: str, timeout: float, session: guard.Session,
             fallback: bool = False, cookies: Optional[str] = None,
             live_from_start: bool = False) -> Optional[dict]:
    """yt-dlp's info dict for a page URL, every request through the guard ``session``; with
    ``fallback``, our own MPD reader when yt-dlp fails on a manifest (:func:`_read_mpd`).
    ``cookies``: Netscape cookie text, else the server's ``YTDLP_COOKIES_FILE``
    (:func:`src.media.ytdlp_runtime.cookie_file`: a private 0600 copy, removed afterwards).
    Raises MediaError: SOURCE_NOT_ALLOWED when the page URL or the final ``webpage_url`` is not
    on a page host, or yt-dlp failed after the guard refused a connection; else
    :func:`classify`'s code."""
    policy = session.policy
    policy.check_url(url, page_only=True)
    params: dict = {}
    try:
        with ytdlp_runtime.cookie_file(cookies) as cookiefile:
            params = _ydl_params(timeout, session.proxy_url, cookiefile, live_from_start)
            with yt_dlp.YoutubeDL(params) as ydl:
                info = ydl.extract_info(url, download=False)
    except Exception as exc:  # yt-dlp raises DownloadError wrapping the real cause
        warned = params["logger"].warnings if params else []
        error = session.refused() or with_warnings(classify(exc), warned)
        if not fallback or not _may_be_mpd(url, error):
            raise error from exc
        info = _read_mpd(url, session, timeout, error)
    if info and info.get("webpage_url"):
        policy.check_url(info["webpage_url"], page_only=True)
    return info


#: yt-dlp failures after which the document may be an MPD it cannot read (issue 12): an
#: extractor crash or "no formats" (FORMAT_UNAVAILABLE) on any URL, or "unsupported"/unknown on
#: a URL whose path ends in ``.mpd`` — never on a YouTube page.
_MPD_RETRY_CODES = ("VIDEO_UNAVAILABLE", "UNKNOWN_ERROR")


def _may_be_mpd(url: str, error: MediaError) -> bool:
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in ("youtu.be", "youtube.com") or host.endswith(".youtube.com"):
        return False  # a YouTube page is never an MPD: no second fetch of the page
    if error.code == FORMAT_UNAVAILABLE:
        return True
    path = parts.path.lower()
    return error.code in _MPD_RETRY_CODES and path.endswith(".mpd")


def _read_mpd(url: str, session: guard.Session, timeout: float, error: MediaError) -> dict:
    """:func:`src.media.mpd.extract` of ``url``, processed (sorted, completed) by yt-dlp as its
    own extraction would be. Raises ``error`` (yt-dlp's, classified) when the document is not an
    MPD; MediaError(FORMAT_UNAVAILABLE) for an MPD that cannot be read either."""
    try:
        info = mpd.extract(url, session, timeout)
    except mpdparse.NotAnMPD:
        raise error from None
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a hostile manifest trips is its fault
        log.warning("manifest %s unreadable by src.media.mpd: %r", url[:200], exc)
        raise mpdparse.bad("its contents are out of range") from exc
    log.info("yt-dlp could not read the manifest (%s); read by src.media.mpd", error.detail[:200])
    return selector_ydl().process_ie_result(info, download=False)


def format_urls(fmt: dict) -> list:
    """Every URL a format names: ``url``, ``manifest_url``, ``fragment_base_url``, fragments."""
    base = fmt.get("fragment_base_url")
    urls = [fmt.get("url"), fmt.get("manifest_url"), base]
    urls += [fragments.fragment_url(entry, base) for entry in fmt.get("fragments") or []]
    return [url for url in urls if url]


def _drop_refused_formats(info: dict, policy: egress.Policy) -> None:
    """Keep only the formats all of whose URLs the policy allows (in place). Raises
    MediaError(SOURCE_NOT_ALLOWED) when that leaves no format, or no video format."""
    kept, refused = [], None
    for fmt in info.get("formats") or []:
        try:
            for url in format_urls(fmt):
                policy.check_url(url)
            kept.append(fmt)
        except MediaError as exc:
            refused = refused or exc
            log.info("format %s dropped: %s", fmt.get("format_id"), exc.message)
    if refused and all(fmt.get("vcodec") == "none" for fmt in kept):
        raise MediaError(SOURCE_NOT_ALLOWED, refused.message)
    info["formats"] = kept
    info.pop("requested_formats", None)  # yt-dlp's own pick, possibly among the dropped


_local = threading.local()


def selector_ydl() -> yt_dlp.YoutubeDL:
    """This thread's YoutubeDL for format selection (no network use; reused, never closed:
    building one costs ~50 ms, BENCHMARKS.md)."""
    if getattr(_local, "ydl", None) is None:
        _local.ydl = yt_dlp.YoutubeDL(_ydl_params())
    return _local.ydl


def extract_info(url: str, timeout: float = 20, probe: bool = False,
                 cookies: Optional[str] = None, live_from_start: bool = False) -> dict:
    """Extract the info dict of one video (no download, no cache writes).

    ``cookies``: Netscape cookie text of the owner (None: the server's ``YTDLP_COOKIES_FILE``,
    if any); yt-dlp gets them in a private temporary file, deleted afterwards. ``timeout`` is
    yt-dlp's ``socket_timeout`` in seconds (per network operation). Returns the processed
    info dict: ``formats`` sorted worst → best, each with ``url``, ``protocol``,
    ``ext``, ``width``/``height``, ``vcodec``/``acodec`` (``"none"`` when absent) and
    ``http_headers`` — only formats whose URLs the egress policy allows. A DASH manifest yt-dlp
    cannot read (a SegmentList of byte ranges) is read by :mod:`src.media.mpd`. With ``probe``
    (for listing resolutions), video formats without a height (an HLS media playlist, a direct
    link) are probed (:func:`src.media.formats.probe_missing`); a clip job does not need it
    (unknown heights fit any limit; the fetched file says what it is). Raises
    ``live_from_start``: yt-dlp's option (:func:`_ydl_params`). Raises
    :class:`MediaError` (see :func:`src.media.errors.classify`); SOURCE_NOT_ALLOWED (module
    docstring); VIDEO_UNAVAILABLE when the URL is a playlist; FORMAT_UNAVAILABLE for a
    manifest neither yt-dlp nor :mod:`src.media.mpd` can read.
    """
    policy = egress.current()
    with guard.session(policy) as session:
        info = _extract(url, timeout, session, fallback=True, cookies=cookies,
                        live_from_start=live_from_start)
        if not info or info.get("_type") == "playlist" or not info.get("formats"):
            raise MediaError(VIDEO_UNAVAILABLE, "This URL does not point to a single video.")
        _drop_refused_formats(info, policy)
        if probe:
            probe_missing(info, session)
    return info


#: Most entries of a playlist listed (yt-dlp's ``playlistend``: it stops paging there).
MAX_PLAYLIST_ENTRIES = 200


def playlist_info(url: str, timeout: float = 20) -> dict:
    """The entries of a playlist page, listed without extracting any of them (issue 18, item 5:
    a client chooses, the service never downloads the whole playlist).

    Returns ``{"id", "title", "uploader", "count": entries listed, "truncated": bool (more
    than :data:`MAX_PLAYLIST_ENTRIES`), "entries": [{"video_id", "title", "duration" (seconds
    or None), "url"}]}``. Raises MediaError: VIDEO_UNAVAILABLE when ``url`` is not a playlist;
    else as :func:`extract_info`."""
    with guard.session(egress.current()) as session:
        info = _extract(url, timeout, session)
    if not info or info.get("_type") != "playlist":
        raise MediaError(VIDEO_UNAVAILABLE, "This URL does not point to a playlist.")
    entries = [entry for entry in info.get("entries") or [] if isinstance(entry, dict)]
    listed = [{"video_id": entry.get("id"), "title": entry.get("title"),
               "duration": entry.get("duration"),
               "url": entry.get("url") or entry.get("webpage_url")}
              for entry in entries[:MAX_PLAYLIST_ENTRIES]]
    total = info.get("playlist_count")
    return {"id": info.get("id"), "title": info.get("title"),
            "uploader": info.get("uploader") or info.get("channel"), "count": len(listed),
            "truncated": bool(total and total > len(listed)), "entries": listed}


#: yt-dlp's ``live_status`` values: is_upcoming | is_live | post_live (ended, VOD still being
#: processed) | was_live (VOD ready) | not_live.
LIVE_KEYS = ("live_status", "release_timestamp", "timestamp", "duration")


def live_info(url: str, timeout: float = 15, cookies: Optional[str] = None) -> dict:
    """The live facts of a video, or of a channel's current stream when ``url`` is
    ``https://www.youtube.com/channel/{id}/live`` (yt-dlp resolves it to the video).

    Returns ``{"video_id", "live_status", "release_timestamp", "timestamp", "duration"}``
    (timestamps: epoch seconds; ``release_timestamp`` is when a stream started). Raises
    :class:`MediaError`: NOT_LIVE (yt-dlp's ``UserNotLive``: the channel is not live),
    LIVE_NOT_STARTED, PRIVATE_VIDEO, VIDEO_UNAVAILABLE, FORMAT_UNAVAILABLE ("No video formats
    found", e.g. a VOD still being processed), SOURCE_NOT_ALLOWED, … (see
    :func:`src.media.errors.classify` and :func:`extract_info`; ``cookies`` as there).
    """
    with guard.session(egress.current()) as session:
        info = _extract(url, timeout, session, cookies=cookies)
    if not info or info.get("_type") == "playlist":
        raise MediaError(VIDEO_UNAVAILABLE, "This URL does not point to a single video.")
    return {"video_id": info.get("id"), **{key: info.get(key) for key in LIVE_KEYS}}
