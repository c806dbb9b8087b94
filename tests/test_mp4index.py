"""The MP4 index readers on real and on malformed/hostile indexes: a bad index must mean
"unsupported" (the fetch falls back to ffmpeg over HTTP), never a crash or a huge allocation.
The sparse ``moov`` reader is driven here from the local file, as the ranged path drives it
over HTTP."""
from __future__ import annotations

import random
import struct

import pytest

from src.media import mp4index, mp4sparse, mp4tables
from src.media.mp4index import IndexUnsupported

HEAD = 64 * 1024  # what the ranged path reads first (rangedcopy.HEAD_BYTES)


@pytest.fixture(scope="module")
def source(local_sources):
    """``(path, moov Box, moov bytes)`` of the local 10-minute progressive MP4."""
    path = local_sources["mp4"]
    with open(path, "rb") as fh:
        head = fh.read(4 * 1024 * 1024)
    box = next(b for b in mp4index.top_level_boxes(head, len(head)) if b.kind == "moov")
    return path, box, head[box.offset:box.end]


@pytest.fixture
def moov(source):
    return bytearray(source[2])


def _read_sparsely(path, box, start, end):
    """Read the moov as the ranged path does: head, walk rounds, one round of table slices.
    Returns ``(sparse, windows, rounds, bytes_read)``."""
    with open(path, "rb") as fh:
        def read(first, last):
            fh.seek(first)
            return fh.read(last - first + 1)

        sparse = mp4sparse.SparseMoov(box)
        sparse.add(0, read(0, HEAD - 1))
        rounds, total = 1, HEAD
        while True:
            ranges = sparse.reads()
            if not ranges:
                break
            rounds += 1
            for first, last in ranges:
                sparse.add(first, read(first, last))
                total += last - first + 1
        windows, slices = sparse.locate(start, end)
        rounds += 1
        for first, last in slices:
            sparse.add(first, read(first, last))
            total += last - first + 1
    return sparse, windows, rounds, total


def _moov_span(moov: bytes, start: float, end: float) -> tuple:
    """The byte range :class:`mp4sparse.SparseMoov` finds for a whole ``moov`` (the box bytes,
    header included), all of it given at once."""
    header = 16 if moov[:4] == b"\x00\x00\x00\x01" else 8
    sparse = mp4sparse.SparseMoov(mp4index.Box("moov", 0, len(moov), header))
    sparse.add(0, moov)
    if sparse.reads():
        raise IndexUnsupported("truncated moov")
    windows, _ = sparse.locate(start, end)
    return sparse.span(windows)


def _boxes(moov: bytes, start: int, end: int, path: str = ""):
    """Every box of the moov tree: ``(path, kind, offset, size, header)``."""
    while start < end:
        size, kind = struct.unpack_from(">I4s", moov, start)
        kind = kind.decode("latin-1")
        yield path, kind, start, size, 8
        if kind in ("trak", "mdia", "minf", "stbl"):
            yield from _boxes(moov, start + 8, start + size, f"{path}/{kind}")
        start += size


@pytest.mark.parametrize("start, end", [(300.0, 330.0), (0.0, 0.5), (123.45, 125.0),
                                        (590.0, 601.6), (599.0, 700.0)])
def test_sparse_read_finds_the_range_of_the_whole_moov(source, start, end):
    path, box, whole = source
    sparse, windows, rounds, read = _read_sparsely(path, box, start, end)
    assert sparse.span(windows) == _moov_span(whole, start, end)
    assert {w.track.handler for w in windows} == {"vide", "soun"}
    assert read < 0.5 * box.size, f"{read} bytes read of a {box.size}-byte moov"
    assert rounds <= 6  # head, 3 walk rounds, the slices (see the module docstring)


