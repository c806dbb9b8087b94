"""Reading EBML, the binary format under WebM/Matroska (RFC 8794), from bytes in memory.

Kept apart from :mod:`src.media.webmindex` (what Matroska's elements mean) because it is the
encoding alone: an element is an ID, a size and a payload; IDs and sizes are variable-length
integers (VINTs) whose width is given by the leading zero bits of their first octet (RFC 8794
§4). IDs keep their marker bit and are at most 4 octets (EBMLMaxIDLength, §11.2.4); sizes are
1–8 octets and all value bits set means "unknown size" (§6.2), returned as None. Every read is
bounds-checked against an explicit end and raises
:class:`~src.media.mp4index.IndexUnsupported` (the media layer's "cannot map this file"), so
hostile bytes never make a caller loop or allocate: each step moves forward by a header.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Optional

from src.media.mp4index import IndexUnsupported

#: RFC 8794 §11.2: EBML header, DocType, EBMLMaxIDLength, EBMLMaxSizeLength; §11.3.1 Void.
EBML, DOC_TYPE, MAX_ID_LENGTH, MAX_SIZE_LENGTH, VOID = 0x1A45DFA3, 0x4282, 0x42F2, 0x42F3, 0xEC


def vint(data: bytes, pos: int, end: int, marker: bool) -> tuple:
    """The VINT at ``pos`` (before ``end``): ``(value, width in octets)``. ``marker``: keep
    the marker bit (IDs); else the value is a size, None when all its bits are set."""
    if pos >= end:
        raise IndexUnsupported("truncated EBML element")
    width = 9 - data[pos].bit_length()  # leading zero bits + 1; 9 for 0x00 (invalid)
    if width > 8 or pos + width > end:
        raise IndexUnsupported(f"bad or truncated EBML VINT at {pos}")
    value = int.from_bytes(data[pos:pos + width], "big")
    if marker:
        return value, width
    value &= (1 << 7 * width) - 1
    return (None if value == (1 << 7 * width) - 1 else value), width


def element(data: bytes, pos: int, end: int) -> tuple:
    """The element header at ``pos``: ``(id, payload start, payload end or None if the size
    is unknown)``; the payload end may lie past ``end`` (the caller decides)."""
    eid, id_width = vint(data, pos, end, marker=True)
    if id_width > 4:
        raise IndexUnsupported(f"EBML ID longer than 4 octets at {pos}")
    size, size_width = vint(data, pos + id_width, end, marker=False)
    start = pos + id_width + size_width
    return eid, start, None if size is None else start + size


def children(data: bytes, start: int, end: int) -> Iterator[tuple]:
    """``(id, payload start, payload end)`` of each child of the master payload
    ``start``..``end``, which must hold them whole (no unknown sizes inside)."""
    while start < end:
        eid, a, b = element(data, start, end)
        if b is None or b > end:
            raise IndexUnsupported(f"element {eid:X} at {start} overruns its parent")
        yield eid, a, b
        start = b


def fields(data: bytes, start: int, end: int) -> dict:
    """``{id: (payload start, end)}`` of the first child of each id in a master payload."""
    found: dict = {}
    for eid, a, b in children(data, start, end):
        found.setdefault(eid, (a, b))
    return found


def uint(data: bytes, span: Optional[tuple], default: int = 0) -> int:
    """The unsigned integer in payload ``span`` (0–8 octets, big-endian); ``default`` when
    ``span`` is None (the element is absent)."""
    if span is None:
        return default
    if span[1] - span[0] > 8:
        raise IndexUnsupported("integer element longer than 8 octets")
    return int.from_bytes(data[span[0]:span[1]], "big")


def header(data: bytes, end: int) -> tuple:
    """Check the EBML header at offset 0: ``(DocType bytes, offset just past the header)``.
    Raises IndexUnsupported when it is missing or allows IDs over 4 or sizes over 8 octets."""
    eid, a, b = element(data, 0, end)
    if eid != EBML or b is None or b > end:
        raise IndexUnsupported("not an EBML file")
    found = fields(data, a, b)
    if uint(data, found.get(MAX_ID_LENGTH), 4) > 4 or uint(data, found.get(MAX_SIZE_LENGTH), 8) > 8:
        raise IndexUnsupported("EBML IDs over 4 or sizes over 8 octets")
    return data[slice(*found.get(DOC_TYPE, (0, 0)))].rstrip(b"\0"), b
