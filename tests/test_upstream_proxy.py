"""``YTDLP_PROXY`` (issue 13, item 4): the egress guard dials out through an upstream proxy.

Stand-ins on 127.0.0.1 play the proxy: an HTTP ``CONNECT`` proxy and a SOCKS5 server (RFC 1928,
user/password RFC 1929), each recording the targets it was asked for and the credentials it was
given, then relaying to the target. A clip of the local source made through the API goes through
the CONNECT proxy (extraction, ranged fetch, ffmpeg alike); a host the policy refuses is refused
by the guard before the proxy hears of it; credentials never appear in logs or answers.
"""
from __future__ import annotations

import base64
import socket
import socketserver
import struct
import threading
from urllib.parse import quote

import pytest
import urllib3

from src.media import egress, guard
from src.media.ffmpeg import ffprobe

SECRET = "pa:ss/w0rd!"  # percent-encoded in the URL: pa%3Ass%2Fw0rd%21


def _relay(a: socket.socket, b: socket.socket) -> None:
    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
    threading.Thread(target=pump, args=(b, a), daemon=True).start()
    pump(a, b)


class StandIn:
    """A proxy stand-in: ``targets`` ("host:port" asked for), ``auth`` (credentials given)."""

    def __init__(self, handler_cls):
        self.targets, self.auth = [], []
        owner = self

        class Handler(handler_cls):
            proxy = owner

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ConnectHandler(socketserver.BaseRequestHandler):
    proxy: StandIn

    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(1)
            if not chunk:
                return
            head += chunk
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ")
        creds = next((line.split(" ", 2)[2] for line in lines[1:]
                      if line.lower().startswith("proxy-authorization: basic ")), None)
        self.proxy.targets.append(target)
        self.proxy.auth.append(base64.b64decode(creds).decode() if creds else None)
        if method != "CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _relay(self.request, upstream)


class Socks5Handler(socketserver.BaseRequestHandler):
    proxy: StandIn

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def handle(self):
        _, count = self._read(2)
        methods = self._read(count)
        if 2 in methods:  # username/password
            self.request.sendall(b"\x05\x02")
            _, ulen = self._read(2)
            user = self._read(ulen).decode()
            plen = self._read(1)[0]
            password = self._read(plen).decode()
            self.proxy.auth.append(f"{user}:{password}")
            self.request.sendall(b"\x01\x00")
        else:
            self.request.sendall(b"\x05\x00")
            self.proxy.auth.append(None)
        _, _, _, kind = self._read(4)
        if kind == 1:
            host = socket.inet_ntoa(self._read(4))
        elif kind == 3:
            host = self._read(self._read(1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, self._read(16))
        port = struct.unpack("!H", self._read(2))[0]
        self.proxy.targets.append(f"{host}:{port}")
        upstream = socket.create_connection((host, port), timeout=10)
        self.request.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1")
                             + struct.pack("!H", 0))
        _relay(self.request, upstream)


@pytest.fixture
def restore_upstream(monkeypatch):
    """The upstream proxy is process-wide (egress.configure): put it back after the test."""
    monkeypatch.setattr(egress, "_upstream", None)


@pytest.fixture
def connect_proxy(restore_upstream):
    proxy = StandIn(ConnectHandler)
    yield proxy
    proxy.stop()


@pytest.fixture
def socks_proxy(restore_upstream):
    proxy = StandIn(Socks5Handler)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("path", ["ranged", "ffmpeg"])
def test_a_clip_goes_through_the_upstream_connect_proxy(make_app, auth_factory, connect_proxy,
                                                        source_server, tmp_path, monkeypatch,
                                                        path):
    """Extraction (yt-dlp's generic extractor), the ranged fetcher or ffmpeg reading the
    source itself (``path``): every connection is a tunnel through the upstream proxy."""
    if path == "ffmpeg":
        from src.media import segment
        monkeypatch.setattr(segment, "CONNECTIONS", 0)
    app = make_app(DOWNLOAD_WAIT_SECONDS=120,
                   YTDLP_PROXY=f"http://clipper:pa%3Ass%2Fw0rd%21@127.0.0.1:{connect_proxy.port}")
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 30, 34)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 200 and r.mimetype == "video/mp4", (r.status_code, r.data[:300])
    (tmp_path / "clip.mp4").write_bytes(r.data)
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 4) <= 1
    source = f"127.0.0.1:{source_server.base_url.rsplit(':', 1)[1]}"
    assert connect_proxy.targets and set(connect_proxy.targets) == {source}
    assert set(connect_proxy.auth) == {f"clipper:{SECRET}"}
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"])
    log_text = open(app.config["LOG_FILE"], encoding="utf-8").read() \
        if app.config.get("LOG_FILE") else ""
    for text in (status.get_data(as_text=True), log_text, r.headers.get("X-Request-ID", "")):
        assert SECRET not in text and "pa%3Ass" not in text


