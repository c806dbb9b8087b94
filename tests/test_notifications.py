"""Clip notifications (issue 17, item 3): a channel's Discord webhook gets "saved" when a clip is
saved from chat and "ready" (the file attached, or a link, and the thumbnail) or "failed"; a
generic webhook gets the same events as JSON signed with the channel's secret. Posted in the
background through the egress guard, retried with back-off, failures visible in
``GET /api/channels/{id}/deliveries``; the chat reply never waits for them.

The stand-in for Discord (and for a generic webhook) is a threaded HTTP server on 127.0.0.1
that records every POST, parses JSON and multipart bodies, and answers from a script; it is
admitted with ``DISCORD_WEBHOOK_HOSTS`` / ``WEBHOOK_HOSTS`` as the real hosts would be.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from bson import ObjectId
from werkzeug.serving import make_server

from src.data import channels, deliveries
from src.media import egress, guard
from src.services import notifications, notify_sender
from tests import test_dashboard as dashboard
from tests.youtube_fakes import VIDEO_ID, video_page, wait_for, watch_url

CHANNEL_ID = "UC" + "n" * 22
NIGHTBOT = {"Nightbot-User": urlencode({"name": "night_owl", "displayName": "Night Owl",
                                        "provider": "youtube", "providerId": "UC" + "u" * 22,
                                        "userLevel": "moderator"}),
            "Nightbot-Channel": urlencode({"name": "streamer", "displayName": "Streamer",
                                           "provider": "youtube", "providerId": CHANNEL_ID})}


@dataclass
class Seen:
    """One POST the stand-in received."""

    at: float  # time.monotonic()
    path: str
    headers: dict
    body: bytes
    parts: dict = field(default_factory=dict)  # multipart: name → (filename, bytes)

    @property
    def payload(self) -> dict:
        """The Discord payload: the JSON body, or the multipart ``payload_json``."""
        if self.parts:
            return json.loads(self.parts["payload_json"][1])
        return json.loads(self.body)


class StandIn:
    """Discord's webhook endpoint (or any webhook), locally: ``script`` holds one answer per
    request — ``(status, headers, json_body, delay_seconds)`` — then 204."""

    def __init__(self):
        self.seen: list[Seen] = []
        self.script: list = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(time.monotonic(), self.path, dict(self.headers), body)
                if self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                    message = BytesParser(policy=HTTP).parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n"
                        + body)
                    for part in message.iter_parts():
                        seen.parts[part.get_param("name", header="content-disposition")] = (
                            part.get_filename(), part.get_payload(decode=True))
                with owner.lock:
                    owner.seen.append(seen)
                    answer = owner.script.pop(0) if owner.script else (204, {}, None, 0)
                status, headers, data, delay = answer
                time.sleep(delay)
                raw = json.dumps(data).encode() if data is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if raw:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def discord_url(self, token: str = "abc") -> str:
        return f"http://{self.host}/api/webhooks/1/{token}"

    def requests(self) -> list[Seen]:
        with self.lock:
            return list(self.seen)


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def make(make_app, standin, monkeypatch):
    """``make(**settings)`` → an app admitting the stand-in for both targets, with short
    back-offs; its sender stops at teardown."""
    monkeypatch.setattr(notify_sender, "BACKOFF_SECONDS", (0.1, 0.1, 0.1, 0.1))
    apps = []

    def factory(**settings):
        app = make_app(DISCORD_WEBHOOK_HOSTS=standin.host, WEBHOOK_HOSTS=standin.host,
                       **settings)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        notify_sender.sender(app).stop()


def _owner(app, auth_factory, **hooks):
    """A user with settings for the channel (``hooks``: discord_webhook_url, webhook_url) and
    a public token: ``(client, user, token, settings)``."""
    client = app.test_client()
    user = auth_factory(client).user()
    r = client.put(f"/api/channels/{CHANNEL_ID}", headers=user["headers"], json=hooks)
    assert r.status_code == 200, r.json
    token = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    return client, user, token, r.json


def _save(client, token, message="nice", t=5, query="&offset=1&duration=2"):
    """``!clip message`` from Nightbot while the stream is at ``t`` s; the reply's clip id."""
    r = client.get(f"/api/video/save/stream/{token}/{VIDEO_ID}?t={t}&format=json{query}&"
                   + urlencode({"message": message}), headers=NIGHTBOT)
    assert r.status_code == 201, r.json
    return r.json["video_id"]


