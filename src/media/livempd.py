"""Reading a live DASH manifest (an MPD with ``@type="dynamic"``, ISO/IEC 23009-1 §5.3.1.2,
§5.4) for a wall-clock window: which Media Segments of which Representations cover it, where
they are, and when each becomes available. No network; :mod:`src.media.livedash` fetches and
records. The formulas, the hostile-input rules and their limits are in that module's docstring.
"""
from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

from src.media import fragmentcopy
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.fragments import MAX_SEGMENT_SECONDS
from src.media.mpdparse import (
    bad,
    base_url,
    check_size,
    fill,
    integer,
    root_of,
    seconds,
    timeline_times,
)

#: Seconds a reload period is clamped to (ffmpeg writes 500 s for a plain $Number$ template).
UPDATE_RANGE = (0.5, 30.0)
#: ``availabilityStartTime`` at most this far past our clock (a forged or broken clock).
MAX_AHEAD = 24 * 3600.0
#: Shortest believable segment (the stall and reload rules divide by it).
MIN_SEGMENT_SECONDS = 0.1
MAX_TIMESCALE = 10 ** 10


@dataclass(frozen=True)
class Segment:
    """One Media Segment: ``number`` ($Number$), absolute ``url``, wall-clock ``start`` and
    ``duration`` (s)."""

    number: int
    url: str
    start: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Track:
    """A Representation of the Period that holds the window: what maps it to the wall clock."""

    rep_id: str
    kind: str  # "video" | "audio"
    height: int
    bandwidth: int
    codecs: str
    init_url: Optional[str]
    begins: float  # wall clock of the Period's start (AST + Period@start)
    ends: Optional[float]  # the Period's / presentation's end, when known
    timescale: int
    pto: int
    first_number: int
    media: str
    values: dict
    nominal: Optional[int]  # @duration (timescale units), template without timeline
    timeline: Optional[list] = None  # [(t, d)] listed, timescale units
    offset: float = 0.0  # availabilityTimeOffset believed (s)

    def covering(self, t0: float, t1: float) -> list:
        """The segments overlapping [t0, t1] (listed ones, or computed from the template).
        Raises MediaError(FORMAT_UNAVAILABLE) for more than ``fragmentcopy.MAX_PICKED``."""
        found = []
        if self.timeline is not None:
            for k, (t, d) in enumerate(self.timeline):
                start = self.begins + (t - self.pto) / self.timescale
                if start + d / self.timescale > t0 + 1e-3 and start < t1:
                    found.append(self._segment(self.first_number + k, t, start, d))
        else:
            assert self.nominal is not None
            step = self.nominal / self.timescale
            first = max(0, math.floor((t0 - self.begins) / step))
            last = math.ceil((t1 - self.begins) / step) - 1
            if last - first + 1 > fragmentcopy.MAX_PICKED:
                raise MediaError(FORMAT_UNAVAILABLE, detail="too many live segments for a clip")
            found = [self._segment(self.first_number + k, self.pto + k * self.nominal,
                                   self.begins + k * step, self.nominal)
                     for k in range(first, last + 1)]
        if self.ends is not None:
            found = [s for s in found if s.start < self.ends - 1e-3]
        if len(found) > fragmentcopy.MAX_PICKED:
            raise MediaError(FORMAT_UNAVAILABLE, detail="too many live segments for one clip")
        return found

    def step(self, wanted: list) -> float:
        """A segment's duration (s): the template's, else the window's first listed one's."""
        if self.nominal:
            return self.nominal / self.timescale
        if wanted:
            return wanted[0].duration
        return self.timeline[-1][1] / self.timescale if self.timeline else 2.0

    def newest(self, now: float) -> float:
        """Wall-clock end of the newest segment: the last listed one's, else (a template)
        the last one complete at ``now``."""
        if self.timeline:
            t, d = self.timeline[-1]
            return self.begins + (t + d - self.pto) / self.timescale
        step = self.step([])
        return self.begins + max(0, math.floor((now - self.begins) / step)) * step

    def _segment(self, number: int, t: int, start: float, d: int) -> Segment:
        path = fill(self.media, {**self.values, "Number": number, "Time": t})
        return Segment(number, path, start, d / self.timescale)


@dataclass
class Manifest:
    """One load of the MPD: ``dynamic``, ``available_from`` (AST, POSIX s), ``update``
    (reload period, s), ``depth`` (timeShiftBufferDepth, s; None: unbounded), ``tracks``."""

    dynamic: bool
    available_from: float
    update: float
    depth: Optional[float]
    tracks: list = field(default_factory=list)


def _date(text: Optional[str], now: float) -> float:
    """An ``xs:dateTime`` as POSIX seconds (UTC when it names no zone); refused outside
    1970 … now + :data:`MAX_AHEAD` (bad)."""
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise bad("its availabilityStartTime is not a date") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        stamp = value.timestamp()
    except (OverflowError, OSError, ValueError):
        raise bad("its availabilityStartTime is out of range") from None
    if not 0 <= stamp <= now + MAX_AHEAD:
        raise bad("its availabilityStartTime is out of range")
    return stamp


def is_dynamic(data: bytes) -> bool:
    """True when the document ``data`` is an MPD with ``@type="dynamic"`` (§5.3.1.2)."""
    try:
        return root_of(data)[0].get("type") == "dynamic"
    except MediaError:
        return False


