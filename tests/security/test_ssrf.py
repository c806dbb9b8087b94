"""SSRF (issue 11, item 4): every hop a source makes us take is checked — page, redirect, format,
manifest, segment — by name and, at connect time, by the egress guard; nothing refused is ever
connected to. The attacker is played by real HTTP servers on 127.0.0.1 that count what they
receive; the internal service is "another port of 127.0.0.1" (this machine allows no traffic
to other addresses, so private ranges are proven with an injected resolver instead)."""
from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from src.media import egress, errors, guard, segment, source
from src.media.errors import MediaError
from tests.youtube_fakes import VIDEO_ID, watch_url

CLIP = Path(__file__).resolve().parent.parent / "media" / "big_buck_bunny_720p_5s.mp4"


class Server:
    """A threaded HTTP server on ``host`` (random port); ``respond(handler)`` answers each
    request; ``requests`` lists ``(method, path, Range header)`` as they arrive."""

    def __init__(self, respond, host="127.0.0.1"):
        owner = self
        self.respond, self.requests = respond, []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append((self.command, self.path, self.headers.get("Range")))
                try:
                    owner.respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_HEAD = do_GET

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"{self.base}/{path.lstrip('/')}"

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def servers():
    started = []

    def start(respond, host="127.0.0.1"):
        started.append(Server(respond, host))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def redirect(location):
    def respond(h):
        h.send_response(302)
        h.send_header("Location", location() if callable(location) else location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return respond


def send_file(h, path: Path, content_type="video/mp4"):
    """200 with the file, or 206 for one ``bytes=a-b`` range."""
    size = path.stat().st_size
    first, last, status = 0, size - 1, 200
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range") or "")
    if match:
        first, last, status = int(match[1]), min(int(match[2] or size - 1), size - 1), 206
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(last - first + 1))
    if status == 206:
        h.send_header("Content-Range", f"bytes {first}-{last}/{size}")
    h.end_headers()
    if h.command == "GET":
        with open(path, "rb") as fh:
            fh.seek(first)
            h.wfile.write(fh.read(last - first + 1))


def serving(path: Path):
    return lambda h: send_file(h, path)


def _app(make_app, *ports, **settings):
    """An app admitting exactly these ports of 127.0.0.1 (besides YouTube's page hosts)."""
    hosts = ",".join(["www.youtube.com", "youtu.be"] + [f"127.0.0.1:{p}" for p in ports])
    return make_app(ALLOWED_SOURCE_HOSTS=hosts, **settings)


