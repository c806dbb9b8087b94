"""Reading a progressive MP4's ``moov`` without most of its per-sample tables, and finding the
bytes that hold a time span in it (no I/O: the caller fetches the ranges named here).

A progressive ``moov`` (ISO/IEC 14496-12 §8.6–8.7) is mostly per-sample tables, and two of them
grow with the video's length yet can be read by position: ``stsz`` (4 bytes per sample) and
``stco``/``co64`` (4 or 8 bytes per chunk) — 290 KB of the 460 KB ``moov`` of a 10-minute 720p
file. ffmpeg builds its index from every entry, but it never reads a sample it does not seek to,
so entries left at zero (size 0 at offset 0) outside the span change nothing: ffmpeg 5.1 cuts
the same packets from such a copy as from the whole file (compared packet by packet in
tests/test_media_segment.py). One header field differs: the video ``btrt`` maximum bitrate of
the cut file, which ffmpeg derives from the source's total sample size. The run-length tables
(``stts`` decode times, ``ctts`` composition offsets, ``stss`` keyframes, ``stsc`` samples per
chunk) cannot be indexed without their prefix and are read whole, as is every other box
(``mvhd``, ``tkhd``, ``edts``, ``stsd``, ``sgpd``, ``udta``...).

:class:`SparseMoov` holds what was fetched of one ``moov`` at its file offsets.
:meth:`SparseMoov.reads` walks the box tree through box headers and names the ranges still
missing (with a little read-ahead for the next box header); once it names none,
:meth:`SparseMoov.locate` finds each track's samples in a span and names the slices of ``stsz``
and ``stco``/``co64`` of the chunks that hold them (plus the first ``PROBE_CHUNKS`` chunks, which
ffmpeg's stream probing reads), and :meth:`SparseMoov.span` turns them into one byte range.
Anything unexpected raises :class:`~src.media.mp4index.IndexUnsupported`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from src.media import mp4tables
from src.media.mp4index import (
    MARGIN_AFTER,
    MARGIN_BEFORE,
    Box,
    IndexUnsupported,
    children,
    malformed_is_unsupported,
)
from src.media.mp4tables import Track

#: Bytes read from a missing box header on: the small boxes that follow it arrive in the same
#: request.
READAHEAD = 4 * 1024
#: Bytes read at the end of the moov and of each ``stbl`` as soon as their size is known.
TAIL = 1024
#: Two needed ranges closer than this are fetched as one (a request costs more than the gap).
MERGE_GAP = 4 * 1024
#: Chunks per track, from the first, whose table entries are kept: ffmpeg's stream probing
#: (``avformat_find_stream_info``) reads the first packets before it seeks.
PROBE_CHUNKS = 64
#: Ranges one walk may name, boxes it may visit; more means a hostile or unusual layout.
MAX_READS, MAX_BOXES = 64, 10_000
#: Tables read in slices (in an ``stbl``): bytes from the end of the box header to entry 0.
_SLICED = {"stsz": 12, "stco": 8, "co64": 8}
#: Containers walked into (by parent); every other box is read whole.
_CONTAINERS = {"moov": "trak", "trak": "mdia", "mdia": "minf", "minf": "stbl"}


@dataclass
class Window:
    """Samples ``first..last`` (0-based, decode order) of ``track`` lie in the span; they fill
    chunks ``chunk_first..chunk_last`` (1-based), which hold samples
    ``sample_first..sample_last``."""
    track: Track
    first: int
    last: int
    chunk_first: int
    chunk_last: int
    sample_first: int
    sample_last: int


class SparseMoov:
    """The fetched parts of one ``moov`` (``box``: its top-level :class:`Box`), kept at their
    file offsets in a zero-filled buffer of the box's size (the caller bounds that size)."""

    def __init__(self, box: Box):
        self.box = box
        self._buf = bytearray(box.size)
        self._have: list = []  # sorted, disjoint [a, b) moov-relative ranges
        self._visited = 0      # boxes the current walk has visited

    def add(self, offset: int, data: bytes) -> None:
        """Keep the part of ``data`` (file bytes from ``offset``) that lies inside the moov."""
        shift = self.box.offset - offset  # index in ``data`` of moov-relative offset 0
        a, b = max(0, -shift), min(self.box.size, len(data) - shift)
        if a >= b:
            return
        self._buf[a:b] = data[a + shift:b + shift]
        merged: list[tuple[int, int]] = []
        for x, y in sorted(self._have + [(a, b)]):
            if merged and x <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], y))
            else:
                merged.append((x, y))
        self._have = merged

    def pieces(self) -> list:
        """``[(file_offset, bytes), ...]``: everything fetched of the moov."""
        return [(self.box.offset + a, bytes(self._buf[a:b])) for a, b in self._have]

    @malformed_is_unsupported
    def reads(self) -> list:
        """Inclusive file ranges ``[(first, last), ...]`` to fetch before the box tree is
        complete (every box but the entries of the sliced tables); ``[]`` once it is. The walk
        goes on past a box it has the header of, so one call names every range it can know of:
        a missing box header with ``READAHEAD`` bytes after it, a missing box (or the count
        fields of a sliced table), and once the last ``TAIL`` bytes of the moov and of each
        ``stbl`` (small boxes often follow the big tables: ``sgpd``, ``sbgp``, ``udta``)."""
        needs: list = [(self.box.size - TAIL, self.box.size)]
        self._visited = 0
        self._walk("moov", self.box.header, self.box.size, needs)
        return self._ranges([gap for a, b in needs for gap in self._gaps(max(0, a), b)])

    def _walk(self, parent: str, pos: int, end: int, needs: list) -> None:
        while pos < end:
            self._visited += 1
            if end - pos < 8 or self._visited > MAX_BOXES:
                raise IndexUnsupported("truncated box" if end - pos < 8 else "too many boxes")
            if self._gaps(pos, pos + 8):
                needs.append((pos, min(self.box.size, pos + READAHEAD)))
                return
            size, kind = struct.unpack_from(">I4s", self._buf, pos)
            header = 8
            if size == 1:
                if end - pos < 16:
                    raise IndexUnsupported("truncated box")
                if self._gaps(pos, pos + 16):
                    needs.append((pos, min(self.box.size, pos + READAHEAD)))
                    return
                size, header = struct.unpack_from(">Q", self._buf, pos + 8)[0], 16
            elif size == 0:
                size = end - pos
            if size < header or pos + size > end:
                raise IndexUnsupported("truncated box")
            kind = kind.decode("latin-1")
            if _CONTAINERS.get(parent) == kind:
                if kind == "stbl":
                    needs.append((max(pos + header, pos + size - TAIL), pos + size))
                self._walk(kind, pos + header, pos + size, needs)
            elif parent == "stbl" and kind in _SLICED:
                needs.append((pos, min(pos + size, pos + header + _SLICED[kind])))
            else:
                needs.append((pos, pos + size))
            pos += size

    def _gaps(self, a: int, b: int) -> list:
        """Parts of the moov-relative range ``[a, b)`` not fetched yet."""
        gaps = []
        for x, y in self._have:
            if y <= a or x >= b:
                continue
            if x > a:
                gaps.append((a, x))
            a = max(a, y)
        if a < b:
            gaps.append((a, b))
        return gaps

    def _ranges(self, wanted: list) -> list:
        """Moov-relative ``[a, b)`` ranges → merged inclusive file ranges."""
        merged: list = []
        for a, b in sorted(wanted):
            if merged and a <= merged[-1][1] + MERGE_GAP:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        if len(merged) > MAX_READS:
            raise IndexUnsupported(f"the index is scattered over {len(merged)} ranges")
        return [(self.box.offset + a, self.box.offset + b - 1) for a, b in merged]

    @malformed_is_unsupported
    def locate(self, start: float, end: float) -> tuple:
        """``(windows, reads)`` for seconds ``start``..``end`` once :meth:`reads` names nothing:
        per vide/soun track with samples in the span, a :class:`Window` — video from the keyframe
        at or before ``start``, every track from ``MARGIN_BEFORE`` s before that keyframe to
        ``MARGIN_AFTER`` s after ``end`` (decode times; edit lists are ignored, the margins
        cover their usual small shifts) — and the inclusive file ranges of the ``stsz`` and
        ``stco``/``co64`` entries still to fetch for them and for the first ``PROBE_CHUNKS``
        chunks of every track. Raises IndexUnsupported for a fragmented ``moov``, a missing or
        inconsistent table, more than ``MAX_SAMPLES`` samples in a track, or no sample in the
        span."""
        moov, header = self._buf, self.box.header
        top = children(moov, header, len(moov))
        if "mvex" in top:
            raise IndexUnsupported("fragmented MP4 whose moov does not fit in the first request")
        tracks = [mp4tables.read_track(moov, trak) for trak in top.get("trak", [])]
        video = [t for t in tracks if t.handler == "vide"]
        if not video:
            raise IndexUnsupported("no video track")
        key = mp4tables.keyframe_time(video[0], start)
        lo_t, hi_t = key - MARGIN_BEFORE, end + MARGIN_AFTER
        windows, wanted = [], []
        for track in tracks:
            probe = min(PROBE_CHUNKS, track.chunks)
            wanted += _slices(track, 1, probe, 0, mp4tables.samples_through(track, probe) - 1)
            if track.handler not in ("vide", "soun"):
                continue
            first = mp4tables.samples_before(track.stts, lo_t * track.timescale, strict=True)
            last = mp4tables.samples_before(track.stts, hi_t * track.timescale, strict=False) - 1
            if first > last:
                continue
            c0, k0 = mp4tables.chunk_of(track, first)
            c1 = mp4tables.chunk_of(track, last)[0]
            k1 = mp4tables.samples_through(track, c1) - 1
            windows.append(Window(track, first, last, c0, c1, k0, k1))
            wanted += _slices(track, c0, c1, k0, k1)
        if not windows:
            raise IndexUnsupported("the span holds no samples")
        gaps = [gap for a, b in wanted for gap in self._gaps(a, b)]
        return windows, self._ranges(gaps)

    @malformed_is_unsupported
    def span(self, windows: list) -> tuple:
        """Byte range ``(first, last)`` (inclusive, file offsets) of every sample of the
        ``windows`` from :meth:`locate`, whose table slices must have been added."""
        moov, lo, hi = self._buf, None, None
        for w in windows:
            t = w.track
            slices = _slices(t, w.chunk_first, w.chunk_last, w.sample_first, w.sample_last)
            if any(self._gaps(a, b) for a, b in slices):
                raise IndexUnsupported("table slices missing")
            fmt = ">I" if t.step == 4 else ">Q"
            for first_chunk, last_chunk, per, base in t.runs:
                chunks = range(max(first_chunk, w.chunk_first), min(last_chunk, w.chunk_last) + 1)
                for chunk in chunks:
                    pos = struct.unpack_from(fmt, moov, t.offsets_at + t.step * (chunk - 1))[0]
                    sample = base + (chunk - first_chunk) * per
                    for k in range(sample, min(sample + per, t.samples)):
                        size = t.fixed or struct.unpack_from(">I", moov, t.sizes_at + 4 * k)[0]
                        if w.first <= k <= w.last:
                            lo = pos if lo is None else min(lo, pos)
                            hi = pos + size - 1 if hi is None else max(hi, pos + size - 1)
                        pos += size
        if lo is None or hi < lo:
            raise IndexUnsupported("the span holds no samples")
        return lo, hi


def _slices(track: Track, c0: int, c1: int, k0: int, k1: int) -> list:
    """Moov-relative ranges of the entries of chunks ``c0..c1`` and samples ``k0..k1``."""
    if c1 < c0:
        return []
    found = [(track.offsets_at + track.step * (c0 - 1), track.offsets_at + track.step * c1)]
    if not track.fixed and k0 <= k1:
        found.append((track.sizes_at + 4 * k0, track.sizes_at + 4 * (k1 + 1)))
    return found


