"""Reading the Cues of a WebM/Matroska file to find the bytes that hold a time span (issue 12,
item 2): like the MP4 ``moov``/``sidx`` (:mod:`src.media.mp4index`), Cues map keyframe times to
cluster positions, so a ranged fetcher reads only a segment's clusters. Pure parsing, no I/O.

Matroska IDs (RFC 9559; the EBML encoding and header: :mod:`src.media.ebml`, RFC 8794): Segment
``18538067``, SeekHead ``114D9B74`` → Seek ``4DBB`` → SeekID ``53AB``, SeekPosition ``53AC``;
Info ``1549A966`` → TimestampScale ``2AD7B1``, Duration ``4489``; Tracks ``1654AE6B`` →
TrackEntry ``AE`` → TrackNumber ``D7``, TrackType ``83`` (1 = video); Cluster ``1F43B675``; Cues
``1C53BB6B`` → CuePoint ``BB`` → CueTime ``B3``, CueTrackPositions ``B7`` → CueTrack ``F7``,
CueClusterPosition ``F1``. Unknown sizes (RFC 8794 §6.2) are accepted for the Segment and
Clusters (live WebM) only. Seek and cluster positions count from the Segment's first payload byte.

ffmpeg's webm muxer writes Cues after the clusters (named in the front SeekHead), or before them
with ``-cues_to_front 1`` (YouTube's layout). Flow: :func:`parse_head` → :class:`Head` with its
Cues or the range ``need`` that holds them → :func:`parse_cues` → :func:`cues_span`. A sparse
copy ffmpeg cuts exactly like the whole file holds the bytes before the first cluster plus
``PROBE_BYTES``, the Cues, and the span (tests/test_webmindex.py compares packets). What cannot be
mapped raises :class:`~src.media.mp4index.IndexUnsupported`; the caller lets ffmpeg seek.
"""
from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Optional

from src.media import ebml
from src.media.mp4index import MARGIN_AFTER, IndexUnsupported

SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, SEEK_POSITION = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMP_SCALE, DURATION = 0x1549A966, 0x2AD7B1, 0x4489
TRACKS, TRACK_ENTRY, TRACK_NUMBER, TRACK_TYPE = 0x1654AE6B, 0xAE, 0xD7, 0x83
CLUSTER, CUES, CUE_POINT, CUE_TIME = 0x1F43B675, 0x1C53BB6B, 0xBB, 0xB3
CUE_TRACK_POSITIONS, CUE_TRACK, CUE_CLUSTER_POSITION = 0xB7, 0xF7, 0xF1

#: Head bytes we agree to read for Info, Tracks and front Cues (a file that needs more is not
#: laid out the way sites serve WebM).
MAX_HEAD_BYTES = 4 * 1024 * 1024
#: Largest Cues element read (a 10-hour video with a keyframe a second needs ~1 MB).
MAX_CUES_BYTES = 32 * 1024 * 1024
#: Cue points kept at most: a hostile count must not make the worker allocate without end.
MAX_CUE_POINTS = 1_000_000
#: More head asked for when an element is known to start but not where it ends.
HEAD_STEP = 64 * 1024
#: Bytes of the first cluster a sparse copy keeps (measured on ffmpeg 5.1: 32 KB suffices).
PROBE_BYTES = 32 * 1024


class MoreHead(IndexUnsupported):
    """The head ends before Info, Tracks or front Cues: call :func:`parse_head` again with the
    file's first ``size`` bytes (at least ``HEAD_STEP`` more; a caller that will not simply
    falls back, as for any IndexUnsupported)."""

    def __init__(self, size: int):
        super().__init__(f"the first {size} bytes are needed to read the WebM index")
        self.size = size


@dataclass(frozen=True)
class Cues:
    """``points``: ``[(seconds, absolute cluster offset)]`` of one track, by time (offsets never
    decrease); ``end``: absolute offset just past the last cluster."""
    points: list
    end: int


@dataclass
class Head:
    """What the head of a WebM file says; offsets are absolute, in bytes.

    ``segment_start``: the Segment's first payload byte; ``segment_end``: just past it (the
    file size when unknown or larger); ``timestamp_scale``: ns per tick; ``duration``: s or
    None; ``track``: the track whose cues count (first video track, else first track);
    ``first_cluster``: where the first Cluster starts, when the head reached it; ``cues``: when
    the head held them, else ``need``: inclusive range to fetch for :func:`parse_cues`;
    ``level1``: offsets of the top-level elements the SeekHead and the head name.
    """
    segment_start: int
    segment_end: int
    timestamp_scale: int
    duration: Optional[float]
    track: int
    first_cluster: Optional[int]
    level1: tuple
    cues: Optional[Cues] = None
    need: Optional[tuple] = None


