"""The clip library (issue 17, item 4): ``GET /api/video/list`` searched, filtered, paged and
grouped by stream, and a finished clip played through a short-lived signed URL
(``POST /api/video/play/{id}`` → ``GET /api/video/play/{id}/file?exp=…&sig=…``, HTTP Range).

Clips are saved the way users save them — ``!clip`` through Nightbot's ``$(urlfetch)`` with its
headers, and ``POST /api/video/save`` — against YouTube pages of ``fake_youtube`` whose titles
the background look-up stores as ``video_info``. Only what no request can set is written to the
store directly: the dates clips were saved at and statuses a job would have left.
"""
from __future__ import annotations

import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from bson import ObjectId

from src.utils import signing
from tests.youtube_fakes import video_page, wait_for, watch_url

CLIP = Path(__file__).resolve().parent / "media" / "big_buck_bunny_720p_5s.mp4"
STREAM_A, STREAM_B = "StreamAAA01", "StreamBBB02"
CHANNEL_1, CHANNEL_2 = "UC" + "1" * 22, "UC" + "2" * 22
TITLES = {STREAM_A: "Bunny marathon, day one", STREAM_B: "Cooking with Vee"}


def nightbot(name: str, channel: str) -> dict:
    """Nightbot's urlfetch headers (URL-encoded query strings, docs.nightbot.tv)."""
    return {"Nightbot-User": urlencode({"name": name.lower().replace(" ", "_"),
                                        "displayName": name, "provider": "youtube",
                                        "providerId": "UC" + "u" * 22, "userLevel": "regular"}),
            "Nightbot-Channel": urlencode({"name": "streamer", "provider": "youtube",
                                           "providerId": channel})}


def chat_clip(client, token, stream, channel, who, message, t=300):
    r = client.get(f"/api/video/save/stream/{token}/{stream}?t={t}&format=json&message="
                   + quote(message, safe=""), headers=nightbot(who, channel))
    assert r.status_code == 201, r.json
    return r.json["video_id"]


@pytest.fixture
def library(app, client, auth, bound, fake_youtube, source_server):
    """A user's four clips, newest last: three from chat (two streams, two channels, two chat
    users) and one saved through the API, plus another user's clip with the same message.
    ``{"user", "ids": {name: id}, "db", "other"}``; titles are looked up (``video_info``)."""
    user, token = bound
    for stream, title in TITLES.items():
        fake_youtube.set(watch_url(stream), {**video_page(source_server.mp4_url, stream),
                                             "title": title})
    ids = {"jump": chat_clip(client, token, STREAM_A, CHANNEL_1, "Night Owl", "what a jump"),
           "fall": chat_clip(client, token, STREAM_A, CHANNEL_1, "Vee", "funny fall"),
           "pasta": chat_clip(client, token, STREAM_B, CHANNEL_2, "Night Owl", "pasta time")}
    r = client.post("/api/video/save", headers=auth.public_headers(user), json={
        "url": source_server.mp4_url, "start_time": 1, "end_time": 3,
        "additional_message": "plain API clip (50% off)"})
    assert r.status_code == 201, r.json
    ids["api"] = r.json["video_id"]
    other = auth.user()
    other_token = client.get("/api/auth/token/public", headers=other["headers"]).json["token"]
    chat_clip(client, other_token, STREAM_A, CHANNEL_1, "Night Owl", "what a jump")
    db = app.extensions["yt"]["db"]
    wait_for(lambda: db.videos.count_documents({"video_info.title": {"$in": list(
        TITLES.values())}}) == 4)  # the other user's clip too
    # Saved on four days (a request cannot choose its created_at), in the order above.
    for day, name in enumerate(("jump", "fall", "pasta", "api"), start=1):
        db.videos.update_one({"_id": ObjectId(ids[name])}, {"$set": {
            "created_at": datetime(2026, 11, day, 20, 0, tzinfo=timezone.utc)}})
    return {"user": user, "ids": ids, "db": db, "other": other}


def listed(client, lib, user=None, **params):
    """The 200 answer of GET /api/video/list?{params} for the library's user (or ``user``)."""
    r = client.get("/api/video/list?" + urlencode(params),
                   headers=(user or lib["user"])["headers"])
    assert r.status_code == 200, r.json
    return r.json


def names(lib, body):
    by_id = {v: k for k, v in lib["ids"].items()}
    return [by_id.get(v["video_id"], "someone else's") for v in body["videos"]]


