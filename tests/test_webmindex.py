"""The WebM Cues index (src/media/webmindex.py) on real files ffmpeg wrote (scripts/shapes.py:
Cues after the clusters, the muxer's default, and before them with ``-cues_to_front 1``), judged
by ffmpeg and ffprobe rather than by our own parser: the cue times are the keyframes ffprobe
lists, and a sparse copy holding only the head, the Cues and the span is cut by ffmpeg into the
same packets as the whole file. Plus hand-built hostile files."""
from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from scripts.shapes import DEFAULT_CACHE, build_shapes
from src.media import webmindex
from src.media.mp4index import IndexUnsupported
from src.media.webmindex import MoreHead, cues_span, parse_cues, parse_head

HEAD = 64 * 1024  # what a fetcher reads first


@pytest.fixture(scope="session")
def webm_files() -> dict:
    shapes = build_shapes(DEFAULT_CACHE, log=lambda *_: None)
    return {name: DEFAULT_CACHE / shapes[f"webm_{name}"]["path"] for name in ("cues_end",
                                                                             "cues_front")}


def _read(path: Path, first: int, last: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(first)
        return fh.read(last - first + 1)


def _index(path: Path) -> tuple:
    """(head, cues, bytes of the Cues range or b"") the way a fetcher gets them: a 64 KB head,
    then the range the head names."""
    size = path.stat().st_size
    head = parse_head(_read(path, 0, HEAD - 1), size)
    if head.cues is not None:
        return head, head.cues, b""
    blob = _read(path, *head.need)
    return head, parse_cues(blob, head.need[0], head), blob


def _keyframes(path: Path) -> list:
    """(pts seconds, byte position) of every video keyframe, from ffprobe."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "packet=pts_time,pos,flags", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split(",") for line in out.splitlines() if line.strip()]
    return [(float(t), int(p)) for t, p, flags in rows if "K" in flags]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cues_end", "cues_front"])
def test_cues_are_the_keyframes_ffprobe_lists(webm_files, name):
    path = webm_files[name]
    head, cues, _ = _index(path)
    assert (head.cues is None) == (name == "cues_end")  # at the end: a second read is named
    assert head.duration == pytest.approx(600.3, abs=0.5)
    keyframes = _keyframes(path)
    assert [round(t, 3) for t, _ in cues.points] == [round(t, 3) for t, _ in keyframes]
    bounds = [p for _, p in cues.points[1:]] + [cues.end]
    for (_, cluster), (_, block), following in zip(cues.points, keyframes, bounds):
        assert cluster < block < following  # the keyframe lies in the cluster the cue names
    assert cues.end == (head.need[0] if head.need else path.stat().st_size)


def _framemd5(path: Path, start: float, duration: float) -> list:
    out = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-ss", str(start), "-t",
                          str(duration), "-i", str(path), "-map", "0", "-c", "copy", "-f",
                          "framemd5", "-"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if not line.startswith("#")], out.stderr


def _sparse_copy(path: Path, out: Path, ranges: list) -> int:
    """A file of ``path``'s size with only ``ranges`` (inclusive) copied; returns bytes kept."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, path.stat().st_size)
        for first, last in ranges:
            os.pwrite(fd, _read(path, first, last), first)
    finally:
        os.close(fd)
    return sum(last - first + 1 for first, last in ranges)


def _kept_ranges(path: Path, start: float, end: float) -> list:
    head, cues, _ = _index(path)
    header = (0, (head.first_cluster or cues.points[0][1]) + webmindex.PROBE_BYTES - 1)
    return [header, *([head.need] if head.need else []), cues_span(cues, start, end)]


SPANS = [(0.0, 10.0), (300.0, 330.0), (301.99, 302.01), (596.5, 600.4), (599.0, 600.4)]


@pytest.mark.parametrize("name", ["cues_end", "cues_front"])
@pytest.mark.parametrize("start,end", SPANS, ids=["start", "middle", "boundary", "last-cluster",
                                                   "end"])
@pytest.mark.slow
def test_ffmpeg_cuts_the_sparse_copy_like_the_whole_file(webm_files, tmp_path, name, start, end):
    path = webm_files[name]
    kept = _sparse_copy(path, tmp_path / "sparse.webm", _kept_ranges(path, start, end))
    whole, _ = _framemd5(path, start, end - start)
    sparse, errors = _framemd5(tmp_path / "sparse.webm", start, end - start)
    assert len(whole) > 10 and sparse == whole
    assert errors == ""  # ffmpeg never read into the zeros
    # the span's clusters and a few around it, not the file (rate: file size / duration)
    assert kept <= path.stat().st_size / 600 * (end - start + 10)


def test_a_span_one_cluster_short_is_caught(webm_files, tmp_path):
    """The comparison above can fail: dropping the span's first cluster changes the packets."""
    path = webm_files["cues_end"]
    header, cues_range, (first, last) = _kept_ranges(path, 301.0, 310.0)
    _, cues, _ = _index(path)
    second = next(p for _, p in cues.points if p > first)
    _sparse_copy(path, tmp_path / "short.webm", [header, cues_range, (second, last)])
    assert _framemd5(tmp_path / "short.webm", 301.0, 9.0)[0] != _framemd5(path, 301.0, 9.0)[0]


def test_a_short_head_asks_for_more_until_it_suffices(webm_files):
    path = webm_files["cues_front"]
    size, length, asked = path.stat().st_size, 200, []
    while True:
        try:
            head = parse_head(_read(path, 0, length - 1), size)
            break
        except MoreHead as more:
            assert more.size > length
            asked.append(length := more.size)
    assert 1 <= len(asked) <= 3 and head.cues is not None


def test_an_unknown_size_segment_reads_as_running_to_the_end(webm_files):
    """Live WebM writes the Segment with an all-ones size (RFC 8794 §6.2)."""
    path = webm_files["cues_front"]
    data = bytearray(_read(path, 0, HEAD - 1))
    at = data.find(bytes.fromhex("18538067")) + 4
    assert data[at] == 0x01  # ffmpeg writes an 8-octet size
    data[at:at + 8] = b"\x01" + b"\xff" * 7
    head = parse_head(bytes(data), path.stat().st_size)
    assert head.segment_end == path.stat().st_size
    assert head.cues == _index(path)[1]


def test_live_webm_without_cues_is_unsupported(webm_files, tmp_path):
    """ffmpeg's ``-live 1`` to a pipe: unknown-size Segment and Clusters, no Cues."""
    out = tmp_path / "live.webm"
    with open(out, "wb") as fh:
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(webm_files["cues_end"]), "-t", "6",
                        "-c", "copy", "-f", "webm", "-live", "1", "pipe:1"], stdout=fh,
                       check=True)
    with pytest.raises(IndexUnsupported, match="no Cues"):
        parse_head(out.read_bytes(), out.stat().st_size)


