"""Fetching byte ranges of one or more URLs over several HTTP connections at once.

Video sites throttle each connection (yt-dlp issues #13623, #17612: a few MB/s per connection
on long videos), so a segment arrives sooner when its byte range is split into parts fetched in
parallel, each with its own ``Range: bytes=a-b`` request (RFC 9110 §14). Parts are written
straight into a local file at their own offsets (``os.pwrite``), so the file keeps the source's
layout. The calling thread only waits and calls ``tick`` a few times a second; an exception
from ``tick`` (job cancellation) stops every connection and propagates.

Transport (issue 12, item 5): one urllib3 ``ProxyManager`` per :class:`Fetcher` (per job) to the
egress guard (:mod:`src.media.guard`, which checks each connection, host, port and resolved
address), the guard's per-job credentials sent as ``Proxy-Authorization`` (RFC 9110 §11.7.2),
at most ``connections`` connections per pool (``block=True``). https goes through one CONNECT
tunnel per connection, and the guard keeps a tunnel open, so the requests of a job share a few
kept-alive TLS connections instead of a TCP and TLS handshake each. Plain http does not: the
guard answers every plain request with ``Connection: close`` (:mod:`src.media.httpproxy`, so
each one — redirects included — is checked anew), and each costs a connection to the guard.

Retries (bounded, per range, one urllib3 ``Retry`` budget of :data:`RETRIES` shared by all of
a range's causes): a connection that fails or drops before or during the body, and a 500, 502,
503 or 504 (``Retry-After`` respected up to :data:`RETRY_AFTER_MAX` seconds, else exponential
backoff); a range resumes at the byte where it stopped. No retry on a 4xx: a 403 of an expired
signed URL is the caller's to handle (the clip job extracts the info again,
:mod:`src.services.download_service`), and :class:`src.media.errors.MediaError` carries the
``status``. urllib3 follows no redirect itself: each ``Location`` is checked by the egress
policy before it is followed (issue 11: "the ranged fetcher re-checks each redirect hop").

Whole-object mode (``last=None``: segments of the fragment path, :mod:`src.media.fragmentcopy`,
HLS playlists and keys, MPDs): an object of unknown size is fetched with a plain GET, any 2xx
is taken, and at most ``max_bytes`` are accepted; a retry starts the object again. A range
answered in part (a 206 covering less than asked, RFC 9110 §14.4) is asked again for the rest.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Optional

import urllib3
from urllib3.exceptions import HTTPError as TransportFailure
from urllib3.exceptions import MaxRetryError, ProtocolError

from src.media import guard
from src.media.errors import (
    FFMPEG_FAILED,
    FORMAT_UNAVAILABLE,
    SOURCE_HTTP_ERROR,
    MediaError,
    http_error,
)

log = logging.getLogger(__name__)

#: Size of one read from a connection (and the granularity of cancellation).
CHUNK = 64 * 1024
#: Retries per range (connect errors, dropped connections, RETRY_STATUSES), all causes together.
RETRIES = 3
#: Statuses worth another try: the server or a gateway failed, the request was fine (RFC 9110
#: §15.6). 4xx are never retried.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
#: Backoff factor (urllib3: 0 s before the first retry, then 0.5 s, 1 s, ...).
BACKOFF = 0.25
#: A longer ``Retry-After`` (RFC 9110 §10.2.3) is cut to this many seconds.
RETRY_AFTER_MAX = 10
#: Redirect hops followed per request (urllib.request's HTTPRedirectHandler allows 10).
MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNREACHABLE = "The video source could not be reached."


class RangesUnsupported(Exception):
    """The server answered a Range request with the whole file (200) or an unusable header."""


class _Budget(urllib3.Retry):
    """urllib3's Retry as the budget of one range, kept by the fetcher: urllib3 itself retries
    nothing (it would drain an error body of any size, and log the signed URL), the fetcher
    counts every failure against it; its waits end early when the fetch is cancelled."""

    cancel: Optional[threading.Event] = None

    def new(self, **kw) -> _Budget:
        fresh = super().new(**kw)
        fresh.cancel = self.cancel
        return fresh

    def sleep(self, response=None) -> None:
        try:
            seconds = self.get_retry_after(response) if response is not None else None
        except urllib3.exceptions.InvalidHeader:
            seconds = None
        seconds = seconds or self.get_backoff_time()
        if seconds <= 0:
            return
        if self.cancel is None:
            time.sleep(seconds)
        elif self.cancel.wait(seconds):
            raise MediaError(FFMPEG_FAILED, "cancelled")


class _Again(Exception):
    """One failed try of a range that the budget may retry: ``error`` (a urllib3 transport
    error) or ``response`` (a RETRY_STATUSES answer, closed); ``final``: the MediaError once
    the budget is spent."""

    def __init__(self, final: MediaError, error=None, response=None):
        super().__init__(final.message)
        self.final, self.error, self.response = final, error, response


class Fetcher:
    """Parallel range fetches with a shared byte counter, a cancel flag and a wall deadline.

    ``headers``: extra request headers (yt-dlp's ``http_headers``). ``connections``: at most this
    many requests at once (and connections kept per host). ``deadline``: ``time.monotonic()``
    value after which fetching stops with MediaError(FFMPEG_FAILED) (None: no limit).
    ``socket_timeout``: seconds per connect and per read; ``final_urls``: where each URL
    fetched ended after redirects. ``egress``: the
    :class:`src.media.guard.Session` every request goes through (its policy also checks
    redirects; None: a session of its own with the configured policy, closed by :meth:`close`).
    """

    def __init__(self, headers: dict, connections: int, deadline: Optional[float] = None,
                 socket_timeout: float = 20.0, egress: Optional[guard.Session] = None):
        self.headers = dict(headers or {})
        self.deadline = deadline
        self.socket_timeout = socket_timeout
        self._owned = egress is None
        self.egress = egress or guard.session()
        self.done_bytes = 0
        self.done_jobs = 0  # jobs finished, for progress counted in objects (fragments)
        #: URL asked for → URL that answered, after redirects (an HLS playlist's relative URIs
        #: resolve against the latter, RFC 8216 §4.1 / RFC 3986 §5.1.3)
        self.final_urls: dict = {}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        workers = max(1, connections)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="range")
        proxy = urllib.parse.urlsplit(self.egress.proxy_url)
        self._http = urllib3.ProxyManager(
            f"http://{proxy.hostname}:{proxy.port}", num_pools=16, maxsize=workers, block=True,
            proxy_headers=urllib3.make_headers(
                proxy_basic_auth=f"{proxy.username}:{proxy.password}"))
        self._timeout = urllib3.Timeout(connect=socket_timeout, read=socket_timeout)
        self._budget = _Budget(total=RETRIES, other=0, redirect=False, raise_on_status=False,
                               backoff_factor=BACKOFF, retry_after_max=RETRY_AFTER_MAX)
        self._budget.cancel = self._cancel

    def close(self) -> None:
        """Stop every connection and wait for the threads (each stops within one read)."""
        self._cancel.set()
        self._pool.shutdown(wait=True)
        self._http.clear()
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
        or a connection the guard refused, SOURCE_HTTP_ERROR with ``.status`` for an HTTP error
        status — at once for a 4xx, after the retries for RETRY_STATUSES — or an unreachable
        source, FFMPEG_FAILED past the deadline), or what ``tick`` raises.
        """
        self._cancel.clear()  # a previous run's failure stopped only that run
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
            if isinstance(exc, MediaError):
                refused = self.egress.refused()
                if refused and exc.code != refused.code:
                    raise refused from exc
            raise
        return [future.result() for future in futures]

    def _fetch(self, url: str, first: int, last: Optional[int], fd: Optional[int]):
        whole = last is None
        kept = bytearray()
        state: dict = {"position": 0 if whole else first, "size": None}
        budget = self._budget
        while True:
            if self._cancel.is_set():
                raise MediaError(FFMPEG_FAILED, "cancelled")
            try:
                if whole:
                    self._copy(self._open(url, self.headers), state, None, fd, kept,
                               limit=first)
                    state["size"] = state["position"]
                else:
                    assert last is not None  # not ``whole``
                    response = self._open_range(url, state, last)
                    if state["end"] == state["size"] - 1:  # the file ends before ``last``
                        last = min(last, state["end"])
                    self._copy(response, state, min(last, state["end"]) + 1, fd, kept)
                    if state["position"] <= last:
                        continue  # a shorter answer than asked for (RFC 9110 §14.4): the rest
                break
            except _Again as again:
                refused = self.egress.refused()
                if refused:  # the guard said no (a refused CONNECT): asking again cannot help
                    raise refused from again.error
                try:
                    budget = budget.increment("GET", url, response=again.response,
                                              error=again.error)
                except MaxRetryError:
                    raise again.final from again.error
                log.info("ranged fetch from %s: %s (%s); retry %d of %d",
                         urllib.parse.urlsplit(url).netloc, again.final.message,
                         again.error or again.response.status, len(budget.history), RETRIES)
                budget.sleep(again.response)
                if whole:  # start the object again
                    with self._lock:
                        self.done_bytes -= state["position"]
                    state["position"] = 0
                    kept.clear()
        with self._lock:
            self.done_jobs += 1
        return state["size"], (bytes(kept) if fd is None else None)

    def _open(self, url: str, headers: dict):
        """GET ``url`` through the guard, following redirects the policy allows; return the
        2xx response (streaming) and record where it came from in ``final_urls[url]``. Raises
        MediaError (SOURCE_NOT_ALLOWED for a refused
        ``Location``, before any connection to it; ``http_error`` for a 3xx or 4xx), _Again
        (RETRY_STATUSES, a connection that failed or dropped before the answer)."""
        asked = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = self._http.urlopen(
                    "GET", url, headers=headers, retries=False, redirect=False,
                    preload_content=False, decode_content=False, timeout=self._timeout,
                    pool_timeout=self.socket_timeout)
            except TransportFailure as exc:  # refused, reset, timed out, tunnel refused, TLS
                raise _Again(MediaError(SOURCE_HTTP_ERROR, _UNREACHABLE, detail=str(exc)),
                             error=exc) from exc
            status = response.status
            location = response.headers.get("Location") if status in _REDIRECTS else None
            if 200 <= status < 300:
                self.final_urls[asked] = url
                return response
            _release(response, drain=True)
            if status in RETRY_STATUSES:
                raise _Again(http_error(status), response=response)
            if not location:
                raise http_error(status)
            url = urllib.parse.urljoin(url, location)
            self.egress.policy.check_url(url)
        raise MediaError(SOURCE_HTTP_ERROR, "The video source redirected too many times.")

    def _open_range(self, url: str, state: dict, last: int):
        """The 206 answer to ``Range: bytes={position}-{last}``; sets ``state["size"]`` (the
        file's) and ``state["end"]`` (the last byte sent). Raises RangesUnsupported (416, a
        200, a Content-Range that does not start at the position), what :meth:`_open` raises."""
        start = state["position"]
        try:
            headers = {**self.headers, "Range": f"bytes={start}-{last}"}
            response = self._open(url, headers)
        except MediaError as exc:
            if exc.status == 416:
                raise RangesUnsupported(f"HTTP 416 for bytes {start}-{last}") from exc
            raise
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if response.status != 206 or not match or match[3] == "*" or int(match[1]) != start:
            _release(response)
            raise RangesUnsupported(f"HTTP {response.status} to a Range request")
        state["size"], state["end"] = int(match[3]), int(match[2])
        return response

    def _copy(self, response, state: dict, end: Optional[int], fd: Optional[int],
              kept: bytearray, limit: Optional[int] = None) -> None:
        """Copy the body to ``fd`` at ``state["position"]`` (or into ``kept``), advancing the
        position as bytes arrive, until byte ``end`` (exclusive; None: the end of the body).
        More than ``limit`` bytes is MediaError(FORMAT_UNAVAILABLE); a dropped or stalled
        connection is _Again, so a retry resumes where this one stopped."""
        try:
            while end is None or state["position"] < end:
                if self._cancel.is_set():
                    raise MediaError(FFMPEG_FAILED, "cancelled")
                position = state["position"]
                want = CHUNK if end is None else min(CHUNK, end - position)
                try:
                    chunk = response.read(want, decode_content=False)
                except TransportFailure as exc:  # ProtocolError (reset, short body), timeout
                    raise _Again(MediaError(SOURCE_HTTP_ERROR, _UNREACHABLE, detail=str(exc)),
                                 error=ProtocolError(str(exc))) from exc
                if not chunk:
                    if end is None:
                        return
                    raise _Again(MediaError(SOURCE_HTTP_ERROR, _UNREACHABLE),
                                 error=ProtocolError(f"connection closed at byte {position}"))
                if limit is not None and position + len(chunk) > limit:
                    raise MediaError(FORMAT_UNAVAILABLE, "A fragment of this video is larger "
                                                         "than the server accepts.")
                if fd is None:
                    kept += chunk
                else:
                    os.pwrite(fd, chunk, position)
                state["position"] = position + len(chunk)
                with self._lock:
                    self.done_bytes += len(chunk)
        finally:
            _release(response)


def fetch_whole(urls: list, headers: dict, egress: guard.Session, deadline: Optional[float],
                max_bytes: int, tick: Optional[Callable[[], None]] = None) -> list:
    """``(body, URL it came from after redirects)`` of each of ``urls``, in order: whole-object
    GETs in parallel through the guard session ``egress`` (playlists, subtitles, thumbnails),
    each at most ``max_bytes``. ``headers``: request headers (yt-dlp's ``http_headers``);
    ``deadline``: ``time.monotonic()`` limit; ``tick()`` as in :meth:`Fetcher.run`.

    Raises MediaError as :meth:`Fetcher.run` does: FORMAT_UNAVAILABLE for a body over
    ``max_bytes``, SOURCE_NOT_ALLOWED, SOURCE_HTTP_ERROR (``.status`` set), FFMPEG_FAILED past
    the deadline.
    """
    if not urls:
        return []
    fetcher = Fetcher(headers, len(urls), deadline, egress=egress)
    try:
        found = fetcher.run([(url, max_bytes, None, None) for url in urls], tick or (lambda: None))
    finally:
        fetcher.close()
    return [(data, fetcher.final_urls.get(url, url)) for url, (_, data) in zip(urls, found)]


def _release(response, drain: bool = False) -> None:
    """Give the response's connection back to the pool: kept alive when the body was read to
    its end (urllib3 has then released it already) or, with ``drain``, when at most ``CHUNK``
    bytes of it are left (an error page); else closed — unread bytes would be read as the
    next answer. Every response goes through here, so no connection is lost to the
    ``block=True`` pool."""
    left = response.length_remaining
    if drain and left is not None and 0 < left <= CHUNK:
        response.drain_conn()
    elif left != 0:
        response.close()
    response.release_conn()


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
