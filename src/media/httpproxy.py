"""The HTTP/1.1 forward-proxy wire the egress guard speaks (:mod:`src.media.guard` decides).

Two request forms (RFC 9110 §9.3.6, RFC 9112 §3.2.2): ``CONNECT host:port`` opens a tunnel (what
clients do for https), an absolute URI (``GET http://host:port/path HTTP/1.1``) is one plain
HTTP request, forwarded in origin-form with ``Connection: close`` both ways so that each
connection carries one request and every new request — a redirect's included — comes through
the guard's check again. The proxy credentials (``Proxy-Authorization: Basic``, RFC 9110
§11.7.2) carry the caller's tag.

Bounded: a request or response head is at most ``MAX_HEAD`` bytes and must arrive within the
socket timeout the caller set; a relay ends when either side idles ``IDLE_TIMEOUT``; bytes move
one ``CHUNK`` at a time, into a ``CLIENT_SNDBUF`` send buffer towards the client.
"""
from __future__ import annotations

import base64
import binascii
import selectors
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from src.media.egress import UpstreamProxy, host_port, normalize_host

MAX_HEAD = 16 * 1024
CONNECT_TIMEOUT = 15.0
IDLE_TIMEOUT = 120.0
CHUNK = 64 * 1024
#: Send buffer towards the (local) client. Loopback autotuning grows it to megabytes that the
#: source fills while ffmpeg reads a file's head before it seeks away; this keeps what a source
#: sends close to what the client reads (measured, 30 s of a DASH audio file: direct 0.9 MB,
#: through the guard 5.6 MB autotuned, 1.4 MB with 64 KiB). 32 KiB halved the throughput.
CLIENT_SNDBUF = 64 * 1024
#: Request headers not forwarded: hop-by-hop (RFC 9110 §7.6.1), the proxy's, and Host (rewritten
#: from the checked URL).
_DROPPED = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te",
            "trailer", "upgrade", "host"}


class BadRequest(Exception):
    """What to answer a request that cannot be served: ``status``, ``reason``, ``body``."""

    def __init__(self, status: int, reason: str, body: str, extra: str = ""):
        super().__init__(body)
        self.status, self.reason, self.body, self.extra = status, reason, body, extra


@dataclass
class Request:
    """One proxy request: ``scheme`` ``https`` for CONNECT, ``http`` for an absolute URI;
    ``host`` normalized; ``path`` (origin-form, None for CONNECT); ``tag`` from the
    credentials (None without); ``rest``: bytes the client sent after the head."""

    method: str
    scheme: str
    host: str
    port: int
    path: Optional[str]
    headers: list
    tag: Optional[str]
    rest: bytes


def read_request(conn: socket.socket) -> Request:
    """Read and parse one request head. Raises BadRequest (431 head too large, 400 malformed),
    OSError (the client hung up or timed out)."""
    buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0 and len(buf) <= MAX_HEAD:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionAbortedError("client closed before the request head ended")
        buf += chunk
    if end < 0 or end > MAX_HEAD:
        raise BadRequest(431, "Request Header Fields Too Large", "Request head too large.")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    headers = [(name.strip(), value.strip()) for name, _, value in
               (line.partition(":") for line in lines[1:] if line)]
    if len(parts) != 3:
        raise BadRequest(400, "Bad Request", "Malformed request line.")
    method, target, _ = parts
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BadRequest(400, "Bad Request", "Expected CONNECT host:port.")
        return Request(method, "https", normalize_host(host), int(port), None, headers,
                       _tag(headers), bytes(buf[end + 4:]))
    try:
        url = urlsplit(target)
        url_port = url.port or 80
    except ValueError:
        raise BadRequest(400, "Bad Request", "Malformed URL.") from None
    if url.scheme.lower() != "http" or not url.hostname:
        raise BadRequest(400, "Bad Request", "Expected CONNECT or an absolute http:// URL.")
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return Request(method, "http", normalize_host(url.hostname), url_port, path, headers,
                   _tag(headers), bytes(buf[end + 4:]))


def _tag(headers: list) -> Optional[str]:
    for name, value in headers:
        if name.lower() == "proxy-authorization" and value[:6].lower() == "basic ":
            try:
                return base64.b64decode(value[6:].strip(), validate=True).decode().split(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def answer(conn: socket.socket, status: int, reason: str, body: str, extra: str = "") -> None:
    """Send a complete plain-text answer (``extra``: more header lines, each ending CRLF)."""
    payload = (body + "\n").encode()
    conn.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(payload)}\r\nConnection: close\r\n{extra}\r\n"
                 .encode("latin-1") + payload)


def connect(addresses: list) -> Optional[socket.socket]:
    """A connection to the first of ``[(family, sockaddr)]`` that answers (no name look-up
    here: these are the addresses that were checked), or None."""
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(sockaddr)
            return sock
        except OSError:
            sock.close()
    return None


