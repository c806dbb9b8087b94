"""Clips of a live YouTube stream from its sequence-numbered adaptive formats (issue 14, item 1:
the "sq" half; the HLS half is :mod:`src.media.live`).

With ``live_from_start`` yt-dlp gives a live video's adaptive formats protocol
``http_dash_segments_generator``, ``is_from_start: True``, ``target_duration`` (the player's
``targetDurationSec``) and its ``url``; fragment N is that URL with ``&sq=N``
(``yt_dlp/extractor/youtube/_video.py``: ``_list_formats`` sets the keys,
``_prepare_live_from_start_formats`` the protocol, ``_live_adaptive_fragments`` the URLs). The
``fragments`` generator does not survive ``YoutubeDL.sanitize_info`` (it becomes its repr, a
string; yt-dlp issue #13906), so :func:`plan_for` works from the other keys.

Wall clock → sequence number (ytarchive ``ParseLiveFromStrVal``: start sq = head −
seconds / target): fragment ``head`` (``X-Head-Seqnum``, read at our time T) was completed
within the last target duration d, so it is taken to end at E = T − d/2 and fragment k to
cover [E − (head − k + 1)·d, E − (head − k)·d]. Precision: ±d/2 from the read, plus the
drift of real fragment lengths from d: ±1 fragment. The window's fragments are fetched as the
head passes them — those that exist at once, in parallel (:class:`rangefetch.Fetcher`,
through the egress guard, :data:`MAX_FRAGMENT_BYTES` each), the rest after polling the head
every d — and joined per stream (:func:`livesqhead.append_fragment`), then cut with stream
copy by :func:`src.media.segment.ffmpeg_args` (``-ss`` into each copy; the mp4 muxer's edit
list starts the clip at t0), as :mod:`src.media.live` cuts.

Errors, never an endless wait: a 404/410 for a fragment at or behind the head is
:class:`~src.media.live.LiveWindowMissed` (the server no longer has it: DVR window); the head
not advancing for max(``live.MIN_STALL``, 3·d), or the window's end further than
``live.MAX_LAG`` behind our clock, is :class:`~src.media.live.LiveStalled`; a head that is not
a number, over :data:`livesqhead.MAX_SQ`, going backwards or running faster than real time is
MediaError(FORMAT_UNAVAILABLE); fragments per stream are capped by ``fragmentcopy.MAX_PICKED``,
the whole by a deadline. The stream's end is not detected (``ended`` is always False).
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media import egress, fragmentcopy, live, rangefetch
from src.media.choice import FetchPlan
from src.media.errors import FORMAT_UNAVAILABLE, SEGMENT_OUT_OF_RANGE, MediaError
from src.media.livesqhead import HeadReader, append_fragment, sq_url

PROTOCOL = "http_dash_segments_generator"
#: targetDurationSec values believed (YouTube: 1, 2 or 5 s by latency mode).
TARGET_RANGE = (0.5, 30.0)
MAX_FRAGMENT_BYTES = 64 * 1024 * 1024
CONNECTIONS = 4
#: Fragments fetched per request round (part files on disk at once, per stream).
BATCH = 16


def _target(fmt: dict) -> Optional[float]:
    value = fmt.get("target_duration")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if TARGET_RANGE[0] <= value <= TARGET_RANGE[1] else None


def plan_for(info: dict, max_height: int = 1080) -> Optional[tuple[FetchPlan, float]]:
    """``(plan, target duration s)`` for the best live-from-start video at or under
    ``max_height`` (mp4/avc1 first, then height, then bitrate) and the best audio (m4a first,
    then bitrate) of a (sanitized) yt-dlp ``info``, or None when it has no such video format.
    A format qualifies with an http(s) ``url``, a ``target_duration`` in :data:`TARGET_RANGE`,
    ``is_from_start`` or protocol :data:`PROTOCOL`, and no DRM."""
    found = [f for f in info.get("formats") or [] if isinstance(f, dict)
             and str(f.get("url") or "").startswith(("http://", "https://"))
             and (f.get("is_from_start") or f.get("protocol") == PROTOCOL)
             and _target(f) and not f.get("has_drm")]
    videos = [f for f in found if f.get("vcodec") not in (None, "none")
              and (f.get("height") or 0) <= max_height]
    audios = [f for f in found if f.get("vcodec") == "none"
              and f.get("acodec") not in (None, "none")]
    if not videos:
        return None
    video = max(videos, key=lambda f: (f.get("ext") == "mp4",
                                       str(f.get("vcodec")).startswith("avc1"),
                                       f.get("height") or 0, f.get("tbr") or 0))
    audio = max(audios, key=lambda f: (f.get("ext") == "m4a", f.get("abr") or 0),
                default=None)
    headers = {**(video.get("http_headers") or {}), **((audio or {}).get("http_headers") or {})}
    plan = FetchPlan(video["url"], audio["url"] if audio else None, headers,
                     width=video.get("width"), height=video.get("height"),
                     vcodec=video.get("vcodec"), acodec=(audio or video).get("acodec"),
                     format_ids=[f.get("format_id") for f in (video, audio) if f],
                     video_protocol=str(video.get("protocol") or PROTOCOL),
                     audio_protocol=str(audio.get("protocol") or PROTOCOL) if audio else None)
    return plan, float(_target(video) or 0)


def fetch_live_sq(plan: FetchPlan, t0: float, t1: float, out_path, target_duration: float,
                  on_progress: Optional[Callable[[dict], None]] = None, on_start=None,
                  timeout: Optional[float] = None,
                  on_cut: Optional[Callable[[Path], None]] = None,
                  clock: Callable[[], float] = time.time) -> dict:
    """Record wall-clock seconds ``t0``..``t1`` (POSIX, UTC) of the live formats
    ``plan.video_url`` (+ ``plan.audio_url``), fragments of ``target_duration`` s addressed by
    sequence number, into ``out_path``: the contract of :func:`src.media.live.fetch_live`
    (hidden temp file renamed on success, nothing left on failure; progress ``recording``
    with ``seconds_to_come``, then ``downloading``; returns fetch_segment's summary plus
    ``start_time``/``end_time`` (estimated, ±1 fragment), ``ended`` (False) and ``segments``
    (the video's ``[{"sequence", "url", "date", "duration"}]``)). Raises ValueError (bad
    window or target duration, ``t1`` over ``live.MAX_WAIT`` ahead), LiveWindowMissed,
    LiveStalled, MediaError (module docstring; SOURCE_NOT_ALLOWED, SOURCE_HTTP_ERROR,
    FFMPEG_FAILED)."""
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
        raise ValueError("need finite t0 < t1")
    if not TARGET_RANGE[0] <= target_duration <= TARGET_RANGE[1]:
        raise ValueError(f"target duration {target_duration!r} s is out of range")
    if t1 - clock() > live.MAX_WAIT:
        raise ValueError(f"the window ends more than {live.MAX_WAIT:.0f} s from now")
    policy = egress.current()
    urls = [plan.video_url] + ([plan.audio_url] if plan.audio_url else [])
    for url in urls:
        policy.check_url(url)
    deadline = time.monotonic() + (timeout or live.MAX_WAIT + 600)
    return live.recorded(out_path, policy, lambda session, tmp, copies: _Recorder(
        plan, urls, t0, t1, target_duration, session, deadline, tmp, copies, on_progress,
        clock), on_start, on_cut)


class _Recorder:
    """One :func:`fetch_live_sq`: the anchor (head, its estimated end), per-stream progress."""

    def __init__(self, plan, urls, t0, t1, d, session, deadline, tmp, copies, on_progress,
                 clock):
        self.plan, self.urls, self.t0, self.t1, self.d = plan, urls, t0, t1, d
        self.session, self.deadline, self.tmp, self.copies = session, deadline, tmp, copies
        self.on_progress, self.clock = on_progress, clock
        self.reader = HeadReader(session, plan.http_headers)
        self.fetcher = rangefetch.Fetcher(plan.http_headers, CONNECTIONS * len(urls), deadline,
                                          egress=session)
        self.joined = [Path(f"{tmp}.{i}.mp4") for i in range(len(urls))]
        copies.extend(self.joined)
        self.heads: list = [None] * len(urls)
        self.anchor = (0, 0.0)  # (head sq, its estimated end, POSIX s)
        self.first = self.last = 0
        self.next: list = []
        # before the first read: all of a window not over yet is to come (an upper bound)
        self.to_come = t1 - t0 if t1 > clock() else 0.0
        self.fetched = 0

    def close(self) -> None:
        self.fetcher.close()
        self.reader.close()

    def start_of(self, sq: int) -> float:
        """Estimated wall-clock start of fragment ``sq`` (module docstring)."""
        return self.anchor[1] - (self.anchor[0] - sq + 1) * self.d

    def record(self) -> None:
        """Poll the heads and fetch the window's fragments until the last one is joined."""
        self._poll()
        head = self.heads[0]
        self.anchor = (head, self.clock() - self.d / 2)
        self.first = max(0, math.floor(head - (self.anchor[1] - self.t0) / self.d) + 1)
        self.last = math.ceil(head + 1 - (self.anchor[1] - self.t1) / self.d) - 1
        if self.last < self.first:
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The live stream started after the clip's "
                                                   "end.")
        if self.last - self.first + 1 > fragmentcopy.MAX_PICKED:
            raise MediaError(FORMAT_UNAVAILABLE, detail="too many live fragments for one clip")
        self.next = [self.first] * len(self.urls)
        advanced = changed = time.monotonic()
        for _ in range(live.MAX_REFRESHES):
            began = time.monotonic()
            while batch := [(i, sq) for i, head in enumerate(self.heads)
                            for sq in range(self.next[i], min(self.last, head) + 1)][:BATCH]:
                self._fetch(batch)
            newest = self.start_of(self.heads[0]) + self.d
            self.to_come = max(0.0, self.t1 - max(newest, self.t0))
            self._tick()
            if min(self.next) > self.last:
                return
            if time.monotonic() - advanced > max(live.MIN_STALL, 3 * self.d):
                raise live.LiveStalled(f"the head stayed at {self.heads[0]} for "
                                       f"{time.monotonic() - advanced:.0f} s")
            if self.clock() > self.t1 + max(live.MAX_LAG, 10 * self.d):
                raise live.LiveStalled(f"the head lags the window's end by over "
                                       f"{live.MAX_LAG:.0f} s")
            # a target duration after a read that advanced, half of one after one that did
            # not (as live.py reloads, RFC 8216 §6.3.4)
            self._wait(began + (self.d if changed == advanced else self.d / 2))
            before = list(self.heads)
            self._poll(before, time.monotonic() - began)
            changed = time.monotonic()
            if self.heads != before:
                advanced = changed
        raise live.LiveStalled(f"{live.MAX_REFRESHES} head reads")

    def _poll(self, before: Optional[list] = None, elapsed: float = 0.0) -> None:
        """Read every stream's head; refuse one going backwards or faster than real time."""
        for i, url in enumerate(self.urls):
            head = self.reader.head(url)
            old = before[i] if before else None
            if old is not None and (head < old or head - old > elapsed / self.d + 3):
                raise MediaError(FORMAT_UNAVAILABLE, "The live stream's sequence numbers are "
                                 "not usable.", detail=f"X-Head-Seqnum went {old} -> {head}")
            self.heads[i] = head

    def _fetch(self, batch: list) -> None:
        """Fetch ``batch`` (``[(stream, sq)]``, each stream's in order from its next one) in
        parallel into part files, then append them to each stream's joined copy."""
        parts = [Path(f"{self.tmp}.{i}.part{sq}") for i, sq in batch]
        fds = []
        try:
            for part in parts:
                self.copies.append(part)
                fds.append(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            jobs = [(sq_url(self.urls[i], sq), MAX_FRAGMENT_BYTES, None, fd)
                    for (i, sq), fd in zip(batch, fds)]
            try:
                self.fetcher.run(jobs, self._tick)
            except MediaError as exc:
                if exc.status in (404, 410):
                    raise live.LiveWindowMissed(
                        f"fragments {batch[0][1]}..{batch[-1][1]} behind the head "
                        f"{self.heads[0]}: HTTP {exc.status}") from exc
                raise
        finally:
            for fd in fds:
                os.close(fd)
        for (i, sq), part in zip(batch, parts):
            with open(self.joined[i], "ab") as out:
                append_fragment(part.read_bytes(), out, sq == self.first)
            part.unlink()
            self.next[i] = sq + 1
            self.fetched += i == 0

    def _tick(self, cut: Optional[float] = None) -> None:
        """Progress as :mod:`src.media.live` reports it; ``cut``: fraction ffmpeg wrote."""
        if not self.on_progress:
            return
        total = max(1, self.last - self.first + 1)
        share = live.FETCH_SHARE * min(1.0, self.fetched / total)
        if cut is not None:
            share = live.FETCH_SHARE + (100 - live.FETCH_SHARE) * min(1.0, max(0.0, cut))
        live.report(self.on_progress, share, self.to_come)

    def _wait(self, until: float) -> None:
        live.wait_until(until, self.deadline, self._tick)

    def cut(self, on_start, on_cut) -> dict:
        """Cut the joined copies to the window (as :meth:`live._Recorder.cut` does)."""
        begin = self.start_of(self.first)
        start, end = max(self.t0, begin), min(self.t1, self.start_of(self.last) + self.d)
        self.to_come = 0.0
        self._tick()
        summary = live.cut_copies(self.plan, [start - begin] * len(self.urls), end - start,
                                  self.tmp, [str(p) for p in self.joined], self.session,
                                  self.deadline, on_start, on_cut, self._tick)
        return {**summary, "start_time": start, "end_time": end, "ended": False,
                "segments": [{"sequence": k, "url": sq_url(self.urls[0], k),
                              "date": self.start_of(k), "duration": self.d}
                             for k in range(self.first, self.last + 1)]}