def _segment(data: bytes, end: int, file_size: int) -> tuple:
    """Check the EBML header; return the Segment's ``(payload start, end)`` (end: file size
    when unknown or larger)."""
    doc_type, pos = ebml.header(data, end)
    if doc_type not in (b"webm", b"matroska"):
        raise IndexUnsupported("EBML DocType is neither webm nor matroska")
    while True:  # Void elements may stand between the EBML header and the Segment
        eid, start, seg_end = ebml.element(data, pos, end)
        if eid == SEGMENT:
            return start, file_size if seg_end is None else min(seg_end, file_size)
        if eid != ebml.VOID or seg_end is None:
            raise IndexUnsupported(f"element {eid:X} where the Segment should start")
        pos = seg_end


def parse_head(data: bytes, file_size: int) -> Head:
    """Read the EBML header, the Segment, its SeekHead, Info, Tracks and (when they come before
    the clusters) the Cues from ``data``, the file's first bytes; ``file_size`` in bytes.

    Raises :class:`MoreHead` when ``data`` ends before Info, Tracks or front Cues (within
    ``MAX_HEAD_BYTES``), :class:`IndexUnsupported` when the file is not WebM/Matroska, has no
    Cues, or has a malformed index.
    """
    end = min(len(data), file_size)
    seg_start, seg_end = _segment(data, end, file_size)
    seen: dict[int, tuple] = {}  # id → (offset, payload start, payload end)
    cluster, pos, stop = None, seg_start, min(end, seg_end)
    while pos < stop:  # the top-level elements up to the first Cluster: id → (offset, a, b)
        try:
            eid, a, b = ebml.element(data, pos, stop)
        except IndexUnsupported:
            if stop - pos >= 12:  # room for any header: the bytes are bad, not cut short
                raise
            break
        if eid == CLUSTER:
            cluster = pos
            break
        if b is None:
            raise IndexUnsupported(f"element {eid:X} of unknown size at {pos}")
        seen.setdefault(eid, (pos, a, b))
        pos = b
    seeks: dict = {}
    if SEEK_HEAD in seen and seen[SEEK_HEAD][2] <= end:
        for eid, a, b in ebml.children(data, *seen[SEEK_HEAD][1:]):
            fields = ebml.fields(data, a, b) if eid == SEEK else {}
            if SEEK_ID in fields and SEEK_POSITION in fields:
                seeks.setdefault(ebml.uint(data, fields[SEEK_ID]),
                                 seg_start + ebml.uint(data, fields[SEEK_POSITION]))
    level1 = tuple(sorted({p for p, _, _ in seen.values()} | set(seeks.values())
                          | ({cluster} if cluster is not None else set())))
    missing = [i for i in (INFO, TRACKS) if i not in seen or seen[i][2] > end]
    if CUES not in seen and CUES not in seeks and cluster is None:
        missing.append(CUES)  # the head ended before the first Cluster: Cues may follow
    if missing:
        size = min(file_size, max([end + HEAD_STEP] + [
            seen[i][2] if i in seen else seeks.get(i, pos) + HEAD_STEP for i in missing]))
        if size > MAX_HEAD_BYTES or size <= end:
            raise IndexUnsupported("Info, Tracks or Cues not within the head of the file")
        raise MoreHead(size)
    info = ebml.fields(data, *seen[INFO][1:])
    scale = ebml.uint(data, info.get(TIMESTAMP_SCALE), 1_000_000)
    a, b = info.get(DURATION, (0, 0))
    if not 0 < scale <= 10**12 or b - a not in (0, 4, 8):
        raise IndexUnsupported("bad TimestampScale or Duration")
    duration = struct.unpack(">d" if b - a == 8 else ">f", data[a:b])[0] * scale / 1e9 \
        if b > a else None
    head = Head(seg_start, seg_end, scale, duration, _track(data, seen[TRACKS]), cluster, level1)
    cues_at = seen[CUES][0] if CUES in seen else seeks.get(CUES)
    if cues_at is None or not seg_start <= cues_at < seg_end:
        raise IndexUnsupported("no Cues before the first Cluster nor in the SeekHead")
    if CUES in seen and (seen[CUES][2] > seg_end or seen[CUES][2] - cues_at > MAX_CUES_BYTES):
        raise IndexUnsupported("a Cues element larger than the Segment or MAX_CUES_BYTES")
    if CUES in seen and seen[CUES][2] <= end:
        head.cues = parse_cues(data[cues_at:seen[CUES][2]], cues_at, head)
    elif CUES in seen:
        head.need = (cues_at, seen[CUES][2] - 1)
    else:  # only the SeekHead knows it: up to the next element it names
        after = [p for p in level1 if p > cues_at] + [seg_end, cues_at + MAX_CUES_BYTES]
        head.need = (cues_at, min(after) - 1)
    return head


