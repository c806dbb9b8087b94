"""Clips of a live HLS stream by wall-clock time (issue 14, item 1: the HLS part).

A live media playlist (RFC 8216 §6.2.2: no ``#EXT-X-ENDLIST``) is a sliding window: each
reload adds the newest segments and drops the oldest. ``#EXT-X-PROGRAM-DATE-TIME`` maps it to
the wall clock: the date applies to the first sample of its segment, and the segments after it
follow by their ``#EXTINF`` durations until the next date (§4.3.2.6). So the window [t0, t1]
(UTC epoch seconds) is exactly the segments whose dated span overlaps it. They are identified
across reloads by their Media Sequence Number (§4.3.3.2, §6.2.2: a segment keeps its number).

:func:`fetch_live` reloads the playlist — at least a target duration after the previous load
began when it changed, half of one when it did not (§6.3.4) — and fetches each covering
segment as soon as it is listed (the part of the window that already exists at once, in
parallel, through :func:`src.media.fragmentcopy.fragment_copies`: egress checks, AES-128, the
``EXT-X-MAP`` init), appending it to one local copy; a long window is thus fetched before its
first segments slide out. When the window's last segment is listed (or the stream ended,
``EXT-X-ENDLIST``: what exists is cut), the copy is cut with stream copy as the VOD fragment
path cuts it (:mod:`src.media.segment`: joined MPEG-TS with ``-itsoffset``, an fMP4 copy with
``-ss``; the mp4 muxer's edit list starts the clip at t0).

Hostile playlists end in a MediaError, never in an endless wait: bodies are capped
(:data:`hls.MAX_PLAYLIST_BYTES`), reloads by a deadline, a stall limit (no newer segment),
a lag limit (:data:`MAX_LAG` past the window's end) and :data:`MAX_REFRESHES`, segments by
:data:`fragmentcopy.MAX_PICKED`; dates that go backwards, lie far in the future or rewrite a
listed segment are refused.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media import egress, fragmentcopy, guard, hls, rangefetch, segment
from src.media.choice import FetchPlan
from src.media.errors import (
    FFMPEG_FAILED,
    FORMAT_UNAVAILABLE,
    LIVE_STALLED,
    LIVE_WINDOW_MISSED,
    SEGMENT_OUT_OF_RANGE,
    MediaError,
)
from src.media.ffmpeg import FFmpegError, mmss, run_ffmpeg
from src.media.fragments import Fragment, FragmentList
from src.media.livedates import DATE_SLACK, Dated, bad_dates, dated_segments

#: A window may start this much before the oldest listed segment (date rounding) and still
#: be "in" the playlist.
START_SLACK = 0.5
#: Longest wait for a window's end from the call (a `!clip` ends within minutes).
MAX_WAIT = 4 * 3600.0
#: The playlist may keep its newest segment this long (or 3 target durations) before the
#: stream counts as stalled.
MIN_STALL = 10.0
#: The window's end this long ago by our clock and still not listed: the stream lags or its
#: dates crawl (YouTube's normal latency is 10–30 s), so stop waiting.
MAX_LAG = 120.0
MAX_REFRESHES = 20_000
#: Progress share of the fetch; the local cut fills the rest (as segment.FETCH_SHARE).
FETCH_SHARE = segment.FETCH_SHARE
_DEMUXERS = {".ts": "mpegts", ".mp4": "mov"}


class LiveWindowMissed(MediaError):
    """(Part of) the window is older than the playlist's oldest segment: only the VOD has it."""

    def __init__(self, detail: str):
        super().__init__(LIVE_WINDOW_MISSED, detail=detail)


class LiveStalled(MediaError):
    """No new segment before the window's end."""

    def __init__(self, detail: str):
        super().__init__(LIVE_STALLED, detail=detail)


