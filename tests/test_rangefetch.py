"""The ranged fetcher's transport (issue 12, item 5) against real HTTP servers on 127.0.0.1,
through a real egress guard session: keep-alive, bounded retries on 5xx and dropped
connections (resuming), no retry on 4xx, redirects checked before they are followed,
cancellation. Each server counts the connections it accepts and the requests it answers."""
from __future__ import annotations

import random
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from src.media import egress, errors, guard, rangefetch
from src.media.errors import MediaError

DATA = random.Random(12).randbytes(3 * 1024 * 1024 + 123)


class Origin:
    """An HTTP/1.1 server (keep-alive) on 127.0.0.1; ``respond(handler, n)`` answers the n-th
    request (0-based). ``connections``: accepted TCP connections; ``requests``: ``(path, Range
    header)`` per request. ``tls``: an ``ssl.SSLContext`` to serve https."""

    def __init__(self, respond, tls=None):
        owner = self
        self.respond, self.connections, self.requests = respond, 0, []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner._lock:
                    number = len(owner.requests)
                    owner.requests.append((self.path, self.headers.get("Range")))
                try:
                    owner.respond(self, number)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, address = super().get_request()
                with owner._lock:
                    owner.connections += 1
                if tls:
                    sock = tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, address

            def handle_error(self, request, client_address):
                pass

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "data.bin") -> str:
        return f"{self.base}/{path}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def origins():
    started = []

    def start(respond, tls=None):
        started.append(Origin(respond, tls))
        return started[-1]

    yield start
    for origin in started:
        origin.stop()


def send_data(h, data: bytes = DATA, rate: float = 0, cut_at: int = 0,
              ranges: bool = True) -> None:
    """206 for one ``bytes=a-b`` range (200 without, or with ``ranges=False``); ``rate``:
    bytes/s; ``cut_at``: reset the connection after that many body bytes."""
    first, last, status = 0, len(data) - 1, 200
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
    if match and ranges:
        first, last, status = int(match[1]), min(int(match[2] or len(data) - 1), len(data) - 1), 206
    h.send_response(status)
    h.send_header("Content-Length", str(last - first + 1))
    if status == 206:
        h.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
    h.end_headers()
    body = data[first:last + 1]
    if cut_at:
        h.wfile.write(body[:cut_at])
        h.wfile.flush()
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.connection.close()  # RST: a connection reset mid-range
        h.close_connection = True
        return
    step = 16 * 1024
    for at in range(0, len(body), step):
        h.wfile.write(body[at:at + step])
        if rate:
            time.sleep(step / rate)


def status(code: int, headers: dict | None = None):
    def respond(h, n):
        body = b"no\n"
        h.send_response(code)
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return respond


@pytest.fixture
def session():
    with guard.session(egress.Policy(["127.0.0.1:*"])) as s:
        yield s


def fetch(session, jobs, connections=2, tick=lambda: None, **kw):
    fetcher = rangefetch.Fetcher({"User-Agent": "test"}, connections, egress=session, **kw)
    try:
        return fetcher.run(jobs, tick)
    finally:
        fetcher.close()


def joined(results) -> bytes:
    return b"".join(data for _, data in results)


# --- keep-alive -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for IP 127.0.0.1 (openssl, Debian's base system)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_https_requests_share_kept_alive_connections(origins, session, tls_files, monkeypatch):
    """Twelve ranges over two connections: the source accepts two TCP (TLS) connections — one
    CONNECT tunnel each through the guard — and answers all twelve requests on them."""
    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts the test certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    origin = origins(lambda h, n: send_data(h), tls=context)
    parts = rangefetch.split(0, len(DATA) - 1, 12, 64 * 1024)
    results = fetch(session, [(origin.url(), a, b, None) for a, b in parts], connections=2)
    assert joined(results) == DATA and {size for size, _ in results} == {len(DATA)}
    assert len(origin.requests) == 12
    assert origin.connections <= 2, origin.connections


