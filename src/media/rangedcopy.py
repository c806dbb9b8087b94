"""Local sparse copies of MP4 and WebM streams holding what ffmpeg reads to cut a segment (the
ranged path of :mod:`src.media.segment`).

Each copy is a file of the source's size (``ftruncate``: holes read as zeros) with the fetched
bytes at their original offsets. The requests go in rounds, each round's requests in parallel
over every stream (:class:`src.media.rangefetch.Fetcher`; on YouTube a round costs ~50 ms):

1. the head of each stream (``HEAD_BYTES``): ``ftyp``, the ``moov`` or its start, and a DASH
   file's ``sidx``;
2. a fragmented (DASH) stream: the rest of its ``sidx`` if the head did not hold it, with the
   ``PROBE_BYTES`` after it; a progressive stream: its ``moov`` except the per-sample
   ``stsz``/``stco``/``co64`` entries, a box-header walk of a few rounds
   (:meth:`src.media.mp4sparse.SparseMoov.reads`; nothing when the head holds the ``moov``),
   then in one round the entries of the chunks that hold the segment;
3. the segment's fragments or samples (:func:`src.media.mp4index.sidx_span`,
   :meth:`src.media.mp4sparse.SparseMoov.span`), for a progressive stream with the
   ``PROBE_BYTES`` after its ``moov``, split over the connections.

A stream whose head starts with an EBML header is a WebM (:class:`src.media.webmcopy.WebmStream`:
the same rounds with its Cues as the index); each stream of a pair is told apart on its own.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media import mp4index, mp4sparse, rangefetch, webmcopy
from src.media.ffmpeg import mmss

#: Largest index (``moov``) kept in memory; a bigger one falls back to the direct path.
MAX_INDEX_BYTES = 64 * 1024 * 1024
#: First request per stream: the ``moov`` and ``sidx`` of a DASH file (or the start of a
#: progressive ``moov``) and the first media bytes.
HEAD_BYTES = 32 * 1024
#: Media bytes right after the index kept in the copy: ffmpeg's stream probing
#: (``avformat_find_stream_info``) reads the first packets before it seeks; zeros there change
#: the probed parameters of a DASH stream (measured: 16 KB suffices for both local sources).
PROBE_BYTES = 32 * 1024
#: Parts of the segment smaller than this are not split further.
MIN_PART = 256 * 1024
#: Rounds of the ``moov`` walk (or of a WebM head and Cues) before giving up on a scattered (or
#: hostile) index.
MAX_ROUNDS = 16
#: Largest source a sparse copy is made of (1 TiB; a Content-Range total beyond what a file
#: system holds would make ``ftruncate`` fail): a larger one falls back to the direct path.
MAX_SOURCE_BYTES = 1 << 40


class _Stream:
    """One URL: its size, the bytes fetched from offset 0 (``data``) and, for a progressive
    MP4, the :class:`~src.media.mp4sparse.SparseMoov` being read. ``connections``: how many
    parts a fragmented stream's rest of index is split into."""

    suffix = ".mp4"

    def __init__(self, url: str, size: int, head: bytes, connections: int):
        self.url, self.size, self.data = url, size, head
        boxes = {box.kind: box for box in reversed(mp4index.top_level_boxes(head, size))}
        moov = boxes.get("moov")
        if moov is None:
            raise mp4index.IndexUnsupported("no moov before the media data (not +faststart)")
        if moov.size > MAX_INDEX_BYTES:
            raise mp4index.IndexUnsupported(f"moov of {moov.size} bytes (at most "
                                            f"{MAX_INDEX_BYTES} are read)")
        self.moov, self.sidx, self.windows, self.pending = None, None, None, []
        if moov.end <= len(head) and mp4index.is_fragmented(head[moov.offset:moov.end]):
            self.sidx = boxes.get("sidx")
            if self.sidx is None:
                raise mp4index.IndexUnsupported("fragmented MP4 without a sidx")
            need = min(self.sidx.end + PROBE_BYTES, size)
            if need > len(head):
                self.pending = rangefetch.split(len(head), need - 1, connections, MIN_PART)
        else:
            self.moov = mp4sparse.SparseMoov(moov)
            self.moov.add(0, head)

    def reads(self) -> list:
        """Inclusive ranges still to fetch before :meth:`locate` (``[]``: none)."""
        if self.moov is not None:
            return self.moov.reads()
        pending, self.pending = self.pending, []
        return pending

    def add(self, offset: int, data: bytes) -> None:
        """Keep fetched bytes (a fragmented stream's parts arrive in order)."""
        if self.moov is not None:
            self.moov.add(offset, data)
        elif offset == len(self.data):
            self.data += data
        else:
            raise ValueError("a fragmented stream's index is read in order")

    def locate(self, start: float, end: float) -> list:
        """Find the segment; return the table slices still to fetch (progressive only)."""
        if self.moov is None:
            return []
        self.windows, slices = self.moov.locate(start, end)
        return slices

    def media(self, start: float, end: float) -> list:
        """Inclusive ranges of the segment (and probe bytes) missing from the copy."""
        if self.moov is None:
            sidx = self.sidx
            assert sidx is not None  # __init__ sets it whenever there is no moov to read
            first, last = mp4index.sidx_span(self.data[sidx.offset:sidx.end], sidx.offset,
                                             start, end)
            return rangefetch.missing([(first, last)], len(self.data))
        first, last = self.moov.span(self.windows)
        probe = (self.moov.box.end, min(self.moov.box.end + PROBE_BYTES, self.size) - 1)
        return rangefetch.missing([probe, (first, last)], len(self.data))

    def write(self, fd: int) -> None:
        """Write what was fetched into the copy ``fd`` (already of the source's size)."""
        os.pwrite(fd, self.data, 0)
        for offset, data in (self.moov.pieces() if self.moov is not None else []):
            os.pwrite(fd, data, offset)