def fetch_live(plan: FetchPlan, t0: float, t1: float, out_path,
               on_progress: Optional[Callable[[dict], None]] = None,
               on_start=None, timeout: Optional[float] = None,
               on_cut: Optional[Callable[[Path], None]] = None,
               clock: Callable[[], float] = time.time) -> dict:
    """Record wall-clock seconds ``t0``..``t1`` (POSIX, UTC) of the live HLS media playlist
    ``plan.video_url`` (a combined or video-only stream; ``plan.http_headers`` sent) into
    ``out_path`` (folder must exist; written under a hidden name, renamed on success).

    Waits for the part of the window after now. ``on_progress(dict)``: fetch_segment's fields
    plus ``current_phase`` — ``"recording"`` with ``seconds_to_come`` (window seconds the
    stream has not listed yet) while waiting, then ``"downloading"``; an exception it raises
    cancels (files removed). ``on_start``/``on_cut``/``timeout`` (wall seconds for all of
    it) as in :func:`src.media.segment.fetch_segment`; ``clock``: POSIX seconds now.

    Returns fetch_segment's summary plus ``start_time``/``end_time`` (dates of the clip's
    first and last sample), ``ended`` (the stream ended before ``t1``) and ``segments``
    (``[{"sequence", "url", "date", "duration"}]`` fetched). Raises ValueError (``t0 >= t1``,
    a plan with a separate audio playlist, ``t1`` more than :data:`MAX_WAIT` ahead);
    :class:`LiveWindowMissed`; :class:`LiveStalled`; MediaError: SOURCE_NOT_ALLOWED,
    SOURCE_HTTP_ERROR, FORMAT_UNAVAILABLE (see :func:`dated_segments`, a discontinuity inside
    the window), SEGMENT_OUT_OF_RANGE (the stream ended before ``t0``), FFMPEG_FAILED.
    """
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1) or plan.audio_url:
        raise ValueError("need finite t0 < t1 and one combined media playlist")
    if t1 - clock() > MAX_WAIT:
        raise ValueError(f"the window ends more than {MAX_WAIT:.0f} s from now")
    policy = egress.current()
    policy.check_url(plan.video_url)
    deadline = time.monotonic() + (timeout or MAX_WAIT + 600)
    return recorded(out_path, policy, lambda session, tmp, copies: _Recorder(
        plan, t0, t1, session, deadline, tmp, copies, on_progress, clock), on_start, on_cut)


def recorded(out_path, policy: egress.Policy, make: Callable, on_start, on_cut) -> dict:
    """Run a live recorder (this module's or src/media/livesq.py's) into ``out_path``:
    ``make(session, tmp, copies)`` builds it inside a guard session; its ``record()`` then
    ``cut(on_start, on_cut)`` write ``tmp``, a hidden file beside ``out_path`` renamed to it on
    success. ``tmp`` and every file listed in ``copies`` are removed in any case (and the
    recorder's ``close()`` called, if it has one); ffmpeg's or the guard's failure is reported
    as :func:`src.media.segment.reported` says. Returns the cut's summary."""
    out = Path(out_path)
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp, copies = Path(name), list[Path]()
    with guard.session(policy) as session:
        recorder = make(session, tmp, copies)
        try:
            recorder.record()
            summary = recorder.cut(on_start, on_cut)
            os.replace(tmp, out)
            return summary
        except (FFmpegError, MediaError) as exc:
            error = segment.reported(session, exc)
            if error is exc:
                raise
            raise error from exc
        finally:
            getattr(recorder, "close", lambda: None)()
            for path in (tmp, *copies):
                path.unlink(missing_ok=True)


def report(on_progress: Callable[[dict], None], share: float, to_come: float) -> None:
    """One progress report of a live recording (this module's and src/media/livesq.py's):
    ``share`` (0–100) of the job done; phase ``recording`` with ``seconds_to_come`` while
    ``to_come`` window seconds are not produced yet, else ``downloading``."""
    to_come = round(to_come, 1)  # what is reported: never "recording, 0.0 s to come"
    recording = to_come > 0
    on_progress({"current_phase": "recording" if recording else "downloading",
                 "seconds_to_come": to_come if recording else 0,
                 "download_progress": round(share, 1), "speed": None, "fps": 0.0,
                 "eta": mmss(to_come) if recording else None})


def wait_until(until: float, deadline: float, tick: Callable[[], None]) -> None:
    """Sleep until ``until`` (monotonic seconds), calling ``tick()`` at least every 0.5 s (its
    exception — a cancel — lands that soon). Raises MediaError FFMPEG_FAILED past
    ``deadline``."""
    while (left := until - time.monotonic()) > 0:
        if time.monotonic() > deadline:
            raise MediaError(FFMPEG_FAILED, "Recording the live clip took too long.")
        time.sleep(min(0.5, left))
        tick()