def test_no_parameter_keeps_the_spec_answer(client, library):
    body = listed(client, library)
    assert list(body) == ["videos"]
    assert names(library, body) == ["api", "pasta", "fall", "jump"]
    assert body["videos"][3]["nightbot_user"]["displayName"] == "Night Owl"


def test_search_in_message_title_and_chat_user(client, library):
    def found(q):
        body = listed(client, library, q=q)
        assert body["total"] == len(body["videos"])
        return names(library, body)

    assert found("JUMP") == ["jump"]  # the message, any case
    assert found("marathon") == ["fall", "jump"]  # the video's title
    assert found("night_owl") == ["pasta", "jump"]  # the chat user's name
    assert found("owl") == ["pasta", "jump"]  # ... and display name
    assert found("owl   pasta") == ["pasta"]  # every word must be found
    assert found("50%") == ["api"]
    assert found(".*") == [] and found("[") == [] and found("a|b") == []  # literal
    assert found("(50%") == ["api"]
    assert found("   ") == ["api", "pasta", "fall", "jump"]  # no words: no search
    assert names(library, listed(client, library, q="jump", user=library["other"])) == \
        ["someone else's"]  # another user finds only their own clip


def test_filters_status_channel_stream_and_dates(client, library):
    db, ids = library["db"], library["ids"]
    db.videos.update_one({"_id": ObjectId(ids["fall"])}, {"$set": {"status": "expired"}})
    db.videos.update_one({"_id": ObjectId(ids["pasta"])}, {"$set": {"status": "failed"}})
    assert names(library, listed(client, library, status="expired")) == ["fall"]
    assert names(library, listed(client, library, status="pending")) == ["api", "jump"]
    assert names(library, listed(client, library, status="completed")) == []
    assert names(library, listed(client, library, channel=CHANNEL_1)) == ["fall", "jump"]
    assert names(library, listed(client, library, channel=CHANNEL_2, q="owl")) == ["pasta"]
    assert names(library, listed(client, library, youtube_video_id=STREAM_B)) == ["pasta"]
    # since ≤ created_at < until; a date alone for until means through that day
    assert names(library, listed(client, library, since="2026-11-03")) == ["api", "pasta"]
    assert names(library, listed(client, library, until="2026-11-02")) == ["fall", "jump"]
    assert names(library, listed(client, library, since="2026-11-02T20:00:00Z",
                                 until="2026-11-03T20:00:00Z")) == ["fall"]
    # an offset is honoured: 21:30 in India is 16:00 UTC, before the 20:00 UTC save
    assert names(library, listed(client, library, since="2026-11-04T21:30:00+05:30")) == \
        ["api"]
    assert names(library, listed(client, library, since="2026-11-04",
                                 until="2026-11-01")) == []  # an empty range is no error


def test_paging_totals_and_stream_groups(client, library):
    first = listed(client, library, per_page=3)
    assert (first["page"], first["per_page"], first["total"]) == (1, 3, 4)
    assert names(library, first) == ["api", "pasta", "fall"]
    second = listed(client, library, per_page=3, page=2)
    assert names(library, second) == ["jump"] and second["total"] == 4
    beyond = listed(client, library, per_page=3, page=9)
    assert beyond["videos"] == [] and beyond["total"] == 4
    alone = listed(client, library, page=1)
    assert alone["per_page"] == 20 and len(alone["videos"]) == 4
    assert names(library, listed(client, library, q="owl", per_page=1, page=2)) == ["jump"]

    grouped = listed(client, library, group="stream")
    assert grouped["groups"] == [{"youtube_video_id": None, "count": 1},  # newest clip first
                                 {"youtube_video_id": STREAM_B, "count": 1},
                                 {"youtube_video_id": STREAM_A, "count": 2}]
    assert len(grouped["videos"]) == 4 and "page" not in grouped
    # groups count every match, not only the page shown
    paged = listed(client, library, group="stream", q="owl", per_page=1)
    assert paged["groups"] == [{"youtube_video_id": STREAM_B, "count": 1},
                               {"youtube_video_id": STREAM_A, "count": 1}]
    assert names(library, paged) == ["pasta"]


