"""Nightbot follow-up (issue 14, item 4): the stream save's ``Nightbot-Response-Url`` gets one chat
message when the clip is ready or failed, posted in the background through the egress guard,
at most one per channel every ``NIGHTBOT_MESSAGE_INTERVAL_SECONDS`` (Nightbot's 5 s), retried
after 5xx / 429 / no answer while the URL is valid, given up on a 4xx.

The stand-in for Nightbot's response URL is a threaded HTTP server on 127.0.0.1 that records
every POST and answers from a script; it is admitted with ``NIGHTBOT_RESPONSE_HOSTS`` like the
local sources are with ``ALLOWED_SOURCE_HOSTS``.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.live_source import LiveHLS
from src.data import videos
from src.media.ffmpeg import ffprobe
from src.services import followup, nightbot_sender, stream_service
from tests.youtube_fakes import VIDEO_ID, stream_info, wait_for, watch_url

CHANNEL = "name=streamer&displayName=Streamer&provider=youtube&providerId=UC" + "c" * 22
NIGHTBOT = {"Nightbot-User": "name=owl&displayName=Owl&provider=youtube&providerId=UCowl"
                             "&userLevel=moderator", "Nightbot-Channel": CHANNEL}
LOCAL = ["127.0.0.1:*"]


@dataclass
class Seen:
    """One POST the stand-in received."""

    at: float  # time.monotonic()
    wall: float  # time.time()
    path: str
    content_type: str
    body: bytes

    @property
    def message(self) -> str:
        return json.loads(self.body)["message"]


class StandIn:
    """Nightbot's response URL, locally: ``script`` holds one answer per request —
    ``(status, headers, delay_seconds)`` or ``"drop"`` (close without answering) — then 200."""

    def __init__(self):
        self.seen: list[Seen] = []
        self.script: list = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with owner.lock:
                    owner.seen.append(Seen(time.monotonic(), time.time(), self.path,
                                           self.headers.get("Content-Type", ""), body))
                    answer = owner.script.pop(0) if owner.script else (200, {}, 0)
                if answer == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, delay = answer
                time.sleep(delay)
                data = json.dumps({"status": status}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, token: str = "tok") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/1/channel/send/{token}"

    def requests(self, token: str = "") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.endswith("/" + token) or not token]


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def make(make_app):
    """``make(**settings)`` → an app admitting the stand-in; its sender stops at teardown."""
    apps = []

    def factory(**settings):
        app = make_app(NIGHTBOT_RESPONSE_HOSTS=LOCAL, **settings)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        nightbot_sender.sender(app).stop()


def _clip(app, auth_factory, t=3725) -> str:
    """A stream clip saved the way Nightbot saves one (``?t=`` seconds, Nightbot's headers)."""
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t={t}&format=json",
                   headers=NIGHTBOT)
    assert r.status_code == 201, r.json
    return r.json["video_id"]


def _remember(app, video_id, url, channel="UCa", received_at=None) -> bool:
    with app.app_context():
        return followup.remember(video_id, url, channel,
                                 time.time() if received_at is None else received_at)


def _notify(app, video_id, text) -> float:
    """Queue ``text``; the seconds notify took."""
    with app.app_context():
        started = time.monotonic()
        followup.notify(video_id, text)
        return time.monotonic() - started


def _queue_empty(app) -> bool:
    store = app.extensions["yt"]["redis"]
    return not store.zcard(nightbot_sender.QUEUE) and not store.keys("followup:msg:*")


def test_ready_message_arrives_once_with_the_clip_time_and_link(make, standin, auth_factory):
    app = make(PUBLIC_BASE_URL="https://clips.example/")
    video_id = _clip(app, auth_factory)
    assert _remember(app, video_id, standin.url())
    with app.app_context():
        doc = videos.get(app.extensions["yt"]["db"], video_id)
        followup.notify(video_id, followup.ready_text(doc))
        followup.notify(video_id, "a second outcome of the same clip")  # the URL is used up
    wait_for(standin.requests)
    time.sleep(1.0)
    [seen] = standin.requests()
    assert seen.path == "/1/channel/send/tok"
    assert seen.content_type == "application/json"
    assert seen.message == "Clip 1:02:05 ready: https://clips.example/#clips"
    assert _queue_empty(app)