def test_sparse_copy_has_every_box_but_the_entries_outside_the_span(source):
    path, box, whole = source
    sparse, windows, _, _ = _read_sparsely(path, box, 300, 330)
    copy = bytearray(box.size)
    for offset, data in sparse.pieces():
        copy[offset - box.offset:offset - box.offset + len(data)] = data
    entries = kept = 0
    for where, kind, offset, size, header in _boxes(whole, 8, len(whole)):
        if where.endswith("stbl") and kind in ("stsz", "stco"):
            counts = offset + header + (12 if kind == "stsz" else 8)
            assert copy[offset:counts] == whole[offset:counts]
            eighth = counts + (size - (counts - offset)) // 32 * 4  # an entry ~75 s in
            assert copy[eighth:eighth + 4] == b"\0\0\0\0" != whole[eighth:eighth + 4]
            entries += offset + size - counts
            kept += sum(max(0, min(at + len(data), box.offset + offset + size)
                               - max(at, box.offset + counts)) for at, data in sparse.pieces())
        elif kind not in ("trak", "mdia", "minf", "stbl"):
            assert copy[offset:offset + size] == whole[offset:offset + size], f"{where}/{kind}"
    assert entries > 250_000 and kept < 0.15 * entries, (kept, entries)
    # what ffmpeg will read from the copy locates the same samples
    assert _moov_span(bytes(copy), 300, 330) == sparse.span(windows)


def _chunk_per_sample(stsc, chunks, samples):
    owner = []
    for i, (first, per, _) in enumerate(stsc):
        last = stsc[i + 1][0] - 1 if i + 1 < len(stsc) else chunks
        for chunk in range(first, last + 1):
            owner += [chunk] * per
    return owner[:samples]


def test_windows_cover_exactly_the_chunks_of_the_span(source):
    path, box, whole = source
    _, windows, _, _ = _read_sparsely(path, box, 300, 330)
    traks = mp4index.children(whole, 8, len(whole))["trak"]
    assert len(windows) == len(traks) == 2
    expanded = []
    for w in windows:
        times = [0]
        for count, delta in w.track.stts:
            times += [times[-1] + delta * i for i in range(1, count + 1)]
        expanded.append(times[:w.track.samples])
    video = windows[0].track
    key = max(expanded[0][n - 1] for n in video.keys
              if expanded[0][n - 1] <= 300 * video.timescale) / video.timescale
    lo, hi = key - mp4index.MARGIN_BEFORE, 330 + mp4index.MARGIN_AFTER
    for trak, w, times in zip(traks, windows, expanded):
        scale = w.track.timescale
        inside = [i for i, t in enumerate(times) if lo * scale <= t <= hi * scale]
        assert (inside[0], inside[-1]) == (w.first, w.last)
        stbl = mp4index.box_path(whole, trak, "mdia", "minf", "stbl")
        stsc = mp4index.table(whole, mp4index.children(whole, *stbl)["stsc"][0], ">III")
        owner = _chunk_per_sample(stsc, w.track.chunks, w.track.samples)
        assert (owner[w.first], owner[w.last]) == (w.chunk_first, w.chunk_last)
        held = [i for i, chunk in enumerate(owner) if w.chunk_first <= chunk <= w.chunk_last]
        assert (held[0], held[-1]) == (w.sample_first, w.sample_last)


def test_samples_before_counts_like_the_expanded_table():
    rng = random.Random(7)
    for _ in range(200):
        stts = [(rng.randint(0, 5), rng.choice([0, 1, 3, 1024])) for _ in range(rng.randint(0, 6))]
        times = [0]
        for count, delta in stts:
            times += [times[-1] + delta * i for i in range(1, count + 1)]
        times = times[:sum(c for c, _ in stts)]
        for limit in [-1, 0, 0.5, 1, 3, 1023.9, 1024, 4096.5, 10_000, rng.uniform(0, 6000)]:
            assert mp4tables.samples_before(stts, limit, strict=True) == \
                len([t for t in times if t < limit])
            assert mp4tables.samples_before(stts, limit, strict=False) == \
                len([t for t in times if t <= limit])
        for i, t in enumerate(times):
            assert mp4tables.time_of(stts, i) == t


def _patch_after(moov: bytearray, kind: bytes, offset: int, value: int, fmt: str = ">I"):
    """Overwrite a field ``offset`` bytes after the box type of every ``kind`` box."""
    at = moov.find(kind)
    assert at > 0
    while at > 0:
        struct.pack_into(fmt, moov, at + offset, value)
        at = moov.find(kind, at + 4)
    return bytes(moov)


