"""The OpenAPI document is true to every answer (issue 16, item 1): schemathesis, as a library,
runs all its phases (examples, coverage, fuzzing, stateful with links it infers) and all its
checks over every operation of ``/openapi.json`` against the WSGI app, with a logged-in user's
private token and a public token bound to that user, and the test fails on any failed check.

No network: yt-dlp's ``extract_info`` is replaced (its boundary, like tests/youtube_fakes.py)
by an info dict whose formats point at 127.0.0.1:9, where nothing listens, so a download job
fails on the loopback; the egress policy admits only YouTube's page hosts and that address.

Generation follows the document, plus the rules it states in words because OpenAPI 3.0 cannot
express them (:func:`_within_stated_rules`, applied to positive cases only, so negative cases
still test the refusals): a save's ``end_time`` after its ``start_time`` and at most
``MAX_VIDEO_DURATION`` later, its ``url`` (and the info's) on an allowed host
(``ALLOWED_SOURCE_HOSTS``, a setting); a download's ``format_id`` one the video offers, its
``subtitles`` languages it offers (sidecar for an audio clip);
``live`` with a ``channel``; a live save of a live source; a channel's reply template with
its placeholders only and a Discord webhook URL; an upload is a video whose name
has an allowed extension; a change of password to a new one. Logout and change-password end
the session the run uses and are excluded (the issue allows it); test_auth.py covers them.
"""
from __future__ import annotations

import secrets
import subprocess

import pytest
import schemathesis  # requirements-dev.txt (make install)
import yt_dlp
from hypothesis import strategies as st
from schemathesis.core.media_types import MEDIA_TYPE_STRATEGIES  # noqa: E402
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

SEED = 16
MAX_EXAMPLES = 12
SOURCE = "http://127.0.0.1:9/clip.mp4"  # port 9 (discard): connections are refused
LIVE = "http://127.0.0.1:9/live.m3u8"  # a live source (issue 14) on the same dead port
UNDER_TEST = "127.0.0.1:9"
PUBLIC_HANDLE = "openapi-page"
PUBLIC_CHANNEL = "UC" + "p" * 22
EXCLUDED = ("/api/auth/logout", "/api/auth/change-password")


def _raw_info(url: str) -> dict:
    """A yt-dlp-shaped info dict (YouTube extractor style) for any URL: one progressive MP4
    and a DASH audio, both on 127.0.0.1:9; for :data:`LIVE` a live stream of one HLS
    playlist there."""
    fmt = {"ext": "mp4", "protocol": "https", "http_headers": {}}
    if url == LIVE:
        return {"id": "live", "title": "Live", "extractor": "generic", "extractor_key": "Generic",
                "webpage_url": url, "live_status": "is_live", "formats": [
                    {**fmt, "format_id": "hls", "protocol": "m3u8_native", "url": LIVE,
                     "width": 1280, "height": 720, "vcodec": "avc1.64001f",
                     "acodec": "mp4a.40.2"}]}
    return {"id": "dQw4w9WgXcQ", "title": "Clip", "extractor": "youtube",
            "extractor_key": "Youtube", "webpage_url": url, "duration": 600.0,
            "live_status": "not_live", "formats": [
                {**fmt, "format_id": "22", "url": SOURCE, "width": 1280, "height": 720,
                 "vcodec": "avc1.64001f", "acodec": "mp4a.40.2", "tbr": 1500},
                {**fmt, "format_id": "140", "ext": "m4a", "url": SOURCE + "?a",
                 "vcodec": "none", "acodec": "mp4a.40.2", "tbr": 128}],
            "subtitles": {"en": [{"ext": "vtt", "url": SOURCE + ".en.vtt"}]}}


@pytest.fixture
def offline_youtube(monkeypatch):
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=False, **kw:
                        self.process_ie_result(_raw_info(url), download=False))


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory):
    """0.5 s of 128×72 test pattern with sound, as MP4: the upload a positive case sends (SVT-AV1
    encodes nothing under 64 lines)."""
    path = tmp_path_factory.mktemp("upload") / "tiny.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=s=128x72:r=10:d=0.5",
                    "-f", "lavfi", "-i", "sine=d=0.5", "-shortest", "-c:v", "libx264",
                    "-c:a", "aac", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path.read_bytes()