def connect_via(proxy: UpstreamProxy, host: str, port: int,
                addresses: list) -> Optional[socket.socket]:
    """A tunnel to ``host:port`` through the upstream ``proxy`` (``YTDLP_PROXY``), or None.

    The target is the checked address (each of ``addresses`` in turn), so the proxy cannot be
    steered elsewhere by its own DNS — except for ``socks5h://``, whose point is that the proxy
    resolves the name. http(s) proxies get ``CONNECT`` (RFC 9110 §9.3.6) with ``Proxy-
    Authorization: Basic`` when credentials are set (https: TLS to the proxy first); SOCKS5
    (RFC 1928, user/password RFC 1929) uses yt-dlp's ``yt_dlp.socks``. Raises BadRequest 502
    when the proxy refuses (its status only: credentials never appear in a message)."""
    targets = [host] if proxy.scheme == "socks5h" else [addr[0] for _, addr in addresses]
    refused = None
    for target in targets:
        try:
            return _socks(proxy, target, port) if proxy.scheme.startswith("socks") \
                else _connect_tunnel(proxy, target, port)
        except BadRequest as exc:
            refused = exc
        except (OSError, ValueError) as exc:  # yt_dlp.socks.ProxyError is an OSError
            refused = BadRequest(502, "Bad Gateway", "The upstream proxy could not open a "
                                 f"connection ({type(exc).__name__}).")
    raise refused or BadRequest(502, "Bad Gateway", "The source could not be reached.")


def _connect_tunnel(proxy: UpstreamProxy, target: str, port: int) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=CONNECT_TIMEOUT)
    try:
        if proxy.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=proxy.host)
        authority = host_port(target, port)
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.username is not None:
            secret = f"{proxy.username}:{proxy.password or ''}".encode()
            head += f"Proxy-Authorization: Basic {base64.b64encode(secret).decode()}\r\n"
        sock.sendall((head + "\r\n").encode("latin-1"))
        answer = bytearray()
        while b"\r\n\r\n" not in answer:  # nothing follows the head before we speak
            chunk = sock.recv(1)
            if not chunk or len(answer) > MAX_HEAD:
                raise BadRequest(502, "Bad Gateway", "The upstream proxy closed the connection.")
            answer += chunk
        status = answer.split(b" ", 2)[1:2]
        if status != [b"200"]:
            shown = status[0].decode("latin-1")[:3] if status else "?"
            raise BadRequest(502, "Bad Gateway", f"The upstream proxy refused the tunnel "
                                                 f"(HTTP {shown}).")
        return sock
    except BaseException:
        sock.close()
        raise


def _socks(proxy: UpstreamProxy, target: str, port: int) -> socket.socket:
    from yt_dlp.socks import ProxyType, sockssocket

    sock = sockssocket(socket.AF_INET6 if ":" in proxy.host else socket.AF_INET)
    sock.setproxy(ProxyType.SOCKS5, proxy.host, proxy.port, rdns=proxy.scheme == "socks5h",
                  username=proxy.username, password=proxy.password)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect((target, port))
    except BaseException:
        sock.close()
        raise
    return sock


def forward(conn: socket.socket, upstream: socket.socket, request: Request,
            on_received: Optional[Callable[[int], None]] = None) -> None:
    """Serve ``request`` over ``upstream``: a tunnel for CONNECT, else the request in
    origin-form; then relay bytes both ways until the source closes or either side idles.
    ``on_received(n)`` is told the size of each chunk the source sent (bytes on the wire: TLS
    records for a tunnel)."""
    if request.method == "CONNECT":
        conn.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        first = request.rest
    else:
        kept = "".join(f"{name}: {value}\r\n" for name, value in request.headers
                       if name.lower() not in _DROPPED)
        authority = host_port(request.host, request.port)
        if request.port == 80:
            authority = authority.rsplit(":", 1)[0]
        first = (f"{request.method} {request.path} HTTP/1.1\r\nHost: {authority}\r\n{kept}"
                 "Connection: close\r\n\r\n").encode("latin-1") + request.rest
    if first:
        upstream.sendall(first)
    _relay(conn, upstream, rewrite=request.method != "CONNECT", on_received=on_received)


def _relay(conn: socket.socket, upstream: socket.socket, rewrite: bool,
           on_received: Optional[Callable[[int], None]] = None) -> None:
    """Copy bytes both ways until either side closes or idles IDLE_TIMEOUT.
    ``rewrite``: the source's first response head gets ``Connection: close``."""
    head: Optional[bytearray] = bytearray() if rewrite else None
    for sock in (conn, upstream):
        sock.settimeout(IDLE_TIMEOUT)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SNDBUF)
    with selectors.DefaultSelector() as sel:
        sel.register(conn, selectors.EVENT_READ)
        sel.register(upstream, selectors.EVENT_READ)
        while True:
            ready = sel.select(IDLE_TIMEOUT)
            if not ready:
                return
            for key, _ in ready:
                sock = conn if key.fileobj is conn else upstream
                data = sock.recv(CHUNK)
                while data and isinstance(sock, ssl.SSLSocket) and sock.pending():
                    data += sock.recv(CHUNK)  # decrypted bytes select() cannot see
                if sock is conn:
                    if not data:  # the client hung up (no client here half-closes): stop the
                        return    # source at once rather than buffer what nobody reads
                    upstream.sendall(data)
                    continue
                if not data:
                    return
                if on_received is not None:
                    on_received(len(data))
                if head is not None:
                    head += data
                    if b"\r\n\r\n" not in head[:MAX_HEAD + 4]:
                        if len(head) > MAX_HEAD:
                            return
                        continue
                    data, head = _close_response(bytes(head)), None
                conn.sendall(data)


def _close_response(data: bytes) -> bytes:
    end = data.index(b"\r\n\r\n")
    lines = data[:end].split(b"\r\n")
    kept = [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower()
            not in (b"connection", b"keep-alive", b"proxy-connection")]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + data[end:]
