"""The fragment path: a segmented DASH stream cut from only the fragments that cover the clip.

yt-dlp parses the MPD (ISO/IEC 23009-1 ``SegmentTemplate`` with ``SegmentTimeline``,
``$Number$`` or ``$Time$``) and hands over, per format (``protocol == "http_dash_segments"``),
``fragment_base_url`` and ``fragments``: the first entry is the *Initialization Segment* (a
``path`` or ``url``, no ``duration``), every other one a *Media Segment* with ``duration`` in
seconds. yt-dlp does not pass ``S@t`` on, so a segment's start is the running sum of the
durations — used only to choose segments; the cut itself is placed relative to the first
chosen one (below), so a timeline that does not start at 0 changes nothing.

Each DASH Media Segment of these sources starts with a keyframe (``startWithSAP="1"``, checked
on ffmpeg's ``-f dash`` output: the first packet of every video segment is a keyframe), so the
segments overlapping [start, end] are all that is needed. They are fetched with the
Initialization Segment in parallel through :class:`src.media.rangefetch.Fetcher` (whole-object
GETs through the egress guard, redirects checked, bounded retries), in batches of part files
appended in order to one local fragmented MP4 (or WebM) per stream: init + segments is a valid
file (ISO/IEC 23009-1 §6.3.4.2 / ISO BMFF §8.8). Its ``tfdt`` keep the original timeline, so
the copy starts at the first chosen segment's time, and ffmpeg's input ``-ss`` is relative to
a file's start time (``ffmpeg_demux``: the seek target is ``-ss`` + ``start_time`` unless
``-seek_timestamp``): each copy is cut with ``-ss start - first segment's start``.

ffmpeg's own dash demuxer, asked for ``-ss 300`` on these sources, starts one GOP earlier (at
298 s: it seeks by dts, and the keyframe at 300 s has dts 299.92 s); the fragment path starts at
the keyframe at 300 s. The packets after that point are the same (tests/test_media_fragments.py).

Bytes: the chosen segments hold the clip plus, at most, the part of the first segment before
``start`` and of the last one after ``end`` (< 2 segment durations: 6 s video, ≈ 5 s audio for
ffmpeg's default ``-seg_duration 5``). Hostile lists end in :data:`None` (the caller lets
ffmpeg read the manifest) or a clear :class:`MediaError`: entries, durations, segments per clip
and bytes per segment are capped below.
"""
from __future__ import annotations

import bisect
import math
import os
import shutil
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from src.media import rangefetch
from src.media.errors import SEGMENT_OUT_OF_RANGE, MediaError
from src.media.ffmpeg import mmss

PROTOCOL = "http_dash_segments"
#: Entries read from one format; a longer list is not planned (the direct path reads it).
MAX_FRAGMENTS = 200_000
#: Longest believable Media Segment, seconds (ISO/IEC 23009-1 leaves it open; sites use 1–10 s).
MAX_SEGMENT_SECONDS = 300.0
#: Segments fetched per stream for one clip (≈ 6.7 h of 6 s segments); more → direct path.
MAX_PICKED = 4000
#: Bytes accepted per segment / Initialization Segment (whole-object GET limit).
MAX_SEGMENT_BYTES = 256 * 1024 * 1024
MAX_INIT_BYTES = 16 * 1024 * 1024
#: Segments fetched (as part files) per round; bounds open files and disk beyond the copies.
BATCH = 64
#: Path speed by yt-dlp protocol, lower is faster: one file read by its index with Range
#: requests (the ranged path) < a fragment list (this module) < what only ffmpeg reads (HLS…).
_PATH_RANK = {"http": 0, "https": 0, PROTOCOL: 1}
_EBML = b"\x1a\x45\xdf\xa3"


@dataclass(frozen=True)
class Fragment:
    """One Media Segment: absolute ``url``, ``start`` and ``duration`` in seconds."""

    url: str
    start: float
    duration: float


