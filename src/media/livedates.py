"""Dating the segments of a live HLS media playlist (issue 14, item 1): RFC 8216 §4.3.2.6 —
``EXT-X-PROGRAM-DATE-TIME`` applies to the first sample of its segment, and the segments after
it follow by their ``EXTINF`` durations until the next date. :func:`dated_segments` gives each
listed segment its Media Sequence Number (§4.3.3.2: the identity of a segment across reloads)
and its wall-clock date; :mod:`src.media.live` records windows with them. Dates that go
backwards or lie far in the future are refused: a clip of "now" must not be placed by a
forged clock.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from src.media import hls
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.fragments import Fragment

#: Dates may overlap the previous segment's end by this much (rounding) before they count as
#: going backwards.
DATE_SLACK = 0.5
#: Newest segment's end this far past our clock: not a believable date (skewed or forged).
MAX_SKEW = 600.0
_TARGET = re.compile(r"^#EXT-X-TARGETDURATION:\s*([0-9]{1,6})\s*$", re.M)
_SEQUENCE = re.compile(r"^#EXT-X-MEDIA-SEQUENCE:\s*([0-9]{1,20})\s*$", re.M)


@dataclass(frozen=True)
class Dated:
    """A listed segment: Media Sequence Number, the fragment, ``date`` (POSIX seconds of its
    first sample)."""

    sequence: int
    fragment: Fragment
    date: float

    @property
    def end(self) -> float:
        return self.date + self.fragment.duration


def dated_segments(data: bytes, url: str, now: float) -> tuple:
    """``(dated segments in order, target duration s, init (url, range, key) or None,
    ended)`` of one media playlist ``data`` found at ``url``; ``now``: our clock (POSIX s).

    Dates per §4.3.2.6 (carried forward by EXTINF; segments before the first date are left
    out). Raises MediaError(FORMAT_UNAVAILABLE): an invalid playlist (:func:`hls.parse`), one
    the fragment path does not handle (master, SAMPLE-AES…), segments but no
    PROGRAM-DATE-TIME, dates going backwards by more than :data:`DATE_SLACK` or ending more
    than :data:`MAX_SKEW` past ``now``.
    """
    flist = hls.parse(data, url)
    text = data.decode("utf-8-sig")  # parse() proved it decodes
    if flist.problem and flist.problem != "no segments yet":
        raise MediaError(FORMAT_UNAVAILABLE, detail=f"live HLS playlist: {flist.problem}")
    target = _TARGET.search(text)
    longest = max((f.duration for f in flist.fragments), default=1.0)
    seconds = min(max(float(target[1]) if target else longest, 1.0), 60.0)
    first = _SEQUENCE.search(text)
    sequence = int(first[1]) if first else 0
    found: list = []
    date: Optional[float] = None
    for number, fragment in enumerate(flist.fragments, start=sequence):
        if fragment.program_date_time is not None:
            stated = fragment.program_date_time
            if found and stated < found[-1].end - DATE_SLACK:
                raise bad_dates("a PROGRAM-DATE-TIME goes backwards")
            date = stated
        if date is not None:
            found.append(Dated(number, fragment, date))
            date += fragment.duration
    if flist.fragments and not found:
        raise MediaError(FORMAT_UNAVAILABLE, "This live stream does not date its segments.",
                         detail="live HLS playlist without EXT-X-PROGRAM-DATE-TIME")
    if found and not (math.isfinite(found[-1].end) and found[-1].end <= now + MAX_SKEW):
        raise bad_dates("PROGRAM-DATE-TIME far in the future")
    init = (flist.init_url, flist.init_range, flist.init_key) if flist.init_url else None
    return found, seconds, init, flist.ended


def bad_dates(detail: str) -> MediaError:
    """MediaError(FORMAT_UNAVAILABLE): the playlist's dates cannot be trusted, and why."""
    return MediaError(FORMAT_UNAVAILABLE, "The live stream's segment dates cannot be trusted.",
                      detail=f"live HLS playlist: {detail}")
