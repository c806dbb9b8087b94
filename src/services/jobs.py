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
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        threading.Thread(target=self._beat_loop, name="job-heartbeat", daemon=True).start()

    @property
    def redis(self):
        return self._app.extensions["yt"]["redis"]

    def submit(self, video_id: str, job_id: str, fn: Callable[[str, str], None]) -> None:
        """Queue ``fn(video_id, job_id)``; this process owns the job until ``fn`` returns."""
        with self._lock:
            self._owned[video_id] = job_id
        progress_cache.beat(self.redis, video_id, job_id)
        self._executor.submit(self._run, video_id, job_id, fn)

    def submit_light(self, fn: Callable, *args) -> None:
        """Run a short background task (metadata look-ups) outside the download slots."""
        self._light.submit(self._run_light, fn, *args)

    @contextmanager
    def encode_slot(self):
        """Hold one of the ``MAX_CONCURRENT_ENCODES`` slots while encoding (blocks until free)."""
        with self._encode_slots:
            yield

    def owned_count(self) -> int:
        """Jobs queued or running in this process."""
        with self._lock:
            return len(self._owned)

    def _run(self, video_id: str, job_id: str, fn) -> None:
        started = time.monotonic()
        try:
            with self._app.app_context():
                fn(video_id, job_id)
        except Exception:  # the job records its own failure; this is a last resort
            log.exception("job %s for video %s crashed", job_id, video_id)
        finally:
            with self._lock:
                if self._owned.get(video_id) == job_id:
                    del self._owned[video_id]
            progress_cache.clear_heartbeat(self.redis, video_id, job_id)
            log.info("job %s for video %s ended after %.1f s", job_id, video_id,
                     time.monotonic() - started)

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