# --- hand-built files ----------------------------------------------------------------------

def _id(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _el(eid: int, payload: bytes, size: bytes = b"") -> bytes:
    """An element with an 8-octet size (or the given size octets)."""
    return _id(eid) + (size or (0x01 << 56 | len(payload)).to_bytes(8, "big")) + payload


def _uint(eid: int, value: int) -> bytes:
    return _el(eid, value.to_bytes(8, "big"))


def _webm(points: list, cues_size: bytes = b"", doc_type: bytes = b"webm") -> tuple:
    """(file bytes, head) of a WebM with Info, one video track, Cues ``[(ms, cluster index)]``
    (index -1: position 0, the Info element) before three 1000-byte Clusters."""
    w = webmindex
    ebml = _el(0x1A45DFA3, _el(0x4282, doc_type))
    info = _el(w.INFO, _uint(w.TIMESTAMP_SCALE, 1_000_000))
    tracks = _el(w.TRACKS, _el(w.TRACK_ENTRY, _uint(w.TRACK_NUMBER, 1) + _uint(w.TRACK_TYPE, 1)))
    cluster = _el(w.CLUSTER, b"\0" * 988)

    def cues(base: int) -> bytes:
        body = b"".join(_el(w.CUE_POINT, _uint(w.CUE_TIME, ms) + _el(
            w.CUE_TRACK_POSITIONS, _uint(w.CUE_TRACK, 1)
            + _uint(w.CUE_CLUSTER_POSITION, base + i * len(cluster) if i >= 0 else 0)))
            for ms, i in points)
        return _el(w.CUES, body, cues_size)

    base = len(info) + len(tracks) + len(cues(0))  # cluster 0, relative to the Segment payload
    segment = info + tracks + cues(base) + cluster * 3
    data = ebml + _el(w.SEGMENT, segment)
    return data, parse_head(data, len(data)) if not cues_size else None


def test_hand_built_file_maps_spans_to_clusters():
    data, head = _webm([(0, 0), (2000, 1), (4000, 2)])
    first = head.first_cluster
    assert head.cues.points == [(0.0, first), (2.0, first + 1000), (4.0, first + 2000)]
    assert cues_span(head.cues, 2.5, 2.6) == (first + 1000, first + 1999)
    assert cues_span(head.cues, 0.0, 3.5) == (first, len(data) - 1)  # 3.5 + margin: cluster 2


@pytest.mark.parametrize("points,match", [
    ([(0, 0), (2000, 2), (4000, 1)], "out of order"),     # positions loop back in time
    ([(0, -1), (2000, 1)], "outside the clusters"),        # a cue into the head
    ([(0, 0), (2000, 40)], "outside the clusters"),        # a cue past the Segment
    ([], "no cue points"),
])
def test_inconsistent_cues_are_unsupported(points, match):
    with pytest.raises(IndexUnsupported, match=match):
        _webm(points)


def test_absurd_cues_size_is_refused_without_allocating():
    huge = (0x01 << 56 | (1 << 55)).to_bytes(8, "big")  # a 32 PB Cues element
    data, _ = _webm([(0, 0)], cues_size=huge)
    with pytest.raises(IndexUnsupported):
        parse_head(data, len(data))


def test_cue_count_is_capped(monkeypatch):
    monkeypatch.setattr(webmindex, "MAX_CUE_POINTS", 2)
    with pytest.raises(IndexUnsupported, match="more than 2"):
        _webm([(0, 0), (1000, 1), (2000, 2)])


@pytest.mark.parametrize("data", [
    b"", b"\x1a\x45", b"\x00" * 64,                        # truncated, a 0x00 VINT
    _el(0x1A45DFA3, _el(0x4282, b"webm") + _uint(0x42F3, 9)),  # sizes over 8 octets
    _el(0x1A45DFA3, _el(0x4282, b"mp4")) + b"\x18\x53\x80\x67\x80",
    b"\x08" + b"\x00" * 40,                                # an ID of 5 octets
])
def test_not_webm_or_malformed_is_unsupported(data):
    with pytest.raises(IndexUnsupported):
        parse_head(data, len(data))


def test_truncated_files_are_unsupported(webm_files):
    data = _read(webm_files["cues_front"], 0, HEAD - 1)
    for cut in (1, 4, 30, 40, 60, 120, 250, 446, 900, 7000):
        with pytest.raises(IndexUnsupported):
            parse_head(data[:cut], cut)  # the whole "file" is that long: no MoreHead loop


def test_cues_cut_short_are_unsupported(webm_files):
    path = webm_files["cues_end"]
    head = parse_head(_read(path, 0, HEAD - 1), path.stat().st_size)
    blob = _read(path, *head.need)
    for cut in (0, 3, 100, len(blob) // 2, len(blob) - 1):
        with pytest.raises(IndexUnsupported):
            parse_cues(blob[:cut], head.need[0], head)
    with pytest.raises(IndexUnsupported, match="no Cues element"):
        parse_cues(_read(path, 0, 4096), 0, head)  # an index that points at the file's start


def test_corrupted_heads_are_a_head_or_unsupported(webm_files):
    """Random bytes in the head of a real file: a Head or IndexUnsupported, nothing else."""
    path = webm_files["cues_front"]
    whole, size = _read(path, 0, HEAD - 1), path.stat().st_size
    rng, outcomes = random.Random(7), set()
    for _ in range(300):
        damaged = bytearray(whole)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(0, 8000)] = rng.randrange(256)
        try:
            head = parse_head(bytes(damaged), size)
            if head.cues is not None:
                first, last = cues_span(head.cues, 300, 330)
                assert 0 < first <= last < size
            outcomes.add("head")
        except IndexUnsupported:
            outcomes.add("unsupported")
    assert outcomes == {"head", "unsupported"}
