"""The WebM stream of a ranged copy (issue 12, item 2): what to fetch of a progressive
WebM/Matroska file so that ffmpeg cuts a local sparse copy of it into the packets it would read
over HTTP.

:func:`src.media.rangedcopy.ranged_copies` drives the rounds, the connections, the sparse copy
and the progress for every stream; it picks this class for a stream whose first bytes are an
EBML header (RFC 8794 §11.2.1, ID ``1A45DFA3``) and :class:`src.media.rangedcopy._Stream` for
an MP4. One interface, so the MP4 and the WebM paths share everything but the index. The
rounds of a WebM stream (:mod:`src.media.webmindex` reads the bytes):

1. the head (``rangedcopy.HEAD_BYTES``): EBML header, SeekHead, Info, Tracks and, with front
   Cues (``-cues_to_front 1``, YouTube's layout), the Cues;
2. more head while :func:`~src.media.webmindex.parse_head` raises ``MoreHead`` (the request at
   least doubles the head, so 4 MiB — ``MAX_HEAD_BYTES`` — takes ≤ 6 rounds), then the Cues
   where the SeekHead puts them (ffmpeg's default: after the clusters), one request;
3. with the segment: the bytes before the first cluster plus ``PROBE_BYTES`` of it (ffmpeg's
   matroska demuxer reads the first blocks on open) and ``cues_span`` — whole clusters, from the
   cluster of the keyframe at or before the start through the cluster holding ``end`` + 1 s.

A file without Cues (live WebM, ``-live 1``), with an index the parser refuses, or with a Cues
element it cannot place raises :class:`~src.media.mp4index.IndexUnsupported`: the caller falls
back to ffmpeg reading the URL (input seeking, ``-ss`` before ``-i``).
"""
from __future__ import annotations

import os
from typing import Optional

from src.media import ebml, rangefetch, webmindex
from src.media.errors import SEGMENT_OUT_OF_RANGE, MediaError
from src.media.mp4index import IndexUnsupported

#: First four bytes of every EBML file (the EBML header's ID, RFC 8794 §11.2.1).
MAGIC = ebml.EBML.to_bytes(4, "big")


class WebmStream:
    """One WebM URL of a ranged copy: its size (bytes), the head fetched from offset 0
    (``data``), the Cues element's bytes when they lie elsewhere, and the parsed index.

    Same interface as :class:`src.media.rangedcopy._Stream`: :meth:`reads` (rounds before
    the segment is known), :meth:`add`, :meth:`locate`, :meth:`media`, :meth:`write`. Raises
    IndexUnsupported (from the constructor, :meth:`add` or :meth:`media`) when the file cannot
    be mapped."""

    suffix = ".webm"

    def __init__(self, url: str, size: int, head: bytes, connections: int):
        self.url, self.size, self.data = url, size, head
        self.head: Optional[webmindex.Head] = None
        self.cues: Optional[webmindex.Cues] = None
        self.pending: list = []
        self.cues_blob, self.cues_at = b"", 0
        self._parse_head()

    def _parse_head(self) -> None:
        try:
            self.head = webmindex.parse_head(self.data, self.size)
        except webmindex.MoreHead as more:
            want = min(self.size, webmindex.MAX_HEAD_BYTES,
                       max(more.size, 2 * len(self.data)))
            if want <= len(self.data):
                raise IndexUnsupported("the WebM head does not grow") from more
            self.pending = [(len(self.data), want - 1)]
            return
        if self.head.cues is not None:
            self.cues = self.head.cues
        else:
            self.pending = [self.head.need]

    def reads(self) -> list:
        """Inclusive byte ranges still to fetch before the segment can be located (``[]``:
        the Cues are known)."""
        pending, self.pending = self.pending, []
        return pending

    def add(self, offset: int, data: bytes) -> None:
        """Keep fetched bytes: more head (``offset`` = the head's length) or the Cues range
        :meth:`reads` asked for. Raises IndexUnsupported for a short read or bad Cues."""
        # parse_head names the Cues range (``need``) whenever the head does not hold them
        need = self.head.need if self.cues is None and self.head is not None else None
        if self.head is not None and need is not None and offset == need[0]:
            if len(data) != need[1] - offset + 1:
                raise IndexUnsupported("the Cues range came back short")
            self.cues = webmindex.parse_cues(data, offset, self.head)
            self.cues_blob, self.cues_at = data, offset
        elif self.head is None and offset == len(self.data):
            self.data += data
            self._parse_head()
        else:
            raise IndexUnsupported(f"unexpected WebM bytes at {offset}")

    def locate(self, start: float, end: float) -> list:
        """Nothing more to read: Cues need no second table (``[]``)."""
        return []

    def media(self, start: float, end: float) -> list:
        """Inclusive byte ranges missing from the copy for seconds ``start``..``end``: the
        bytes up to ``PROBE_BYTES`` into the first cluster, and the clusters
        :func:`~src.media.webmindex.cues_span` names (merged, without what the head holds).

        Raises MediaError(SEGMENT_OUT_OF_RANGE) when ``start`` is at or past the Segment's
        Duration (Info, RFC 9559 §5.1.2.4): ffmpeg's matroska demuxer would seek to the last
        keyframe and cut the last cluster instead of nothing, as it does over HTTP."""
        if self.cues is None:
            raise IndexUnsupported("the WebM Cues were not read")
        assert self.head is not None  # the Cues are only read after the head
        if self.head.duration is not None and start >= self.head.duration:
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The requested segment starts after the end "
                                                   f"of the video ({self.head.duration:.1f} s).")
        first_cluster = self.head.first_cluster or self.cues.points[0][1]
        probe = (0, min(first_cluster + webmindex.PROBE_BYTES, self.size) - 1)
        first, last = webmindex.cues_span(self.cues, start, end)
        return rangefetch.missing([probe, (first, min(last, self.size - 1))], len(self.data))

    def write(self, fd: int) -> None:
        """Write the head and the Cues into the copy ``fd`` (already of the source's size)."""
        os.pwrite(fd, self.data, 0)
        if self.cues_blob:
            os.pwrite(fd, self.cues_blob, self.cues_at)