@pytest.mark.parametrize("params, field", [
    ({"q": "x" * 101}, "q"), ({"status": "done"}, "status"), ({"channel": "UCshort"}, "channel"),
    ({"youtube_video_id": "not-an-id!"}, "youtube_video_id"), ({"since": "yesterday"}, "since"),
    ({"until": "2024-01-01T12:99:00Z"}, "until"), ({"page": 0}, "page"),
    ({"page": "two"}, "page"), ({"per_page": 101}, "per_page"), ({"per_page": 0}, "per_page"),
    ({"group": "channel"}, "group")])
def test_bad_values_are_400_in_the_one_error_shape(client, auth, params, field):
    user = auth.user()
    r = client.get("/api/video/list?" + urlencode(params), headers=user["headers"])
    assert r.status_code == 400
    assert r.json["code"] == "VALIDATION_ERROR" and list(r.json["details"]) == [field]


def test_list_needs_a_private_token(client):
    r = client.get("/api/video/list?q=jump")
    assert r.status_code == 401 and r.json["code"] == "MISSING_TOKEN"


# --- playback ---------------------------------------------------------------------------------

def finished(app, video_id, name="clip.mp4"):
    """Leave the record as a finished job does: completed, its file in its own folder of
    DOWNLOADS_DIR (the real 5 s clip). Returns the file's bytes."""
    folder = Path(app.config["DOWNLOADS_DIR"]) / f"f{video_id}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copyfile(CLIP, path)
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "status": "completed", "file_path": str(path), "file_format": path.suffix[1:],
        "folder": folder.name, "expires_at": datetime.now(timezone.utc) + timedelta(hours=1)}})
    return path.read_bytes()


def play(client, user, video_id):
    return client.post(f"/api/video/play/{video_id}", headers=user["headers"])


def test_play_url_serves_ranges_inline(app, client, auth, source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 1, 3)
    data = finished(app, video_id)
    before = time.time()
    r = play(client, user, video_id)
    assert r.status_code == 200, r.json
    url = r.json["url"]
    assert url.startswith(f"/api/video/play/{video_id}/file?exp=")
    expires = datetime.fromisoformat(r.json["expires_at"].replace("Z", "+00:00")).timestamp()
    assert r.json["expires_at"].endswith("Z") and 299 <= expires - before <= 301

    part = client.get(url, headers={"Range": "bytes=0-99"})  # no token: the URL is the proof
    assert part.status_code == 206
    assert part.data == data[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
    assert part.mimetype == "video/mp4"
    assert part.headers["Content-Disposition"] == f'inline; filename="video_{video_id}.mp4"'
    cache = part.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and 0 < int(cache.split("=")[1]) <= 300
    tail = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == data
    assert whole.headers["Accept-Ranges"] == "bytes"
    outside = client.get(url, headers={"Range": f"bytes={len(data) + 5}-"})
    assert outside.status_code == 416


def test_forged_or_expired_play_urls_are_403(app, client, auth, source_server):
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 1, 3)
    other_id = auth.save_clip(user, source_server.mp4_url, 4, 5)
    finished(app, video_id)
    finished(app, other_id, "other.mp4")
    url = play(client, user, video_id).json["url"]
    query = parse_qs(urlsplit(url).query)
    exp, sig = int(query["exp"][0]), query["sig"][0]
    base = f"/api/video/play/{video_id}/file"

    def answer(path, exp, sig):
        r = client.get(f"{path}?exp={exp}&sig={sig}", headers={"Range": "bytes=0-99"})
        return r.status_code, r.json["code"] if r.is_json else r.data[:8]

    assert answer(base, exp, sig)[0] == 206
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert answer(base, exp, flipped) == (403, "INVALID_SIGNATURE")
    assert answer(base, exp + 3600, sig) == (403, "INVALID_SIGNATURE")  # a longer life
    assert answer(f"/api/video/play/{other_id}/file", exp, sig) == (403, "INVALID_SIGNATURE")
    with app.app_context():  # correctly signed, but a minute ago
        old = int(time.time()) - 60
        stale = signing.signature('play', video_id, old)
    assert answer(base, old, stale) == (403, "URL_EXPIRED")
    assert answer(base, exp, "x" * 64)[0] == 400  # not a signature at all
    assert client.get(base).status_code == 400

    # Another secret (another deployment) makes other signatures.
    other_app = app.config["FLASK_SECRET_KEY"]
    with app.app_context():
        app.config["FLASK_SECRET_KEY"] = "another secret"
        assert signing.signature('play', video_id, exp) != sig
        app.config["FLASK_SECRET_KEY"] = other_app

    # The file expired after the URL was made: gone.
    app.extensions["yt"]["db"].videos.update_one({"_id": ObjectId(video_id)}, {"$set": {
        "status": "expired", "file_path": None}})
    assert answer(base, exp, sig) == (404, "NOT_FOUND")