def _wait_failed_or_done(client, user, video_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
        if body["status"] in ("completed", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"clip stayed {body['status']}")


def _download(client, auth, user, url, start=300, end=304):
    """Save ``url`` as a clip, download it (the app waits for the job), return (answer, status)."""
    video_id = auth.save_clip(user, url, start=start, end=end)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": "720p"})
    return r, _wait_failed_or_done(client, user, video_id)


# --- the page redirects inside -----------------------------------------------------------

@pytest.mark.slow
def test_page_redirect_to_another_port_is_refused_and_never_fetched(make_app, auth_factory,
                                                                    servers, local_sources):
    internal = servers(serving(Path(local_sources["mp4"])))     # what must stay unreachable
    page = servers(redirect(internal.url("long.mp4")))
    client = _app(make_app, page.port, DOWNLOAD_WAIT_SECONDS=60).test_client()
    auth = auth_factory(client)

    r = client.post("/api/video/resolutions", json={"url": page.url("watch")})
    assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED", r.json
    assert f"127.0.0.1:{internal.port}" in r.json["error"]
    assert set(r.json) == {"error", "code"}

    user = auth.user()
    r, status = _download(client, auth, user, page.url("watch"))
    assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED", r.json
    assert status["status"] == "failed" and status["error_code"] == "SOURCE_NOT_ALLOWED"
    assert f"127.0.0.1:{internal.port}" in status["error_message"]
    assert page.requests and internal.requests == []

    # the control: once that port is allowed, the very same redirect is followed
    client = _app(make_app, page.port, internal.port).test_client()
    r = client.post("/api/video/resolutions", json={"url": page.url("watch")})
    assert r.status_code == 200, r.json
    assert internal.requests


def test_page_url_on_another_port_is_invalid(make_app, servers):
    page = servers(lambda h: None)
    client = _app(make_app, page.port).test_client()
    for url in (f"http://127.0.0.1:{page.port + 1}/x.mp4", "http://127.0.0.1/x.mp4",
                "https://127.0.0.1/x.mp4", f"http://u:p@127.0.0.1:{page.port}/x.mp4",
                f"ftp://127.0.0.1:{page.port}/x.mp4"):
        r = client.post("/api/video/resolutions", json={"url": url})
        assert r.status_code == 400 and r.json["code"] == "INVALID_URL", url
    assert page.requests == []


def test_live_info_goes_through_the_guard(servers, monkeypatch):
    internal = servers(lambda h: None)
    page = servers(redirect(internal.url("x")))
    monkeypatch.setattr(egress, "_configured", egress.Policy([f"127.0.0.1:{page.port}"]))
    with pytest.raises(MediaError) as info:
        source.live_info(page.url("live"))
    assert info.value.code == errors.SOURCE_NOT_ALLOWED
    assert internal.requests == []


# --- the media itself redirects inside -------------------------------------------------

@pytest.fixture(params=["ranged", "direct"])
def fetch_path(request, monkeypatch):
    """The ranged fetcher, or ffmpeg reading the URL itself (segment.CONNECTIONS = 0)."""
    if request.param == "direct":
        monkeypatch.setattr(segment, "CONNECTIONS", 0)
    return request.param


@pytest.fixture
def no_proxy_everywhere(monkeypatch):
    """An environment that exempts every host from proxies (urllib and ffmpeg honour it; CI
    machines often set it): the guard must be used all the same."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.mark.slow
def test_format_url_redirect_is_refused_on_both_fetch_paths(make_app, auth_factory, servers,
                                                            local_sources, fetch_path,
                                                            no_proxy_everywhere):
    """yt-dlp's look at the direct link gets the real file; every Range request (the fetch,
    ranged fetcher or ffmpeg alike) is redirected to the internal port."""
    mp4 = Path(local_sources["mp4"])
    internal = servers(serving(mp4))
    sneaky = {"to": None}

    def respond(h):
        if h.headers.get("Range"):
            return redirect(sneaky["to"])(h)
        return send_file(h, mp4)

    page = servers(respond)
    sneaky["to"] = internal.url("long.mp4")
    client = _app(make_app, page.port, DOWNLOAD_WAIT_SECONDS=60).test_client()
    auth = auth_factory(client)
    user = auth.user()
    r, status = _download(client, auth, user, page.url("long.mp4"))
    assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED", r.json
    assert status["error_code"] == "SOURCE_NOT_ALLOWED"
    assert any(rng for _, _, rng in page.requests)      # the fetch did start …
    assert internal.requests == []                      # … and never reached the target

    # the control: with the target's port allowed, the redirect delivers the clip
    client = _app(make_app, page.port, internal.port, DOWNLOAD_WAIT_SECONDS=60).test_client()
    auth = auth_factory(client)
    r, status = _download(client, auth, auth.user(), page.url("long.mp4"))
    assert r.status_code == 200 and status["status"] == "completed", status
    assert internal.requests


@pytest.fixture(scope="module")
def hls_clip(tmp_path_factory):
    """The real clip as HLS (MPEG-TS segments), the way ffmpeg writes it by default."""
    folder = tmp_path_factory.mktemp("hls")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIP), "-c", "copy", "-f", "hls",
                    "-hls_time", "1", "-hls_list_size", "0", str(folder / "clip.m3u8")],
                   check=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("segments_on", ["allowed", "internal"])
def test_hls_segments_on_another_port_are_never_fetched(make_app, auth_factory, servers,
                                                        hls_clip, segments_on,
                                                        no_proxy_everywhere):
    """An HLS playlist on the allowed host whose segment lines name another port: ffmpeg
    opens the playlist through the guard, and the guard refuses every segment."""
    internal = servers(lambda h: send_file(h, hls_clip / h.path.lstrip("/"), "video/mp2t"))
    where = {}

    def respond(h):
        if not h.path.endswith(".m3u8"):
            return send_file(h, hls_clip / h.path.lstrip("/"), "video/mp2t")
        text = (hls_clip / "clip.m3u8").read_text()
        body = re.sub(r"(?m)^(?!#)(\S+)$", lambda m: f"{where['base']}/{m[1]}", text).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.apple.mpegurl")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    page = servers(respond)
    where["base"] = page.base if segments_on == "allowed" else internal.base
    client = _app(make_app, page.port, DOWNLOAD_WAIT_SECONDS=60).test_client()
    auth = auth_factory(client)
    r, status = _download(client, auth, auth.user(), page.url("clip.m3u8"), start=1, end=3)
    if segments_on == "allowed":
        assert r.status_code == 200 and status["status"] == "completed", status
        assert any(path.endswith(".ts") for _, path, _ in page.requests)
    else:
        assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED", r.json
        assert status["error_code"] == "SOURCE_NOT_ALLOWED"
        assert any(path.endswith(".m3u8") for _, path, _ in page.requests)
    assert internal.requests == []


# --- yt-dlp hands over formats on other hosts -------------------------------------------

def _page(*formats):
    return {"id": VIDEO_ID, "title": "t", "extractor": "youtube", "extractor_key": "Youtube",
            "webpage_url": watch_url(), "duration": 600, "live_status": "not_live",
            "formats": [{"ext": "mp4", "vcodec": "avc1.4d401f", "acodec": "mp4a.40.2",
                         "protocol": "https", **f} for f in formats]}


EVIL_1080 = {"format_id": "137", "width": 1920, "height": 1080, "url": "https://evil.example/x.mp4"}
EVIL_1440 = {"format_id": "hls-1440", "width": 2560, "height": 1440, "protocol": "m3u8_native",
             "url": "https://manifest.googlevideo.com/api/1440.m3u8",
             "manifest_url": "https://evil.example/master.m3u8"}
EVIL_2160 = {"format_id": "401", "width": 3840, "height": 2160,
             "url": "https://rr1---sn-a.googlevideo.com/videoplayback?itag=401",
             "fragments": [{"url": "https://10.0.0.1/frag1"}]}
GOOD_720 = {"format_id": "136", "width": 1280, "height": 720,
            "url": "https://rr1---sn-a.googlevideo.com/videoplayback?itag=136"}


@pytest.fixture
def lookups(monkeypatch):
    """Every name the guard resolves."""
    seen, real = [], egress._getaddrinfo
    monkeypatch.setattr(egress, "_getaddrinfo", lambda host, port: seen.append(host)
                        or real(host, port))
    return seen


def test_formats_on_other_hosts_are_dropped_from_the_lists(client, auth, fake_youtube, lookups):
    fake_youtube.set(watch_url(), _page(EVIL_1080, EVIL_1440, EVIL_2160, GOOD_720))
    r = client.get(f"/api/video/formats/{VIDEO_ID}", headers=auth.user()["headers"])
    assert r.status_code == 200, r.json
    assert r.json["formats"] == {"720p": ["mp4"]} and r.json["resolutions"] == ["720p"]
    r = client.post("/api/video/resolutions", json={"url": watch_url()})
    assert r.status_code == 200 and r.json["resolutions"] == ["720p"]
    assert lookups == []


def test_only_formats_on_other_hosts_is_source_not_allowed(make_app, auth_factory,
                                                          fake_youtube, lookups):
    fake_youtube.set(watch_url(), _page(EVIL_1080))
    client = make_app(DOWNLOAD_WAIT_SECONDS=30).test_client()
    auth = auth_factory(client)
    r = client.post("/api/video/resolutions", json={"url": watch_url()})
    assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED"
    assert "evil.example:443" in r.json["error"] and "x.mp4" not in r.json["error"]
    user = auth.user()
    r = client.get(f"/api/video/formats/{VIDEO_ID}", headers=user["headers"])
    assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED"
    r, status = _download(client, auth, user, watch_url(), start=10, end=20)
    assert r.status_code == 400 and status["error_code"] == "SOURCE_NOT_ALLOWED"
    assert lookups == []


# --- the rules, one by one ------------------------------------------------------------------

def test_url_rules_host_port_scheme_userinfo():
    policy = egress.Policy(["www.youtube.com", "127.0.0.1:8765", "localhost:*"],
                           ["*.googlevideo.com", "cdn.example:8443"])
    allowed = ["https://www.youtube.com/watch?v=x", "http://www.youtube.com/",
               "http://127.0.0.1:8765/a.mp4", "https://127.0.0.1:8765/", "http://localhost:1/",
               "https://rr1---sn-x.googlevideo.com/videoplayback", "https://a.b.googlevideo.com/",
               "https://cdn.example:8443/x", "https://WWW.YouTube.com./"]
    refused = ["https://www.youtube.com:8443/", "http://www.youtube.com:443/",
               "http://127.0.0.1/a.mp4", "http://127.0.0.1:8766/", "https://cdn.example/x",
               "https://googlevideo.com/", "https://evilgooglevideo.com/",
               "https://rr1.googlevideo.com.evil.example/", "https://youtube.com/",
               "https://user:pw@www.youtube.com/", "https://www.youtube.com@evil.example/",
               "ftp://www.youtube.com/", "file:///etc/passwd", "gopher://127.0.0.1:8765/",
               "data:video/mp4;base64,AAAA", "//www.youtube.com/", "http://127.1:8765/",
               "http://[::ffff:127.0.0.1]:8765/", "https://www.youtube.com:99999/"]
    for url in allowed:
        policy.check_url(url)
    for url in refused:
        with pytest.raises(MediaError) as info:
            policy.check_url(url)
        assert info.value.code == errors.SOURCE_NOT_ALLOWED, url
    with pytest.raises(MediaError):  # a media host is no page host
        policy.check_url("https://rr1.googlevideo.com/", page_only=True)


def test_bad_entries_are_refused_at_start_up(make_app):
    with pytest.raises(ValueError, match="ALLOWED_MEDIA_HOSTS"):
        make_app(ALLOWED_MEDIA_HOSTS="*.googlevideo.com,cdn.example:99999")
    with pytest.raises(ValueError, match="ALLOWED_SOURCE_HOSTS"):
        make_app(ALLOWED_SOURCE_HOSTS="*.youtube.com")


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.2", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("255.255.255.255", False), ("240.0.0.1", False), ("::1", False), ("::", False),
    ("fe80::1%2", False), ("fc00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False), ("2002:a00:1::1", False), ("64:ff9b::a00:1", False),
])
def test_address_rule(address, public):
    assert egress.is_public(address) is public


def _resolver(table):
    def resolve(host, port):
        family = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (table[host], port))]
    return resolve


def test_wildcard_names_may_not_resolve_inside_exact_ones_may():
    resolve = _resolver({"a.media.test": "127.0.0.2", "b.media.test": "93.184.216.34",
                         "c.media.test": "::ffff:192.168.0.1"})
    wildcard = egress.Policy([], ["*.media.test"])
    for host in ("a.media.test", "c.media.test"):
        with pytest.raises(MediaError) as info:
            egress.checked_addresses(wildcard, host, 443, resolve)
        assert info.value.code == errors.SOURCE_NOT_ALLOWED and "private" in info.value.message
    assert egress.checked_addresses(wildcard, "b.media.test", 443, resolve) == [
        (socket.AF_INET, ("93.184.216.34", 443))]           # checked, not connected to
    exact = egress.Policy([], ["a.media.test"])
    assert egress.checked_addresses(exact, "a.media.test", 443, resolve) == [
        (socket.AF_INET, ("127.0.0.2", 443))]


def _through(session, url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": session.proxy_url}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_guard_connects_only_to_the_address_it_checked(servers):
    """DNS answers an internal address for a wildcard name: refused before connecting; the
    same name listed exactly is connected to — at the address that was checked."""
    internal = servers(lambda h: (h.send_response(204), h.end_headers()), host="127.0.0.2")
    own = guard.Guard(resolver=_resolver({"a.media.test": "127.0.0.2"}))
    try:
        url = f"http://a.media.test:{internal.port}/"
        with own.session(egress.Policy([], [f"*.media.test:{internal.port}"])) as session:
            assert _through(session, url) == 403
            assert session.refusals[0].host == "a.media.test"
        assert internal.requests == []
        with own.session(egress.Policy([], [f"a.media.test:{internal.port}"])) as session:
            assert _through(session, url) == 204 and session.refusals == []
        assert len(internal.requests) == 1
    finally:
        own.close()


def test_guard_refuses_requests_without_a_known_tag(servers):
    target = servers(lambda h: (h.send_response(204), h.end_headers()))
    own = guard.Guard()
    try:
        with own.session(egress.Policy([f"127.0.0.1:{target.port}"])) as session:
            assert _through(session, target.url("x")) == 204
            stale = session.proxy_url
        with socket.create_connection(("127.0.0.1", own.port)) as sock:
            sock.sendall(f"GET {target.url('x')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 407") and b"Proxy-Authenticate: Basic" in answer
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": stale}))
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(target.url("x"), timeout=10)
        assert info.value.code == 403
        with socket.create_connection(("127.0.0.1", own.port)) as sock:
            sock.sendall(b"GET http://x/ HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 431")
        assert len(target.requests) == 1
    finally:
        own.close()