def _within_stated_rules(case, limit: float) -> None:
    """Bring a positive case inside the rules the document states in its descriptions. New
    containers each time: schemathesis derives other cases from the same objects."""
    path, body = case.operation.path, case.body
    if path in ("/api/video/save", "/api/video/resolutions") and isinstance(body, dict):
        body = case.body = {**body, "url": SOURCE}
    if path == "/api/video/save" and isinstance(body, dict):
        start = min(body["start_time"], 1e6)
        span = min(max(body["end_time"] - body["start_time"], 1.0), limit)
        case.body = {**body, "start_time": start, "end_time": start + span}
    if path == "/api/video/save/live" and isinstance(body, dict):  # issue 14: a live source
        case.body = {**body, "url": LIVE,
                     "duration": min(max(body.get("duration", 120), 1.0), limit),
                     "offset": min(body.get("offset", 60), 1e6)}
    if path == "/api/video/info":  # issue 18: a URL on an allowed host, as for resolutions
        case.query = {**(case.query or {}), "url": SOURCE}
    if path == "/api/video/download/{video_id}" and isinstance(body, dict):
        body = case.body = dict(body)
        if body.get("format_id"):  # issue 18: a format id the video offers
            body["format_id"] = "22"
        if body.get("subtitles"):  # issue 18: languages it offers; audio clips: sidecar only
            body["subtitles"] = ["en"]
            if body.get("format_preference") in ("mp3", "m4a", "opus"):
                body["subtitles_mode"] = "sidecar"
    if path.startswith("/api/video/save/stream/"):
        query = dict(case.query or {})
        if case.path_parameters.get("youtube_id") == "live":
            query["channel"] = "UC" + "a" * 22
        query["duration"] = min(float(query.get("duration") or 120), limit)
        case.query = query
    if path.startswith("/api/public/channels/"):  # issue 17, item 5: the page that is on
        case.path_parameters = {**(case.path_parameters or {}), "handle": PUBLIC_HANDLE}
    if path == "/api/channels/{channel_id}" and isinstance(body, dict):  # issue 17, item 2
        body = case.body = dict(body)
        if body.get("reply_template"):  # its placeholders, no other
            body["reply_template"] = "Clip {time} by {user}: {message}"
        if body.get("discord_webhook_url"):  # a Discord webhook
            body["discord_webhook_url"] = "https://discord.com/api/webhooks/1/token"
        if body.get("webhook_url"):  # an https URL
            body["webhook_url"] = "https://hooks.example.com/clips"
        if body.get("handle") or body.get("public_page"):  # a free, well-formed page name
            body["handle"] = "page-" + secrets.token_hex(4)
        if "duration" in body:
            body["duration"] = min(body["duration"], limit)


def _failures(stream) -> tuple[list[str], int]:
    """Every failed check and engine error of a run, and the number of cases run."""
    found, cases = [], 0
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            for checks in event.recorder.checks.values():
                found += [f"{event.phase.name} {event.recorder.label}: {check.name}: "
                          f"{check.failure_info.failure.title}\n"
                          f"{check.failure_info.failure.message}\n"
                          f"{check.failure_info.code_sample[:400]}"
                          for check in checks if check.status == Status.FAILURE]
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            found.append(f"{getattr(event, 'label', '')}: {event.info.format()}")
    return found, cases


def test_every_answer_matches_the_document(make_app, auth_factory, offline_youtube, tiny_video,
                                           serve_app):
    app = make_app(ALLOWED_SOURCE_HOSTS="youtube.com,www.youtube.com,youtu.be," + UNDER_TEST,
                   ALLOWED_MEDIA_HOSTS=UNDER_TEST, MAX_JOBS_PER_USER=0)
    client = app.test_client()
    user = auth_factory(client).user()
    public = client.get("/api/auth/token/public", headers=user["headers"]).json["token"]
    assert client.put(f"/api/channels/{PUBLIC_CHANNEL}", headers=user["headers"], json={
        "public_page": True, "handle": PUBLIC_HANDLE}).status_code == 200
    for t, message in ((5, "=1+1 first"), (3725, "second")):  # clips the public page shows
        assert client.get(f"/api/video/save/stream/{public}/dQw4w9WgXcQ?t={t}&format=json"
                          f"&channel={PUBLIC_CHANNEL}&message={message}").status_code == 201
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
        "auth": {"openapi": {"bearer": {"bearer": user["token"]},
                             "publicToken": {"bearer": public}}},
    })
    schema = schemathesis.openapi.from_url(serve_app(app) + "/openapi.json", config=config)
    for path in EXCLUDED:
        schema = schema.exclude(path=path)
    limit = app.config["MAX_VIDEO_DURATION"]

    def before_call(context, case, kwargs):
        if case.meta is not None and case.meta.generation.mode.is_positive:
            _within_stated_rules(case, limit)

    # An upload's file is a video (the document names its containers; random bytes are not one)
    schemathesis.openapi.media_type("application/octet-stream", st.just(tiny_video))
    schemathesis.hook(before_call)  # before_call exists only as a global hook
    try:
        found, cases = _failures(from_schema(schema).execute())
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
        MEDIA_TYPE_STRATEGIES.pop("application/octet-stream", None)
    print(f"schemathesis: {cases} cases, {len(found)} failures")
    assert cases > 200
    assert not found, "\n\n".join(found[:10])
