"""Choosing what to fetch for a clip, from one extracted info dict (spec "Video Endpoints" 3,
"Smart Download Logic"): :func:`select_formats` by container and resolution preference, with
yt-dlp's own format selector (``YoutubeDL.build_format_selector``) on the already-extracted
formats (no network: :func:`src.media.source.selector_ydl`), or :func:`plan_for_format_id` for
formats a client named (issue 18). Either gives a :class:`FetchPlan` the fetch paths read.
Extraction itself is :mod:`src.media.source`.
"""
from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

import yt_dlp

from src.media import fragments
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.formats import LADDER, SEEKABLE_PROTOCOLS, height_label
from src.media.source import format_urls, selector_ydl

log = logging.getLogger(__name__)

FORMAT_PREFERENCES = ("mp4", "webm", "best")
#: Every label select_formats accepts: the spec's options plus the lower rungs (e.g. ``480p``).
_LABELS = {f"{rung}p": rung for rung in LADDER}
#: yt-dlp format specs per container preference, tried left to right ("/" = fallback):
#: separate best video + best audio of that container, else one combined (progressive)
#: format, else video alone. Heights are filtered beforehand (see select_formats).
_SPECS = {
    "mp4": "bv[ext=mp4]+ba[ext=m4a]/b[ext=mp4]/bv[ext=mp4]+ba/bv[ext=mp4]",
    "webm": "bv[ext=webm]+ba[ext=webm]/b[ext=webm]/bv[ext=webm]",
    "best": "bv+ba/b/bv",
}

#: ffmpeg muxer options per output container: video clips, then audio clips (issue 18;
#: ``ipod`` is ffmpeg's muxer for ``.m4a``; ID3v2.3 is what most players read).
MUXERS = {"mp4": ["-f", "mp4", "-movflags", "+faststart"], "webm": ["-f", "webm"],
          "mp3": ["-f", "mp3", "-id3v2_version", "3"],
          "m4a": ["-f", "ipod", "-movflags", "+faststart"], "opus": ["-f", "opus"]}


@dataclass
class FetchPlan:
    """What to fetch for one clip: stream URLs plus what ffmpeg needs to read and mux them.

    ``video_url``/``audio_url``: direct URLs (``audio_url`` None for a combined format or a
    video without audio). ``http_headers``: request headers yt-dlp says the URLs need.
    ``container``: ``"mp4"`` or ``"webm"``, the output muxer. ``width``/``height``/``vcodec``/
    ``acodec`` as yt-dlp reports them (None when unknown, e.g. a direct MP4 link).
    ``needs_encode``: mp4 was asked for but the best video at that resolution exists only in
    WebM (YouTube above 1080p), so the segment is fetched as WebM and must be re-encoded.
    ``video_fragments``/``audio_fragments``: the :class:`src.media.fragments.FragmentList` of
    a DASH fragment list (``http_dash_segments``; ``video_url`` is then the manifest), else None.
    ``video_protocol``/``audio_protocol``: yt-dlp's ``protocol`` of each stream (``http``,
    ``https``, ``m3u8_native``, ``http_dash_segments``…; None for no audio stream).
    ``audio_only`` (issue 18): an audio clip (:mod:`src.media.audio`); the ``video_*`` fields
    then name the one stream fetched (audio only, or a combined format whose audio is kept)
    and ``container`` is ``mp3``/``m4a``/``opus``; ``audio_encoder`` (None: stream copy) and
    ``audio_bitrate`` (kbit/s) say how its audio is written.
    """

    video_url: str
    audio_url: Optional[str]
    http_headers: dict = field(default_factory=dict)
    container: str = "mp4"
    width: Optional[int] = None
    height: Optional[int] = None
    vcodec: Optional[str] = None
    acodec: Optional[str] = None
    format_ids: list = field(default_factory=list)
    needs_encode: bool = False
    video_fragments: Optional[fragments.FragmentList] = None
    audio_fragments: Optional[fragments.FragmentList] = None
    video_protocol: str = "https"
    audio_protocol: Optional[str] = None
    audio_only: bool = False
    audio_encoder: Optional[str] = None
    audio_bitrate: Optional[int] = None

    def muxer_args(self) -> list:
        """ffmpeg's output options for :attr:`container` (:data:`MUXERS`)."""
        return list(MUXERS.get(self.container, MUXERS["mp4"]))