def _deliveries(client, user):
    r = client.get(f"/api/channels/{CHANNEL_ID}/deliveries", headers=user["headers"])
    assert r.status_code == 200, r.json
    return r.json["deliveries"]


def _settled(client, user, count=1):
    """The deliveries once ``count`` of them are delivered or failed."""
    return wait_for(lambda: (lambda found: found if len(found) >= count and all(
        d["status"] in ("delivered", "failed") for d in found) else None)(
        _deliveries(client, user)), timeout=20)


def _finish(app, video_id, tmp_path, size=2048):
    """Mark the clip completed with a file of ``size`` bytes and a JPEG thumbnail beside it
    (what download_service.finish records), and report its outcome: the stored paths."""
    folder = tmp_path / "done" / video_id
    folder.mkdir(parents=True)
    clip, picture = folder / "job.mp4", folder / "thumbnail.jpg"
    clip.write_bytes(os.urandom(size))
    picture.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(64) + b"\xff\xd9")
    store = app.extensions["yt"]["db"]
    store.videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "status": "completed", "file_path": str(clip), "file_format": "mp4",
        "thumbnail_path": str(picture), "file_size_bytes": size}})
    with app.app_context():
        notifications.clip_outcome(video_id)
    return clip, picture


def test_discord_gets_saved_then_ready_with_the_clip_file_and_thumbnail(
        make, standin, auth_factory, fake_youtube, source_server):
    app = make(PUBLIC_BASE_URL="https://clips.example")
    fake_youtube.set(watch_url(), video_page(f"{source_server.mp4_url}?expire="
                                             f"{int(time.time()) + 6 * 3600}"))
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    video_id = _save(client, token, "what a play @everyone <@&123>")
    [saved] = wait_for(standin.requests)
    assert saved.path == "/api/webhooks/1/abc"
    assert saved.headers["Content-Type"] == "application/json"
    assert saved.payload["allowed_mentions"] == {"parse": []}  # @everyone pings nobody
    assert "content" not in saved.payload
    [card] = saved.payload["embeds"]
    assert card["title"].startswith("Clip saved")
    assert card["description"] == "what a play @everyone <@&123>"
    assert card["url"] == f"https://youtu.be/{VIDEO_ID}?t=5"
    assert [(f["name"], f["value"]) for f in card["fields"]] == [
        ("Time in stream", "0:00:05"), ("Chat user", "Night Owl")]

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={
        "format_preference": "mp4", "resolution_preference": "720p"})
    deadline = time.monotonic() + 90
    while r.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={
            "format_preference": "mp4", "resolution_preference": "720p"})
    assert r.status_code == 200, r.data[:200]
    ready = wait_for(lambda: standin.requests()[1:])[0]
    doc = app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})
    assert ready.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert ready.parts["files[0]"] == ("clip.mp4", open(doc["file_path"], "rb").read())
    name, picture = ready.parts["files[1]"]
    assert name == "thumbnail.jpg" and picture[:2] == b"\xff\xd8"
    assert picture == open(doc["thumbnail_path"], "rb").read()
    payload = ready.payload
    assert payload["allowed_mentions"] == {"parse": []}
    assert payload["attachments"] == [{"id": 0, "filename": "clip.mp4"},
                                      {"id": 1, "filename": "thumbnail.jpg"}]
    [card] = payload["embeds"]
    assert card["title"].startswith("Clip ready") and card["image"] == {
        "url": "attachment://thumbnail.jpg"}
    found = _settled(client, user, 2)
    assert [(d["event"], d["target"], d["status"], d["attempts"]) for d in found] == [
        ("ready", "discord", "delivered", 1), ("saved", "discord", "delivered", 1)]
    assert all(d["video_id"] == video_id and d["last_error"] is None for d in found)
    with app.app_context():  # a second outcome of the same clip (another download): no repeat
        notifications.clip_outcome(video_id)
    time.sleep(1.0)
    assert len(standin.requests()) == 2


