"""Reading the index of an MP4 file to find the bytes that hold a time span (no media decoding).

Two layouts are understood, the ones video sites serve (ISO/IEC 14496-12, "ISO base media file
format"; box names below are that standard's):

- progressive MP4 (``ftyp`` ``moov`` ``mdat``, YouTube's format 18 and most direct links): the
  ``moov`` sample tables (``stts`` decode times, ``stss`` keyframes, ``stsz`` sizes, ``stsc``
  samples per chunk, ``stco``/``co64`` chunk offsets) give every sample's time and byte range;
  :mod:`src.media.mp4sparse` reads only the parts of them a span needs (the arithmetic over
  one track's tables is :mod:`src.media.mp4tables`);
- fragmented MP4 with one ``sidx`` for the whole file (DASH on-demand profile, YouTube's separate
  video/audio formats): the ``sidx`` lists every fragment's size, duration and whether it starts
  with a keyframe (SAP).

This module holds what both share: :func:`top_level_boxes` walks what the head of the file
holds, :func:`is_fragmented` tells the layouts apart, the box and table readers the other
modules use, and :func:`sidx_span` turns a time span into one byte range of a fragmented file.
Anything else (WebM, an MP4 with several ``sidx`` or none, an index that cannot be parsed)
raises :class:`IndexUnsupported`, and the caller falls back to letting ffmpeg seek over HTTP.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import wraps
from typing import Optional

#: Seconds of samples kept beyond the span on each side: ffmpeg's demuxer reads a little past the
#: requested end (it interleaves streams by decode time within ~1 s) and audio starts at the
#: sample before the video keyframe.
MARGIN_BEFORE, MARGIN_AFTER = 0.5, 1.0


#: Samples per track we agree to index (a 10-hour 60 fps video has 2.2 million): a hostile
#: ``stts``/``stsz`` count must not keep the worker looping or allocating.
MAX_SAMPLES = 5_000_000


class IndexUnsupported(ValueError):
    """The file's layout is not one this module can map to byte ranges."""


def malformed_is_unsupported(parse):
    """Turn the errors a malformed or hostile index causes while parsing (short reads, zero
    timescales, references past a table) into :class:`IndexUnsupported`, so the caller falls
    back to the direct path instead of failing the job."""
    @wraps(parse)
    def wrapper(*args, **kwargs):
        try:
            return parse(*args, **kwargs)
        except (struct.error, ZeroDivisionError, IndexError, OverflowError) as exc:
            raise IndexUnsupported(f"malformed index: {exc}") from exc

    return wrapper


@dataclass
class Box:
    kind: str
    offset: int      # of the box header in the file
    size: int        # whole box, header included (0: extends to the end of the file)
    header: int      # header length: 8, or 16 with a 64-bit size

    @property
    def end(self) -> int:
        return self.offset + self.size


@malformed_is_unsupported
def top_level_boxes(data: bytes, file_size: int) -> list:
    """Boxes whose headers lie in ``data`` (the file's first bytes): ``[Box, ...]`` in order.

    The walk stops at the first header that does not fit in ``data``; the last box may extend
    past it. Raises :class:`IndexUnsupported` when the file does not start with ``ftyp``.
    """
    boxes, offset = [], 0
    while offset + 8 <= min(len(data), file_size):
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > len(data):
                break
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = file_size - offset
        if size < header:
            raise IndexUnsupported(f"bad box size {size} at {offset}")
        boxes.append(Box(kind.decode("latin-1"), offset, size, header))
        offset += size
    if not boxes or boxes[0].kind != "ftyp":
        raise IndexUnsupported("not an ISO-BMFF file (no ftyp box)")
    return boxes


def children(data: bytes | bytearray, start: int, end: int) -> dict:
    """Child boxes of a container payload ``data[start:end]``: kind → list of (start, end) of
    each child's payload."""
    found: dict = {}
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        if size < header or start + size > end:
            raise IndexUnsupported("truncated box")
        found.setdefault(kind.decode("latin-1"), []).append((start + header, start + size))
        start += size
    return found


def box_path(data: bytes | bytearray, span: tuple, *kinds: str) -> Optional[tuple]:
    """Payload (start, end) of the first ``kinds[0]`` child of the container payload ``span``,
    then of its first ``kinds[1]`` child, and so on; None when one is missing."""
    for kind in kinds:
        found = children(data, *span).get(kind)
        if not found:
            return None
        span = found[0]
    return span


def table(data: bytes | bytearray, span: tuple, fmt: str, skip: int = 8) -> list:
    """Entries of a full box table: ``count`` at ``skip - 4``, then ``count`` × ``fmt``."""
    count = struct.unpack_from(">I", data, span[0] + skip - 4)[0]
    step = struct.calcsize(fmt)
    if span[0] + skip + count * step > span[1]:
        raise IndexUnsupported("table longer than its box")
    return list(struct.iter_unpack(fmt, data[span[0] + skip:span[0] + skip + count * step]))


@malformed_is_unsupported
def is_fragmented(moov: bytes) -> bool:
    """True when the ``moov`` (the box bytes, header included) has an ``mvex`` (fragmented)."""
    return "mvex" in children(moov, 8, len(moov))


def sidx_header(sidx: bytes) -> tuple:
    """``(timescale, earliest_presentation_time, first_offset, references)`` of a whole
    ``sidx`` box (ISO/IEC 14496-12 §8.16.3), ``references``: ``[(reference_type << 31 | size,
    subsegment_duration, SAP word), ...]``. Raises :class:`IndexUnsupported` for a zero
    timescale, ``struct.error``/IndexError when the box is cut short."""
    version = sidx[8]
    timescale = struct.unpack_from(">I", sidx, 16)[0]
    if timescale == 0:
        raise IndexUnsupported("sidx with a zero timescale")
    earliest, first_offset = struct.unpack_from(">II" if version == 0 else ">QQ", sidx, 20)
    pos = 28 if version == 0 else 36
    count = struct.unpack_from(">H", sidx, pos + 2)[0]
    return timescale, earliest, first_offset, [
        struct.unpack_from(">III", sidx, pos + 4 + 12 * i) for i in range(count)]


@malformed_is_unsupported
def sidx_span(sidx: bytes, sidx_offset: int, start: float, end: float) -> tuple:
    """Byte range ``(first, last)`` (inclusive) of the fragments that cover ``start``..``end``:
    from the last fragment starting with a keyframe (SAP) at or before ``start`` through the
    last fragment that starts before ``end + MARGIN_AFTER``. ``sidx``: the whole box,
    header included, found at file offset ``sidx_offset``. Raises :class:`IndexUnsupported` for
    a hierarchical ``sidx`` (references to other ``sidx`` boxes)."""
    timescale, earliest, first_offset, references = sidx_header(sidx)
    offset, t = sidx_offset + len(sidx) + first_offset, earliest
    first = last = None
    for ref, duration, sap in references:
        if ref >> 31:
            raise IndexUnsupported("hierarchical sidx")
        size = ref & 0x7FFFFFFF
        begins, ends = t / timescale, (t + duration) / timescale
        if begins <= start and (sap >> 31 or first is None):
            first = offset
        if begins < end + MARGIN_AFTER and ends > start:
            last = offset + size - 1
        offset, t = offset + size, t + duration
    if first is None or last is None or last < first:
        raise IndexUnsupported("the span lies outside the indexed fragments")
    return first, last