def read(data: bytes, url: str, t0: float, now: float,
         available_from: Optional[float] = None) -> Manifest:
    """Parse the MPD ``data`` (fetched from ``url``) for a window starting at ``t0``: the
    Representations of the Period that holds ``t0`` (the last one starting at or before it).
    ``available_from``: the AST of an earlier load (a static MPD — the stream ended — may
    omit it; a dynamic one must not change it). Raises MediaError(FORMAT_UNAVAILABLE)."""
    root, q = root_of(data)
    dynamic = root.get("type", "static") == "dynamic"
    try:
        check_size(root)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if root.get("availabilityStartTime") or available_from is None:
        if not root.get("availabilityStartTime"):
            raise bad("a live MPD without availabilityStartTime")
        ast = _date(root.get("availabilityStartTime"), now)
        if available_from is not None and dynamic and abs(ast - available_from) > 1e-3:
            raise MediaError(FORMAT_UNAVAILABLE, "The live stream restarted inside the clip.",
                             detail="availabilityStartTime changed")
    else:
        ast = available_from
    update = seconds(root.get("minimumUpdatePeriod"), UPDATE_RANGE[1])
    depth = seconds(root.get("timeShiftBufferDepth"), None)
    total = seconds(root.get("mediaPresentationDuration"), None)
    manifest = Manifest(dynamic, ast, min(max(update, UPDATE_RANGE[0]), UPDATE_RANGE[1]),
                        depth if dynamic else None)
    base = base_url(root, q, url)
    periods, running = [], 0.0
    for period in root.findall(q("Period")):
        running = seconds(period.get("start"), running)
        periods.append((running, period))
        running += seconds(period.get("duration"), 0.0)
    chosen = [p for p in periods if ast + p[0] <= t0 + 1e-3] or periods[:1]
    if not chosen:
        raise bad("it has no Period")
    start, period = chosen[-1]
    later = [p[0] for p in periods if p[0] > start]
    end = later[0] if later else (total if total is not None and not dynamic else None)
    pbase = base_url(period, q, base)
    for aset in period.findall(q("AdaptationSet")):
        if aset.find(q("ContentProtection")) is not None:
            continue
        for rep in aset.findall(q("Representation")):
            if rep.find(q("ContentProtection")) is None:
                track = _track(q, period, aset, rep, base_url(rep, q, base_url(aset, q, pbase)),
                               ast + start, ast + end if end is not None else None, now)
                if track is not None:
                    manifest.tracks.append(track)
    return manifest


def _track(q, period, aset, rep, base: str, begins: float, ends: Optional[float],
           now: float) -> Optional[Track]:
    """The :class:`Track` of one Representation with a ``SegmentTemplate`` (inherited
    §5.3.9.1), or None (not audio/video, or no template: not a live layout we read)."""
    attrs = {**aset.attrib, **rep.attrib}
    kind = attrs.get("contentType") or attrs.get("mimeType", "").partition("/")[0]
    nodes = [lv.find(q("SegmentTemplate")) for lv in (period, aset, rep)]
    nodes = [n for n in nodes if n is not None]
    if kind not in ("video", "audio") or not nodes:
        return None
    seg = {key: value for node in nodes for key, value in node.attrib.items()}
    timeline = next((n.find(q("SegmentTimeline")) for n in reversed(nodes)
                     if n.find(q("SegmentTimeline")) is not None), None)
    timescale = integer(seg.get("timescale")) or 1
    pto = integer(seg.get("presentationTimeOffset")) or 0
    nominal, first = integer(seg.get("duration")), integer(seg.get("startNumber"))
    if not 0 < timescale <= MAX_TIMESCALE or pto < 0 or not seg.get("media") \
            or (timeline is None and (nominal is None or not
                MIN_SEGMENT_SECONDS <= nominal / timescale <= MAX_SEGMENT_SECONDS)):
        raise bad("a live SegmentTemplate has no usable timescale, duration or media")
    values = {"RepresentationID": attrs.get("id", ""), "Bandwidth": integer(attrs.get("bandwidth"))}
    times = None
    if timeline is not None:
        # r="-1" on the last entry repeats up to now (§5.3.9.6.2), bounded by timeline_times's cap
        times = timeline_times(timeline, q, nominal, timescale, pto, begins, now, None)
        if any(not MIN_SEGMENT_SECONDS <= d / timescale <= MAX_SEGMENT_SECONDS
               for _, d in times):
            raise bad("a SegmentTimeline duration is out of range")
    try:
        offset = float(seg.get("availabilityTimeOffset") or 0)
    except ValueError:
        offset = 0.0
    if seg.get("availabilityTimeComplete") == "false" or not 0 <= offset <= 60:
        offset = 0.0  # chunks: a whole segment exists only at its end
    init = seg.get("initialization")
    return Track(attrs.get("id", ""), kind, integer(attrs.get("height")) or 0,
                 integer(attrs.get("bandwidth")) or 0, attrs.get("codecs", ""),
                 urllib.parse.urljoin(base, fill(init, values)) if init else None,
                 begins, ends, timescale, pto, 1 if first is None else first,
                 urllib.parse.urljoin(base, seg["media"]), values, nominal, times, offset)


def choose(tracks: list, max_height: int = 1080) -> list:
    """``[video]`` or ``[video, audio]``: the best video at or under ``max_height`` (avc1 first,
    then height, then bandwidth) and the best audio (mp4a first, then bandwidth). Raises
    MediaError(FORMAT_UNAVAILABLE) when there is no video."""
    videos = [t for t in tracks if t.kind == "video" and t.height <= max_height]
    audios = [t for t in tracks if t.kind == "audio"]
    if not videos:
        raise MediaError(FORMAT_UNAVAILABLE, "This live stream offers no video we record.")
    best = [max(videos, key=lambda t: (t.codecs.startswith("avc1"), t.height, t.bandwidth))]
    if audios:
        best.append(max(audios, key=lambda t: (t.codecs.startswith("mp4a"), t.bandwidth)))
    return best