@dataclass
class FragmentList:
    """A format's segments: ``init_url`` (Initialization Segment), ``fragments`` in order, and
    ``problem``: why the list cannot be planned (None when it can; then ffmpeg reads the URL)."""

    init_url: Optional[str]
    fragments: tuple = ()
    problem: Optional[str] = None

    @property
    def duration(self) -> float:
        last = self.fragments[-1] if self.fragments else None
        return last.start + last.duration if last else 0.0


def path_rank(fmt: dict) -> int:
    """0 ranged index path, 1 fragment path, 2 ffmpeg direct (module ``_PATH_RANK``)."""
    return _PATH_RANK.get(fmt.get("protocol", "http"), 2)


def prefer_fastest(formats: list, quality) -> list:
    """``formats`` without those that have an equal-quality twin on a faster path.

    ``quality(fmt)``: a hashable key; formats with the same key are equal (the caller uses
    resolution label, container and stream kind; bitrates are not compared). Order is kept.
    """
    best: dict = {}
    for fmt in formats:
        key = quality(fmt)
        best[key] = min(best.get(key, 9), path_rank(fmt))
    return [fmt for fmt in formats if path_rank(fmt) == best[quality(fmt)]]


def from_format(fmt: Optional[dict]) -> Optional[FragmentList]:
    """The :class:`FragmentList` of a yt-dlp format, None when it is not ``http_dash_segments``.

    Reads ``fragment_base_url`` and ``fragments`` (``url`` or ``path`` relative to the base,
    ``duration`` in seconds). Never raises: a list that is empty, longer than
    :data:`MAX_FRAGMENTS`, without an Initialization Segment, with a byte range, a missing,
    non-finite, non-positive or absurd (> :data:`MAX_SEGMENT_SECONDS`) duration comes back with
    ``problem`` set.
    """
    if not fmt or fmt.get("protocol") != PROTOCOL:
        return None
    entries, base = fmt.get("fragments"), fmt.get("fragment_base_url")
    if not isinstance(entries, list) or not entries:
        return FragmentList(None, (), "no fragments")
    if len(entries) > MAX_FRAGMENTS:
        return FragmentList(None, (), f"{len(entries)} fragments")
    init, found, clock = None, [], 0.0
    for index, entry in enumerate(entries):
        url = fragment_url(entry, base)
        if url is None or "byte_range" in entry:
            return FragmentList(None, (), f"fragment {index}: no usable url")
        duration = entry.get("duration")
        if duration is None and index == 0:
            init = url
            continue
        if (not isinstance(duration, (int, float)) or isinstance(duration, bool)
                or not math.isfinite(duration) or not 0 < duration <= MAX_SEGMENT_SECONDS):
            return FragmentList(None, (), f"fragment {index}: duration {duration!r}")
        found.append(Fragment(url, clock, float(duration)))
        clock += duration
    if init is None or not found:
        return FragmentList(None, (), "no initialization segment or no media segment")
    return FragmentList(init, tuple(found))


def fragment_url(entry, base) -> Optional[str]:
    """The URL of one yt-dlp ``fragments`` entry: its ``url``, else its ``path`` joined to the
    format's ``fragment_base_url`` ``base`` (a path without a base stays relative, which the
    egress check refuses); None for an entry that names neither (or is not a dict). The one
    join, for the egress check by name and for the fetch alike."""
    if not isinstance(entry, dict):
        return None
    url, path = entry.get("url"), entry.get("path")
    if isinstance(url, str) and url:
        return url
    if isinstance(path, str) and path:
        return urllib.parse.urljoin(base if isinstance(base, str) else "", path)
    return None


def pick(flist: FragmentList, start: float, end: float) -> list:
    """The segments overlapping ``start``..``end`` seconds (a segment ending at ``start`` is
    not needed: the next one starts with a keyframe), in order; ``[]`` when none does."""
    starts = [f.start for f in flist.fragments]
    first = max(0, bisect.bisect_right(starts, start) - 1)
    if flist.fragments and flist.fragments[first].start + flist.fragments[first].duration \
            <= start + 1e-6:
        first += 1
    last = bisect.bisect_left(starts, end)
    return list(flist.fragments[first:last])


