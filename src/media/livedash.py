"""Clips of a live DASH source by wall-clock time (issue 14: live DASH other than YouTube's; the
HLS half is :mod:`src.media.live`, YouTube's sequence numbers :mod:`src.media.livesq`).

A live presentation is an MPD with ``@type="dynamic"`` (ISO/IEC 23009-1 §5.3.1.2, §5.4): it is
reloaded at ``@minimumUpdatePeriod`` and its segments become available on the wall clock. The
wall clock of a media time t of a Representation is (§5.3.9.5.3, §5.3.9.6)::

    MPD@availabilityStartTime + Period@start + (t - @presentationTimeOffset) / @timescale

so the window [t0, t1] (POSIX seconds) is, per Representation: with ``SegmentTemplate`` and
``@duration`` d (§5.3.9.4), segments k = floor((t0 - P)/d) … ceil((t1 - P)/d) - 1 (P: the
Period's wall-clock start), ``$Number$`` = ``@startNumber`` + k, ``$Time$`` = PTO + k·d; with a
``SegmentTimeline`` (§5.3.9.6: ``S@t``, ``S@d``, ``S@r``) the listed segments whose span
overlaps the window, ``$Number$`` counting from ``@startNumber`` in list order. A segment is
available from its end (minus ``@availabilityTimeOffset`` unless ``@availabilityTimeComplete``
is false: chunked segments we fetch whole) until ``@timeShiftBufferDepth`` after that
(§5.3.9.5.3). The manifest is read by :mod:`src.media.livempd`: templates filled by
:func:`src.media.mpdparse.fill` (§5.3.9.4.4), timelines expanded by
``mpdparse.timeline_times``, ``BaseURL`` resolved by ``mpdparse.base_url`` (§5.6.4).

:func:`fetch_live_dash` loads the MPD through the egress guard (:func:`rangefetch.fetch_whole`,
at most :data:`src.media.mpd.MAX_MPD_BYTES`), picks a video (and audio) Representation, and
fetches each stream's Initialization Segment and the window's Media Segments as they become
available (parallel whole-object GETs through the guard, :data:`MAX_SEGMENT_BYTES` each),
reloading the MPD at its ``@minimumUpdatePeriod`` (clamped to :data:`UPDATE_RANGE`; once a
segment while one is overdue, to see the stream end) while part of the window is still to
come; init + segments is a valid fragmented MP4 per stream (§6.3.4.2).
The copies are then cut with stream copy by :func:`src.media.live.cut_copies`, inside
:func:`src.media.live.recorded` (temp file, clean-up, the guard's errors), progress by
:func:`src.media.live.report` (``recording`` with ``seconds_to_come``, then ``downloading``).

Hostile manifests end in a MediaError, never an endless wait: size cap; DTD/entities refused
(``defusedxml``); segment counts bounded before any list is built (``mpdparse.check_size``,
``timeline_times``'s cap, :data:`fragmentcopy.MAX_PICKED` per stream and window);
``availabilityStartTime`` before 1970 or more than :data:`MAX_AHEAD` in the future, or changed
between reloads, timescales and durations out of range: FORMAT_UNAVAILABLE. A window older than
the time-shift buffer (or whose segments answer 404 there) is :class:`~src.media.live.
LiveWindowMissed`; no new segment for ``max(live.MIN_STALL, 3·d)`` or the window's end
``live.MAX_LAG`` behind our clock is :class:`~src.media.live.LiveStalled`. The MPD turning
``static`` means the stream ended: what exists of the window is cut (``ended``).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from src.media import egress, fragmentcopy, guard, live, mpd, rangefetch
from src.media.choice import FetchPlan
from src.media.errors import FORMAT_UNAVAILABLE, SEGMENT_OUT_OF_RANGE, MediaError
from src.media.fragments import PROTOCOL
from src.media.livempd import Manifest, Track, choose, is_dynamic, read

log = logging.getLogger(__name__)

MAX_SEGMENT_BYTES = fragmentcopy.MAX_SEGMENT_BYTES
MAX_INIT_BYTES = fragmentcopy.MAX_INIT_BYTES
CONNECTIONS = 4
#: Segments per request round and stream (part bytes held in memory at once).
BATCH = 8


def load(url: str, headers: dict, session, deadline: float, tick=None) -> bytes:
    """The MPD at ``url`` through the guard ``session`` (at most ``mpd.MAX_MPD_BYTES``).
    Raises MediaError (FORMAT_UNAVAILABLE when larger; SOURCE_*; FFMPEG_FAILED past
    ``deadline``)."""
    try:
        return rangefetch.fetch_whole([url], headers, session, deadline, mpd.MAX_MPD_BYTES,
                                      tick)[0][0]
    except MediaError as exc:
        if exc.code == FORMAT_UNAVAILABLE:
            raise MediaError(FORMAT_UNAVAILABLE, "The source's manifest is larger than the "
                             "server accepts.", detail=exc.detail) from exc
        raise


def fetch_live_dash(url: str, t0: float, t1: float, out_path, headers: Optional[dict] = None,
                    max_height: int = 1080,
                    on_progress: Optional[Callable[[dict], None]] = None, on_start=None,
                    timeout: Optional[float] = None,
                    on_cut: Optional[Callable[[Path], None]] = None,
                    clock: Callable[[], float] = time.time) -> dict:
    """Record wall-clock seconds ``t0``..``t1`` (POSIX, UTC) of the live MPD at ``url``
    (``headers`` sent; the Representations by :func:`choose`) into ``out_path``: the contract
    of :func:`src.media.live.fetch_live` (hidden temp file renamed on success, nothing left on
    failure; progress ``recording`` with ``seconds_to_come``, then ``downloading``; returns
    the cut's summary plus ``start_time``/``end_time``, ``ended`` and ``segments`` — the
    video's ``[{"sequence", "url", "date", "duration"}]``). Raises ValueError (bad window,
    ``t1`` over ``live.MAX_WAIT`` ahead), LiveWindowMissed, LiveStalled, MediaError
    (module docstring; SEGMENT_OUT_OF_RANGE: the stream ended before ``t0``)."""
    if not (math.isfinite(t0) and math.isfinite(t1) and t0 < t1):
        raise ValueError("need finite t0 < t1")
    if t1 - clock() > live.MAX_WAIT:
        raise ValueError(f"the window ends more than {live.MAX_WAIT:.0f} s from now")
    policy = egress.current()
    policy.check_url(url)
    deadline = time.monotonic() + (timeout or live.MAX_WAIT + 600)
    plan = FetchPlan(url, None, dict(headers or {}), video_protocol=PROTOCOL)
    return live.recorded(out_path, policy, lambda session, tmp, copies: _Recorder(
        plan, max_height, t0, t1, session, deadline, tmp, copies, on_progress, clock),
        on_start, on_cut)


class _Recorder:
    """One :func:`fetch_live_dash`: the chosen Representations, per-stream copies, progress."""

    def __init__(self, plan, max_height, t0, t1, session, deadline, tmp, copies, on_progress,
                 clock):
        self.plan, self.max_height, self.t0, self.t1 = plan, max_height, t0, t1
        self.session, self.deadline, self.tmp, self.copies = session, deadline, tmp, copies
        self.on_progress, self.clock = on_progress, clock
        self.fetcher = rangefetch.Fetcher(plan.http_headers, CONNECTIONS, deadline,
                                          egress=session)
        self.ids: list = []
        self.kept: list = []  # per stream: [Segment] appended to its copy
        self.joined: list = []
        self.ast: Optional[float] = None
        self.ended, self.to_come = False, (t1 - t0 if t1 > clock() else 0.0)

    def close(self) -> None:
        self.fetcher.close()

    def record(self) -> None:
        """Load, fetch what is available, wait; until every stream holds the window's end."""
        loaded_at, advanced, overdue = time.monotonic(), self.clock(), math.inf
        manifest = self._load()
        for _ in range(live.MAX_REFRESHES):
            since = time.monotonic() - loaded_at
            # at minimumUpdatePeriod (§5.4), and once per segment while one is overdue: the
            # stream may have ended (type="static") or changed
            if not self.ended and (since >= manifest.update or since >= overdue):
                manifest, loaded_at = self._load(), time.monotonic()
            now = self.clock()
            tracks = {t.rep_id: t for t in manifest.tracks}
            if any(rep not in tracks for rep in self.ids):
                raise MediaError(FORMAT_UNAVAILABLE, "The live stream changed its formats "
                                                     "inside the clip.")
            done, due, step, more = True, math.inf, math.inf, False
            for i, rep in enumerate(self.ids):
                track = tracks[rep]
                if manifest.dynamic and track.ends is not None and self.t1 > track.ends:
                    raise MediaError(FORMAT_UNAVAILABLE, "The live stream restarted inside "
                                     "the clip.", detail="window across a DASH Period boundary")
                wanted = track.covering(self.t0, self.t1)
                step = min(step, track.step(wanted))
                self._check_missed(manifest, track, wanted, now, i)
                ready = [s for s in self._after(i, wanted) if s.end - track.offset <= now]
                if ready and self._fetch(i, track, ready[:BATCH], manifest, now):
                    advanced, more = self.clock(), more or len(ready) > BATCH
                left = self._after(i, wanted)
                complete = bool(self.kept[i]) and self.kept[i][-1].end >= self.t1 - 1e-3
                done = done and (complete or (self.ended and not left))
                if not complete:  # when the next segment should exist
                    due = min(due, left[0].end - track.offset if left
                              else track.newest(now) + track.step(wanted))
            if done:
                break
            edge = min(kept[-1].end if kept else self.t0 for kept in self.kept)
            self.to_come = max(0.0, self.t1 - max(edge, self.t0))
            self._tick()
            overdue = step if due < now - step / 2 else math.inf
            stall = max(live.MIN_STALL, 3 * step)
            if now - max(advanced, due) > stall:
                raise live.LiveStalled(f"no new segment for {now - max(advanced, due):.0f} s")
            if now > self.t1 + max(live.MAX_LAG, 10 * step):
                raise live.LiveStalled(f"the stream lags the window's end by over "
                                       f"{live.MAX_LAG:.0f} s")
            if self.ended and not any(self._after(i, tracks[rep].covering(self.t0, self.t1))
                                      for i, rep in enumerate(self.ids)):
                break
            if more:  # the next batch of what exists already, at once
                continue
            wake = due - now if due > now else step / 4
            live.wait_until(time.monotonic() + max(0.2, min(wake, step, manifest.update)),
                            self.deadline, self._tick)
        else:
            raise live.LiveStalled(f"{live.MAX_REFRESHES} rounds")
        if not all(self.kept):
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The live stream ended before the clip's "
                                                   "start.")

    def _after(self, i: int, wanted: list) -> list:
        """The segments of ``wanted`` newer than stream ``i``'s last kept one."""
        last = self.kept[i][-1].number if self.kept[i] else -math.inf
        return [s for s in wanted if s.number > last]

    def _load(self) -> Manifest:
        data = load(self.plan.video_url, self.plan.http_headers, self.session, self.deadline,
                    self._tick)
        manifest = read(data, self.plan.video_url, self.t0, self.clock(), self.ast)
        if self.ast is None:
            if not manifest.dynamic:
                raise MediaError(FORMAT_UNAVAILABLE, "This DASH source is not live.")
            self.ast = manifest.available_from
            chosen = choose(manifest.tracks, self.max_height)
            self.ids = [t.rep_id for t in chosen]
            self.kept = [[] for _ in chosen]
            self.joined = [Path(f"{self.tmp}.{i}.mp4") for i in range(len(chosen))]
            self.copies.extend(self.joined)
            self.plan.audio_url = self.plan.video_url if len(chosen) > 1 else None
            self.plan.width, self.plan.height = None, chosen[0].height or None
        self.ended = self.ended or not manifest.dynamic
        return manifest

    def _check_missed(self, manifest: Manifest, track: Track, wanted: list, now: float,
                      i: int) -> None:
        """Raise LiveWindowMissed when the window's next segment left the time-shift buffer
        (§5.3.9.5.3) or, listed, is older than the oldest listed segment."""
        if self.kept[i]:
            return
        if self.t1 <= track.begins + 1e-3:
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The live stream started after the clip's "
                                                   "end.")
        if not wanted:
            return
        first = wanted[0]
        if manifest.depth is not None and first.end + manifest.depth < now:
            raise live.LiveWindowMissed(f"segment {first.number} ended {now - first.end:.1f} s "
                                        f"ago, the buffer keeps {manifest.depth:.1f} s")
        if track.timeline and self.t0 < first.start - live.START_SLACK \
                and first.start > track.begins + live.START_SLACK:  # not the stream's first
            raise live.LiveWindowMissed(f"oldest listed segment starts {first.start:.3f}, "
                                        f"window starts {self.t0:.3f}")

    def _fetch(self, i: int, track: Track, ready: list, manifest: Manifest,
               now: float) -> bool:
        """Fetch ``ready`` (in order; the init first for the first ones) and append them to
        stream ``i``'s copy; False when the source has not got them yet (404 inside the
        buffer). Raises LiveWindowMissed for a 404 outside it."""
        init = track.init_url if not self.kept[i] else None
        urls = ([init] if init else []) + [s.url for s in ready]
        for one in urls:
            self.session.policy.check_url(one)
        jobs = [(u, MAX_INIT_BYTES if u == init else MAX_SEGMENT_BYTES, None, None)
                for u in urls]
        try:
            answers = self.fetcher.run(jobs, self._tick)
        except MediaError as exc:
            if exc.status not in (404, 410):
                raise
            depth = manifest.depth if manifest.depth is not None else math.inf
            if ready[0].end + depth < now:
                raise live.LiveWindowMissed(f"segment {ready[0].number}: HTTP {exc.status}, "
                                            "out of the buffer") from exc
            if len(ready) > 1:  # keep what exists of the batch
                return self._fetch(i, track, ready[:1], manifest, now)
            return False
        bodies = [data for _, data in answers]
        if init and bodies[0][4:8] not in (b"ftyp", b"styp", b"moov"):
            raise MediaError(FORMAT_UNAVAILABLE, detail="live DASH segments in no container "
                                                        "we cut (ISO BMFF only)")
        with open(self.joined[i], "ab") as out:
            for data in bodies:
                out.write(data or b"")
        self.kept[i] += ready
        self._tick()
        return True

    def _tick(self, cut: Optional[float] = None) -> None:
        if not self.on_progress:
            return
        fetched = min((sum(s.duration for s in kept) for kept in self.kept), default=0.0)
        share = min(live.FETCH_SHARE,
                    live.FETCH_SHARE * fetched / max(1e-3, self.t1 - self.t0))
        if cut is not None:
            share = live.FETCH_SHARE + (100 - live.FETCH_SHARE) * min(1.0, max(0.0, cut))
        live.report(self.on_progress, share, 0.0 if self.ended else self.to_come)

    def cut(self, on_start, on_cut) -> dict:
        """Cut the copies to the window (as :meth:`src.media.live._Recorder.cut` does)."""
        firsts = [kept[0].start for kept in self.kept]
        start = max(self.t0, *firsts)
        end = min(self.t1, *(kept[-1].end for kept in self.kept))
        if end - start <= 0:
            raise MediaError(SEGMENT_OUT_OF_RANGE, "The live stream ended before the clip's "
                                                   "start.")
        self.to_come = 0.0
        self._tick()
        summary = live.cut_copies(self.plan, [start - first for first in firsts], end - start,
                                  self.tmp, [str(p) for p in self.joined], self.session,
                                  self.deadline, on_start, on_cut, self._tick)
        return {**summary, "start_time": start, "end_time": end,
                "ended": self.ended and end < self.t1 - 1e-3,
                "segments": [{"sequence": s.number, "url": s.url, "date": s.start,
                              "duration": s.duration} for s in self.kept[0]]}


def is_live_mpd(url: str, headers: Optional[dict] = None, timeout: float = 10.0) -> bool:
    """True when ``url`` serves an MPD with ``@type="dynamic"`` (§5.3.1.2): a live DASH
    source, whatever the extractor said. Fetched through the egress guard (size-capped);
    a refused, failed or oversized fetch is False (the caller's "not live")."""
    policy = egress.current()
    try:
        policy.check_url(url)
        with guard.session(policy) as session:
            data = load(url, dict(headers or {}), session, time.monotonic() + timeout)
    except MediaError as exc:
        log.info("manifest %s not read for liveness: %s", url[:200], exc.code)
        return False
    return is_dynamic(data)
