"""The fragment path: a segmented stream (DASH fragment list, HLS media playlist) cut from only
the segments that cover the clip.

Lists: yt-dlp parses the MPD (ISO/IEC 23009-1 ``SegmentTemplate`` with ``SegmentTimeline``,
``$Number$`` or ``$Time$``) and hands over, per format (``protocol == "http_dash_segments"``),
``fragment_base_url`` and ``fragments``: the first entry is the *Initialization Segment* (a
``path`` or ``url``, no ``duration``), every other one a *Media Segment* with ``duration`` in
seconds, either optionally with ``byte_range`` ``{"start", "end" exclusive}`` (an MPD
``SegmentList`` with ``mediaRange``). HLS lists come from :mod:`src.media.hls` (the media
playlist read at fetch time; an init only for fMP4 — ``EXT-X-MAP`` —, none for MPEG-TS; AES-128
keys). A segment's start is the running sum of the durations — used only to choose segments;
the cut is placed relative to the first chosen one, so a timeline that does not start at 0
(DASH ``S@t``, the mpegts muxer's 1.4 s delay) changes nothing.

Fetching and joining the chosen segments: :mod:`src.media.fragmentcopy`.
"""
from __future__ import annotations

import bisect
import math
import urllib.parse
from dataclasses import dataclass
from typing import Optional

PROTOCOL = "http_dash_segments"
#: Entries read from one format; a longer list is not planned (the direct path reads it).
MAX_FRAGMENTS = 200_000
#: Longest believable Media Segment, seconds (ISO/IEC 23009-1 leaves it open; sites use 1–10 s).
MAX_SEGMENT_SECONDS = 300.0
#: Path speed by yt-dlp protocol, lower is faster: one file read by its index with Range
#: requests (the ranged path) < a fragment list (a DASH list, an HLS media playlist) < what
#: only ffmpeg reads.
_PATH_RANK = {"http": 0, "https": 0, PROTOCOL: 1, "m3u8_native": 1, "m3u8": 1}


@dataclass(frozen=True)
class Key:
    """AES-128 of one segment (RFC 8216 §4.3.2.4, §5.2): the key's absolute ``url`` and the
    16-byte ``iv`` (explicit, or the segment's Media Sequence Number, big-endian)."""

    url: str
    iv: bytes


@dataclass(frozen=True)
class Fragment:
    """One Media Segment: absolute ``url``, ``start`` and ``duration`` in seconds; optional
    ``byte_range`` ``(first, end)`` of that URL, end exclusive (yt-dlp's ``byte_range``
    convention; HLS ``EXT-X-BYTERANGE``, DASH ``mediaRange``); ``key``: AES-128 (HLS);
    ``discontinuity``: an ``EXT-X-DISCONTINUITY`` or a new DASH Period precedes it;
    ``program_date_time``: POSIX seconds of its first sample (``EXT-X-PROGRAM-DATE-TIME``; kept
    for live use); ``init``: ``(url, byte_range)`` of the Initialization Segment that applies
    from this segment on (a later DASH Period's), None to keep the one before."""

    url: str
    start: float
    duration: float
    byte_range: Optional[tuple] = None
    key: Optional[Key] = None
    discontinuity: bool = False
    program_date_time: Optional[float] = None
    init: Optional[tuple] = None


@dataclass
class FragmentList:
    """A format's segments: ``init_url`` (Initialization Segment; None for self-initialising
    segments, HLS MPEG-TS), ``fragments`` in order, ``problem``: why the list cannot be
    planned (None when it can; then ffmpeg reads the URL); ``init_range``/``init_key``: the
    init's byte range and AES-128 key; ``ended``: the list is complete (a VOD; HLS
    ``EXT-X-ENDLIST``), so a start past its end is out of range."""

    init_url: Optional[str]
    fragments: tuple = ()
    problem: Optional[str] = None
    init_range: Optional[tuple] = None
    init_key: Optional[Key] = None
    ended: bool = True

    @property
    def duration(self) -> float:
        last = self.fragments[-1] if self.fragments else None
        return last.start + last.duration if last else 0.0

    def init_of(self, fragment: Fragment) -> tuple:
        """``(url, byte_range, key)`` of the Initialization Segment ``fragment`` needs: the
        last ``init`` at or before it (a DASH Period's), else the list's own; url None for
        self-initialising segments (MPEG-TS)."""
        for earlier in reversed(self.fragments[:self.fragments.index(fragment) + 1]):
            if earlier.init:
                return (*earlier.init, None)
        return self.init_url, self.init_range, self.init_key


def path_rank(fmt: dict) -> int:
    """0 ranged index path, 1 fragment path, 2 ffmpeg direct (module ``_PATH_RANK``)."""
    return _PATH_RANK.get(fmt.get("protocol", "http"), 2)