def select_formats(info: dict, format_preference: str = "mp4",
                   resolution_preference: str = "best") -> FetchPlan:
    """Choose the streams for a clip from one extracted info dict.

    ``format_preference``: ``mp4`` | ``webm`` | ``best``; ``resolution_preference``: ``720p`` |
    ``1080p`` | ``1440p`` | ``2160p`` | ``4320p`` | ``best`` (no limit) — the spec's options —
    or a lower rung (``144p`` … ``480p``). Rule: the best video at
    or under the requested resolution (unknown heights are acceptable, like yt-dlp's
    ``[height<=?720]``) in the preferred container, plus the best audio of that container (m4a
    for mp4, webm/opus for webm); a combined format when there are no separate streams. For
    ``mp4`` when the best video under the limit exists only as WebM, the WebM streams are chosen
    with ``needs_encode=True`` (spec "Smart Download Logic": ≥1440p → WebM, then H.265).
    A ``webm`` request on a source without WebM raises rather than silently returning MP4.
    Among formats of equal quality (same resolution label, container and stream kind) only
    those on the fastest path are considered: ranged index > DASH fragments > ffmpeg direct
    (:func:`src.media.fragments.prefer_fastest`).

    Raises ValueError for an unknown preference; MediaError(FORMAT_UNAVAILABLE) when nothing fits.
    """
    if format_preference not in FORMAT_PREFERENCES:
        raise ValueError(f"format_preference must be one of {FORMAT_PREFERENCES}")
    limit = _LABELS.get(resolution_preference)
    if resolution_preference != "best" and limit is None:
        raise ValueError(f"resolution_preference must be 'best' or one of {list(_LABELS)}")
    formats = [f for f in info.get("formats") or []
               if f.get("protocol", "http") in SEEKABLE_PROTOCOLS and not f.get("has_drm")
               and (f.get("vcodec") == "none" or limit is None or _fits(f, limit))]
    formats = fragments.prefer_fastest(formats, lambda f: (
        height_label(f.get("width"), f.get("height")), f.get("ext"), f.get("vcodec") == "none",
        f.get("acodec") == "none"))
    needs_encode = False
    ydl = selector_ydl()
    chosen = select(ydl, formats, _SPECS[format_preference])
    if format_preference == "mp4":
        best = select(ydl, formats, "bv/b")
        if best and best.get("ext") == "webm" and _rank(best) > (_rank(chosen) if chosen else -1):
            webm = select(ydl, formats, _SPECS["webm"])
            if webm:
                chosen, needs_encode = webm, True
    if not chosen:
        where = "" if limit is None else f" at or below {resolution_preference}"
        raise MediaError(FORMAT_UNAVAILABLE, f"No {format_preference} format is available"
                         f"{where} for this video." if format_preference != "best" else None)
    return plan_of(chosen, needs_encode)


def _fits(fmt: dict, limit: int) -> bool:
    label = height_label(fmt.get("width"), fmt.get("height"))
    return label is None or int(label[:-1]) <= limit


def _rank(fmt: dict) -> int:
    video = (fmt.get("requested_formats") or [fmt])[0]
    label = height_label(video.get("width"), video.get("height"))
    return int(label[:-1]) if label else 0


def select(ydl: yt_dlp.YoutubeDL, formats: list, spec: str) -> Optional[dict]:
    """First format (or merged pair) yt-dlp's selector picks for ``spec`` among ``formats``
    (yt-dlp format dicts), or None; the context mirrors ``YoutubeDL._select_formats``."""
    if not formats:
        return None
    selector = ydl.build_format_selector(spec)
    ctx = {
        "formats": formats,
        "has_merged_format": any("none" not in (f.get("acodec"), f.get("vcodec")) for f in formats),
        "incomplete_formats": (all(f.get("vcodec") == "none" for f in formats)
                               or all(f.get("acodec") == "none" for f in formats)),
    }
    return next(iter(selector(ctx)), None)