def test_failed_outcome_names_the_reason(make, standin, auth_factory):
    app = make()
    video_id = _clip(app, auth_factory)
    assert _remember(app, video_id, standin.url())
    with app.app_context():
        followup.notify_outcome(video_id)  # still pending: nothing yet, the URL stays kept
        assert app.extensions["yt"]["redis"].exists(f"followup:url:{video_id}")
        videos.update(app.extensions["yt"]["db"], video_id, {
            "status": "failed", "error_code": "VIDEO_UNAVAILABLE",
            "error_message": "This video is unavailable."})
        followup.notify_outcome(video_id)
    wait_for(standin.requests)
    assert standin.requests()[0].message == "Clip 1:02:05 failed: This video is unavailable."


def test_texts_without_a_base_url_and_for_chat(make):
    app = make()
    with app.app_context():
        placed = {"_id": "abc", "start_time": 3665.0, "clip_offset": 60}
        assert followup.ready_text(placed) == \
            "Clip 1:02:05 ready, id abc: download it from the dashboard"
        assert followup.failed_text({"_id": "abc", "error_code": "VOD_UNAVAILABLE"}) \
            .startswith("Clip failed: ")
        line = followup.chat_line("/ban someone\n" + "word " * 300)
        assert len(line) < 400 and line.startswith("ban someone word") and "\n" not in line


@pytest.mark.slow
def test_one_channel_gets_a_message_every_5_seconds_another_channel_waits_not(make, standin):
    app = make()  # Nightbot's own interval: 5 s
    for name, channel in (("a1", "UCa"), ("a2", "UCa"), ("b1", "UCb")):
        assert _remember(app, name, standin.url(name), channel)
        _notify(app, name, f"clip {name} ready")
    wait_for(lambda: len(standin.requests()) == 3, timeout=20)
    [a1], [a2], [b1] = (standin.requests(n) for n in ("a1", "a2", "b1"))
    first, second = sorted((a1, a2), key=lambda s: s.at)
    assert second.at - first.at >= 5.0
    assert b1.at - first.at < 2.0
    assert {a1.message, a2.message, b1.message} == {"clip a1 ready", "clip a2 ready",
                                                    "clip b1 ready"}


def test_two_processes_share_the_channel_rule_and_send_each_message_once(make, standin):
    apps = [make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.6) for _ in range(2)]  # one Redis, two senders
    names = [f"m{i}" for i in range(4)]
    for i, name in enumerate(names):
        app = apps[i % 2]
        assert _remember(app, name, standin.url(name), "UCshared")
        _notify(app, name, f"message {name}")
    wait_for(lambda: len(standin.requests()) >= 4, timeout=20)
    time.sleep(1.0)
    seen = sorted(standin.requests(), key=lambda s: s.at)
    assert sorted(s.message for s in seen) == [f"message {n}" for n in names]
    assert all(b.at - a.at >= 0.6 for a, b in zip(seen, seen[1:]))


def test_retries_after_500_and_a_dropped_connection(make, standin, monkeypatch):
    monkeypatch.setattr(nightbot_sender, "BACKOFF_SECONDS", 0.2)
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.3)
    standin.script = [(500, {}, 0), "drop", (200, {}, 0)]
    assert _remember(app, "v1", standin.url())
    _notify(app, "v1", "Clip ready")
    wait_for(lambda: len(standin.requests()) == 3)
    time.sleep(1.0)
    seen = standin.requests()
    assert len(seen) == 3 and {s.message for s in seen} == {"Clip ready"}
    assert all(b.at - a.at >= 0.3 for a, b in zip(seen, seen[1:]))
    assert _queue_empty(app)


