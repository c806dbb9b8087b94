"""yt-dlp side of the media layer: error classification, format listing and selection.

Sources are the local stand-ins from scripts/local_source.py (no internet). Error cases use real
yt-dlp exception objects, chained the way YoutubeDL.trouble() chains them.
"""
import io
import socket
import sys
import urllib.request

import pytest
import yt_dlp
from yt_dlp.networking import Response
from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError, UserNotLive

from src.media import egress, errors
from src.media.choice import select_formats
from src.media.errors import MediaError, classify
from src.media.ffmpeg import FFmpegError
from src.media.formats import (
    available_extensions,
    available_resolutions,
    formats_by_resolution,
    height_label,
)
from src.media.source import extract_info

pytestmark = pytest.mark.usefixtures("local_egress")


def _as_download_error(exc: Exception) -> DownloadError:
    """What YoutubeDL.extract_info raises: a DownloadError whose exc_info holds ``exc``."""
    try:
        raise exc
    except Exception:
        return DownloadError(f"ERROR: {exc}", sys.exc_info())


@pytest.mark.parametrize("message, code", [
    ("Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser or --cookies for the "
     "authentication.", errors.BOT_CHECK),
    ("Sign in to confirm you're not a bot", errors.BOT_CHECK),
    ("Sign in to confirm your age. This video may be inappropriate for some users.",
     errors.AGE_RESTRICTED),
    ("Private video. Sign in if you've been granted access to this video", errors.PRIVATE_VIDEO),
    ("This live event will begin in 3 hours.", errors.LIVE_NOT_STARTED),
    ("Video unavailable. This video has been removed by the uploader", errors.VIDEO_UNAVAILABLE),
    ("Video unavailable", errors.VIDEO_UNAVAILABLE),
    ("No supported JavaScript runtime could be found.", errors.JS_RUNTIME_MISSING),
    ("No supported JavaScript runtime could be found. Only deno is enabled by default; to use "
     "another runtime add --js-runtimes RUNTIME[:PATH]", errors.JS_RUNTIME_MISSING),
    ("Something nobody has seen before", errors.UNKNOWN_ERROR),
    # messages as yt-dlp's YouTube extractor builds them (reason + subreason)
    ("Video unavailable. The uploader has not made this video available in your country",
     errors.GEO_RESTRICTED),
    ("Premieres in 2 hours", errors.PREMIERE_NOT_STARTED),  # issue 13, item 6
    ("Join this channel to get access to members-only content like this video, and other "
     "exclusive perks.", errors.MEMBERS_ONLY),
    ("This live stream recording is not available.", errors.VIDEO_UNAVAILABLE),
    ("This content isn't available, try again later. The current session has been rate-limited "
     "by YouTube for up to an hour.", errors.RATE_LIMITED),
    ("Sign in to confirm you’re not a bot. This helps protect our community. "
     "YouTube is requiring a captcha challenge before playback", errors.BOT_CHECK),
    ("[youtube] abc: Requested format is not available. Use --list-formats for a list of "
     "available formats", errors.FORMAT_UNAVAILABLE),
    ("No video formats found!", errors.FORMAT_UNAVAILABLE),
    ("The channel is not currently live", errors.NOT_LIVE),
])
def test_classify_youtube_reasons(message, code):
    exc = _as_download_error(ExtractorError(message, expected=True, video_id="dQw4w9WgXcQ",
                                            ie="youtube"))
    error = classify(exc)
    assert isinstance(error, MediaError)
    assert error.code == code
    assert error.message == str(error) and error.message
    assert "dQw4w9WgXcQ" not in error.message and "--cookies" not in error.message


def test_classify_exception_classes():
    geo = GeoRestrictedError("The uploader has not made this video available in your country.",
                             countries=["US"])
    assert classify(_as_download_error(geo)).code == errors.GEO_RESTRICTED
    assert classify(_as_download_error(UserNotLive(video_id="somechannel"))).code == errors.NOT_LIVE
    requested = DownloadError("ERROR: [youtube] abc: Requested format is not available. "
                              "Use --list-formats for a list of available formats")
    assert classify(requested).code == errors.FORMAT_UNAVAILABLE


