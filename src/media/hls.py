"""HLS media playlists (RFC 8216) read for the fragment path (:mod:`src.media.fragments`).

yt-dlp lists no ``fragments`` for an HLS format (``protocol`` ``m3u8_native``/``m3u8``): its
``url`` is the *media playlist* (for a master playlist, the chosen variant's), which its own
downloader reads only at download time (``yt_dlp/downloader/hls.py``). So we read it here, once
per clip, through the job's guard session, and turn it into a
:class:`~src.media.fragments.FragmentList`: the segments' running start times from
``#EXTINF`` (§4.3.2.1), ``#EXT-X-BYTERANGE`` (§4.3.2.2), the ``#EXT-X-MAP`` init (§4.3.2.5),
``#EXT-X-KEY`` (§4.3.2.4: AES-128 with the IV given or the Media Sequence Number, §5.2),
``#EXT-X-DISCONTINUITY`` (§4.3.2.3), ``#EXT-X-PROGRAM-DATE-TIME`` (§4.3.2.6),
``#EXT-X-MEDIA-SEQUENCE`` (§4.3.3.2) and ``#EXT-X-ENDLIST`` (§4.3.3.4). URIs are resolved
against the URL the playlist came from after redirects (RFC 3986 §5.1.3; as ffmpeg and yt-dlp
do), each one checked by the egress policy like every other URL.

Two kinds of "no": a playlist that is *invalid* (no ``#EXTM3U``, not UTF-8, a duration that
is not a number, negative or over :data:`fragments.MAX_SEGMENT_SECONDS`, a malformed byte
range or IV, a segment without ``#EXTINF``) is MediaError(FORMAT_UNAVAILABLE) — nothing would
read it better; a *valid* playlist this path does not handle (a master playlist, SAMPLE-AES or
a key format other than ``identity`` — DRM or ffmpeg's business —, more than one init, an
I-frame or gap playlist, more than :data:`fragments.MAX_FRAGMENTS` segments) comes back with
``problem`` set and ffmpeg reads the URL itself (the direct path). Unknown tags and comments
are ignored (§4.1 "clients MUST ignore any tags they do not recognize").
"""
from __future__ import annotations

import datetime
import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Optional

from yt_dlp.utils import parse_m3u8_attributes

from src.media import rangefetch
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.fragments import MAX_FRAGMENTS, MAX_SEGMENT_SECONDS, Fragment, FragmentList, Key

#: yt-dlp protocols whose ``url`` is an HLS media playlist.
PROTOCOLS = ("m3u8_native", "m3u8")
#: Bytes accepted for one playlist (a 10-hour VOD of 2 s segments is ≈ 0.5 MB).
MAX_PLAYLIST_BYTES = 8 * 1024 * 1024
_RANGE = re.compile(r"(\d{1,15})(?:@(\d{1,15}))?")
_IV = re.compile(r"0[xX]([0-9a-fA-F]{1,32})")
_SEQUENCE = re.compile(r"[0-9]{1,20}")
#: Tags that make it a master playlist (§4.3.4) or one we leave to ffmpeg.
_MASTER = ("#EXT-X-STREAM-INF", "#EXT-X-I-FRAME-STREAM-INF", "#EXT-X-MEDIA",
           "#EXT-X-SESSION-DATA", "#EXT-X-SESSION-KEY")
_UNPLANNED = {"#EXT-X-I-FRAMES-ONLY": "an I-frame playlist", "#EXT-X-GAP": "a gap segment"}


def stream_lists(plan, egress, deadline: Optional[float],
                 on_progress: Optional[Callable[[dict], None]] = None) -> list:
    """One :class:`FragmentList` per stream of ``plan`` (video, then audio when it has an
    ``audio_url``): its DASH list as extracted, its HLS media playlist fetched (in parallel,
    through the guard session ``egress``, at most :data:`MAX_PLAYLIST_BYTES` each, plan's
    ``http_headers``) and parsed by :func:`parse`; a list with ``problem`` set for any other
    protocol. ``deadline``: ``time.monotonic()`` limit; ``on_progress`` is called with 0 %
    while the playlists load (an exception from it cancels, as everywhere).

    Raises MediaError: SOURCE_NOT_ALLOWED, SOURCE_HTTP_ERROR (an HTTP error, an unreachable
    source), FORMAT_UNAVAILABLE (a playlist too large or invalid), FFMPEG_FAILED past the
    deadline.
    """
    streams = [(plan.video_fragments, plan.video_url, plan.video_protocol)]
    if plan.audio_url:
        streams.append((plan.audio_fragments, plan.audio_url, plan.audio_protocol))
    wanted = sorted({url for flist, url, protocol in streams
                     if flist is None and protocol in PROTOCOLS})
    texts = dict(zip(wanted, _download(wanted, plan.http_headers, egress, deadline,
                                       on_progress)))
    return [flist if flist is not None else
            parse(*texts[url]) if url in texts else
            FragmentList(None, (), f"protocol {protocol!r} has no fragment list")
            for flist, url, protocol in streams]


