"""The MP4 index reader on real and on malformed/hostile indexes: a bad index must mean
"unsupported" (the fetch falls back to ffmpeg over HTTP), never a crash or a huge allocation."""
from __future__ import annotations

import struct

import pytest

from src.media import mp4index
from src.media.mp4index import IndexUnsupported


@pytest.fixture(scope="module")
def moov(local_sources):
    with open(local_sources["mp4"], "rb") as fh:
        head = fh.read(4 * 1024 * 1024)
    box = next(b for b in mp4index.top_level_boxes(head, len(head)) if b.kind == "moov")
    return bytearray(head[box.offset:box.end])


def _patch_after(moov: bytearray, kind: bytes, offset: int, value: int, fmt: str = ">I"):
    """Overwrite a field ``offset`` bytes after the box type of every ``kind`` box."""
    at = moov.find(kind)
    assert at > 0
    while at > 0:
        struct.pack_into(fmt, moov, at + offset, value)
        at = moov.find(kind, at + 4)
    return bytes(moov)


def test_real_moov_maps_a_span_to_one_range(moov):
    first, last = mp4index.moov_span(bytes(moov), 300, 330)
    assert 0 < first < last


def test_zero_timescale_is_unsupported(moov):
    # mdhd (version 0): type(4) version/flags(4) ctime(4) mtime(4) timescale(4)
    with pytest.raises(IndexUnsupported):
        mp4index.moov_span(_patch_after(bytearray(moov), b"mdhd", 16, 0), 300, 330)


def test_huge_sample_count_is_refused_without_allocating(moov):
    # stts: type(4) version/flags(4) entry_count(4) then (sample_count, delta) pairs
    with pytest.raises(IndexUnsupported):
        mp4index.moov_span(_patch_after(bytearray(moov), b"stts", 12, 0xFFFFFFFF), 300, 330)


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"\x00\x00\x00\x20sidx" + b"\x00" * 8])
def test_truncated_sidx_is_unsupported(data):
    with pytest.raises(IndexUnsupported):
        mp4index.sidx_span(data, 0, 0, 10)