def fragment_copies(plan, start: float, end: float, tmp: Path, copies: list,
                    on_progress: Optional[Callable[[dict], None]], deadline: Optional[float],
                    connections: int, share: float, egress) -> Optional[list]:
    """Fetch the Initialization Segment and the segments covering ``start``..``end`` of each
    of the plan's streams (``plan.video_fragments``, ``plan.audio_fragments`` when it has an
    ``audio_url``) into local copies ``{tmp}.{i}.mp4`` (``.webm`` when the init is WebM);
    return ``[(path, seek seconds for ffmpeg's input -ss), ...]`` per stream, or None when a
    stream has no plannable list (the caller lets ffmpeg read the URLs).

    Copies and part files are appended to ``copies`` as they are created (the caller removes
    them). ``connections``: parallel requests per stream; ``on_progress``: the spec's dict,
    ``download_progress`` 0 → ``share`` as segments complete (segments done / planned);
    ``egress``: the guard session (:class:`src.media.guard.Session`). Raises
    MediaError(SEGMENT_OUT_OF_RANGE) when ``start`` is at or past the end of the video's
    timeline; SOURCE_NOT_ALLOWED, SOURCE_HTTP_ERROR, FORMAT_UNAVAILABLE (a segment over
    :data:`MAX_SEGMENT_BYTES`), FFMPEG_FAILED past the deadline (:meth:`Fetcher.run`).
    """
    lists = [plan.video_fragments] + ([plan.audio_fragments] if plan.audio_url else [])
    if any(flist is None or flist.problem for flist in lists):
        return None
    if start >= lists[0].duration:
        raise MediaError(SEGMENT_OUT_OF_RANGE)
    picks = [pick(flist, start, end) for flist in lists]
    if any(not chosen or len(chosen) > MAX_PICKED for chosen in picks):
        return None
    for flist, chosen in zip(lists, picks):
        for url in [flist.init_url] + [f.url for f in chosen]:
            egress.policy.check_url(url)
    # inits first, then every stream's segments by time (each stream keeps its order)
    jobs = [(i, flist.init_url, MAX_INIT_BYTES) for i, flist in enumerate(lists)]
    jobs += [(i, f.url, MAX_SEGMENT_BYTES) for f, i in sorted(
        ((f, i) for i, chosen in enumerate(picks) for f in chosen),
        key=lambda item: (item[0].start, item[1]))]
    fetcher = rangefetch.Fetcher(plan.http_headers, connections * len(lists), deadline,
                                 egress=egress)
    started, outs, paths = time.monotonic(), [], []

    def tick() -> None:
        if on_progress:
            fraction = min(1.0, fetcher.done_jobs / len(jobs))
            elapsed = max(1e-3, time.monotonic() - started)
            speed, eta = fraction * (end - start) / elapsed, None
            if fraction > 0:
                eta = mmss(elapsed * (1 - fraction) / fraction)
            on_progress({"download_progress": round(share * fraction, 1),
                         "speed": f"{speed:.1f}x" if speed > 0 else None, "fps": 0.0,
                         "eta": eta})

    try:
        for number in range(0, len(jobs), BATCH):
            batch, fds = jobs[number:number + BATCH], []
            try:
                for k, _ in enumerate(batch):
                    part = Path(f"{tmp}.part{number + k}")
                    copies.append(part)
                    fds.append(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                fetcher.run([(url, limit, None, fd) for (_, url, limit), fd in zip(batch, fds)],
                            tick)
            finally:
                for fd in fds:
                    os.close(fd)
            for k, (stream, _, _) in enumerate(batch):
                part = Path(f"{tmp}.part{number + k}")
                if number + k < len(lists):  # an init: the stream's copy starts with it
                    suffix = ".webm" if part.read_bytes()[:4] == _EBML else ".mp4"
                    paths.append(Path(f"{tmp}.{stream}{suffix}"))
                    copies.append(paths[-1])
                    outs.append(open(paths[-1], "wb"))
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, outs[stream], 1024 * 1024)
                part.unlink()
    finally:
        for out in outs:
            out.close()
        fetcher.close()
    return [(str(path), max(0.0, start - chosen[0].start)) for path, chosen in zip(paths, picks)]