def _download(urls: list, headers: dict, egress, deadline, on_progress) -> list:
    """``(body, URL it came from after redirects)`` of each of ``urls`` (whole-object GETs
    through ``egress``), in order."""
    if not urls:
        return []

    def tick() -> None:
        if on_progress:
            on_progress({"download_progress": 0.0, "speed": None, "fps": 0.0, "eta": None})

    try:
        return rangefetch.fetch_whole(urls, headers, egress, deadline, MAX_PLAYLIST_BYTES, tick)
    except MediaError as exc:
        if exc.code == FORMAT_UNAVAILABLE:  # over the size limit
            raise MediaError(FORMAT_UNAVAILABLE, "The source's playlist is larger than the "
                                                 "server accepts.", detail=exc.detail) from exc
        raise


def _invalid(reason: str, number: int = 0) -> MediaError:
    where = f" (line {number})" if number else ""
    return MediaError(FORMAT_UNAVAILABLE, "The source's playlist could not be read.",
                      detail=f"HLS playlist: {reason}{where}")


def parse(data: bytes, url: str) -> FragmentList:
    """The :class:`FragmentList` of one HLS media playlist ``data`` (bytes as served) found at
    ``url`` (absolute; relative URIs are resolved against it).

    Fragments carry ``start`` (running sum of ``#EXTINF`` seconds), ``duration``,
    ``byte_range`` ``(first, end exclusive)`` (``length@offset``; without the offset the range
    follows the previous segment's, which must be of the same URI, §4.3.2.2), ``key`` (AES-128:
    the key URL and the explicit IV, else the Media Sequence Number as a 128-bit big-endian
    integer, §5.2 — ffmpeg writes ``IV=0x0…0`` and uses it, docs/source-shapes.md),
    ``discontinuity`` and ``program_date_time`` (POSIX seconds). ``init_url``/``init_range``/
    ``init_key``: the ``#EXT-X-MAP`` (None for MPEG-TS segments; an encrypted init needs its
    IV, §4.3.2.5). ``ended``: ``#EXT-X-ENDLIST`` was seen. Returns a list with ``problem`` set
    for a playlist this path does not handle; raises MediaError(FORMAT_UNAVAILABLE) for an
    invalid one (module docstring).
    """
    try:
        lines = data.decode("utf-8-sig").splitlines()  # §4.1: UTF-8; tolerate a BOM
    except UnicodeDecodeError:
        raise _invalid("not UTF-8") from None
    if not lines or lines[0].strip() != "#EXTM3U":
        raise _invalid("no #EXTM3U header")
    found: list = []
    sequence, clock, ended = 0, 0.0, False
    duration = span = date = None
    discontinuity, key = False, None  # key: None, or (url, explicit iv or None)
    init = init_key = None
    previous = None  # (uri, end) of the last segment's byte range
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag in _MASTER:
            return FragmentList(None, (), "a master playlist, not a media playlist")
        if tag in _UNPLANNED:
            return FragmentList(None, (), _UNPLANNED[tag])
        if tag == "#EXTINF":
            duration = _number(value.partition(",")[0])
            if duration is None or not 0 <= duration <= MAX_SEGMENT_SECONDS:
                raise _invalid(f"EXTINF {value[:40]!r}", number)
        elif tag == "#EXT-X-BYTERANGE":
            span = _range(value, number)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            if not _SEQUENCE.fullmatch(value.strip()) or int(value) >= 2 ** 64 or found:
                raise _invalid("EXT-X-MEDIA-SEQUENCE", number)  # §4.3.3.2, before any segment
            sequence = int(value)
        elif tag == "#EXT-X-KEY":
            key = _key(parse_m3u8_attributes(value), url, number)
            if isinstance(key, str):
                return FragmentList(None, (), key)
        elif tag == "#EXT-X-MAP":
            attributes = parse_m3u8_attributes(value)
            if not attributes.get("URI"):
                raise _invalid("EXT-X-MAP without URI", number)
            mapped: tuple[str, Optional[tuple[int, int]]] = \
                (_join(url, attributes["URI"], number), None)
            if "BYTERANGE" in attributes:  # the offset defaults to 0 here (§4.3.2.5)
                offset, length = _range(attributes["BYTERANGE"], number)
                mapped = (mapped[0], (offset or 0, (offset or 0) + length))
            if init not in (None, mapped) or (init is None and found):
                return FragmentList(None, (), "more than one EXT-X-MAP")
            if key and init is None and key[1] is None:
                return FragmentList(None, (), "an encrypted EXT-X-MAP without IV")
            init_key = Key(key[0], key[1]) if key and init is None else init_key
            init = mapped
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            date = _posix(value)
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif not line.startswith("#"):
            if duration is None:
                raise _invalid("a segment without EXTINF", number)
            if len(found) >= MAX_FRAGMENTS:
                return FragmentList(None, (), f"over {MAX_FRAGMENTS} segments")
            uri = _join(url, line, number)
            if span and span[0] is None:  # "length" alone: right after the previous range
                if previous is None or previous[0] != uri:
                    raise _invalid("EXT-X-BYTERANGE without offset after another URI", number)
                span = (previous[1], span[1])
            span = (span[0], span[0] + span[1]) if span else None
            iv = key[1] if key and key[1] is not None else sequence.to_bytes(16, "big")
            found.append(Fragment(uri, clock, duration, span, Key(key[0], iv) if key else None,
                                  discontinuity, date))
            previous = (uri, span[1]) if span else None
            clock += duration
            sequence += 1
            duration = span = date = None
            discontinuity = False
    if not found and not ended:
        return FragmentList(None, (), "no segments yet")
    return FragmentList(init[0] if init else None, tuple(found), None,
                        init[1] if init else None, init_key, ended)


