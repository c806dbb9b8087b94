"""The sample tables of one MP4 track as arithmetic: which samples lie in a time span, which
chunk holds a sample, where a chunk's entries are (ISO/IEC 14496-12 §8.6–8.7: ``stts`` decode
times, ``stss`` keyframes, ``stsc`` samples per chunk, ``stsz`` sizes, ``stco``/``co64`` chunk
offsets).

Nothing here expands a table per sample: ``stts`` and ``stsc`` stay run-length, so a hostile
count costs arithmetic, not memory. The ``stsz``/``stco``/``co64`` entries are not read here
(:mod:`src.media.mp4sparse` reads the slices it needs); only their count fields are.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from src.media.mp4index import MAX_SAMPLES, IndexUnsupported, box_path, children, table


@dataclass
class Track:
    """One track's tables: ``stts``/``stsc`` run-length, ``stss`` as a list, and where the
    ``stsz`` and ``stco``/``co64`` entries start (offsets into the moov bytes)."""
    handler: str
    timescale: int
    stts: list       # (count, delta)
    keys: Optional[list]  # stss sample numbers (1-based), None: every sample is a keyframe
    runs: list       # (first_chunk, last_chunk, samples_per_chunk, first_sample)
    samples: int
    fixed: int       # stsz sample_size; 0: one entry per sample at ``sizes_at``
    sizes_at: int    # moov-relative offset of stsz entry 0
    chunks: int
    offsets_at: int  # moov-relative offset of stco/co64 entry 0
    step: int        # 4 (stco) or 8 (co64)


def read_track(moov, trak: tuple) -> Track:
    """The tables of one ``trak`` (``trak``: (start, end) of its payload in ``moov``, the moov
    bytes, whose ``stsz``/``stco``/``co64`` entries may be zeros: only their count fields are
    read). Raises IndexUnsupported for a missing or inconsistent table, a zero timescale or
    more than ``MAX_SAMPLES`` samples; struct.error for a field past the end of ``moov``."""
    mdia = box_path(moov, trak, "mdia")
    stbl = box_path(moov, mdia, "minf", "stbl") if mdia else None
    mdhd = box_path(moov, mdia, "mdhd") if mdia else None
    hdlr = box_path(moov, mdia, "hdlr") if mdia else None
    if not (stbl and mdhd and hdlr):
        raise IndexUnsupported("track without sample tables")
    timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if moov[mdhd[0]] == 1 else 12))[0]
    if timescale == 0:
        raise IndexUnsupported("track with a zero timescale")
    boxes = children(moov, *stbl)
    box = lambda kind: boxes[kind][0] if kind in boxes else None  # noqa: E731
    offsets = box("stco") or box("co64")
    stts_box, stsz, stsc, stss = box("stts"), box("stsz"), box("stsc"), box("stss")
    if not (stts_box and stsz and stsc and offsets):
        raise IndexUnsupported("incomplete sample table")
    stts = table(moov, stts_box, ">II")
    samples = sum(count for count, _ in stts)
    if samples > MAX_SAMPLES:
        raise IndexUnsupported("too many samples")
    fixed, count = struct.unpack_from(">II", moov, stsz[0] + 4)
    step = 4 if box("stco") else 8
    chunks = struct.unpack_from(">I", moov, offsets[0] + 4)[0]
    if count != samples:
        raise IndexUnsupported("stts and stsz disagree")
    if (not fixed and stsz[0] + 12 + 4 * count > stsz[1]) \
            or offsets[0] + 8 + step * chunks > offsets[1]:
        raise IndexUnsupported("table longer than its box")
    keys = [n for (n,) in table(moov, stss, ">I")] if stss else None
    return Track(moov[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1"), timescale, stts, keys,
                 _runs(table(moov, stsc, ">III"), chunks, samples), samples, fixed,
                 stsz[0] + 12, chunks, offsets[0] + 8, step)


def _runs(stsc: list, chunks: int, samples: int) -> list:
    """``stsc`` as runs ``(first_chunk, last_chunk, per_chunk, first_sample)`` up to the last
    sample; IndexUnsupported unless the entries start at chunk 1, increase, stay within the
    ``chunks`` of ``stco`` and cover every sample."""
    runs: list[tuple[int, int, int, int]] = []
    sample = 0
    for i, (first, per, _) in enumerate(stsc):
        last = stsc[i + 1][0] - 1 if i + 1 < len(stsc) else chunks
        if first != (runs[-1][1] + 1 if runs else 1) or last < first or last > chunks:
            raise IndexUnsupported("stsc entries out of order")
        runs.append((first, last, per, sample))
        sample += (last - first + 1) * per
        if sample >= samples:
            break
    if sample < samples:
        raise IndexUnsupported("stsc/stco do not cover every sample")
    return runs


def samples_through(track: Track, chunk: int) -> int:
    """How many samples chunks ``1..chunk`` hold (0 for chunk 0)."""
    for first, last, per, base in track.runs:
        if first <= chunk <= last:
            return min(track.samples, base + (chunk - first + 1) * per)
    return track.samples if chunk else 0


def chunk_of(track: Track, sample: int) -> tuple:
    """``(chunk, first sample of that chunk)`` of the 0-based ``sample``."""
    for first, last, per, base in track.runs:
        if per and base <= sample < base + (last - first + 1) * per:
            chunk = first + (sample - base) // per
            return chunk, base + (chunk - first) * per
    raise IndexUnsupported("sample outside the chunks")


def samples_before(stts: list, limit: float, strict: bool) -> int:
    """How many samples have a decode time ``< limit`` (``strict``) or ``<= limit`` (decode
    times never decrease, so they are the first ones)."""
    done, t = 0, 0
    for count, delta in stts:
        def within(j: int, t: int = t, delta: int = delta) -> bool:
            return t + delta * j < limit or (not strict and t + delta * j == limit)

        if delta == 0:
            n = count if within(0) else 0
        else:  # the float estimate, then exact integer-vs-float comparisons around it
            n = max(0, min(count, int((limit - t) // delta) + 1))
        while n > 0 and not within(n - 1):
            n -= 1
        while n < count and within(n):
            n += 1
        if n < count:
            return done + n
        done, t = done + count, t + delta * count
    return done


def keyframe_time(track: Track, start: float) -> float:
    """Decode time (s) of the last keyframe at or before ``start`` (every sample is a keyframe
    when there is no ``stss``; 0 when none is)."""
    limit = start * track.timescale
    upto = samples_before(track.stts, limit, strict=False)  # samples 1..upto are ≤ start
    keys = [n for n in track.keys if 1 <= n <= upto] if track.keys is not None else [upto]
    number = max(keys, default=0)
    if number < 1:
        return 0.0
    return time_of(track.stts, number - 1) / track.timescale


def time_of(stts: list, sample: int) -> int:
    """Decode time (in the track's timescale) of the 0-based ``sample``."""
    t = 0
    for count, delta in stts:
        if sample < count:
            return t + delta * sample
        t, sample = t + delta * count, sample - count
    return t