@pytest.mark.parametrize("status, reason, code", [
    (403, "Forbidden", errors.SOURCE_HTTP_ERROR),
    (404, "Not Found", errors.SOURCE_HTTP_ERROR),
    (503, "Service Unavailable", errors.SOURCE_HTTP_ERROR),
    (429, "Too Many Requests", errors.RATE_LIMITED),
])
def test_classify_http_error_inside_extractor_error(status, reason, code):
    response = Response(io.BytesIO(b""), "https://rr1.googlevideo.com/videoplayback", {},
                        status=status, reason=reason)
    try:
        raise HTTPError(response)
    except HTTPError as http_error:
        wrapped = ExtractorError("Unable to download webpage", cause=http_error)
    error = classify(_as_download_error(wrapped))
    assert error.code == code
    assert "googlevideo" not in error.message
    if code == errors.SOURCE_HTTP_ERROR:
        assert str(status) in error.message


def test_every_issue_code_has_a_message():
    for code in ("FORMAT_UNAVAILABLE", "VIDEO_UNAVAILABLE", "PRIVATE_VIDEO", "AGE_RESTRICTED",
                 "BOT_CHECK", "LIVE_NOT_STARTED", "NOT_LIVE", "GEO_RESTRICTED",
                 "JS_RUNTIME_MISSING", "SOURCE_HTTP_ERROR", "FFMPEG_FAILED", "UNKNOWN_ERROR"):
        error = MediaError(code)
        assert error.code == code and error.message == errors.MESSAGES[code]


def test_classes_win_over_text():
    geo = GeoRestrictedError("Video unavailable", countries=["DE"])   # text alone says unavailable
    assert classify(_as_download_error(geo)).code == errors.GEO_RESTRICTED
    not_live = UserNotLive("Video unavailable", video_id="UCx")
    assert classify(_as_download_error(not_live)).code == errors.NOT_LIVE


@pytest.mark.parametrize("exc, status, code", [
    (ExtractorError("Private video. Sign in if you've been granted access to this video",
                    expected=True), 422, errors.PRIVATE_VIDEO),
    (ExtractorError("Sign in to confirm you're not a bot", expected=True), 500, errors.BOT_CHECK),
    (GeoRestrictedError("The uploader has not made this video available in your country."),
     422, errors.GEO_RESTRICTED),
])
def test_resolutions_and_formats_use_the_mapping(client, auth, monkeypatch, exc, status, code):
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=False, **kw: (_ for _ in ()).throw(
                            _as_download_error(exc)))
    r = client.post("/api/video/resolutions", json={"url": "https://youtu.be/dQw4w9WgXcQ"})
    assert r.status_code == status and r.json["code"] == code and r.json["error"]
    r = client.get("/api/video/formats/dQw4w9WgXcQ", headers=auth.user()["headers"])
    assert r.status_code == status and r.json["code"] == code


def test_classify_ffmpeg_errors():
    http = FFmpegError("http://127.0.0.1:1/x.mp4: Server returned 404 Not Found", 1,
                       "http://127.0.0.1:1/x.mp4: Server returned 404 Not Found")
    assert classify(http).code == errors.SOURCE_HTTP_ERROR
    assert "127.0.0.1" not in classify(http).message
    forbidden = FFmpegError("Error opening input", 1,
                            "Server returned 403 Forbidden (access denied)")
    assert classify(forbidden).code == errors.SOURCE_HTTP_ERROR
    server = FFmpegError("Error opening input", 1, "Server returned 5XX Server Error reply")
    assert classify(server).code == errors.SOURCE_HTTP_ERROR
    broken = FFmpegError("Invalid data found when processing input", 1, "moov atom not found")
    assert classify(broken).code == errors.FFMPEG_FAILED
    assert classify(MediaError(errors.PRIVATE_VIDEO)).code == errors.PRIVATE_VIDEO


def test_extract_info_missing_url_is_source_http_error(clean_source_server):
    with pytest.raises(MediaError) as info:
        extract_info(clean_source_server.url("no-such-video.mp4"))
    assert info.value.code == errors.SOURCE_HTTP_ERROR
    assert "404" in info.value.message


def test_extract_info_unreachable_host():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(MediaError) as info:
        extract_info(f"http://127.0.0.1:{port}/video.mp4", timeout=5)
    assert info.value.code == errors.SOURCE_HTTP_ERROR


def test_dash_source_lists_resolutions_and_formats(clean_source_server):
    info = extract_info(clean_source_server.dash_url)
    video = [f for f in info["formats"] if f["vcodec"] != "none"]
    assert sorted(f["height"] for f in video) == [480, 720]
    assert all(f["protocol"] == "http" and f["url"].endswith(".mp4") for f in video)
    assert available_resolutions(info) == ["720p"]  # the 480p rung is below the spec's 720p floor
    assert formats_by_resolution(info) == {"720p": ["mp4"]}
    assert available_extensions(info) == ["mp4"]


