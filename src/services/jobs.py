"""The in-process job pool: a bounded thread pool plus heartbeats for the jobs it owns.

Jobs are plain functions taking ids (``fn(video_id, job_id)``) and reloading their state from the
store, so a distributed worker could run them later (DESIGN.md, Shape). Each job runs inside an
app context. While a job is queued or running, this process refreshes ``heartbeat:{video_id}``
in Redis every few seconds; when the process dies the heartbeat expires and other processes can
tell the job is dead (src/services/progress_cache.py).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable

from bson import ObjectId

from ..logging_setup import bind_request_id, current_request_id, reset_request_id
from . import progress_cache

log = logging.getLogger(__name__)

BEAT_INTERVAL_SECONDS = 10


class JobCancelled(Exception):
    """Raised inside a job when it no longer owns its record (declared dead and replaced)."""


class JobPool:
    """``max_workers`` jobs run at once; others wait in FIFO order (phase ``initializing``).

    Encodes are CPU-bound, so at most ``max_encodes`` of the running jobs encode at once
    (:meth:`encode_slot`); a job waiting for a slot holds its worker.
    """

    def __init__(self, app, max_workers: int, max_encodes: int = 1):
        self._app = app
        self._encode_slots = threading.BoundedSemaphore(max_encodes)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self._light = ThreadPoolExecutor(max_workers=2, thread_name_prefix="meta")
        self._owned: dict[str, str] = {}
        self._finished: dict[str, threading.Event] = {}  # video_id → set when its job ends
        self._running = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        threading.Thread(target=self._beat_loop, name="job-heartbeat", daemon=True).start()

    @property
    def redis(self):
        """The app's Redis client (heartbeats are written from pool threads)."""
        return self._app.extensions["yt"]["redis"]

    def submit(self, video_id: str, job_id: str, fn: Callable[[str, str], None]) -> None:
        """Queue ``fn(video_id, job_id)``; this process owns the job until ``fn`` returns."""
        with self._lock:
            self._owned[video_id] = job_id
            self._finished[video_id] = threading.Event()
        try:
            progress_cache.beat(self.redis, video_id, job_id)
            self._executor.submit(self._run, video_id, job_id, fn, current_request_id(),
                                  time.monotonic())
        except BaseException:  # not queued: stop beating for it, so the claim is reaped
            with self._lock:
                if self._owned.get(video_id) == job_id:
                    del self._owned[video_id]
                    self._finished.pop(video_id).set()
            raise

    def submit_light(self, fn: Callable, *args) -> None:
        """Run a short background task (metadata look-ups) outside the download slots."""
        self._light.submit(self._run_light, fn, *args)

    def wait_briefly(self, video_id: str, seconds: float) -> None:
        """Sleep up to ``seconds``, waking at once if this process's job for ``video_id`` ends
        (a job of another process is noticed by the caller's next store read)."""
        with self._lock:
            finished = self._finished.get(video_id)
        if finished is None:
            time.sleep(seconds)
        else:
            finished.wait(seconds)

    @contextmanager
    def encode_slot(self):
        """Hold one of the ``MAX_CONCURRENT_ENCODES`` slots while encoding (blocks until free)."""
        with self._encode_slots:
            yield

    def owned_count(self) -> int:
        """Jobs queued or running in this process."""
        with self._lock:
            return len(self._owned)

    def stats(self) -> dict:
        """``{"running": n, "queued": m}`` for this process (GET /api/health)."""
        with self._lock:
            return {"running": self._running, "queued": max(0, len(self._owned) - self._running)}

    def _run(self, video_id: str, job_id: str, fn, request_id: str = "-",
             queued_at: float = 0.0) -> None:
        token = bind_request_id(request_id)  # the job's log lines carry the request's id
        started = time.monotonic()
        with self._lock:
            self._running += 1
        log.info("job %s (%s) for video %s started after %.1f s in the queue", job_id,
                 getattr(fn, "__name__", "job"), video_id, started - (queued_at or started))
        try:
            with self._app.app_context():
                fn(video_id, job_id)
        except Exception:  # the job records its own failure; this is a last resort
            log.exception("job %s for video %s crashed", job_id, video_id)
        finally:
            with self._lock:
                self._running -= 1
                if self._owned.get(video_id) == job_id:
                    del self._owned[video_id]
                    self._finished.pop(video_id).set()
            progress_cache.clear_heartbeat(self.redis, video_id, job_id)
            self._log_end(video_id, job_id, time.monotonic() - started)
            reset_request_id(token)

    def _log_end(self, video_id: str, job_id: str, seconds: float) -> None:
        """One line per finished job with its outcome (read back from the record) and duration."""
        try:
            doc = self._app.extensions["yt"]["db"].videos.find_one(
                {"_id": ObjectId(video_id)}, {"status": 1, "job_id": 1, "error_code": 1})
        except Exception:  # the store is away: still say the job ended
            doc = None
        if doc and doc.get("job_id") == job_id and doc.get("status") == "failed":
            log.warning("job %s for video %s failed (%s) after %.1f s", job_id, video_id,
                        doc.get("error_code"), seconds)
        else:
            outcome = doc.get("status") if doc and doc.get("job_id") == job_id else "superseded"
            log.info("job %s for video %s ended (%s) after %.1f s", job_id, video_id, outcome,
                     seconds)

    def _run_light(self, fn, *args) -> None:
        try:
            with self._app.app_context():
                fn(*args)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))

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
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
        self._light.shutdown(wait=wait, cancel_futures=not wait)