def test_429_waits_for_retry_after(make, standin):
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.2)
    standin.script = [(429, {"Retry-After": "2"}, 0)]
    assert _remember(app, "v1", standin.url())
    _notify(app, "v1", "Clip ready")
    wait_for(lambda: len(standin.requests()) == 2)
    first, second = standin.requests()
    assert second.at - first.at >= 2.0
    assert second.message == "Clip ready"


def test_a_4xx_gives_up(make, standin, monkeypatch):
    monkeypatch.setattr(nightbot_sender, "BACKOFF_SECONDS", 0.1)
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.1)
    standin.script = [(404, {}, 0)]
    assert _remember(app, "v1", standin.url())
    _notify(app, "v1", "Clip ready")
    wait_for(standin.requests)
    time.sleep(1.5)
    assert len(standin.requests()) == 1
    assert _queue_empty(app)


def test_retries_are_bounded(make, standin, monkeypatch):
    monkeypatch.setattr(nightbot_sender, "BACKOFF_SECONDS", 0.05)
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.05)
    standin.script = [(503, {}, 0)] * 20
    assert _remember(app, "v1", standin.url())
    _notify(app, "v1", "Clip ready")
    wait_for(lambda: _queue_empty(app) and standin.requests())
    time.sleep(1.0)
    assert len(standin.requests()) == nightbot_sender.MAX_ATTEMPTS


def test_no_retry_once_the_url_has_expired(make, standin, monkeypatch):
    monkeypatch.setattr(nightbot_sender, "BACKOFF_SECONDS", 0.4)  # retries +0.4, +0.8; +1.6 late
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.1, NIGHTBOT_RESPONSE_URL_SECONDS=1.5)
    standin.script = [(500, {}, 0)] * 20
    received = time.time()
    assert _remember(app, "v1", standin.url(), received_at=received)
    _notify(app, "v1", "Clip ready")
    time.sleep(3.0)
    seen = standin.requests()
    assert 1 <= len(seen) < nightbot_sender.MAX_ATTEMPTS
    assert all(s.wall < received + 1.5 for s in seen)
    assert _queue_empty(app)


def test_an_expired_url_sends_nothing(make, standin):
    app = make(NIGHTBOT_RESPONSE_URL_SECONDS=0.5)
    assert not _remember(app, "old", standin.url(), received_at=time.time() - 1)
    assert _remember(app, "v1", standin.url())
    time.sleep(0.7)
    _notify(app, "v1", "Clip ready")
    time.sleep(1.0)
    assert standin.requests() == []


@pytest.mark.parametrize("url", [
    "https://evil.example/1/channel/send/tok",
    "https://api.nightbot.tv.evil.example/1/channel/send/tok",
    "http://api.nightbot.tv/1/channel/send/tok",  # not https
    "https://api.nightbot.tv:8443/1/channel/send/tok",
    "https://api.nightbot.tv/1/commands",
    "https://api.nightbot.tv/1/channel/send/",
    "https://user:pw@api.nightbot.tv/1/channel/send/tok",
    "ftp://api.nightbot.tv/1/channel/send/tok",
    "https://api.nightbot.tv/1/channel/send/tok\r\nX-Injected: 1",
    "https://api.nightbot.tv/1/channel/send/" + "t" * 3000,
    "http://localhost:8080/1/channel/send/tok",  # local, but only 127.0.0.1 is admitted here
    "http://10.0.0.1/1/channel/send/tok",
    "",
    None,
])
def test_remember_refuses_what_is_not_a_nightbot_response_url(make, url):
    app = make()
    assert not _remember(app, "v1", url)
    assert not app.extensions["yt"]["redis"].keys("followup:*")


def test_remember_keeps_nightbots_url_for_its_validity_without_a_request(make):
    app = make()
    assert _remember(app, "v1", "https://api.nightbot.tv/1/channel/send/TVRRM05UazRNVGsy", "UCa")
    store = app.extensions["yt"]["redis"]
    kept = json.loads(store.get("followup:url:v1"))
    assert kept["url"].endswith("/TVRRM05UazRNVGsy") and kept["channel"] == "UCa"
    assert 590_000 < store.pttl("followup:url:v1") <= 600_000