def test_select_formats_on_dash_ladder(clean_source_server):
    info = extract_info(clean_source_server.dash_url)
    plan = select_formats(info, "mp4", "720p")
    assert (plan.width, plan.height, plan.container, plan.needs_encode) == (1280, 720, "mp4", False)
    assert plan.video_url.endswith("/video_720p.mp4") and plan.audio_url.endswith("/audio.m4a")
    assert plan.vcodec.startswith("avc1") and plan.acodec.startswith("mp4a")
    assert "User-Agent" in plan.http_headers
    assert select_formats(info, "mp4", "480p").height == 480
    assert select_formats(info, "best", "best").height == 720
    with pytest.raises(MediaError) as webm:
        select_formats(info, "webm", "720p")
    assert webm.value.code == errors.FORMAT_UNAVAILABLE
    with pytest.raises(MediaError) as too_small:
        select_formats(info, "mp4", "144p")
    assert too_small.value.code == errors.FORMAT_UNAVAILABLE


def test_select_formats_on_direct_mp4(clean_source_server):
    # a direct link carries no height in yt-dlp's answer: a clip job takes it for any limit
    # (yt-dlp's [height<=?720]) and records what the fetched file is
    info = extract_info(clean_source_server.mp4_url)
    plan = select_formats(info, "mp4", "720p")
    assert plan.video_url == clean_source_server.mp4_url and plan.audio_url is None
    assert plan.container == "mp4" and plan.height is None
    # listing probes it (issue 12, item 3), and the probed height then counts against a limit
    info = extract_info(clean_source_server.mp4_url, probe=True)
    assert available_resolutions(info) == ["720p"]
    plan = select_formats(info, "mp4", "720p")
    assert (plan.width, plan.height) == (1280, 720)
    assert (plan.vcodec, plan.acodec) == ("h264", "aac")
    with pytest.raises(MediaError) as small:
        select_formats(info, "mp4", "480p")
    assert small.value.code == errors.FORMAT_UNAVAILABLE
    with pytest.raises(MediaError) as webm:  # no silent fallback to MP4
        select_formats(info, "webm", "best")
    assert webm.value.code == errors.FORMAT_UNAVAILABLE
    with pytest.raises(ValueError):
        select_formats(info, "avi", "720p")


def _youtube_like_info() -> dict:
    """A YouTube-shaped format list (itags 18/136/137/247/248/271/140/251) processed, sorted and
    completed by yt-dlp itself, as extract_info would return it."""
    def fmt(itag, ext, w, h, vcodec, acodec, tbr):
        return {"format_id": str(itag), "url": f"https://rr1.googlevideo.com/videoplayback?itag={itag}",
                "ext": ext, "width": w, "height": h, "vcodec": vcodec, "acodec": acodec, "tbr": tbr,
                "protocol": "https"}
    formats = [
        fmt(18, "mp4", 640, 360, "avc1.42001E", "mp4a.40.2", 500),
        fmt(136, "mp4", 1280, 720, "avc1.4d401f", "none", 1500),
        fmt(137, "mp4", 1920, 1080, "avc1.640028", "none", 3000),
        fmt(247, "webm", 1280, 720, "vp9", "none", 1300),
        fmt(248, "webm", 1920, 1080, "vp9", "none", 2600),
        fmt(271, "webm", 2560, 1440, "vp9", "none", 8000),
        fmt(140, "m4a", None, None, "none", "mp4a.40.2", 130),
        fmt(251, "webm", None, None, "none", "opus", 140),
    ]
    with yt_dlp.YoutubeDL({"quiet": True, "format": "bv*+ba/b"}) as ydl:
        return ydl.process_ie_result({"id": "abcdefghijk", "title": "t", "formats": formats},
                                     download=False)


@pytest.mark.parametrize("fmt, res, ids, container, needs_encode", [
    ("mp4", "1080p", ["137", "140"], "mp4", False),
    ("mp4", "720p", ["136", "140"], "mp4", False),
    ("mp4", "1440p", ["271", "251"], "webm", True),   # spec: >=1440p mp4 → WebM, then H.265
    ("mp4", "best", ["271", "251"], "webm", True),
    ("webm", "1080p", ["248", "251"], "webm", False),
    ("best", "best", ["271", "251"], "webm", False),
])
def test_select_formats_smart_logic(fmt, res, ids, container, needs_encode):
    plan = select_formats(_youtube_like_info(), fmt, res)
    assert (plan.format_ids, plan.container, plan.needs_encode) == (ids, container, needs_encode)


