"""The in-process job pool: two bounded lanes of threads plus heartbeats for the jobs it owns.

Jobs are plain functions taking ids (``fn(video_id, job_id)``) and reloading their state from the
store, so a distributed worker could run them later (DESIGN.md, Shape). Each job runs inside an
app context. While a job is queued or running, this process refreshes ``heartbeat:{video_id}``
in Redis every few seconds; when the process dies the heartbeat expires and other processes can
tell the job is dead (src/services/progress_cache.py).

Lanes (issue 11): clip jobs run on ``MAX_CONCURRENT_JOBS`` threads, encodes on
``MAX_CONCURRENT_ENCODES`` threads of their own, so a queued encode never holds a clip worker
(before, two encodes of one account left every other user's clip in ``initializing``). A clip
job that must encode (≥1440p MP4) fetches on its clip worker, then hands its encode phase to the
encode lane (:meth:`JobPool.hand_off`) and frees the worker; every encode therefore runs in the
encode lane, and at most ``MAX_CONCURRENT_ENCODES`` run at once.

This pool is the ``threads`` backend (the default); ``JOB_BACKEND=celery`` sends the same job
functions to Celery workers instead (src/services/celery_backend.py, src/worker.py). Both
implement :class:`JobBackend`; :func:`make_backend` picks one for ``create_app``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .. import metrics
from ..data import videos
from ..logging_setup import (
    bind_job_id,
    bind_request_id,
    current_request_id,
    reset_job_id,
    reset_request_id,
)
from . import progress_cache

log = logging.getLogger(__name__)

BEAT_INTERVAL_SECONDS = 10


class JobCancelled(Exception):
    """Raised inside a job when it no longer owns its record (declared dead and replaced)."""


class JobBackend(Protocol):
    """What services and jobs use of ``jobs()`` (src/extensions.py), whichever runs the jobs:
    :class:`JobPool` (``JOB_BACKEND=threads``, this process's threads) or
    :class:`src.services.celery_backend.CeleryBackend` (``JOB_BACKEND=celery``, Celery workers;
    issue 15, item 2). Jobs are ``fn(video_id, job_id)`` functions that reload their state."""

    def submit(self, video_id: str, job_id: str, fn: Callable[[str, str], None],
               lane: str = "clip") -> None: ...

    def hand_off(self, video_id: str, job_id: str, fn: Callable[[str, str], None]) -> None: ...

    def submit_light(self, fn: Callable, *args) -> None: ...

    def wait_briefly(self, video_id: str, seconds: float) -> None: ...

    def stats(self) -> dict: ...

    def shutdown(self, wait: bool = True) -> None: ...


def make_backend(app, settings: dict) -> JobBackend:
    """The job backend ``JOB_BACKEND`` names (default ``threads``): a :class:`JobPool` of
    ``MAX_CONCURRENT_JOBS`` / ``_ENCODES`` / ``_CAPTURES`` threads, or the Celery client.
    Raises :class:`src.config.ConfigError` for an unknown backend or celery without
    ``CELERY_BROKER_URL``."""
    from .celery_backend import check_settings

    if check_settings(settings) == "celery":
        from .celery_backend import CeleryBackend

        return CeleryBackend(app, settings)
    return JobPool(app, settings["MAX_CONCURRENT_JOBS"], settings["MAX_CONCURRENT_ENCODES"],
                   settings["MAX_CONCURRENT_CAPTURES"])


class LightTasks:
    """Two threads for short background tasks (metadata look-ups), each in an app context;
    a failure is logged. Both backends run these in the process that asks."""

    def __init__(self, app):
        self._app = app
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="meta")

    def submit(self, fn: Callable, *args) -> None:
        """Queue ``fn(*args)``."""
        self._pool.submit(self._run, fn, *args)

    def _run(self, fn, *args) -> None:
        try:
            with self._app.app_context():
                fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))

    def shutdown(self, wait: bool = True) -> None:
        """Stop; with ``wait``, let queued tasks finish."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)


class JobPool:
    """Clip jobs run ``max_workers`` at once, encodes ``max_encodes`` at once in their own lane,
    live captures ``max_captures`` in theirs; others wait in FIFO order per lane (phase
    ``initializing``, or ``encoding`` at 0 % for a clip whose encode phase waits)."""

    LANES = ("clip", "encode", "live")

    def __init__(self, app, max_workers: int, max_encodes: int = 1, max_captures: int = 4):
        self._app = app
        self._lanes = {
            "clip": ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job"),
            "encode": ThreadPoolExecutor(max_workers=max_encodes, thread_name_prefix="encode"),
            # live clips (issue 14) wait for the stream while they record: their own threads
            "live": ThreadPoolExecutor(max_workers=max_captures, thread_name_prefix="live")}
        self._light = LightTasks(app)
        self._owned: dict[str, str] = {}
        self._lane_of: dict[str, str] = {}  # video_id → the lane its job is queued or runs in
        self._finished: dict[str, threading.Event] = {}  # video_id → set when its job ends
        self._next: dict[tuple[str, str], Callable] = {}  # (video_id, job_id) → handed-off phase
        self._running = {lane: 0 for lane in self.LANES}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        threading.Thread(target=self._beat_loop, name="job-heartbeat", daemon=True).start()

    @property
    def redis(self):
        """The app's Redis client (heartbeats are written from pool threads)."""
        return self._app.extensions["yt"]["redis"]

    def submit(self, video_id: str, job_id: str, fn: Callable[[str, str], None],
               lane: str = "clip") -> None:
        """Queue ``fn(video_id, job_id)`` in ``lane`` (``"clip"``, ``"encode"`` or ``"live"``);
        this process owns the job until ``fn`` returns (and any phase it handed off has
        returned)."""
        with self._lock:
            self._owned[video_id] = job_id
            self._lane_of[video_id] = lane
            self._finished[video_id] = threading.Event()
        try:
            progress_cache.beat(self.redis, video_id, job_id)
            self._lanes[lane].submit(self._run, video_id, job_id, fn, lane,
                                     current_request_id(), time.monotonic())
        except BaseException:  # not queued: stop beating for it, so the claim is reaped
            self._release(video_id, job_id)
            raise
        metrics.JOBS_QUEUED.labels(lane).inc()

    def hand_off(self, video_id: str, job_id: str, fn: Callable[[str, str], None]) -> None:
        """From inside the running job ``job_id``: once its current function returns, queue
        ``fn(video_id, job_id)`` in the encode lane. The job stays owned (heartbeat, waiters)
        in between, and its clip worker is free as soon as the current function returns."""
        with self._lock:
            self._next[video_id, job_id] = fn

    def submit_light(self, fn: Callable, *args) -> None:
        """Run a short background task (metadata look-ups) outside the download slots."""
        self._light.submit(fn, *args)

    def wait_briefly(self, video_id: str, seconds: float) -> None:
        """Sleep up to ``seconds``, waking at once if this process's job for ``video_id`` ends
        (a job of another process is noticed by the caller's next store read)."""
        with self._lock:
            finished = self._finished.get(video_id)
        if finished is None:
            time.sleep(seconds)
        else:
            finished.wait(seconds)

    def owned_count(self) -> int:
        """Jobs queued or running in this process."""
        with self._lock:
            return len(self._owned)

    def stats(self) -> dict:
        """``{"running": n, "queued": m, "lanes": {"clip": {"running", "queued"}, "encode":
        {...}}}`` for this process (GET /api/health)."""
        with self._lock:
            lanes = {lane: {"running": self._running[lane],
                            "queued": max(0, sum(1 for v in self._owned
                                                 if self._lane_of.get(v) == lane)
                                          - self._running[lane])} for lane in self.LANES}
        return {"running": sum(v["running"] for v in lanes.values()),
                "queued": sum(v["queued"] for v in lanes.values()), "lanes": lanes}

    def _run(self, video_id: str, job_id: str, fn, lane: str = "clip", request_id: str = "-",
             queued_at: float = 0.0) -> None:
        token = bind_request_id(request_id)  # the job's log lines carry the request's id
        job_token = bind_job_id(job_id)
        started = time.monotonic()
        with self._lock:
            self._running[lane] += 1
        metrics.JOBS_QUEUED.labels(lane).dec()
        metrics.JOBS_RUNNING.labels(lane).inc()
        name = getattr(getattr(fn, "func", fn), "__name__", "job")  # functools.partial too
        log.info("job %s (%s, %s lane) for video %s started after %.1f s in the queue", job_id,
                 name, lane, video_id, started - (queued_at or started))
        returned = False
        try:
            with self._app.app_context():
                fn(video_id, job_id)
            returned = True
        except Exception:  # the job records its own failure; this is a last resort
            log.exception("job %s for video %s crashed", job_id, video_id)
        finally:
            metrics.JOBS_RUNNING.labels(lane).dec()
            with self._lock:
                self._running[lane] -= 1
                after = self._next.pop((video_id, job_id), None) if returned else None
                self._next.pop((video_id, job_id), None)
                if after is not None and self._owned.get(video_id) == job_id:
                    self._lane_of[video_id] = "encode"
            if after is None or not self._queue_next(video_id, job_id, after, request_id):
                self._release(video_id, job_id)
                progress_cache.clear_heartbeat(self.redis, video_id, job_id)
                after = None
            log_end(self._app, video_id, job_id, lane, time.monotonic() - started,
                    final=after is None)
            reset_job_id(job_token)
            reset_request_id(token)

    def _queue_next(self, video_id: str, job_id: str, fn, request_id: str) -> bool:
        """Queue a handed-off phase in the encode lane; False when the pool is shutting down
        (the job is then released; its record is reaped as interrupted)."""
        try:
            self._lanes["encode"].submit(self._run, video_id, job_id, fn, "encode", request_id,
                                         time.monotonic())
            metrics.JOBS_QUEUED.labels("encode").inc()
            return True
        except RuntimeError:
            log.warning("job %s for video %s: not handed to the encode lane (shutting down)",
                        job_id, video_id)
            return False

    def _release(self, video_id: str, job_id: str) -> None:
        with self._lock:
            if self._owned.get(video_id) == job_id:
                del self._owned[video_id]
                self._lane_of.pop(video_id, None)
                self._finished.pop(video_id).set()

    def _beat_loop(self) -> None:
        while not self._stopping.wait(BEAT_INTERVAL_SECONDS):
            with self._lock:
                owned = list(self._owned.items())
            for video_id, job_id in owned:
                try:
                    progress_cache.beat(self.redis, video_id, job_id)
                except Exception:  # Redis briefly away: try again next round
                    log.warning("heartbeat for %s failed", video_id, exc_info=True)

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting jobs; with ``wait``, let queued and running jobs finish."""
        self._stopping.set()
        for lane in self.LANES:  # clips first: a clip may still hand its encode phase over
            self._lanes[lane].shutdown(wait=wait, cancel_futures=not wait)
        self._light.shutdown(wait=wait)


def log_end(app, video_id: str, job_id: str, lane: str, seconds: float,
            final: bool = True) -> None:
    """Observe one run of a job (``ytd_job_duration_seconds`` per lane: a clip handed to the
    encode lane counts once in each), and when it ended (``final``) log one line with its
    outcome, read back from the record, and count a failure by its code. Both backends."""
    try:
        doc = videos.outcome(app.extensions["yt"]["db"], video_id)
    except Exception:  # the store is away: still say the job ended
        doc = None
    outcome = (doc.get("status") or "unknown") if doc and doc.get("job_id") == job_id \
        else "superseded"
    if not final:
        outcome = "handed_off"
    metrics.JOB_DURATION.labels(lane, outcome).observe(seconds)
    if not final:
        return
    if outcome == "failed":
        code = str((doc or {}).get("error_code") or "UNKNOWN_ERROR")
        metrics.JOB_FAILURES.labels(lane, code).inc()
        log.warning("job %s for video %s failed (%s) after %.1f s", job_id, video_id, code,
                    seconds)
    else:
        log.info("job %s for video %s ended (%s) after %.1f s", job_id, video_id, outcome,
                 seconds)
