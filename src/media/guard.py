"""The egress guard: an HTTP forward proxy on 127.0.0.1 that yt-dlp, ffmpeg and the ranged
fetcher connect through, so that every connection they make is checked (issue 11, item 4).

They follow redirects and open URLs named in HLS/DASH manifests on their own; none of them can
be asked to check each hop, but all three can use an HTTP proxy. For each ``CONNECT host:port``
(https) or absolute-URI request (plain http; :mod:`src.media.httpproxy`) the guard checks host
and port against the caller's :class:`~src.media.egress.Policy`, resolves the name once and
checks every address (:func:`~src.media.egress.checked_addresses`), then connects to an address
it checked. A refusal is answered ``403 Source Not Allowed`` before any connection and recorded
for the caller's *tag*: each :class:`Session` hands out ``http://TAG:x@127.0.0.1:PORT`` (clients
send the tag as ``Proxy-Authorization: Basic``; those that wait for a challenge, like ffmpeg, get
a ``407`` first), so after a failure the caller can tell "the guard refused evil.example:443"
from an ordinary HTTP error. Requests without a known tag are refused; the tag admits nothing
its policy does not, and is forgotten when the session closes.

With ``YTDLP_PROXY`` set (issue 13, item 4; :func:`src.media.egress.upstream`) the guard opens
each allowed connection as a tunnel through that proxy instead of directly
(:func:`src.media.httpproxy.connect_via`), so yt-dlp, ffmpeg and the ranged fetcher — extraction
and media alike — reach YouTube from the proxy's address; refusals happen before any of it.

Bounded: the request head must arrive within ``HEAD_TIMEOUT``; at most ``MAX_CONNECTIONS`` run
at once (then ``503``); sizes and idle timeouts as in :mod:`src.media.httpproxy`. One guard per
process (:func:`guard`, started on first use, again in a forked worker), daemon threads.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from src.media import egress, httpproxy
from src.media.errors import SOURCE_NOT_ALLOWED, MediaError

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 30.0
MAX_CONNECTIONS = 256
#: Refusals kept per session (the first one is what the caller reports).
MAX_REFUSALS = 20


@dataclass(frozen=True)
class Refusal:
    """One refused connection: where to and why (a sentence naming ``host:port``)."""

    host: str
    port: int
    reason: str


class Meter:
    """Bytes the sources sent through the guard for one piece of work (a clip job), over all
    the sessions opened while it was current (:func:`metered`). Thread-safe."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.received += n


_meter: contextvars.ContextVar[Optional[Meter]] = contextvars.ContextVar("meter", default=None)


@contextlib.contextmanager
def metered() -> Iterator[Meter]:
    """Within the block, every session opened in this context counts what its sources send
    into the yielded :class:`Meter` (the clip job's ``ytd_clip_fetched_bytes``,
    src/metrics.py); threads the session is handed to count into it too."""
    meter = Meter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


class Session:
    """One caller's use of the guard (a context manager; closing it forgets the tag).

    ``proxy_url``: give it to the clients as their HTTP(S) proxy. ``refusals``: what the guard
    refused for this session so far. ``meter``: the :class:`Meter` current when it was opened
    (or None). Thread-safe.
    """

    def __init__(self, owner: Guard, policy: egress.Policy):
        self.policy = policy
        self.tag = secrets.token_hex(16)
        self.proxy_url = f"http://{self.tag}:x@127.0.0.1:{owner.port}"
        self.meter = _meter.get()
        self._owner = owner
        self._lock = threading.Lock()
        self._refusals: list = []

    def record(self, refusal: Refusal) -> None:
        with self._lock:
            if len(self._refusals) < MAX_REFUSALS:
                self._refusals.append(refusal)

    @property
    def refusals(self) -> list:
        with self._lock:
            return list(self._refusals)

    def refused(self) -> Optional[MediaError]:
        """MediaError(SOURCE_NOT_ALLOWED) describing the first refusal, or None."""
        first = next(iter(self.refusals), None)
        return MediaError(SOURCE_NOT_ALLOWED, first.reason) if first else None

    def close(self) -> None:
        self._owner._forget(self.tag)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Guard:
    """The proxy server on ``127.0.0.1:port`` (a random free port) with its sessions.

    ``resolver(host, port)``: getaddrinfo-shaped name look-up (None: the system's); tests inject
    one to make a name resolve to a chosen address.
    """

    def __init__(self, resolver: Optional[egress.Resolver] = None):
        self.resolver = resolver
        self._sessions: dict = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.guard = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="egress-guard",
                         daemon=True).start()

    def session(self, policy: egress.Policy) -> Session:
        """A new session (tag) checked against ``policy``."""
        new = Session(self, policy)
        with self._lock:
            self._sessions[new.tag] = new
        return new

    def close(self) -> None:
        """Stop accepting connections (tests; the process guard lives as long as the process)."""
        self._server.shutdown()
        self._server.server_close()

    def _forget(self, tag: str) -> None:
        with self._lock:
            self._sessions.pop(tag, None)

    def _lookup(self, tag: Optional[str]) -> Optional[Session]:
        with self._lock:
            return self._sessions.get(tag) if tag else None