def _join(url: str, reference: str, number: int) -> str:
    """``reference`` resolved against ``url`` (RFC 3986 §5); a URI with spaces or control
    characters (none are allowed, RFC 3986 §2) or one urllib cannot split is invalid."""
    if any(ord(char) <= 32 or ord(char) == 127 for char in reference):
        raise _invalid("a URI with spaces or control characters", number)
    try:
        return urllib.parse.urljoin(url, reference)
    except ValueError:  # "Invalid IPv6 URL" and the like
        raise _invalid("a URI that cannot be parsed", number) from None


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _range(value: str, number: int) -> tuple:
    """``length[@offset]`` (§4.3.2.2) as ``(offset or None, length)``, length > 0."""
    match = _RANGE.fullmatch(value.strip())
    if not match or int(match[1]) == 0:
        raise _invalid(f"byte range {value[:40]!r}", number)
    return (int(match[2]) if match[2] is not None else None), int(match[1])


def _key(attributes: dict, url: str, number: int):
    """``#EXT-X-KEY`` as None (METHOD=NONE), ``(key url, iv bytes or None)`` (AES-128), or a
    string: why the segments it covers are left to ffmpeg."""
    method = attributes.get("METHOD")
    if method == "NONE":
        return None
    if method != "AES-128" or attributes.get("KEYFORMAT", "identity") != "identity":
        return f"EXT-X-KEY METHOD={method} KEYFORMAT={attributes.get('KEYFORMAT')}"
    if not attributes.get("URI"):
        raise _invalid("AES-128 key without URI", number)
    iv = None
    if "IV" in attributes:
        match = _IV.fullmatch(attributes["IV"])
        if not match:
            raise _invalid("IV", number)
        iv = bytes.fromhex(match[1].rjust(32, "0"))
    return _join(url, attributes["URI"], number), iv


def _posix(value: str) -> Optional[float]:
    """ISO-8601 date-time (§4.3.2.6) as POSIX seconds; None when unreadable (only live clips
    would use it, so a bad one is ignored rather than refused)."""
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
