"""Fetching byte ranges of one or more URLs over several HTTP connections at once.

Video sites throttle each connection (yt-dlp issues #13623, #17612: a few MB/s per connection
on long videos), so a segment arrives sooner when its byte range is split into parts fetched in
parallel, each with its own ``Range: bytes=a-b`` request (RFC 9110 §14). Parts are written
straight into a local file at their own offsets (``os.pwrite``), so the file keeps the source's
layout. The calling thread only waits and calls ``tick`` a few times a second; an exception
from ``tick`` (job cancellation) stops every connection and propagates.

Every request goes through the egress guard (:mod:`src.media.guard`: it checks each connection,
host, port and resolved address) and every redirect's ``Location`` is checked against the
policy before it is followed (:class:`_CheckedRedirects`; issue 11: "the ranged fetcher
re-checks each redirect hop").

Whole-object mode (``last=None``; the fragment path, :mod:`src.media.fragments`): a DASH
fragment is its own file of unknown size, so it is fetched with a plain GET, a 200 is the
answer expected, and at most ``max_bytes`` are accepted; a retry starts the object again.
"""
from __future__ import annotations

import base64
import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Callable, Optional

from src.media import guard
from src.media.errors import (FFMPEG_FAILED, FORMAT_UNAVAILABLE, SOURCE_HTTP_ERROR, MediaError,
                              classify)

#: Size of one read from a connection (and the granularity of cancellation).
CHUNK = 64 * 1024
#: Attempts per part when a connection drops mid-way (the part resumes where it stopped).
ATTEMPTS = 3
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RangesUnsupported(Exception):
    """The server answered a Range request with the whole file (200) or an unusable header."""