class _Server(socketserver.ThreadingTCPServer):
    guard: Guard
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        log.exception("egress guard: unexpected error")  # into the log, not onto stderr


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        owner: Guard = self.server.guard
        acquired = owner._slots.acquire(blocking=False)
        try:
            self.request.settimeout(HEAD_TIMEOUT)
            try:
                if not acquired:
                    raise httpproxy.BadRequest(503, "Busy", "Too many connections at once.")
                _serve(owner, self.request)
            except httpproxy.BadRequest as bad:
                httpproxy.answer(self.request, bad.status, bad.reason, bad.body, bad.extra)
        except OSError as exc:  # a client or source hanging up, a timeout: end this connection
            log.debug("egress guard: connection ended: %s", exc)
        finally:
            if acquired:
                owner._slots.release()


def _serve(owner: Guard, conn: socket.socket) -> None:
    """One request: who asks (tag), may it go there (policy, addresses), then forward it."""
    request = httpproxy.read_request(conn)
    if request.tag is None:
        raise httpproxy.BadRequest(407, "Proxy Authentication Required", "A tag is required.",
                                   'Proxy-Authenticate: Basic realm="egress"\r\n')
    session = owner._lookup(request.tag)
    if session is None:
        raise httpproxy.BadRequest(403, "Unknown Tag", "Unknown or expired egress tag.")
    host, port = request.host, request.port
    try:
        session.policy.check(host, port, request.scheme)
        addresses = egress.checked_addresses(session.policy, host, port, owner.resolver)
    except MediaError as exc:
        session.record(Refusal(host, port, exc.message))
        log.info("egress guard refused %s", exc.message)
        raise httpproxy.BadRequest(403, "Source Not Allowed", exc.message) from None
    except (OSError, UnicodeError):
        raise httpproxy.BadRequest(502, "Bad Gateway", "The host name does not resolve.") \
            from None
    proxy = egress.upstream()  # YTDLP_PROXY: the same checks, then the tunnel through it
    upstream = httpproxy.connect_via(proxy, host, port, addresses) if proxy \
        else httpproxy.connect(addresses)
    if upstream is None:
        raise httpproxy.BadRequest(502, "Bad Gateway", "The source could not be reached.")
    with upstream:
        httpproxy.forward(conn, upstream, request,
                          session.meter.add if session.meter is not None else None)


_process_guard: Optional[Guard] = None
_process_pid: Optional[int] = None
_start_lock = threading.Lock()


def guard() -> Guard:
    """This process's guard, started on first use (again in a forked child)."""
    global _process_guard, _process_pid
    with _start_lock:
        if _process_guard is None or _process_pid != os.getpid():
            _process_guard, _process_pid = Guard(), os.getpid()
        return _process_guard


def session(policy: Optional[egress.Policy] = None) -> Session:
    """A session on this process's guard, checked against ``policy`` (default: the configured
    one, :func:`src.media.egress.current`)."""
    return guard().session(policy or egress.current())


def _after_fork() -> None:
    global _start_lock
    _start_lock = threading.Lock()  # a lock held by another thread at fork time stays held


os.register_at_fork(after_in_child=_after_fork)