def test_a_file_over_the_limit_is_sent_as_a_link_with_the_thumbnail(make, standin,
                                                                    auth_factory, tmp_path):
    app = make(PUBLIC_BASE_URL="https://clips.example/", DISCORD_FILE_LIMIT_MB=0.01)
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    video_id = _save(client, token)
    wait_for(standin.requests)
    clip, picture = _finish(app, video_id, tmp_path, size=20_000)  # over 0.01 MiB
    ready = wait_for(lambda: standin.requests()[1:])[0]
    assert set(ready.parts) == {"payload_json", "files[0]"}
    assert ready.parts["files[0]"] == ("thumbnail.jpg", picture.read_bytes())
    [card] = ready.payload["embeds"]
    assert {"name": "File", "value": "Too large to attach here: https://clips.example/#clips"} \
        in card["fields"]
    assert clip.read_bytes() not in ready.body


def test_a_413_from_discord_sends_the_link_instead_of_the_file(make, standin, auth_factory,
                                                               tmp_path):
    """A server whose upload limit is below DISCORD_FILE_LIMIT_MB answers 413 to the file: the
    same message goes again at once with the link."""
    app = make(PUBLIC_BASE_URL="https://clips.example")
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    video_id = _save(client, token)
    wait_for(standin.requests)
    standin.script = [(413, {}, {"message": "Request entity too large", "code": 40005}, 0)]
    _finish(app, video_id, tmp_path)
    found = _settled(client, user, 2)
    big, linked = standin.requests()[1:]
    assert big.parts["files[0]"][0] == "clip.mp4"
    assert linked.parts["files[0]"][0] == "thumbnail.jpg" and "files[1]" not in linked.parts
    assert {"name": "File", "value": "Too large to attach here: https://clips.example/#clips"} \
        in linked.payload["embeds"][0]["fields"]
    assert (found[0]["event"], found[0]["status"]) == ("ready", "delivered")


def test_a_failed_clip_gets_a_short_embed_with_the_reason(make, standin, auth_factory):
    app = make()
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    video_id = _save(client, token)
    wait_for(standin.requests)
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "status": "failed", "error_code": "VIDEO_UNAVAILABLE",
        "error_message": "This video is unavailable."}})
    with app.app_context():
        notifications.clip_outcome(video_id)
    failed = wait_for(lambda: standin.requests()[1:])[0]
    [card] = failed.payload["embeds"]
    assert card["title"].startswith("Clip failed")
    assert card["description"] == "This video is unavailable."


def test_a_429_waits_for_retry_after_and_is_then_delivered(make, standin, auth_factory):
    app = make()
    standin.script = [(429, {"Retry-After": "1"}, {"message": "You are being rate limited.",
                                                   "retry_after": 0.8, "global": False}, 0)]
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    _save(client, token)
    [item] = _settled(client, user)
    first, second = standin.requests()
    assert second.at - first.at >= 0.8
    assert second.body == first.body
    assert (item["status"], item["attempts"]) == ("delivered", 2)


def test_a_500_is_retried_then_failed_and_shown_without_the_token(make, standin, auth_factory):
    app = make()
    standin.script = [(500, {}, None, 0)] * 10
    client, user, token, _ = _owner(app, auth_factory,
                                    discord_webhook_url=standin.discord_url("s3cr3t-tok"))
    _save(client, token)
    [item] = _settled(client, user)
    assert len(standin.requests()) == notify_sender.MAX_ATTEMPTS == 5
    assert item["status"] == "failed" and item["attempts"] == 5
    assert item["last_error"] == f"Gave up after 5 attempts: HTTP 500 from {standin.host}"
    stored = app.extensions["yt"]["db"].deliveries.find_one({})
    log_text = open(app.config["LOG_FILE"], encoding="utf-8").read()
    assert "s3cr3t" not in json.dumps(stored, default=str) and "s3cr3t" not in log_text


def test_a_404_fails_at_once_with_discords_reason(make, standin, auth_factory):
    app = make()
    standin.script = [(404, {}, {"message": "Unknown Webhook", "code": 10015}, 0)]
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url())
    _save(client, token)
    [item] = _settled(client, user)
    time.sleep(0.5)
    assert len(standin.requests()) == 1
    assert (item["status"], item["attempts"]) == ("failed", 1)
    assert item["last_error"] == f"HTTP 404 from {standin.host}: Unknown Webhook"