def ranged_copies(urls: list, headers: dict, start: float, end: float, tmp: Path, copies: list,
                  on_progress: Optional[Callable[[dict], None]], deadline: Optional[float],
                  connections: int, share: float, egress=None) -> Optional[list]:
    """Fetch what ffmpeg reads to cut ``start``..``end`` seconds of each URL into sparse copies
    ``{tmp}.{i}.mp4`` or ``.webm`` (appended to ``copies`` as they are created, so the caller
    removes them in every case); return their paths, or None when a source is neither an
    indexed MP4 nor a WebM with Cues, or ignores Range requests (the caller falls back to the
    direct path; the copies are removed). Each URL is an MP4 or a WebM by its first bytes.

    ``headers``: request headers; ``connections``: parallel connections per URL;
    ``deadline``: ``time.monotonic()`` value (None: no limit). ``on_progress`` receives the
    spec's progress dict, ``download_progress`` going from 0 to ``share`` as the segment's
    bytes arrive; an exception it raises stops every connection and propagates. Raises
    MediaError (SOURCE_NOT_ALLOWED, SOURCE_HTTP_ERROR, or FFMPEG_FAILED past the deadline) like
    :meth:`src.media.rangefetch.Fetcher.run`. ``egress``: the guard session the requests go
    through (:class:`src.media.guard.Session`; None: a new one with the configured policy).
    """
    fetcher = rangefetch.Fetcher(headers, connections * len(urls), deadline, egress=egress)
    started, state = time.monotonic(), {"planned": 0, "base": 0}

    def tick() -> None:
        if not on_progress:
            return
        done = fetcher.done_bytes - state["base"]
        fraction = min(1.0, done / state["planned"]) if state["planned"] else 0.0
        elapsed = max(1e-3, time.monotonic() - started)
        speed = fraction * (end - start) / elapsed
        rate = done / elapsed
        eta = mmss((state["planned"] - done) / rate) if rate > 0 and state["planned"] else None
        on_progress({"download_progress": round(share * fraction, 1),
                     "speed": f"{speed:.1f}x" if speed > 0 else None, "fps": 0.0, "eta": eta})

    def fetch(needs: list) -> None:
        """One round: ``needs`` = [(stream, first, last)], fetched in parallel, kept."""
        if not needs:
            return
        results = fetcher.run([(s.url, a, b, None) for s, a, b in needs], tick)
        for (stream, a, _), (_, data) in zip(needs, results):
            stream.add(a, data)

    try:
        heads = fetcher.run([(url, 0, HEAD_BYTES - 1, None) for url in urls], tick)
        streams = [_open_stream(url, size, data, connections)
                   for url, (size, data) in zip(urls, heads)]
        for _ in range(MAX_ROUNDS):
            needs = [(s, a, b) for s in streams for a, b in s.reads()]
            if not needs:
                break
            fetch(needs)
        else:
            raise mp4index.IndexUnsupported(f"index not read in {MAX_ROUNDS} rounds")
        fetch([(s, a, b) for s in streams for a, b in s.locate(start, end)])
        jobs, fds = [], []
        try:
            for i, stream in enumerate(streams):
                media = stream.media(start, end)
                copy = Path(f"{tmp}.{i}{stream.suffix}")
                copies.append(copy)
                fds.append(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                os.ftruncate(fds[-1], stream.size)
                stream.write(fds[-1])
                jobs += [(stream.url, a, b, fds[-1]) for first, last in media
                         for a, b in rangefetch.split(first, last, connections, MIN_PART)]
            state["planned"] = sum(b - a + 1 for _, a, b, _ in jobs)
            state["base"] = fetcher.done_bytes
            fetcher.run(jobs, tick)
        finally:
            for fd in fds:
                os.close(fd)
        return [str(copy) for copy in copies]
    except (mp4index.IndexUnsupported, rangefetch.RangesUnsupported):
        for copy in copies:
            copy.unlink(missing_ok=True)
        copies.clear()
        return None
    finally:
        fetcher.close()


def _open_stream(url: str, size: int, head: bytes, connections: int):
    """The stream reader for ``head``, the first bytes of ``url``: WebM after an EBML header,
    else MP4. Raises IndexUnsupported (also for a source over ``MAX_SOURCE_BYTES``)."""
    if size > MAX_SOURCE_BYTES:
        raise mp4index.IndexUnsupported(f"a source of {size} bytes")
    kind = webmcopy.WebmStream if head[:4] == webmcopy.MAGIC else _Stream
    return kind(url, size, head, connections)