def test_a_refused_host_never_reaches_the_upstream_proxy(connect_proxy):
    """Policy first: an unlisted host, and an allowed name resolving to a private address, are
    refused by the guard; the upstream proxy is never contacted."""
    egress._upstream = egress.parse_proxy(f"http://127.0.0.1:{connect_proxy.port}")
    private = guard.Guard(resolver=lambda host, port: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))])
    try:
        policy = egress.Policy(["127.0.0.1:*"], ["*.googlevideo.com"])
        with private.session(policy) as session:
            proxy = urllib3.util.parse_url(session.proxy_url)
            for target in ("evil.example:443", "rr1.googlevideo.com:443"):
                with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                    creds = base64.b64encode(proxy.auth.encode()).decode()
                    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                                 f"Proxy-Authorization: Basic {creds}\r\n\r\n".encode())
                    answer = sock.recv(4096).decode()
                assert answer.startswith("HTTP/1.1 403"), answer
            reasons = [refusal.reason for refusal in session.refusals]
        assert "evil.example:443 is not an allowed" in reasons[0]
        assert "resolves to a local or private address" in reasons[1]
        assert connect_proxy.targets == []
    finally:
        private.close()


def test_a_proxy_that_refuses_the_tunnel_is_a_502_without_credentials(restore_upstream):
    """A proxy answering 407 (wrong credentials): the client gets 502 naming the status only."""
    class Refusing(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(4096)
            self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    stand_in = StandIn(Refusing)
    egress._upstream = egress.parse_proxy(f"http://u:{quote(SECRET, safe='')}"
                                          f"@127.0.0.1:{stand_in.port}")
    try:
        with guard.session(egress.Policy(["127.0.0.1:*"])) as session:
            pool = urllib3.ProxyManager(session.proxy_url, proxy_headers=urllib3.make_headers(
                proxy_basic_auth=urllib3.util.parse_url(session.proxy_url).auth))
            r = pool.request("GET", "http://127.0.0.1:9/x", retries=False)
        assert r.status == 502 and b"HTTP 407" in r.data and SECRET.encode() not in r.data
    finally:
        stand_in.stop()


@pytest.mark.parametrize("scheme, target_host", [("socks5", "127.0.0.1"),
                                                 ("socks5h", "localhost")])
def test_socks5_carries_the_ranged_fetch(socks_proxy, source_server, scheme, target_host):
    """SOCKS5 with user/password: the guard's tunnel runs through it; ``socks5`` is given the
    address the guard checked, ``socks5h`` the name (the proxy resolves it)."""
    egress._upstream = egress.parse_proxy(f"{scheme}://clipper:pw@127.0.0.1:{socks_proxy.port}")
    port = int(source_server.base_url.rsplit(":", 1)[1])
    url = f"http://{target_host}:{port}/{source_server.mp4_url.rsplit('/', 1)[1]}"
    with guard.session(egress.Policy([f"{target_host}:{port}"])) as session:
        pool = urllib3.ProxyManager(session.proxy_url, proxy_headers=urllib3.make_headers(
            proxy_basic_auth=urllib3.util.parse_url(session.proxy_url).auth))
        r = pool.request("GET", url, headers={"Range": "bytes=0-99"}, retries=False)
    assert r.status == 206 and len(r.data) == 100 and r.data[4:8] == b"ftyp"
    assert socks_proxy.targets == [f"{target_host}:{port}"]
    assert socks_proxy.auth == ["clipper:pw"]


@pytest.mark.parametrize("value", ["ftp://proxy:21", "http://", "socks4://127.0.0.1:1080",
                                   f"http://u:{SECRET}@proxy:notaport"])
def test_an_unusable_setting_is_refused_without_showing_it(make_app, restore_upstream, value):
    with pytest.raises(ValueError) as refused:
        make_app(YTDLP_PROXY=value)
    assert "YTDLP_PROXY" in str(refused.value) and SECRET not in str(refused.value)


def test_the_shown_form_has_no_credentials():
    proxy = egress.parse_proxy("socks5h://me:secret@[::1]:9050")
    assert (proxy.scheme, proxy.host, proxy.port, proxy.username, proxy.password) == \
        ("socks5h", "::1", 9050, "me", "secret")
    assert proxy.shown() == "socks5h://[::1]:9050" and "secret" not in repr(proxy)
    assert egress.parse_proxy("http://proxy.internal").port == 80
    assert egress.parse_proxy("") is None
