"""yt-dlp's JavaScript runtime, EJS scripts, PO-token provider settings and cookies (issue 13,
items 1-3 and the source side of item 2): src/media/ytdlp_runtime.py and src/media/source.py.

Offline: the runtime is the venv's real deno (the ``deno`` package of requirements.txt), the
challenge solver is yt-dlp's own Deno provider with the ``yt-dlp-ejs`` scripts; only the player
JS (a download from YouTube) is a small stand-in written in the shape the EJS solver reads.
Cookies reach a recording HTTP server on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import stat
import subprocess
import sys
import threading

import pytest
import yt_dlp
import yt_dlp_ejs
from yt_dlp.extractor.youtube.jsc._director import initialize_jsc_director
from yt_dlp.extractor.youtube.jsc.provider import (
    JsChallengeRequest,
    JsChallengeType,
    NChallengeInput,
    SigChallengeInput,
)
from yt_dlp.extractor.youtube.pot._director import initialize_pot_director

from src.media import source, ytdlp_runtime
from src.media.choice import select_formats
from src.media.errors import MediaError
from src.media.source import extract_info

pytestmark = pytest.mark.usefixtures("local_egress")

VENV_DENO = os.path.join(os.path.dirname(sys.executable), "deno")

#: A player in the shape yt-dlp-ejs 0.8's solver reads (core.min.js): one IIFE statement whose
#: body holds a function with the ``X.y("alr", "yes")`` marker that builds a URL object; the
#: solver calls it with ``s`` (the signature), sets ``n``, calls its first other method and
#: reads ``s`` and ``n`` back. Here that method reverses ``n`` and drops the first character of
#: ``s``, so the answers are known.
PLAYER_JS = """
(function(){
function Url(){ this.q = {}; }
Url.mark = function(){};
Url.prototype.set = function(k, v){ this.q[k] = v; };
Url.prototype.get = function(k){ return this.q[k]; };
Url.prototype.clone = function(){ return this; };
Url.prototype.solve = function(){
  var n = this.q.n; if (n) this.q.n = n.split("").reverse().join("");
  var s = this.q.s; if (s) this.q.s = encodeURIComponent(decodeURIComponent(s).slice(1));
};
function mk(base, name, value){
  Url.mark("alr", "yes");
  var u = new Url(); if (value) u.set(name, value); return u;
}
}).call(this);
"""
PLAYER_URL = "https://www.youtube.com/s/player/0123abcd/player_ias.vflset/en_US/base.js"


@pytest.fixture(autouse=True)
def runtime_settings():
    """Configure ytdlp_runtime for one test (``configure(**settings)``); the defaults are
    restored afterwards (create_app configures the process too)."""
    def configure(**settings):
        return ytdlp_runtime.configure(settings)

    yield configure
    ytdlp_runtime.configure({})


def _youtube_ie():
    ydl = yt_dlp.YoutubeDL(source._ydl_params())
    return ydl, ydl.get_info_extractor("Youtube")


def test_the_venvs_deno_is_passed_explicitly(monkeypatch):
    """Found without PATH (the systemd unit's PATH lacks the venv) and handed to yt-dlp."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ytdlp_runtime.js_runtimes() == {"deno": {"path": VENV_DENO}}
    version = subprocess.run([VENV_DENO, "--version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    assert ytdlp_runtime.runtime_info() == {"name": "deno", "version": version,
                                            "supported": True}
    ydl, _ = _youtube_ie()
    assert ydl._js_runtimes["deno"].info.path == VENV_DENO
    assert ytdlp_runtime.ejs_version() == yt_dlp_ejs.version


def test_ytdlp_challenge_provider_is_available_with_the_ejs_package(monkeypatch):
    """What yt-dlp checks before it warns "No supported JavaScript runtime could be found"
    (extractor/youtube/_video.py: any JS challenge provider ``is_available()``)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    _, ie = _youtube_ie()
    director = initialize_jsc_director(ie)
    available = {key for key, p in director.providers.items() if p.is_available()}
    assert available == {"Deno"}
    deno = director.providers["Deno"]
    for script in (deno._lib_script, deno._core_script):  # from the yt-dlp-ejs package
        assert script.source.value == "python package"
        assert script.version == ytdlp_runtime.ejs_version()


def test_verbose_header_lists_the_runtime():
    lines = []

    class Logger:
        def debug(self, msg):
            lines.append(msg)

        warning = error = info = debug

    params = {**source._ydl_params(), "verbose": True, "logger": Logger()}
    with yt_dlp.YoutubeDL(params) as ydl:
        ydl.print_debug_header()
    version = ytdlp_runtime.runtime_info()["version"]
    assert f"[debug] JS runtimes: deno-{version}" in lines


def test_a_js_challenge_is_solved_in_deno():
    """yt-dlp's challenge director solves n and sig challenges with the EJS scripts in deno;
    only the player download is replaced (YouTube is unreachable)."""
    _, ie = _youtube_ie()
    director = initialize_jsc_director(ie)
    director.providers["Deno"]._get_player = lambda video_id, url: PLAYER_JS
    requests = [JsChallengeRequest(JsChallengeType.N, NChallengeInput(PLAYER_URL, ["abcdef"])),
                JsChallengeRequest(JsChallengeType.SIG, SigChallengeInput(PLAYER_URL, ["QWERTY"]))]
    results = {req.type: resp.output.results for req, resp in director.bulk_solve(requests)}
    assert results == {JsChallengeType.N: {"abcdef": "fedcba"},
                       JsChallengeType.SIG: {"QWERTY": "WERTY"}}


def test_runtime_none_and_node_path(runtime_settings, tmp_path):
    runtime_settings(YTDLP_JS_RUNTIME="none")
    assert ytdlp_runtime.js_runtimes() == {} and ytdlp_runtime.runtime_info() is None
    _, ie = _youtube_ie()
    assert not any(p.is_available() for p in initialize_jsc_director(ie).providers.values())
    runtime_settings(YTDLP_JS_RUNTIME=f"node:{tmp_path}/node")  # no such binary
    assert ytdlp_runtime.js_runtimes() == {"node": {"path": f"{tmp_path}/node"}}
    assert ytdlp_runtime.runtime_info() is None
    runtime_settings(YTDLP_JS_RUNTIME=f"deno:{VENV_DENO}")
    assert ytdlp_runtime.runtime_info()["name"] == "deno"


@pytest.mark.parametrize("settings, message", [
    ({"YTDLP_JS_RUNTIME": "rhino"}, "YTDLP_JS_RUNTIME must be"),
    ({"YTDLP_JS_RUNTIME": "node"}, "needs the binary's path"),
    ({"YTDLP_EXTRACTOR_ARGS": "player_client=web"}, "should be IE_KEY:ARGS"),
    ({"YTDLP_POT_PROVIDER_URL": "file:///etc/passwd"}, "must be an http"),
])
def test_unusable_settings_stop_the_app(make_app, settings, message):
    with pytest.raises(ValueError, match=message):
        make_app(**settings)


def test_pot_provider_url_and_extractor_args_reach_ytdlp(runtime_settings):
    runtime_settings(YTDLP_POT_PROVIDER_URL="http://127.0.0.1:4416/",
                     YTDLP_EXTRACTOR_ARGS="youtube:player_client=default,web_safari;skip=hls "
                                          "youtube-ejs:jitless=true")
    params = source._ydl_params()
    assert params["extractor_args"] == {
        "youtube": {"player_client": ["default", "web_safari"], "skip": ["hls"]},
        "youtube-ejs": {"jitless": ["true"]},
        "youtubepot-bgutilhttp": {"base_url": ["http://127.0.0.1:4416"]}}
    _, ie = _youtube_ie()
    assert ie._configuration_arg("player_client") == ["default", "web_safari"]
    # the bgutil plugin (installed from requirements.txt) reads its base URL from them
    providers = initialize_pot_director(ie).providers
    assert providers["BgUtilHTTP"]._base_url == "http://127.0.0.1:4416"


# -- cookies ------------------------------------------------------------------------------

COOKIES = "# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\towner-secret\n"


class _Recorder(http.server.ThreadingHTTPServer):
    def __init__(self, payload: bytes):
        self.payload, self.cookies = payload, []
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.cookies.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.end_headers()
        self.wfile.write(self.server.payload)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder(local_sources):
    with open(local_sources["mp4"], "rb") as file:
        server = _Recorder(file.read(64 * 1024))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cookie_files(monkeypatch) -> list:
    """Each cookie file yt-dlp got: ``(path, mode, folder mode, text)`` seen inside the block."""
    seen = []
    real = ytdlp_runtime.cookie_file

    def spy(cookies=None):
        with real(cookies) as path:
            if path:
                with open(path) as file:
                    seen.append((path, stat.S_IMODE(os.stat(path).st_mode),
                                 stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
                                 file.read()))
            yield path

    monkeypatch.setattr(ytdlp_runtime, "cookie_file", contextlib.contextmanager(spy))
    return seen


def test_owner_cookies_reach_the_source_from_a_private_file(recorder, cookie_files):
    url = f"http://127.0.0.1:{recorder.server_port}/clip.mp4"
    info = extract_info(url, cookies=COOKIES)
    assert recorder.cookies and set(recorder.cookies) == {"sid=owner-secret"}
    [(path, mode, folder_mode, text)] = cookie_files
    assert mode == 0o600 and folder_mode == 0o700 and text == COOKIES
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    # the fetch plan carries them for the format's own host only
    plan = select_formats(info, "mp4", "best")
    assert plan.http_headers["Cookie"] == "sid=owner-secret"
    # without cookies nothing is sent
    recorder.cookies.clear()
    plan = select_formats(extract_info(url), "mp4", "best")
    assert set(recorder.cookies) == {None} and "Cookie" not in plan.http_headers


def test_server_cookies_file_is_copied_never_rewritten(recorder, cookie_files, tmp_path,
                                                       runtime_settings):
    server_file = tmp_path / "cookies.txt"
    server_file.write_text(COOKIES.replace("owner-secret", "server-wide"))
    before = server_file.stat()
    runtime_settings(YTDLP_COOKIES_FILE=str(server_file))
    url = f"http://127.0.0.1:{recorder.server_port}/clip.mp4"
    extract_info(url)
    assert set(recorder.cookies) == {"sid=server-wide"}
    extract_info(url, cookies=COOKIES)  # an owner's cookies win
    assert recorder.cookies[-1] == "sid=owner-secret"
    assert [entry[0] != str(server_file) for entry in cookie_files] == [True, True]
    after = server_file.stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert not any(os.path.exists(entry[0]) for entry in cookie_files)


def test_cookie_file_removed_when_extraction_fails(cookie_files):
    with pytest.raises(MediaError):
        extract_info("http://127.0.0.1:1/nothing.mp4", timeout=2, cookies=COOKIES)
    assert cookie_files and not os.path.exists(os.path.dirname(cookie_files[0][0]))


def test_cookies_stay_out_of_a_plan_spanning_two_hosts(tmp_path):
    """yt-dlp scopes cookies per format URL; the plan's headers go to every URL it names, so
    cookies of one host are not sent when the streams are on two hosts."""
    jar = tmp_path / "jar.txt"
    jar.write_text("# Netscape HTTP Cookie File\n"
                   "a.example\tFALSE\t/\tFALSE\t0\tva\t1\nb.example\tFALSE\t/\tFALSE\t0\tvb\t2\n")
    raw = {"id": "x", "title": "x", "extractor": "generic", "extractor_key": "Generic",
           "webpage_url": "https://a.example/x", "formats": [
               {"format_id": "v", "url": "https://a.example/v.mp4", "ext": "mp4",
                "vcodec": "avc1", "acodec": "none", "height": 720, "protocol": "https"},
               {"format_id": "a", "url": "https://b.example/a.m4a", "ext": "m4a",
                "vcodec": "none", "acodec": "mp4a.40.2", "protocol": "https"}]}
    with yt_dlp.YoutubeDL({**source._ydl_params(), "cookiefile": str(jar)}) as ydl:
        info = ydl.process_ie_result(raw, download=False)
    assert {f["format_id"]: f["cookies"].split(";")[0] for f in info["formats"]} == {
        "v": "va=1", "a": "vb=2"}
    plan = select_formats(info, "mp4", "best")
    assert plan.audio_url and "Cookie" not in plan.http_headers
    video_only = {**info, "formats": [f for f in info["formats"] if f["format_id"] == "v"]}
    assert select_formats(video_only, "mp4", "best").http_headers["Cookie"] == "va=1"
    # an HLS playlist names its segments (maybe elsewhere) only when read: never cookies
    hls = {**video_only, "formats": [{**video_only["formats"][0], "protocol": "m3u8_native",
                                      "url": "https://a.example/v.m3u8"}]}
    assert "Cookie" not in select_formats(hls, "mp4", "best").http_headers


# -- GET /api/health and /readyz ----------------------------------------------------------

class _PingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"server_uptime": 1, "version": "1.2.2"}).encode()
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def pot_provider():
    """A stand-in for the bgutil provider's HTTP server: its ``/ping`` answer."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_health_reports_ytdlp_runtime_ejs_and_settings(make_app):
    from yt_dlp.version import __version__

    r = make_app().test_client().get("/api/health")
    assert r.status_code == 200 and r.json["status"] == "ok", r.json
    version = ytdlp_runtime.runtime_info()["version"]
    assert r.json["checks"]["yt_dlp"] == {
        "ok": True, "version": __version__, "js_runtime": {"name": "deno", "version": version},
        "ejs_version": yt_dlp_ejs.version,
        "pot_provider": {"configured": False, "reachable": False},
        "cookies_file": {"configured": False, "present": False, "earliest_expiry": None},
        "proxy": {"configured": False, "scheme": None}}


def test_health_pot_cookies_and_proxy_without_secrets(make_app, pot_provider, tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       ".youtube.com\tTRUE\t/\tTRUE\t1893456000\tSID\tvery-secret\n"
                       ".youtube.com\tTRUE\t/\tTRUE\t1798761600\tHSID\tother-secret\n")
    app = make_app(YTDLP_POT_PROVIDER_URL=pot_provider, YTDLP_COOKIES_FILE=str(cookies),
                   YTDLP_PROXY="socks5://user:proxy-password@127.0.0.1:1080")
    r = app.test_client().get("/api/health")
    check = r.json["checks"]["yt_dlp"]
    assert check["pot_provider"] == {"configured": True, "reachable": True}
    assert check["cookies_file"] == {"configured": True, "present": True, "valid": True,
                                     "earliest_expiry": "2027-01-01T00:00:00+00:00"}
    assert check["proxy"] == {"configured": True, "scheme": "socks5"}
    for secret in ("very-secret", "other-secret", "proxy-password", "user:", str(tmp_path)):
        assert secret not in r.get_data(as_text=True)
    # a provider that does not answer, a file that went away, a file that is not Netscape
    cookies.write_text('[{"name": "SID"}]')
    app = make_app(YTDLP_POT_PROVIDER_URL="http://127.0.0.1:1", YTDLP_COOKIES_FILE=str(cookies))
    check = app.test_client().get("/api/health").json["checks"]["yt_dlp"]
    assert check["pot_provider"] == {"configured": True, "reachable": False}
    assert check["cookies_file"]["valid"] is False and "JSON" in check["cookies_file"]["error"]
    cookies.unlink()
    check = app.test_client().get("/api/health").json["checks"]["yt_dlp"]
    assert check["cookies_file"] == {"configured": True, "present": False,
                                     "earliest_expiry": None}
    assert check["ok"] is True  # none of these stops extraction


def test_no_runtime_found_is_degraded_and_not_ready(make_app, tmp_path):
    app = make_app(YTDLP_JS_RUNTIME=f"node:{tmp_path}/node")
    client = app.test_client()
    r = client.get("/api/health")
    assert r.status_code == 200 and r.json["status"] == "degraded"
    check = r.json["checks"]["yt_dlp"]
    assert check["ok"] is False and check["js_runtime"] is None
    assert "JavaScript runtime" in check["error"]
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["yt_dlp"]
    # switched off on purpose: ready, and the health says there is none
    app = make_app(YTDLP_JS_RUNTIME="none")
    assert app.test_client().get("/readyz").status_code == 200
    check = app.test_client().get("/api/health").json["checks"]["yt_dlp"]
    assert check["ok"] is True and check["js_runtime"] is None