def cut_copies(plan: FetchPlan, offsets: list, length: float, tmp: Path, copies: list,
               session, deadline: float, on_start, on_cut, tick: Callable) -> dict:
    """Cut the local ``copies`` (one per stream, each starting ``offsets[i]`` seconds before
    the clip) to ``length`` seconds into ``tmp`` with stream copy, as the VOD paths cut
    (:func:`src.media.segment.ffmpeg_args`); ``tick(cut=fraction)`` reports the cut, the time
    left to ``deadline`` (monotonic) bounds it (MediaError FFMPEG_FAILED when none is left).
    Returns :func:`src.media.segment.clip_summary` of the result."""
    args = segment.ffmpeg_args(plan, offsets, length, tmp, copies, session.proxy_url)
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaError(FFMPEG_FAILED, "Recording the live clip took too long.")
    run_ffmpeg(args, on_start=on_start, timeout=left,
               on_progress=lambda p: tick(cut=1.0 if p.done else min(0.999,
                                                                        p.out_time / length)))
    if on_cut:
        on_cut(tmp)
    return segment.clip_summary(tmp, plan.audio_only)


class _Recorder:
    """The state of one :func:`fetch_live`: segments kept, the local copy, progress."""

    def __init__(self, plan, t0, t1, session, deadline, tmp, copies, on_progress, clock):
        self.plan, self.t0, self.t1, self.session = plan, t0, t1, session
        self.deadline, self.tmp, self.copies = deadline, tmp, copies
        self.on_progress, self.clock = on_progress, clock
        self.kept: list = []  # Dated, fetched in order into self.joined
        self.joined: Optional[Path] = None
        # before the first load: all of a window not over yet is to come (an upper bound)
        self.ended, self.to_come = False, (t1 - t0 if t1 > clock() else 0.0)

    def record(self) -> None:
        """Reload until the window's last segment is fetched or the stream ended."""
        newest, changed_at = -math.inf, time.monotonic()
        for _ in range(MAX_REFRESHES):
            began = time.monotonic()
            body, final = self._load()
            dated, target, init, self.ended = dated_segments(body, final, self.clock())
            reached = dated[-1].end if dated else -math.inf
            changed = reached > newest  # the listing advanced in time, not only in numbers
            if changed:
                newest, changed_at = reached, began
            self.to_come = max(0.0, self.t1 - max(reached, self.t0))
            self._take(dated, init)
            if self.ended or reached >= self.t1 - 1e-3:
                break
            if time.monotonic() - changed_at > max(MIN_STALL, 3 * target):
                raise LiveStalled(f"no new segment for {time.monotonic() - changed_at:.0f} s")
            if self.clock() > self.t1 + max(MAX_LAG, 10 * target):
                raise LiveStalled(f"the listing lags the window's end by over {MAX_LAG:.0f} s")
            self._wait(began + (target if changed else target / 2))
        else:
            raise LiveStalled(f"{MAX_REFRESHES} reloads")
        if not self.kept:
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The live stream ended before the clip's "
                                                   "start.")

    def _load(self) -> tuple:
        """``(body, URL after redirects)`` of the playlist (size-capped, through the guard)."""
        try:
            return rangefetch.fetch_whole([self.plan.video_url], self.plan.http_headers,
                                          self.session, self.deadline, hls.MAX_PLAYLIST_BYTES,
                                          self._tick)[0]
        except MediaError as exc:
            if exc.code == FORMAT_UNAVAILABLE:  # over the size limit
                raise MediaError(FORMAT_UNAVAILABLE, "The source's playlist is larger than "
                                 "the server accepts.", detail=exc.detail) from exc
            raise

    def _take(self, dated: list, init) -> None:
        """Check the listed window segments against what is kept and fetch the new ones."""
        wanted = [d for d in dated
                  if d.end > self.t0 + 1e-3 and d.date < self.t1 and d.fragment.duration > 0]
        if not self.kept and dated and self.t0 < dated[0].date - START_SLACK \
                and (wanted or dated[0].date >= self.t1):
            raise LiveWindowMissed(f"oldest listed segment dated {dated[0].date:.3f}, "
                                   f"window starts {self.t0:.3f}")
        kept = {d.sequence: d for d in self.kept}
        new: list[Dated] = []
        for d in wanted:
            seen = kept.get(d.sequence)
            if seen is not None:
                if seen.fragment.url != d.fragment.url or abs(seen.date - d.date) > DATE_SLACK:
                    raise bad_dates(f"segment {d.sequence} changed between reloads")
                continue
            last = new[-1] if new else (self.kept[-1] if self.kept else None)
            if last is not None and d.sequence != last.sequence + 1:
                if d.sequence < last.sequence:
                    raise bad_dates("media sequence numbers go backwards")
                raise LiveWindowMissed(f"segments {last.sequence + 1}..{d.sequence - 1} left "
                                       "the playlist before they were fetched")
            if last is not None and d.fragment.discontinuity:
                raise MediaError(FORMAT_UNAVAILABLE, "The live stream restarted inside the "
                                                     "clip.", detail="EXT-X-DISCONTINUITY")
            new.append(d)
        if len(self.kept) + len(new) > fragmentcopy.MAX_PICKED:
            raise MediaError(FORMAT_UNAVAILABLE, detail="too many live segments for one clip")
        if new:
            self._fetch(new, init if not self.kept else None)

    def _fetch(self, new: list, init) -> None:
        """Fetch ``new`` (in parallel; the init with the first ones) and append them."""
        base = (self.kept or new)[0].date
        parts = tuple(Fragment(d.fragment.url, d.date - base, d.fragment.duration,
                               d.fragment.byte_range, d.fragment.key) for d in new)
        flist = FragmentList(init[0] if init else None, parts, None,
                             init[1] if init else None, init[2] if init else None)
        done = sum(d.fragment.duration for d in self.kept)
        span = parts[-1].start + parts[-1].duration - parts[0].start

        def report(values: dict) -> None:
            self._tick(done + span * values["download_progress"] / 100)

        local = fragmentcopy.fragment_copies(
            self.plan, parts[0].start, parts[0].start + span, Path(f"{self.tmp}.{len(self.kept)}"),
            self.copies, report, self.deadline, 4, 100.0, self.session, [flist])
        copy = Path(local[0][0]) if local else None
        if copy is None or copy.suffix not in _DEMUXERS \
                or (self.joined and self.joined.suffix != copy.suffix):
            raise MediaError(FORMAT_UNAVAILABLE, detail="live segments in no container we cut")
        if self.joined is None:
            self.joined = Path(f"{self.tmp}.joined{copy.suffix}")
            self.copies.append(self.joined)
        with open(copy, "rb") as src, open(self.joined, "ab") as dst:
            while chunk := src.read(1024 * 1024):
                dst.write(chunk)
        copy.unlink()
        self.kept += new
        self._tick()

    def _tick(self, fetched: Optional[float] = None, cut: Optional[float] = None) -> None:
        """Report progress: ``fetched`` window seconds (default: those kept), ``cut``: the
        fraction of the clip ffmpeg wrote."""
        if not self.on_progress:
            return
        if fetched is None:
            fetched = sum(d.fragment.duration for d in self.kept)
        share = min(FETCH_SHARE, FETCH_SHARE * fetched / max(1e-3, self.t1 - self.t0))
        if cut is not None:
            share = FETCH_SHARE + (100 - FETCH_SHARE) * min(1.0, max(0.0, cut))
        report(self.on_progress, share, 0.0 if self.ended else self.to_come)

    def _wait(self, until: float) -> None:
        wait_until(until, self.deadline, self._tick)

    def cut(self, on_start, on_cut) -> dict:
        """Cut the local copy to the window, as the VOD fragment path cuts its copy
        (:func:`src.media.segment.ffmpeg_args`)."""
        assert self.joined is not None  # record() kept at least one segment
        first, last = self.kept[0], self.kept[-1]
        start, end = max(self.t0, first.date), min(self.t1, last.end)
        self.to_come = 0.0
        self._tick()
        summary = cut_copies(self.plan, [start - first.date], end - start, self.tmp,
                             [str(self.joined)], self.session, self.deadline, on_start, on_cut,
                             self._tick)
        return {**summary, "start_time": start, "end_time": end,
                "ended": self.ended and end < self.t1,
                "segments": [{"sequence": d.sequence, "url": d.fragment.url, "date": d.date,
                              "duration": d.fragment.duration} for d in self.kept]}