@pytest.mark.parametrize("size, label", [
    ((1280, 720), "720p"), ((720, 1280), "720p"), ((1920, 1080), "1080p"), ((1920, 800), "1080p"),
    ((1920, 1072), "1080p"), ((3840, 2160), "2160p"), ((854, 480), "480p"), ((None, None), None),
])
def test_height_label(size, label):
    assert height_label(*size) == label


def test_source_server_http_semantics(clean_source_server):
    url, size = clean_source_server.mp4_url, clean_source_server.size("long.mp4")
    head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"))
    assert head.headers["Content-Type"] == "video/mp4" and head.headers["Accept-Ranges"] == "bytes"
    assert int(head.headers["Content-Length"]) == size
    ranged = urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=100-199"}))
    assert ranged.status == 206 and len(ranged.read()) == 100
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{size}"
    assert clean_source_server.bytes_served("long.mp4") == 100
    mpd = urllib.request.urlopen(clean_source_server.dash_url)
    assert mpd.headers["Content-Type"] == "application/dash+xml"
    with pytest.raises(urllib.error.HTTPError) as out_of_range:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={size}-"}))
    assert out_of_range.value.code == 416


pytestmark = pytest.mark.usefixtures("local_egress")

# --- formats without a height (issue 12, item 3) --------------------------------------------

@pytest.mark.parametrize("shape, ext", [("hls_ts/index.m3u8", "mp4"),
                                        ("hls_aes/index.m3u8", "mp4"),
                                        ("webm/cues_end.webm", "webm")])
@pytest.mark.slow
def test_formats_without_height_are_probed(client, auth, clean_shapes_server, shape, ext):
    """yt-dlp gives these one format with no height and no codecs; the probe (through the
    guard, a few hundred KB) makes them list as what they are: 720p."""
    url = clean_shapes_server.url(shape)
    assert not [f for f in extract_info(url)["formats"] if f.get("height")]  # a clip job's view
    clean_shapes_server.reset_counters()
    info = extract_info(url, probe=True)
    video = [f for f in info["formats"] if f.get("vcodec") != "none"]
    assert len(video) == 1 and (video[0]["width"], video[0]["height"]) == (1280, 720)
    assert video[0]["acodec"] in ("aac", "opus")
    assert clean_shapes_server.bytes_served() < 2_000_000
    assert formats_by_resolution(info) == {"720p": [ext]}
    r = client.post("/api/video/resolutions", json={"url": url})
    assert r.status_code == 200 and r.json["resolutions"] == ["720p"], r.json
    user = auth.user()
    video_id = auth.save_clip(user, url)
    r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.json["formats"] == {"720p": [ext]}, r.json


def test_a_probe_that_fails_leaves_the_format_unknown(clean_source_server, monkeypatch):
    """A probe refused by the guard (its URL's port is not allowed at connect time) costs
    nothing but the listing: the format stays selectable, unlisted, and nothing is fetched."""
    from src.media import formats, guard
    info = {"formats": [{"format_id": "x", "url": clean_source_server.mp4_url, "ext": "mp4",
                         "protocol": "http", "vcodec": None, "acodec": None}]}
    with guard.session(egress.Policy(["127.0.0.2:1"])) as session:
        session.policy.check_url = lambda url, page_only=False: None  # allowed by name only
        assert formats.probe_missing(info, session) == 1
        assert session.refused() is not None
    assert info["formats"][0].get("height") is None and formats_by_resolution(info) == {}
    assert clean_source_server.bytes_served() == 0


def test_extractor_crash_on_something_else_stays_format_unavailable(clean_source_server,
                                                                    monkeypatch):
    """The MPD fallback runs only for a document that is an MPD: a crash on a plain video
    keeps its 422 FORMAT_UNAVAILABLE, after one look at the document."""
    def crash(self, url, download=False, **kw):
        raise _as_download_error(ExtractorError("An extractor error has occurred.",
                                                cause=KeyError("sourceURL")))

    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info", crash)
    with pytest.raises(MediaError) as info:
        extract_info(clean_source_server.mp4_url)
    assert info.value.code == errors.FORMAT_UNAVAILABLE and "manifest" in info.value.message
    # the same crash on an MPD (the SegmentBase ladder): read by src.media.mpd instead, each
    # Representation one file for the ranged sidx path, as yt-dlp itself gives it
    info = extract_info(clean_source_server.dash_url)
    assert info["extractor"] == "mpd"
    video = [f for f in info["formats"] if f["vcodec"] != "none"]
    assert sorted(f["height"] for f in video) == [480, 720]
    assert all(f["protocol"] == "http" and f["url"].endswith((".mp4", ".m4a"))
               for f in info["formats"])
    assert select_formats(info, "mp4", "720p").video_url.endswith("/video_720p.mp4")