def test_local_hosts_need_the_setting_and_the_switch_turns_it_off(make_app, make, standin):
    plain = make_app()  # default NIGHTBOT_RESPONSE_HOSTS: api.nightbot.tv only
    assert not _remember(plain, "v1", standin.url())
    off = make(NIGHTBOT_FOLLOWUP=False)
    assert not _remember(off, "v1", standin.url())
    assert not off.extensions["yt"]["redis"].keys("followup:*")


def test_notify_returns_at_once_while_the_sender_waits_for_nightbot(make, standin):
    app = make(NIGHTBOT_MESSAGE_INTERVAL_SECONDS=0.1)
    standin.script = [(200, {}, 3.0)]  # the first answer takes 3 s
    assert _remember(app, "slow", standin.url("slow"), "UCa")
    assert _remember(app, "next", standin.url("next"), "UCb")
    assert _notify(app, "slow", "Clip slow ready") < 0.5
    wait_for(standin.requests)  # the sender is now waiting for the answer
    assert _notify(app, "next", "Clip next ready") < 0.5
    wait_for(lambda: len(standin.requests()) == 2, timeout=15)
    assert standin.requests("next")[0].message == "Clip next ready"


# -- through the stream save, the jobs and the live resolver --


def _nightbot_save(app, auth_factory, standin, query: str, token_name: str = "tok"):
    """A Nightbot ``$(urlfetch)`` of the stream save with all three of its headers: the user,
    their client and the reply."""
    client = app.test_client()
    user = auth_factory(client).user()
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?{query}",
                   headers={**NIGHTBOT, "Nightbot-Response-Url": standin.url(token_name)})
    assert r.status_code == 201 and r.mimetype == "text/plain", r.data
    return user, client, r.get_data(as_text=True)


@pytest.mark.slow
def test_a_chat_clip_during_a_live_stream_is_followed_up_in_chat(make, auth_factory, standin,
                                                                 fake_youtube, tmp_path):
    """Issue 14's "must show": a Nightbot save during a (local) live stream → a completed clip
    of the window asked for → one message on the stand-in for Nightbot-Response-Url."""
    with LiveHLS(tmp_path / "live") as stream:
        app = make(DOWNLOAD_WAIT_SECONDS=0, STREAM_DELAY_SECONDS=0,
                   PUBLIC_BASE_URL="https://clips.example")
        started = time.time() - 600
        page = stream_info("is_live", started)
        page["formats"][0].update(url=stream.url, width=426, height=240)
        fake_youtube.set(watch_url(), page)
        user, client, reply = _nightbot_save(app, auth_factory, standin, "offset=4&duration=8")
        video_id = reply.split("id ")[1].split(":")[0]
        wait_for(lambda: client.get(f"/api/video/status/{video_id}", headers=user["headers"])
                 .json["status"] == "completed", timeout=45)
        [seen] = wait_for(standin.requests, timeout=10)
        status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
        moment = stream_service.hms(status["start_time"] + 4)
        assert seen.message == f"Clip {moment} ready: https://clips.example/#clips"
        r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={})
        assert r.status_code == 200, r.data[:200]
        (tmp_path / "clip.mp4").write_bytes(r.data)
        assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 8) <= 0.5
    time.sleep(1.0)
    assert len(standin.requests()) == 1


def test_a_stream_clip_that_fails_is_followed_up_and_followup_0_opts_out(
        make, auth_factory, standin, fake_youtube):
    app = make()
    fake_youtube.set(watch_url(), stream_info("is_upcoming", None))
    _nightbot_save(app, auth_factory, standin, "followup=0", "quiet")
    _nightbot_save(app, auth_factory, standin, "", "told")
    [seen] = wait_for(standin.requests, timeout=20)
    assert seen.path.endswith("/told")
    assert seen.message == "Clip failed: This live event has not started yet."
    time.sleep(1.0)
    assert len(standin.requests()) == 1