def test_play_is_owner_only_and_needs_a_finished_file(app, client, auth, source_server):
    owner, stranger = auth.user(), auth.user()
    video_id = auth.save_clip(owner, source_server.mp4_url, 1, 3)
    r = play(client, owner, video_id)
    assert r.status_code == 409 and r.json["code"] == "FILE_NOT_READY"  # pending
    finished(app, video_id)
    r = play(client, stranger, video_id)
    assert r.status_code == 403 and r.json == {"error": "You do not own this video",
                                               "code": "FORBIDDEN"}
    assert play(client, owner, "0" * 24).status_code == 404
    assert client.post(f"/api/video/play/{video_id}").status_code == 401
    assert play(client, owner, video_id).status_code == 200
    Path(app.extensions["yt"]["db"].videos.find_one(
        {"_id": ObjectId(video_id)})["file_path"]).unlink()  # deleted behind our back
    assert play(client, owner, video_id).json["code"] == "FILE_NOT_READY"


def test_play_url_lifetime_is_a_setting(make_app, auth_factory, source_server):
    app = make_app(PLAY_URL_SECONDS=30)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 1, 3)
    finished(app, video_id)
    r = play(client, user, video_id)
    expires = datetime.fromisoformat(r.json["expires_at"].replace("Z", "+00:00")).timestamp()
    assert 28 <= expires - time.time() <= 31
    part = client.get(r.json["url"], headers={"Range": "bytes=0-99"})
    assert int(part.headers["Cache-Control"].split("=")[1]) <= 30


def test_play_through_nginx_x_accel_redirect(make_app, auth_factory, source_server):
    app = make_app(USE_X_ACCEL_REDIRECT=True)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 1, 3)
    finished(app, video_id)
    folder = app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(video_id)})["folder"]
    r = client.get(play(client, user, video_id).json["url"], headers={"Range": "bytes=0-99"})
    # nginx answers the Range itself from the internal location (deploy/nginx.conf)
    assert r.status_code == 200 and r.data == b""
    assert r.headers["X-Accel-Redirect"] == f"/_protected/downloads/{folder}/clip.mp4"
    assert r.headers["Content-Disposition"].startswith("inline;")
    assert r.headers["Cache-Control"].startswith("private, max-age=")
    assert r.mimetype == "video/mp4"


@pytest.mark.slow
def test_a_downloaded_clip_plays(client, auth, source_server, tmp_path):
    """The whole path with a real job: download, then play the same bytes by ranges."""
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 2, 4)
    done = auth.download(user, video_id)
    assert done.status_code == 200
    url = play(client, user, video_id).json["url"]
    first = client.get(url, headers={"Range": "bytes=0-99"})
    assert first.status_code == 206 and first.data == done.data[:100]
    assert first.data[4:8] == b"ftyp"
    rest = client.get(url, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and first.data + rest.data == done.data


@pytest.mark.slow
def test_the_document_holds_for_the_library_routes(app, auth, serve_app):
    """schemathesis (all phases and checks, as tests/test_openapi.py runs them on every route)
    on the list and play operations: every schema-valid query is answered 2xx (or a listed
    refusal), every invalid one 400, always in the documented shapes."""
    import schemathesis
    from schemathesis.engine import Status, events, from_schema

    user = auth.user()
    config = schemathesis.Config.from_dict({
        "seed": 17, "generation": {"max-examples": 40, "deterministic": True},
        "auth": {"openapi": {"bearer": {"bearer": user["token"]}}}})
    schema = schemathesis.openapi.from_url(serve_app(app) + "/openapi.json", config=config)
    schema = schema.include(path_regex=r"^/api/video/(list|play/)")
    found, cases = [], 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            found += [f"{event.recorder.label}: {check.name}: {check.failure_info.failure.title}"
                      f"\n{check.failure_info.code_sample[:300]}"
                      for checks in event.recorder.checks.values() for check in checks
                      if check.status == Status.FAILURE]
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            found.append(event.info.format())
    assert cases > 50
    assert not found, "\n\n".join(found[:5])


