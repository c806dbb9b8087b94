"""A per-process background sender thread for queued outbound messages, shared by the Nightbot
follow-ups (src/services/nightbot_sender.py) and the clip notifications
(src/services/notify_sender.py).

The queue lives in a shared store (Redis, MongoDB), so any process's sender may post any
process's message; a sender exists per (process, app) (:func:`sender_for`), starts its daemon
thread on :meth:`BackgroundSender.wake` and ends it after ``idle_seconds`` with nothing queued,
so an idle server keeps no thread. The thread calls ``send_due(stopping)`` in an app context:
it posts what is due and returns the seconds until the next message is due (None: nothing
queued); the loop looks again at least every second.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Optional

from flask import Flask

log = logging.getLogger(__name__)

_senders_lock = threading.Lock()


class BackgroundSender:
    """This process's sender for one app and one queue (module docstring). ``pending(app)``
    says whether anything is still queued (an error counts as yes: the thread stays)."""

    def __init__(self, app: Flask, name: str,
                 send_due: Callable[[threading.Event], Optional[float]],
                 pending: Callable[[Flask], bool], idle_seconds: float):
        self.app, self.name = app, name
        self._send_due, self._pending, self._idle_seconds = send_due, pending, idle_seconds
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def wake(self) -> None:
        """Look at the queue now, starting the thread if it is not running."""
        self._wake.set()
        with self._lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """End the thread (after the post under way, if any) and start no other."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                with self.app.app_context():
                    wait = self._send_due(self._stopping)
            except Exception:
                log.exception("%s: sender error", self.name)
                wait = 1.0
            if wait is None:
                if time.monotonic() - idle_since > self._idle_seconds and self._retire():
                    return
                wait = 1.0
            else:
                idle_since = time.monotonic()
            self._wake.wait(min(wait, 1.0))
        with self._lock:
            self._thread = None

    def _retire(self) -> bool:
        with self._lock:  # a wake() now either saw this thread or finds none and starts one
            try:
                if self._pending(self.app):
                    return False
            except Exception:
                return False
            self._thread = None
            return True


def sender_for(app: Flask, key: str,
               make: Callable[[Flask], BackgroundSender]) -> BackgroundSender:
    """The app's sender under ``app.extensions[key]`` in this process (``make(app)`` on first
    use)."""
    with _senders_lock:
        found = app.extensions.get(key)
        if found is None:
            found = app.extensions[key] = make(app)
        return found