def plan_of(chosen: dict, needs_encode: bool) -> FetchPlan:
    """The :class:`FetchPlan` of one yt-dlp format, or of a merged pair (``requested_formats``:
    video then audio), as :func:`select` returns them."""
    parts = chosen.get("requested_formats") or [chosen]
    video = parts[0]
    audio = parts[1] if len(parts) > 1 else None
    exts = {p.get("ext") for p in parts}
    container = "webm" if exts == {"webm"} else "mp4"
    headers: dict = {}
    for part in parts:
        headers.update(part.get("http_headers") or {})
    cookie = _cookie_header(parts)
    if cookie:
        headers["Cookie"] = cookie
    return FetchPlan(
        video_url=video["url"],
        audio_url=audio["url"] if audio else None,
        http_headers=headers,
        container=container,
        width=video.get("width"),
        height=video.get("height"),
        vcodec=video.get("vcodec"),
        acodec=(audio or video).get("acodec"),
        format_ids=[p.get("format_id") for p in parts],
        needs_encode=needs_encode,
        video_fragments=fragments.from_format(video),
        audio_fragments=fragments.from_format(audio),
        video_protocol=video.get("protocol") or "https",
        audio_protocol=(audio.get("protocol") or "https") if audio else None,
    )


def _cookie_header(parts: list) -> Optional[str]:
    """The ``Cookie`` header for the chosen formats, or None.

    yt-dlp drops ``Cookie`` from ``http_headers`` (advisory GHSA-v8mc-9377-rwjj: unscoped
    cookies leak to other hosts) and puts the cookies of each format's own URL in its
    ``cookies`` field (``name=value; Domain=…; Path=…``, ``YoutubeDL._calc_headers``). The
    plan's headers go to every URL it names (both streams, manifests, fragments), so the header
    is sent only when all those URLs are on the one host the cookies were scoped to; otherwise
    the cookies stay out (logged without their values). Never for HLS (``m3u8*``): a media
    playlist names its segments and keys only when it is read, possibly on other hosts, and
    they get the same headers. On YouTube this costs nothing: the googlevideo.com media URLs
    are signed and a youtube.com cookie jar has nothing for them.
    """
    from yt_dlp.cookies import LenientSimpleCookie

    cookies = {part["cookies"] for part in parts if part.get("cookies")}
    if not cookies:
        return None
    hosts = {urllib.parse.urlsplit(url).netloc.lower()
             for part in parts for url in format_urls(part)}
    hls = any(str(part.get("protocol") or "").startswith("m3u8") for part in parts)
    if len(cookies) > 1 or len(hosts) > 1 or hls:
        log.info("format cookies not sent: %s", "HLS segments may be on other hosts" if hls
                 else f"the plan's URLs span {len(hosts)} hosts")
        return None
    jar = LenientSimpleCookie(cookies.pop())
    return "; ".join(f"{name}={morsel.coded_value}" for name, morsel in jar.items()) or None


#: A download's ``format_id`` (issue 18, item 4): one yt-dlp format id, or ``video+audio``.
FORMAT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(\+[A-Za-z0-9_.-]{1,64})?$"


def plan_for_format_id(info: dict, format_id: str) -> FetchPlan:
    """The plan for exactly the named formats of ``info``, no format logic (issue 18, item 4).

    ``format_id``: one id of ``info["formats"]`` (a format with video, combined or video only),
    or ``"V+A"``: a video format then an audio-only one (yt-dlp's merge syntax, two ids only).
    The container is WebM when every named format is WebM, else MP4 (stream copy; MP4 also
    holds VP9/AV1/Opus). Raises MediaError(FORMAT_UNAVAILABLE) with a message naming the id
    when an id is not offered, not fetchable (a protocol we cannot cut, DRM), an audio-only
    format is named alone or first, or the second of two has video."""
    ids = format_id.split("+")
    by_id = {str(f.get("format_id")): f for f in info.get("formats") or []}
    parts = []
    for one in ids:
        fmt = by_id.get(one)
        if fmt is None:
            raise MediaError(FORMAT_UNAVAILABLE, f"Format {one!r} is not offered for this "
                             "video; GET /api/video/formats/{id}?detail=true lists them.")
        if fmt.get("protocol", "http") not in SEEKABLE_PROTOCOLS or fmt.get("has_drm"):
            raise MediaError(FORMAT_UNAVAILABLE, f"Format {one!r} cannot be fetched by parts "
                             f"(protocol {fmt.get('protocol')}).")
        parts.append(fmt)
    if parts[0].get("vcodec") == "none":
        raise MediaError(FORMAT_UNAVAILABLE, f"Format {ids[0]!r} has no video; name a video "
                         "format, or video+audio.")
    if len(parts) == 2 and (parts[1].get("vcodec") != "none" or parts[1].get("acodec") == "none"):
        raise MediaError(FORMAT_UNAVAILABLE, f"Format {ids[1]!r} is not audio only; the "
                         "second of video+audio must be.")
    return plan_of(parts[0] if len(parts) == 1 else {"requested_formats": parts}, False)