def test_zero_timescale_is_unsupported(moov):
    # mdhd (version 0): type(4) version/flags(4) ctime(4) mtime(4) timescale(4)
    with pytest.raises(IndexUnsupported):
        _moov_span(_patch_after(moov, b"mdhd", 16, 0), 300, 330)


def test_huge_sample_count_is_refused_without_allocating(moov):
    # stts: type(4) version/flags(4) entry_count(4) then (sample_count, delta) pairs
    with pytest.raises(IndexUnsupported):
        _moov_span(_patch_after(moov, b"stts", 12, 0xFFFFFFFF), 300, 330)


@pytest.mark.parametrize("kind, offset, value", [
    (b"stsz", 12, 12345),       # sample count that disagrees with stts
    (b"stco", 8, 0x3FFFFFFF),   # chunk count far past the end of the box
    (b"stsc", 12, 3),           # first entry's first_chunk must be 1
    (b"stsc", 8, 0xFFFFFFF),    # entry count past the end of the box
    (b"stsz", -4, 0xFFFFFFF0),  # box size past the end of its parent
    (b"trak", -4, 4),           # box size smaller than its header
    (b"stss", 8, 0x7FFFFFFF),   # keyframe count past the end of the box
])
def test_inconsistent_table_is_unsupported(moov, kind, offset, value):
    with pytest.raises(IndexUnsupported):
        _moov_span(_patch_after(moov, kind, offset, value), 300, 330)


@pytest.mark.parametrize("cut", [8, 100, 5000, 200_000, -1])
def test_truncated_moov_is_unsupported(source, cut):
    whole = source[2]
    data = whole[:cut]
    with pytest.raises(IndexUnsupported):
        _moov_span(data, 300, 330)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def test_index_scattered_over_many_ranges_is_unsupported():
    # an stbl alternating big sliced tables and small boxes read whole: one range per small box
    stbl = b"".join(_box(b"stco", bytes(64 * 1024)) + _box(b"sgpd", bytes(16)) for _ in range(80))
    moov = _box(b"moov", _box(b"trak", _box(b"mdia", _box(b"minf", _box(b"stbl", stbl)))))
    sparse = mp4sparse.SparseMoov(mp4index.Box("moov", 100, len(moov), 8))
    sparse.add(100, moov[:8])
    for _, _, offset, _, _ in _boxes(moov, 8, len(moov)):  # box headers + stco counts only
        sparse.add(100 + offset, moov[offset:offset + 16])
    with pytest.raises(IndexUnsupported):
        sparse.reads()


def test_moov_of_countless_tiny_boxes_is_unsupported():
    with pytest.raises(IndexUnsupported):
        _moov_span(_box(b"moov", _box(b"free", b"") * 20_000), 0, 10)


def test_fragmented_moov_is_unsupported_by_the_sparse_reader():
    moov = _box(b"moov", _box(b"mvhd", bytes(100)) + _box(b"mvex", _box(b"trex", bytes(24))))
    with pytest.raises(IndexUnsupported):
        _moov_span(moov, 0, 10)


@pytest.mark.parametrize("data", [b"", b"\x00" * 7, b"\x00\x00\x00\x20sidx" + b"\x00" * 8])
def test_truncated_sidx_is_unsupported(data):
    with pytest.raises(IndexUnsupported):
        mp4index.sidx_span(data, 0, 0, 10)


@pytest.mark.slow
def test_corrupted_moov_is_a_range_or_unsupported(source):
    """Random bytes in box headers and tables: a byte range or IndexUnsupported, nothing else
    (the sparse reader runs the same walk on what it fetched)."""
    whole = source[2]
    rng = random.Random(3)
    outcomes = set()
    for _ in range(150):
        damaged = bytearray(whole)
        for _ in range(rng.randint(1, 4)):
            at = rng.choice([rng.randrange(0, 5000), rng.randrange(115_800, 116_100),
                             rng.randrange(236_000, 240_000), rng.randrange(len(whole))])
            damaged[at] = rng.randrange(256)
        start = rng.uniform(0, 600)
        try:
            first, last = _moov_span(bytes(damaged), start, start + 30)
            outcomes.add("range")
        except IndexUnsupported:
            outcomes.add("unsupported")
    assert outcomes == {"range", "unsupported"}