def prefer_fastest(formats: list, quality) -> list:
    """``formats`` without those that have an equal-quality twin on a faster path.

    ``quality(fmt)``: a hashable key; formats with the same key are equal (the caller uses
    resolution label, container and stream kind; bitrates are not compared). Order is kept.
    """
    best: dict = {}
    for fmt in formats:
        key = quality(fmt)
        best[key] = min(best.get(key, 9), path_rank(fmt))
    return [fmt for fmt in formats if path_rank(fmt) == best[quality(fmt)]]


def from_format(fmt: Optional[dict]) -> Optional[FragmentList]:
    """The :class:`FragmentList` of a yt-dlp format, None when it is not ``http_dash_segments``.

    Reads ``fragment_base_url`` and ``fragments`` (``url`` or ``path`` relative to the base,
    ``duration`` in seconds, optional ``byte_range`` ``{"start": a, "end": b}`` with ``b``
    exclusive — yt-dlp's convention, also what an MPD ``SegmentList`` with ``mediaRange`` gives;
    the first entry, without ``duration``, is the Initialization Segment; a later entry without
    ``duration`` is the next DASH Period's, marked as the next segment's ``init`` with a
    ``discontinuity``, since a Period's timestamps may start again). Never raises: a list
    that is empty, longer than :data:`MAX_FRAGMENTS`, without an Initialization Segment, with a
    malformed byte range, a missing, non-finite, non-positive or absurd
    (> :data:`MAX_SEGMENT_SECONDS`) duration comes back with ``problem`` set.
    """
    if not fmt or fmt.get("protocol") != PROTOCOL:
        return None
    entries, base = fmt.get("fragments"), fmt.get("fragment_base_url")
    if not isinstance(entries, list) or not entries:
        return FragmentList(None, (), "no fragments")
    if len(entries) > MAX_FRAGMENTS:
        return FragmentList(None, (), f"{len(entries)} fragments")
    found: list[Fragment] = []
    init, init_range, clock, period = None, None, 0.0, None
    for index, entry in enumerate(entries):
        url = fragment_url(entry, base)
        span = byte_range(entry.get("byte_range", {})) if url else None
        if url is None or span is False:
            return FragmentList(None, (), f"fragment {index}: no usable url or byte range")
        duration = entry.get("duration")
        if duration is None and index == 0:
            init, init_range = url, span
            continue
        if duration is None and found:  # a later Period's Initialization Segment
            period = (url, span)
            continue
        if not _seconds(duration):
            return FragmentList(None, (), f"fragment {index}: duration {duration!r}")
        found.append(Fragment(url, clock, float(duration), span, discontinuity=bool(period),
                              init=period))
        clock, period = clock + duration, None
    if init is None or not found:
        return FragmentList(None, (), "no initialization segment or no media segment")
    return FragmentList(init, tuple(found), init_range=init_range)


def _seconds(value) -> bool:
    """A believable segment duration: a finite number in (0, MAX_SEGMENT_SECONDS]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 < value <= MAX_SEGMENT_SECONDS)


def byte_range(value):
    """yt-dlp's ``byte_range`` ``{"start": a, "end": b}`` (bytes ``a..b-1``) as ``(a, b)``;
    None for ``{}``/None (the whole object), False for anything else (malformed)."""
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        return False
    first, end = value.get("start"), value.get("end")
    if not isinstance(first, int) or not isinstance(end, int) \
            or isinstance(first, bool) or isinstance(end, bool):
        return False
    return (first, end) if 0 <= first < end else False


def fragment_url(entry, base) -> Optional[str]:
    """The URL of one yt-dlp ``fragments`` entry: its ``url``, else its ``path`` joined to the
    format's ``fragment_base_url`` ``base`` (a path without a base stays relative, which the
    egress check refuses); None for an entry that names neither (or is not a dict). The one
    join, for the egress check by name and for the fetch alike."""
    if not isinstance(entry, dict):
        return None
    url, path = entry.get("url"), entry.get("path")
    if isinstance(url, str) and url:
        return url
    if isinstance(path, str) and path:
        return urllib.parse.urljoin(base if isinstance(base, str) else "", path)
    return None


def pick(flist: FragmentList, start: float, end: float) -> list:
    """The segments overlapping ``start``..``end`` seconds (a segment ending at ``start`` is
    not needed: the next one starts with a keyframe), in order; ``[]`` when none does."""
    starts = [f.start for f in flist.fragments]
    first = max(0, bisect.bisect_right(starts, start) - 1)
    if flist.fragments and flist.fragments[first].start + flist.fragments[first].duration \
            <= start + 1e-6:
        first += 1
    last = bisect.bisect_left(starts, end)
    return list(flist.fragments[first:last])