def test_an_https_tunnel_the_guard_refuses_is_source_not_allowed(origins, tls_files,
                                                                  monkeypatch):
    """The fetcher does not check a job's URL by name (its callers do); the guard refuses the
    CONNECT, and the fetch ends SOURCE_NOT_ALLOWED naming host:port, never connected to."""
    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    origin = origins(lambda h, n: send_data(h), tls=context)
    with guard.session(egress.Policy(["127.0.0.1:1"])) as other_port, \
            pytest.raises(MediaError) as info:
        fetch(other_port, [(origin.url(), 0, 99, None)])
    assert info.value.code == errors.SOURCE_NOT_ALLOWED
    assert f"127.0.0.1:{origin.port}" in info.value.message and origin.connections == 0


# --- retries ------------------------------------------------------------------------------------

def test_a_503_then_a_206_is_retried_and_the_bytes_are_right(origins, session):
    origin = origins(lambda h, n: status(503)(h, n) if n == 0 else send_data(h))
    results = fetch(session, [(origin.url(), 1000, 500_000, None)])
    assert results == [(len(DATA), DATA[1000:500_001])]
    assert [rng for _, rng in origin.requests] == ["bytes=1000-500000"] * 2


def test_retry_after_is_respected_up_to_its_cap(origins, session, monkeypatch):
    monkeypatch.setattr(rangefetch, "RETRY_AFTER_MAX", 1)
    origin = origins(lambda h, n: status(503, {"Retry-After": "3600"})(h, n) if n == 0
                     else send_data(h))
    started = time.monotonic()
    results = fetch(session, [(origin.url(), 0, 99, None)])
    assert results == [(len(DATA), DATA[:100])]
    assert 0.9 <= time.monotonic() - started < 5
    assert len(origin.requests) == 2


@pytest.mark.slow
def test_retries_are_bounded(origins, session):
    origin = origins(status(503))
    with pytest.raises(MediaError) as info:
        fetch(session, [(origin.url(), 0, 99, None)])
    assert info.value.code == errors.SOURCE_HTTP_ERROR and info.value.status == 503
    assert len(origin.requests) == rangefetch.RETRIES + 1


@pytest.mark.parametrize("code", [403, 404, 410])
def test_a_4xx_fails_at_once(origins, session, code):
    origin = origins(status(code))
    started = time.monotonic()
    with pytest.raises(MediaError) as info:
        fetch(session, [(origin.url(), 0, 99, None)])
    assert info.value.code == errors.SOURCE_HTTP_ERROR and info.value.status == code
    assert f"HTTP {code}" in info.value.message
    assert len(origin.requests) == 1 and time.monotonic() - started < 2


def test_a_reset_mid_range_resumes_where_it_stopped(origins, session, tmp_path):
    """The source resets the connection after 300 kB of a 2 MB range: the next request asks
    for the rest only, and the file holds the source's bytes."""
    origin = origins(lambda h, n: send_data(h, cut_at=300_000 if n == 0 else 0))
    out = tmp_path / "out.bin"
    first, last = 100_000, 2_100_000
    with open(out, "wb") as fh:
        fh.truncate(len(DATA))
        results = fetch(session, [(origin.url(), first, last, fh.fileno())])
    assert results == [(len(DATA), None)]
    assert out.read_bytes()[first:last + 1] == DATA[first:last + 1]
    ranges = [rng for _, rng in origin.requests]
    assert len(ranges) == 2 and ranges[0] == f"bytes={first}-{last}"
    resumed = int(re.fullmatch(r"bytes=(\d+)-\d+", ranges[1])[1])
    assert first < resumed <= first + 300_000 and ranges[1].endswith(f"-{last}")


def test_an_unreachable_source_is_source_http_error(session):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MediaError) as info:
        fetch(session, [(f"http://127.0.0.1:{port}/x", 0, 99, None)])
    assert info.value.code == errors.SOURCE_HTTP_ERROR


# --- redirects ----------------------------------------------------------------------------------

