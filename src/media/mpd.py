"""Our own DASH MPD reader (ISO/IEC 23009-1), for manifests yt-dlp's generic extractor cannot read.

yt-dlp's ``_parse_mpd_periods`` reads ``Initialization@sourceURL`` and ``SegmentURL@media`` only,
so the ``SegmentList`` of byte ranges that ``ffmpeg -f dash -single_file 1`` writes
(``<Initialization range>``, ``<SegmentURL mediaRange indexRange>`` against one ``BaseURL`` file)
crashes it with ``KeyError('sourceURL')`` (ytdl-org/youtube-dl#13784). :func:`extract` is the
fallback :mod:`src.media.source` uses then. It returns an info dict shaped like yt-dlp's, so
everything downstream stays the same: per Representation a format with ``format_id``, ``url``
and ``manifest_url`` (the manifest), ``protocol`` ``http_dash_segments``, ``ext``, ``width``,
``height``, ``fps``, ``vcodec``/``acodec`` (``"none"`` for the absent kind), ``tbr``,
``fragment_base_url`` and ``fragments`` in yt-dlp's conventions (yt_dlp/downloader/fragment.py):
first the Initialization Segment ``{"url"[, "byte_range"]}`` without ``duration``, then
``{"url", "duration"[, "byte_range"]}``; ``byte_range`` is ``{"start": a, "end": b}`` with ``end``
exclusive (the MPD's ``a-b`` is inclusive, §5.3.9.2.2). A Representation with ``SegmentBase``
(or no segment information) is one file: it becomes a plain ``http``/``https`` format whose
``url`` is its ``BaseURL``, for the ranged ``sidx`` path.

**Segment times.** ``SegmentList@duration`` is the *target* duration: ffmpeg's muxer closes a
segment at the first keyframe after it, so ``duration="5000000"`` (5 s) describes 6.0 s segments
and choosing by it would cut the wrong moment. Where the MPD names an ``indexRange`` (the
segment's own ``sidx``, 52 bytes at the start of each ``mediaRange``), every one is read (tiny
parallel Range requests through the egress guard, at most :data:`MAX_INDEXED` per
Representation) and the times come from its ``earliest_presentation_time`` (ISO/IEC 14496-12
§8.16.3): a segment lasts until the next one starts, the last one its ``subsegment_duration``
sum. Reading only the segments near a clip would need a search per clip over a list whose
positions are unknown until read; all of them cost one round trip per ≈ 8 segments (eight
connections), measured 1.1 s for the 321 segments of the ``dash_list`` shape locally, 17 KB
(docs/source-shapes.md). Beyond the cap, or when a ``sidx`` cannot be read, the media entries carry
no ``duration`` (the fragment
path then does not plan them; ffmpeg reads the manifest). Without ``indexRange`` the MPD's
durations are used.

The document itself is read by :mod:`src.media.mpdparse` (what is read, hostile manifests).
"""
from __future__ import annotations

import logging
import struct
import time
from typing import Optional

from src.media import rangefetch
from src.media.errors import FORMAT_UNAVAILABLE, SOURCE_NOT_ALLOWED, MediaError
from src.media.mp4index import sidx_header
from src.media.mpdparse import NotAnMPD, finish, looks_like_mpd, parse

log = logging.getLogger(__name__)

MAX_MPD_BYTES = 8 * 1024 * 1024
#: ``sidx`` boxes read per Representation; a longer list keeps no durations (module docstring).
MAX_INDEXED = 2000
#: ``sidx`` boxes read per document (every Representation of every Period).
MAX_INDEXED_IN_ALL = 8000
#: Largest ``indexRange`` read (a one-entry ``sidx`` is 44–52 bytes; a few entries stay small).
MAX_INDEX_BYTES = 4096
CONNECTIONS = 8


def extract(url: str, session, timeout: float = 20, data: Optional[bytes] = None) -> dict:
    """The info dict of the MPD at ``url`` (module docstring), every request through ``session``
    (:class:`src.media.guard.Session`). ``data``: the document when already fetched.

    Returns ``{"id", "title", "webpage_url", "duration" (mediaPresentationDuration, s; None when
    absent), "formats", "extractor": "mpd"}`` — unprocessed (the caller sorts). Raises
    MediaError: FORMAT_UNAVAILABLE (not an MPD, hostile, live, no usable Representation),
    SOURCE_NOT_ALLOWED / SOURCE_HTTP_ERROR from fetching.
    """
    deadline = time.monotonic() + 3 * timeout
    fetcher = rangefetch.Fetcher({}, CONNECTIONS, deadline, socket_timeout=timeout,
                                 egress=session)
    try:
        if data is None:
            data = fetch(url, fetcher)
        info = parse(data, url)
        _read_indexes(info["formats"], fetcher, session.policy)
    finally:
        fetcher.close()
    for fmt in info["formats"]:
        fmt.pop("_periods", None)
    return info