def test_the_generic_webhook_is_signed_with_the_channels_secret(make, standin, auth_factory):
    app = make()
    client, user, token, settings = _owner(app, auth_factory,
                                           webhook_url=f"http://{standin.host}/hooks/clips")
    video_id = _save(client, token, "gg", t=3725)
    [seen] = wait_for(standin.requests)
    [item] = _settled(client, user)
    assert seen.path == "/hooks/clips" and item["target"] == "webhook"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["X-Webhook-Event"] == "clip.saved"
    assert seen.headers["X-Webhook-Delivery"] == item["delivery_id"]
    secret = settings["webhook_secret"]
    expected = "sha256=" + hmac.new(secret.encode(), seen.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(seen.headers["X-Signature"], expected)
    other = "sha256=" + hmac.new(b"another secret", seen.body, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(seen.headers["X-Signature"], other)
    body = json.loads(seen.body)
    assert body["event"] == "clip.saved" and body["delivery_id"] == item["delivery_id"]
    assert body["channel_id"] == CHANNEL_ID
    assert datetime.strptime(body["sent_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert body["clip"] == {"video_id": video_id, "youtube_video_id": VIDEO_ID,
                            "time": "1:02:05", "seconds": 3725.0, "message": "gg",
                            "user": "Night Owl", "status": "pending", "error_code": None}


def test_a_webhook_on_a_private_address_is_refused_without_a_connection(
        make, standin, auth_factory, monkeypatch):
    """A public-looking name resolving to 127.0.0.1, and a private address stored before the
    rules changed: both end failed, nothing reaches the stand-in (and tests/network_guard.py
    would fail the test on any connection to 10.0.0.1)."""
    real = egress._getaddrinfo
    monkeypatch.setattr(guard.guard(), "resolver", lambda host, port: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", standin.port))]
        if host == "hooks.example" else real(host, port))
    app = make()
    client, user, token, _ = _owner(app, auth_factory, webhook_url="https://hooks.example/x")
    _save(client, token)
    [item] = _settled(client, user)
    assert item["status"] == "failed" and item["attempts"] == 1
    assert item["last_error"] == ("Refused: hooks.example:443 resolves to a local or private "
                                  "address.")
    store = app.extensions["yt"]["db"]
    doc = channels.get(store, user["id"], CHANNEL_ID)
    channels.put(store, user["id"], CHANNEL_ID, {**doc["settings"],
                                                 "webhook_url": "http://10.0.0.1/hook"})
    _save(client, token, "second")
    found = _settled(client, user, 2)
    assert found[0]["last_error"] == "Refused: 10.0.0.1 is not an allowed webhook host."
    assert standin.requests() == []


def test_two_senders_sharing_the_store_deliver_each_message_once(make, standin, auth_factory,
                                                                 monkeypatch):
    """Eight clips saved, their deliveries queued while no sender runs (as clip_saved queues
    them), then two apps' senders — two processes over one MongoDB — start at once."""
    first, second = make(), make()
    second.extensions["yt"]["db"] = store = first.extensions["yt"]["db"]
    standin.script = [(204, {}, None, 0.2)] * 12
    senders, real = [], notify_sender._deliver

    def spy(db, item):
        from flask import current_app
        senders.append(id(current_app._get_current_object()))
        return real(db, item)

    monkeypatch.setattr(notify_sender, "_deliver", spy)
    client, user, token, _ = _owner(first, auth_factory)  # no webhook yet: nothing queued
    messages = [f"clip {n}" for n in range(8)]
    clips = [_save(client, token, message) for message in messages]
    doc = channels.get(store, user["id"], CHANNEL_ID)
    channels.put(store, user["id"], CHANNEL_ID, {**doc["settings"],
                                                 "discord_webhook_url": standin.discord_url()})
    for video_id in clips:
        assert deliveries.queue(store, user["id"], CHANNEL_ID, video_id, "saved", "discord",
                                datetime.now(timezone.utc))
    notify_sender.sender(first).wake()
    notify_sender.sender(second).wake()
    _settled(client, user, 8)
    time.sleep(0.5)
    said = sorted(s.payload["embeds"][0]["description"] for s in standin.requests())
    assert said == messages
    assert set(senders) == {id(first), id(second)}  # both senders took part
    assert {d["attempts"] for d in _deliveries(client, user)} == {1}


def test_the_chat_reply_does_not_wait_for_a_slow_webhook(make, standin, auth_factory):
    app = make()
    standin.script = [(204, {}, None, 5.0)]
    client, user, token, _ = _owner(app, auth_factory, discord_webhook_url=standin.discord_url(),
                                    webhook_url=f"http://{standin.host}/hook")
    started = time.monotonic()
    _save(client, token)
    wait_for(standin.requests)  # the sender is now waiting for the slow answer
    _save(client, token, "next")
    assert time.monotonic() - started < 2.0
    found = _settled(client, user, 4)
    assert {d["status"] for d in found} == {"delivered"}


def test_no_webhook_no_delivery_and_the_list_is_the_owners_own(make, standin, auth_factory):
    app = make()
    client, user, token, _ = _owner(app, auth_factory)  # settings without webhooks
    _save(client, token)
    other = auth_factory(client).user()
    store = app.extensions["yt"]["db"]
    with app.app_context():
        deliveries.queue(store, user["id"], CHANNEL_ID, "x" * 24, "saved", "discord",
                         datetime.now(timezone.utc))
    assert len(_deliveries(client, user)) == 1
    assert _deliveries(client, other) == []
    assert client.get(f"/api/channels/{CHANNEL_ID}/deliveries").status_code == 401
    r = client.get("/api/channels/not-a-channel/deliveries", headers=user["headers"])
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert standin.requests() == []


# -- the dashboard: the channel page lists the deliveries (headless Chromium) --

driver, page = dashboard.driver, dashboard.page


@pytest.fixture
def live_app(make):
    """``(base_url, app)``: tests/test_dashboard.py's served app, admitting the stand-in."""
    app = make()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", app
    server.shutdown()


@pytest.mark.slow
@dashboard.needs_browser
def test_the_channel_page_shows_a_failed_delivery_and_its_reason(page, live_app, standin):
    base, _ = live_app
    standin.script = [(404, {}, {"message": "<b>Unknown</b> Webhook"}, 0)]
    user = page.register(dashboard.email())
    token = user["token"]
    status, _ = dashboard.api(base, "PUT", f"/api/channels/{CHANNEL_ID}", {
        "discord_webhook_url": standin.discord_url(),
        "webhook_url": f"http://{standin.host}/hook"}, token=token)
    assert status == 200
    _, public = dashboard.api(base, "GET", "/api/auth/token/public", token=token)
    request = urllib.request.Request(f"{base}/api/video/save/stream/{public['token']}/"
                                     f"{VIDEO_ID}?t=5&format=json", headers=NIGHTBOT)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
    path = f"/api/channels/{CHANNEL_ID}/deliveries"
    wait_for(lambda: {d["status"] for d in dashboard.api(base, "GET", path, token=token)[1][
        "deliveries"]} == {"failed", "delivered"})  # both posts answered and recorded
    page.go("channels")
    page.fill("#channel-id", CHANNEL_ID)
    page.el("#channel-pick button[type=submit]").click()
    failed = page.visible("#channel-deliveries li[data-status=failed] [data-role=error]")
    assert failed.text == f"Failed: HTTP 404 from {standin.host}: <b>Unknown</b> Webhook"
    assert page.el("#channel-deliveries li[data-status=failed]").get_attribute(
        "data-target") == "discord"
    delivered = page.el("#channel-deliveries li[data-status=delivered]")
    assert delivered.get_attribute("data-target") == "webhook"
    assert "Clip saved → Webhook" in delivered.text


def test_a_delivery_cut_off_mid_post_is_failed_not_sent_again(make, standin, auth_factory):
    """A process that died while posting leaves its delivery ``sending``; once its lease has
    ended a sender marks it failed: it may have arrived, and each is posted at most once."""
    app = make()
    client, user, token, _ = _owner(app, auth_factory)
    video_id = _save(client, token)
    store = app.extensions["yt"]["db"]
    past = datetime(2026, 1, 1, tzinfo=timezone.utc)
    deliveries.queue(store, user["id"], CHANNEL_ID, video_id, "saved", "discord", past)
    claimed = deliveries.claim_next_due(store, past, lease_seconds=60)
    assert claimed["status"] == "sending" and claimed["attempts"] == 1
    with app.app_context():
        assert notify_sender.send_due() is None
    [item] = _deliveries(client, user)
    assert item["status"] == "failed" and item["last_error"].startswith("Interrupted")
    assert standin.requests() == []