def _track(data: bytes, tracks: tuple) -> int:
    """Number of the first video track in Tracks, else of the first track."""
    numbers = []
    for eid, a, b in ebml.children(data, *tracks[1:]):
        fields = ebml.fields(data, a, b) if eid == TRACK_ENTRY else {}
        if TRACK_NUMBER in fields:
            numbers.append((ebml.uint(data, fields.get(TRACK_TYPE)) != 1,
                            ebml.uint(data, fields[TRACK_NUMBER])))
    if not numbers:
        raise IndexUnsupported("Tracks lists no track")
    return min(numbers, key=lambda n: n[0])[1]


def parse_cues(data: bytes, offset: int, head: Head) -> Cues:
    """The cues of ``head.track`` from ``data``: bytes from the Cues element's header, which is
    at absolute ``offset`` (``head.need[0]``); bytes after the element are ignored.

    Raises :class:`IndexUnsupported` for a truncated or oversized Cues element, more than
    ``MAX_CUE_POINTS`` points, no point for the track, a cluster position outside the Segment
    or before the first cluster, or positions that go backwards as time goes forward.
    """
    eid, a, b = ebml.element(data, 0, len(data))
    if eid != CUES or b is None:
        raise IndexUnsupported("no Cues element where the index says")
    if b > len(data) or b - a > MAX_CUES_BYTES:
        raise IndexUnsupported(f"Cues element of {b - a} bytes not read whole")
    points, tick = [], head.timestamp_scale / 1e9
    for eid, x, y in ebml.children(data, a, b):
        fields = list(ebml.children(data, x, y)) if eid == CUE_POINT else []
        times = [ebml.uint(data, (p, q)) for i, p, q in fields if i == CUE_TIME]
        for i, p, q in fields:
            pos = ebml.fields(data, p, q) if i == CUE_TRACK_POSITIONS and times else {}
            if CUE_CLUSTER_POSITION in pos and ebml.uint(data, pos.get(CUE_TRACK)) == head.track:
                points.append((times[0] * tick,
                               head.segment_start + ebml.uint(data, pos[CUE_CLUSTER_POSITION])))
        if len(points) > MAX_CUE_POINTS:
            raise IndexUnsupported(f"more than {MAX_CUE_POINTS} cue points")
    if not points:
        raise IndexUnsupported(f"no cue points for track {head.track}")
    points.sort()
    low = head.segment_start if head.first_cluster is None else head.first_cluster
    if points[0][1] < low or points[-1][1] >= head.segment_end or any(
            p[1] > q[1] for p, q in zip(points, points[1:])):
        raise IndexUnsupported("cue positions outside the clusters or out of order")
    after = [p for p in head.level1 + (offset,) if p > points[-1][1]]
    return Cues(points, min(after + [head.segment_end]))


def cues_span(cues: Cues, start_s: float, end_s: float) -> tuple:
    """Byte range ``(first, last)`` (inclusive, absolute) of the clusters that cover
    ``start_s``..``end_s`` seconds: from the cluster of the last cue at or before ``start_s``
    (a keyframe of the track; the first cue when none is) through the end of the cluster of the
    last cue at or before ``end_s + MARGIN_AFTER`` (the next cue's cluster − 1, or ``cues.end``
    − 1). The margin: ffmpeg's ``-t`` stops reading once every stream has a packet past the end;
    without one it reads on into bytes a sparse copy does not hold. Raises ValueError when
    ``end_s < start_s``."""
    if end_s < start_s:
        raise ValueError("the span ends before it starts")
    times = [t for t, _ in cues.points]
    positions = [p for _, p in cues.points]
    i = max(0, bisect.bisect_right(times, start_s) - 1)
    j = max(i, bisect.bisect_right(times, end_s + MARGIN_AFTER) - 1)
    k = bisect.bisect_right(positions, positions[j])
    return positions[i], (positions[k] if k < len(positions) else cues.end) - 1
