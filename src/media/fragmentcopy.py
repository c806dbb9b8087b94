"""Fetching and joining the segments of a :class:`src.media.fragments.FragmentList` that
cover a clip (the fragment path of :mod:`src.media.segment`).

Each segment of these sources starts with a keyframe (DASH ``startWithSAP="1"``; ffmpeg's hls
muxer cuts at keyframes), so the segments overlapping [start, end] are all that is needed. They
are fetched with the init in parallel through :class:`src.media.rangefetch.Fetcher` (through
the egress guard, redirects checked, bounded retries): a whole-object GET per segment, or, for
byte ranges, one Range request per run of contiguous ranges of one URL (split over the
connections; the fetcher writes at the source's offsets, so a part file is read back from
there). Parts are appended in order to one local file per stream, AES-128 segments decrypted on
the way (``cryptography``: AES-128-CBC, PKCS#7, RFC 8216 §5.2). init + fMP4 segments is a valid
file (ISO/IEC 23009-1 §6.3.4.2 / ISO BMFF §8.8) whose ``tfdt`` keep the original timeline;
joined MPEG-TS segments are a valid transport stream (ISO/IEC 13818-1). ffmpeg's input ``-ss``
is relative to a file's start time (``ffmpeg_demux``: the seek target is ``-ss`` +
``start_time`` unless ``-seek_timestamp``): each copy is cut ``start - first segment's start``
into it (src/media/segment.py: ``-ss`` for MP4/WebM, ``-itsoffset`` for TS).

ffmpeg's own dash and hls demuxers, asked for ``-ss 300`` on these sources, start one GOP
earlier (at 298 s: they seek by dts, and the keyframe at 300 s has dts 299.92 s); the fragment
path starts at the keyframe at 300 s. The packets after that point are the same
(tests/test_media_fragments.py, tests/test_media_hls.py).

Bytes: the chosen segments hold the clip plus, at most, the part of the first segment before
``start`` and of the last one after ``end`` (< 2 segment durations: 6 s video, ≈ 5 s audio for
ffmpeg's default DASH ``-seg_duration 5``; 2 s for its HLS). Hostile lists end in a list with
``problem`` or :data:`None` (the caller lets ffmpeg read the manifest) or a clear
:class:`MediaError`: entries, durations, segments per clip and bytes per segment are capped
below.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from src.media import rangefetch
from src.media.errors import FORMAT_UNAVAILABLE, SEGMENT_OUT_OF_RANGE, SOURCE_HTTP_ERROR, MediaError
from src.media.ffmpeg import mmss
from src.media.fragments import Fragment, pick
from src.media.periods import PeriodBoundary

#: Bytes accepted per segment / Initialization Segment (whole-object GET limit).
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
MAX_INIT_BYTES = 16 * 1024 * 1024
MAX_KEY_BYTES = 64 * 1024
#: Largest byte offset believed (1 TiB; media files are smaller): part files are written at
#: the source's offsets, which must stay within what a filesystem allows (ext4: 16 TiB).
MAX_OFFSET = 2 ** 40
#: Contiguous byte ranges of one URL merged into one part file (then split over connections).
MAX_MERGED = 32 * 1024 * 1024
#: Segments fetched (as part files) per round; bounds open files and disk beyond the copies.
BATCH = 64
_EBML = b"\x1a\x45\xdf\xa3"
#: ISO BMFF box types a fragmented MP4 / init / segment starts with (ISO/IEC 14496-12).
_BOXES = {b"ftyp", b"styp", b"moov", b"moof", b"sidx", b"free", b"emsg", b"prft", b"uuid"}
_TOO_LARGE = "A fragment of this video is larger than the server accepts."
_SHORT = "The video source sent fewer bytes than its playlist or manifest names."
#: Segments fetched per stream for one clip (≈ 6.7 h of 6 s segments); more → direct path.
MAX_PICKED = 4000


def fragment_copies(plan, start: float, end: float, tmp: Path, copies: list,
                    on_progress: Optional[Callable[[dict], None]], deadline: Optional[float],
                    connections: int, share: float, egress, lists: list) -> Optional[list]:
    """Fetch the Initialization Segment (if any) and the segments covering ``start``..``end``
    of each stream's :class:`FragmentList` in ``lists`` (video, then audio; DASH lists from
    the plan, HLS media playlists from :func:`src.media.hls.stream_lists`) into local copies
    ``{tmp}.{i}.mp4`` / ``.webm`` / ``.ts`` (by their first bytes); return ``[(path, seek
    seconds for ffmpeg's input -ss), ...]`` per stream, or None when a stream's list cannot be
    planned, the chosen segments span a discontinuity, a byte-range server ignores Range, or
    the segments are in no container we cut (the caller lets ffmpeg read the URLs).

    Copies and part files are appended to ``copies`` as they are created (the caller removes
    them). ``connections``: parallel requests per stream; ``on_progress``: the spec's dict,
    ``download_progress`` 0 → ``share`` as requests complete (done / planned); ``egress``: the
    guard session (:class:`src.media.guard.Session`). Every URL (init, segments, keys) is
    checked against its policy before the first connection. AES-128 segments are decrypted
    with their key (fetched once per URL) and IV, PKCS#7 padding removed (RFC 8216 §5.2).
    Raises MediaError: SEGMENT_OUT_OF_RANGE when ``start`` is at or past the end of a complete
    video timeline; :class:`~src.media.periods.PeriodBoundary` for a clip over a DASH Period
    boundary (each Period's timestamps may start again: the caller cuts each side);
    SOURCE_NOT_ALLOWED; SOURCE_HTTP_ERROR (also: fewer bytes than a byte range
    names); FORMAT_UNAVAILABLE (a segment over :data:`MAX_SEGMENT_BYTES`, a key that is not 16
    bytes, a segment that does not decrypt); FFMPEG_FAILED past the deadline (:meth:`Fetcher.run`).
    """
    if any(flist is None or flist.problem for flist in lists):
        return None
    if start >= lists[0].duration:
        if lists[0].ended:
            raise MediaError(SEGMENT_OUT_OF_RANGE)
        return None  # a live playlist may grow: ffmpeg's business
    picks = [pick(flist, start, end) for flist in lists]
    for chosen in picks:
        period = next((f for f in chosen[1:] if f.init), None)
        if period:  # cut on each side and joined: src/media/periods.py
            raise PeriodBoundary(period.start)
    if any(not chosen or len(chosen) > MAX_PICKED or any(f.discontinuity for f in chosen[1:])
           for chosen in picks):
        return None
    inits = [flist.init_of(chosen[0]) for flist, chosen in zip(lists, picks)]
    items = [([Fragment(url, -1.0, 0.0, span, key)] if url else []) + chosen
             for (url, span, key), chosen in zip(inits, picks)]
    for item in (item for stream in items for item in stream):
        egress.policy.check_url(item.url)
        if item.key:
            egress.policy.check_url(item.key.url)
        if item.byte_range and (item.byte_range[1] - item.byte_range[0] > MAX_SEGMENT_BYTES
                                or item.byte_range[1] > MAX_OFFSET):
            raise MediaError(FORMAT_UNAVAILABLE, _TOO_LARGE)
    # first pieces (inits) first, then every stream's pieces by time (each keeps its order)
    pieces = sorted(((stream, piece) for stream, chosen in enumerate(items)
                     for piece in _pieces(chosen)), key=lambda sp: (sp[1][0].start, sp[0]))
    fetcher = rangefetch.Fetcher(plan.http_headers, connections * len(lists), deadline,
                                 egress=egress)
    key_urls = sorted({item.key.url for stream in items for item in stream if item.key})
    planned = len(key_urls) + sum(len(_jobs(piece, connections, None)) for _, piece in pieces)
    started, outs = time.monotonic(), []

    def tick() -> None:
        if on_progress:
            fraction = min(1.0, fetcher.done_jobs / planned)
            elapsed = max(1e-3, time.monotonic() - started)
            speed, eta = fraction * (end - start) / elapsed, None
            if fraction > 0:
                eta = mmss(elapsed * (1 - fraction) / fraction)
            on_progress({"download_progress": round(share * fraction, 1),
                         "speed": f"{speed:.1f}x" if speed > 0 else None, "fps": 0.0,
                         "eta": eta})

    joined = [Path(f"{tmp}.{stream}") for stream in range(len(lists))]
    try:
        secrets = _keys(fetcher, key_urls, tick)
        for path in joined:
            copies.append(path)
            outs.append(open(path, "wb"))
        for number in range(0, len(pieces), BATCH):
            batch = pieces[number:number + BATCH]
            parts = [Path(f"{tmp}.part{number + k}") for k in range(len(batch))]
            _fetch(fetcher, batch, parts, copies, connections, tick)
            for (stream, piece), part in zip(batch, parts):
                with open(part, "rb") as source:
                    for item in piece:
                        _append(source, item, outs[stream], secrets)
                part.unlink()
    except rangefetch.RangesUnsupported:
        return None
    finally:
        for out in outs:
            out.close()
        fetcher.close()
    found = []
    for path, chosen in zip(joined, picks):
        suffix = _container(path)
        if suffix is None:
            return None
        copies.append(path.with_name(path.name + suffix))
        os.replace(path, copies[-1])
        found.append((str(copies[-1]), max(0.0, start - chosen[0].start)))
    return found


def _pieces(items: list) -> list:
    """``items`` grouped into what one part file receives: a whole object alone, or a run of
    byte ranges of one URL that follow each other without a gap (≤ :data:`MAX_MERGED` bytes;
    one request or a few in parallel instead of one per segment)."""
    pieces: list = []
    for item in items:
        last = pieces[-1][-1] if pieces else None
        if (last and item.byte_range and last.byte_range and item.url == last.url
                and item.byte_range[0] == last.byte_range[1]
                and item.byte_range[1] - pieces[-1][0].byte_range[0] <= MAX_MERGED):
            pieces[-1].append(item)
        else:
            pieces.append([item])
    return pieces


def _jobs(piece: list, connections: int, fd) -> list:
    """:meth:`Fetcher.run` jobs for one piece: a whole-object GET (size-capped), or its byte
    span split over ``connections`` Range requests (written at the source's offsets)."""
    first = piece[0]
    if first.byte_range is None:
        return [(first.url, MAX_INIT_BYTES if first.start < 0 else MAX_SEGMENT_BYTES, None, fd)]
    return [(first.url, a, b, fd) for a, b in rangefetch.split(
        first.byte_range[0], piece[-1].byte_range[1] - 1, connections)]


def _fetch(fetcher, batch: list, parts: list, copies: list, connections: int, tick) -> None:
    """Fetch one batch of pieces into their part files (``parts``, added to ``copies``)."""
    fds, jobs = [], []
    try:
        for (_, piece), part in zip(batch, parts):
            copies.append(part)
            fds.append(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            jobs += _jobs(piece, connections, fds[-1])
        for (_, _, last, _), (size, _) in zip(jobs, fetcher.run(jobs, tick)):
            if last is not None and size is not None and size <= last:
                raise MediaError(SOURCE_HTTP_ERROR, _SHORT)
    finally:
        for fd in fds:
            os.close(fd)


def _keys(fetcher, urls: list, tick) -> dict:
    """``{key url: 16 bytes}`` for AES-128 (RFC 8216 §5.2: "an octet sequence of 16 octets"),
    each URL fetched once; MediaError(FORMAT_UNAVAILABLE) for any other length."""
    found = fetcher.run([(url, MAX_KEY_BYTES, None, None) for url in urls], tick) if urls else []
    secrets = {url: data for url, (_, data) in zip(urls, found)}
    if any(len(data) != 16 for data in secrets.values()):
        raise MediaError(FORMAT_UNAVAILABLE, "The video's decryption key is not a 16-byte "
                                             "AES-128 key.")
    return secrets


def _append(source, item: Fragment, out, secrets: dict) -> None:
    """Copy ``item``'s bytes from its part file ``source`` (at its byte range's offset, where
    the fetcher wrote them; else all of it) to ``out``, decrypted when it has a key
    (AES-128-CBC, PKCS#7 padding stripped: RFC 8216 §4.3.2.4 and §5.2)."""
    offset, left = (item.byte_range[0], item.byte_range[1] - item.byte_range[0]) \
        if item.byte_range else (0, os.fstat(source.fileno()).st_size)
    source.seek(offset)
    decryptor = unpadder = None
    if item.key:
        cipher = Cipher(algorithms.AES(secrets[item.key.url]), modes.CBC(item.key.iv))
        decryptor = cipher.decryptor()
        unpadder = padding.PKCS7(128).unpadder()
    while left > 0:
        chunk = source.read(min(1024 * 1024, left))
        if not chunk:
            raise MediaError(SOURCE_HTTP_ERROR, _SHORT)
        left -= len(chunk)
        out.write(unpadder.update(decryptor.update(chunk)) if decryptor and unpadder else chunk)
    if decryptor and unpadder:  # both are set together, from item.key
        try:
            out.write(unpadder.update(decryptor.finalize()) + unpadder.finalize())
        except ValueError as exc:  # not whole blocks, or the padding is wrong: a bad key
            raise MediaError(FORMAT_UNAVAILABLE, "A segment of this video could not be "
                                                 "decrypted.") from exc


def _container(path: Path) -> Optional[str]:
    """The suffix segment.py's ``_COPY_DEMUXERS`` knows for a joined copy, from its first
    bytes: EBML header → ``.webm``, MPEG-TS sync bytes (0x47 every 188 bytes) → ``.ts``, an
    ISO BMFF box type → ``.mp4``; None for anything else (packed audio, garbage)."""
    with open(path, "rb") as fh:
        head = fh.read(189)
    if head[:4] == _EBML:
        return ".webm"
    if head[:1] == b"\x47" and (len(head) < 189 or head[188:189] == b"\x47"):
        return ".ts"
    if len(head) >= 8 and head[4:8] in _BOXES:
        return ".mp4"
    return None