def test_a_redirect_to_a_refused_host_is_never_connected_to(origins):
    target = origins(lambda h, n: send_data(h))
    hop = origins(lambda h, n: status(302, {"Location": target.url()})(h, n))
    with guard.session(egress.Policy([f"127.0.0.1:{hop.port}"])) as only_hop, \
            pytest.raises(MediaError) as info:
        fetch(only_hop, [(hop.url(), 0, 99, None)])
    assert info.value.code == errors.SOURCE_NOT_ALLOWED
    assert f"127.0.0.1:{target.port}" in info.value.message
    assert len(hop.requests) == 1 and target.connections == 0

    with guard.session(egress.Policy([f"127.0.0.1:{hop.port}", f"127.0.0.1:{target.port}"])) \
            as both:  # the control: allowed, the same redirect is followed, Range kept
        assert fetch(both, [(hop.url(), 10, 19, None)]) == [(len(DATA), DATA[10:20])]
    assert target.requests == [("/data.bin", "bytes=10-19")]


# --- cancellation, whole objects, ranges refused ------------------------------------------------

def test_cancellation_through_tick_stops_promptly(origins, session):
    origin = origins(lambda h, n: send_data(h, rate=200_000))   # 3 MB would take 15 s
    started = time.monotonic()

    def tick():
        if time.monotonic() - started > 0.5:
            raise KeyboardInterrupt("cancelled by the job")

    fetcher = rangefetch.Fetcher({}, 2, egress=session)
    with pytest.raises(KeyboardInterrupt):
        fetcher.run([(origin.url(), 0, len(DATA) - 1, None)], tick)
    fetcher.close()
    assert time.monotonic() - started < 3
    assert fetcher.done_bytes < len(DATA) // 2


def test_whole_objects_and_their_size_limit(origins, session):
    origin = origins(lambda h, n: send_data(h, DATA[:200_000]))
    assert fetch(session, [(origin.url(), 300_000, None, None)]) == [
        (200_000, DATA[:200_000])]
    assert origin.requests[0][1] is None                  # no Range header
    with pytest.raises(MediaError) as info:
        fetch(session, [(origin.url(), 100_000, None, None)])
    assert info.value.code == errors.FORMAT_UNAVAILABLE


def test_a_server_ignoring_ranges_is_ranges_unsupported(origins, session):
    plain = origins(lambda h, n: send_data(h, ranges=False))
    with pytest.raises(rangefetch.RangesUnsupported):
        fetch(session, [(plain.url(), 0, 99, None)])
    past_end = origins(status(416))
    with pytest.raises(rangefetch.RangesUnsupported):
        fetch(session, [(past_end.url(), 0, 99, None)])


# --- partial answers, a fetcher used again ---------------------------------------------------

def test_a_206_shorter_than_asked_is_asked_again_for_the_rest(origins, session):
    """A server may answer a range with less than asked (RFC 9110 §14.4: a 206 whose
    Content-Range ends early, not at the file's end): the rest is asked for, never zeros."""
    def respond(h, n):
        first, last = map(int, re.fullmatch(r"bytes=(\d+)-(\d+)", h.headers["Range"]).groups())
        last = min(last, first + 100_000 - 1)  # at most 100 kB per answer
        h.send_response(206)
        h.send_header("Content-Length", str(last - first + 1))
        h.send_header("Content-Range", f"bytes {first}-{last}/{len(DATA)}")
        h.end_headers()
        h.wfile.write(DATA[first:last + 1])

    origin = origins(respond)
    [(size, data)] = fetch(session, [(origin.url(), 1000, 999_999, None)])
    assert size == len(DATA) and data == DATA[1000:1_000_000]
    assert len(origin.requests) == 10


def test_a_fetcher_runs_again_after_a_failed_run(origins, session):
    """The MPD reader asks for a document's head by Range, then (the server ignored Range)
    for the whole of it with the same fetcher: the second run must not be born cancelled."""
    origin = origins(lambda h, n: send_data(h, ranges=False))
    fetcher = rangefetch.Fetcher({}, 2, egress=session)
    try:
        with pytest.raises(rangefetch.RangesUnsupported):
            fetcher.run([(origin.url(), 0, 4095, None)], lambda: None)
        [(size, data)] = fetcher.run([(origin.url(), len(DATA) + 1, None, None)], lambda: None)
    finally:
        fetcher.close()
    assert data == DATA and size == len(DATA)