def fetch(url: str, fetcher) -> bytes:
    """The whole document at ``url`` (at most :data:`MAX_MPD_BYTES`), redirects checked. Its
    first 4 KB are read first (a Range request), so a video behind a URL is not downloaded to
    find out it is no manifest. Raises :class:`NotAnMPD` (not an MPD, too large, or unreadable:
    the caller keeps yt-dlp's own error), MediaError(SOURCE_NOT_ALLOWED)."""
    try:
        try:
            [(size, head)] = fetcher.run([(url, 0, 4095, None)], lambda: None)
        except rangefetch.RangesUnsupported:
            size, head = None, None
        if head is not None and not looks_like_mpd(head):
            raise NotAnMPD(FORMAT_UNAVAILABLE, "The source is not a DASH manifest.")
        if head is not None and size is not None and size <= len(head):
            return head
        [(_, data)] = fetcher.run([(url, MAX_MPD_BYTES, None, None)], lambda: None)
        return data
    except MediaError as exc:
        if exc.code == SOURCE_NOT_ALLOWED or isinstance(exc, NotAnMPD):
            raise
        raise NotAnMPD(exc.code, exc.message, exc.detail) from exc

def _read_indexes(formats: list, fetcher, policy) -> None:
    """Replace the MPD's segment times by those of each segment's own ``sidx`` (module
    docstring). A Representation with more than :data:`MAX_INDEXED` indexed segments (or past
    :data:`MAX_INDEXED_IN_ALL` for the document), or one whose ``sidx`` cannot be fetched or
    read, keeps no durations. Raises
    MediaError(SOURCE_NOT_ALLOWED) when the guard refused a connection."""
    jobs: list[tuple] = []  # (url, first, last, None): fetcher.run's ranges
    owners = []
    for fmt in formats:
        segments = [seg for _, _, segs in fmt["_periods"] for seg in segs or ()]
        if not any("index" in seg for seg in segments):
            continue
        try:
            for url in {seg["url"] for seg in segments}:
                policy.check_url(url)
        except MediaError:
            continue  # dropped by the caller's egress check anyway; never fetched
        if (len(segments) > MAX_INDEXED or len(jobs) + len(segments) > MAX_INDEXED_IN_ALL
                or not all("index" in seg for seg in segments)
                or any(seg["index"]["end"] - seg["index"]["start"] > MAX_INDEX_BYTES
                       for seg in segments)):
            finish(fmt, durations=False)
            continue
        owners.append((fmt, segments, len(jobs)))
        jobs += [(seg["url"], seg["index"]["start"], seg["index"]["end"] - 1, None)
                 for seg in segments]
    if not jobs:
        return
    try:
        answers = fetcher.run(jobs, lambda: None)
    except MediaError as exc:
        if exc.code == SOURCE_NOT_ALLOWED:
            raise
        log.info("DASH segment indexes not read: %s", exc.message)
        answers = None
    except rangefetch.RangesUnsupported as exc:
        log.info("DASH segment indexes not read: %s", exc)
        answers = None
    for fmt, segments, first in owners:
        try:
            times = [sidx_times(answers[first + i][1]) for i in range(len(segments))]
        except (TypeError, ValueError, struct.error) as exc:
            log.info("format %s: segment index unreadable (%s)", fmt["format_id"], exc)
            finish(fmt, durations=False)
            continue
        for seg, (timescale, earliest, duration) in zip(segments, times):
            seg.update(t=earliest, d=duration, timescale=timescale)
        finish(fmt)


def sidx_times(data: bytes) -> tuple:
    """``(timescale, earliest_presentation_time, duration)`` of the first ``sidx`` box in
    ``data`` (ISO/IEC 14496-12 §8.16.3; ``duration``: the sum of its references'
    ``subsegment_duration``, in ``timescale`` units). Raises ValueError when there is none or
    it is malformed."""
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size < 8 or offset + size > len(data):
            break
        if kind == b"sidx":
            # IndexUnsupported is a ValueError
            timescale, earliest, _, references = sidx_header(data[offset:offset + size])
            durations = [duration for _, duration, _ in references]
            if not durations or not all(durations):
                raise ValueError("sidx without durations")
            return timescale, earliest, sum(durations)
        offset += size
    raise ValueError("no sidx box in the index range")