class _ThroughGuard(urllib.request.ProxyHandler):
    """Send every http/https request through the guard (CONNECT for https). Unlike urllib's
    ProxyHandler it is never bypassed by ``no_proxy``; being one, it keeps build_opener from
    adding the environment's proxies."""

    def __init__(self, proxy_url: str):
        super().__init__({})
        parts = urllib.parse.urlsplit(proxy_url)
        self.hostport = parts.netloc.rpartition("@")[2]
        token = base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
        self.authorization = f"Basic {token}"

    def http_open(self, req):
        req.add_header("Proxy-Authorization", self.authorization)
        req.set_proxy(self.hostport, req.type)
        return None  # the HTTP(S) handler now opens it through the proxy

    https_open = http_open


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to a URL the policy allows; else MediaError(SOURCE_NOT_ALLOWED)
    before any connection to it."""

    def __init__(self, policy):
        self.policy = policy

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            self.policy.check_url(newurl)
        except MediaError:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Fetcher:
    """Parallel range fetches with a shared byte counter, a cancel flag and a wall deadline.

    ``headers``: extra request headers (yt-dlp's ``http_headers``). ``connections``: at most this
    many requests at once. ``deadline``: ``time.monotonic()`` value after which fetching stops
    with MediaError(FFMPEG_FAILED) (None: no limit). ``socket_timeout``: seconds per read.
    ``egress``: the :class:`src.media.guard.Session` every request goes through (its policy also
    checks redirects).
    """

    def __init__(self, headers: dict, connections: int, deadline: Optional[float] = None,
                 socket_timeout: float = 20.0, egress: Optional[guard.Session] = None):
        self.headers = dict(headers or {})
        self.deadline = deadline
        self.socket_timeout = socket_timeout
        self._owned = egress is None
        self.egress = egress or guard.session()
        self._opener = urllib.request.build_opener(_ThroughGuard(self.egress.proxy_url),
                                                   _CheckedRedirects(self.egress.policy))
        self.done_bytes = 0
        self.done_jobs = 0  # jobs finished, for progress counted in objects (fragments)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, connections), thread_name_prefix="range")

    def close(self) -> None:
        """Stop every connection and wait for the threads (each stops within one read)."""
        self._cancel.set()
        self._pool.shutdown(wait=True)
        if self._owned:
            self.egress.close()

    def run(self, jobs: list, tick: Callable[[], None], period: float = 0.25) -> list:
        """Run ``jobs`` — ``(url, first, last, fd)`` tuples (``fd``: file to pwrite into, or
        None to keep the bytes) — and return, per job, ``(file_size, bytes or None)``.
        ``last=None`` fetches the whole object (no Range header; 200 or 206 from byte 0; at
        most ``first`` bytes — the object's size limit —, written from offset 0; ``file_size``
        is then the bytes received; more than the limit is MediaError(FORMAT_UNAVAILABLE)).

        ``tick()`` is called from this thread every ``period`` seconds while they run. Raises
        RangesUnsupported, MediaError (SOURCE_NOT_ALLOWED for a redirect the policy refuses
        or a connection the guard refused, SOURCE_HTTP_ERROR for an HTTP error status or an
        unreachable source, FFMPEG_FAILED past the deadline), or what ``tick`` raises.
        """
        futures = [self._pool.submit(self._fetch, *job) for job in jobs]
        try:
            pending = set(futures)
            while pending:
                if self.deadline is not None and time.monotonic() > self.deadline:
                    raise MediaError(FFMPEG_FAILED, "Cutting the video segment took too long.")
                done, pending = wait(pending, timeout=period, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # re-raise the first failure
                tick()
        except BaseException as exc:
            self._cancel.set()
            wait(futures)
            refused = self.egress.refused() if isinstance(exc, MediaError) else None
            if refused and exc.code != refused.code:
                raise refused from exc
            raise
        return [future.result() for future in futures]

    def _fetch(self, url: str, first: int, last: Optional[int], fd: Optional[int]):
        whole = last is None
        kept, state = bytearray(), {"position": 0 if whole else first, "size": None}
        for attempt in range(ATTEMPTS):
            try:
                if whole:
                    self._read_whole(url, state, first, fd, kept)
                else:
                    self._read(url, state, last, fd, kept)
                break
            except (OSError, urllib.error.URLError) as exc:  # dropped or refused connection
                if attempt + 1 == ATTEMPTS or self._cancel.is_set():
                    raise MediaError(SOURCE_HTTP_ERROR, "The video source could not be reached.",
                                     detail=str(exc)) from exc
                if whole:  # start the object again
                    with self._lock:
                        self.done_bytes -= state["position"]
                    state["position"] = 0
                    kept.clear()
        with self._lock:
            self.done_jobs += 1
        return state["size"], (bytes(kept) if fd is None else None)

    def _read_whole(self, url: str, state: dict, limit: int, fd: Optional[int],
                    kept: bytearray) -> None:
        """One plain GET of the whole object, at most ``limit`` bytes (whole-object mode)."""
        request = urllib.request.Request(url, headers=self.headers)
        try:
            response = self._opener.open(request, timeout=self.socket_timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise classify(exc) from exc
        with response:
            if response.status not in (200, 206):
                raise MediaError(SOURCE_HTTP_ERROR, f"The video source returned HTTP "
                                                    f"{response.status} for a fragment.")
            while True:
                if self._cancel.is_set():
                    raise MediaError(FFMPEG_FAILED, "cancelled")
                try:
                    chunk = response.read(CHUNK)
                except http.client.HTTPException as exc:  # IncompleteRead and the like
                    raise ConnectionError(str(exc)) from exc
                if not chunk:
                    if response.length:  # Content-Length not reached: a dropped connection
                        raise ConnectionError(f"connection closed at byte {state['position']}")
                    break
                position = state["position"]
                if position + len(chunk) > limit:
                    raise MediaError(FORMAT_UNAVAILABLE, "A fragment of this video is larger "
                                                         "than the server accepts.")
                if fd is None:
                    kept += chunk
                else:
                    os.pwrite(fd, chunk, position)
                state["position"] = position + len(chunk)
                with self._lock:
                    self.done_bytes += len(chunk)
            state["size"] = state["position"]

    def _read(self, url: str, state: dict, last: int, fd: Optional[int], kept: bytearray) -> None:
        """One request from ``state["position"]`` to ``last``; advances the position as bytes
        arrive, so a retry resumes where this one stopped."""
        start = state["position"]
        request = urllib.request.Request(url, headers={**self.headers,
                                                       "Range": f"bytes={start}-{last}"})
        try:
            response = self._opener.open(request, timeout=self.socket_timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416:
                raise RangesUnsupported(f"HTTP 416 for bytes {start}-{last}") from exc
            raise classify(exc) from exc
        with response:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if response.status != 206 or not match or match[3] == "*" or int(match[1]) != start:
                raise RangesUnsupported(f"HTTP {response.status} to a Range request")
            state["size"] = int(match[3])
            last = min(last, int(match[2]))  # a file shorter than the range asked for
            position = start
            while position <= last:
                if self._cancel.is_set():
                    raise MediaError(FFMPEG_FAILED, "cancelled")
                chunk = response.read(min(CHUNK, last - position + 1))
                if not chunk:
                    raise ConnectionError(f"connection closed at byte {position} of {last}")
                if fd is None:
                    kept += chunk
                else:
                    os.pwrite(fd, chunk, position)
                position += len(chunk)
                state["position"] = position
                with self._lock:
                    self.done_bytes += len(chunk)


def split(first: int, last: int, parts: int, min_part: int = 256 * 1024) -> list:
    """Cut the inclusive range ``first..last`` into at most ``parts`` ranges of at least
    ``min_part`` bytes (the last one may be shorter): ``[(a, b), ...]``."""
    length = last - first + 1
    count = max(1, min(parts, length // min_part))
    step = -(-length // count)
    return [(a, min(a + step - 1, last)) for a in range(first, last + 1, step)]


def missing(ranges: list, kept: int) -> list:
    """Inclusive byte ``ranges`` merged where they touch or overlap, less the first ``kept``
    bytes (what a copy already holds from offset 0): ``[(a, b), ...]`` in order."""
    merged: list = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return [(max(a, kept), b) for a, b in merged if b >= max(a, kept)]
