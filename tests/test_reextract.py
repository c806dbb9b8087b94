"""An expired signed media URL (issue 12, item 5): the clip job extracts the info once more and
fetches with the fresh URLs before it fails.

YouTube's media URLs carry ``expire=<unix time>`` and answer 403 past it. Here a local CDN
serves the real 10-minute MP4 (Range support) at ``/long.mp4?exp=T`` and answers 403 (or 410)
when ``T`` lies in the past; a fake YouTube at yt-dlp's boundary (``YoutubeDL.extract_info``,
as tests/youtube_fakes.py does) hands out a URL that is already stale or a fresh one."""
from __future__ import annotations

import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yt_dlp
from bson import ObjectId

from src.media.ffmpeg import ffprobe
from tests.media_fixtures import SOURCES_DIR
from tests.youtube_fakes import VIDEO_ID, watch_url


class ExpiringCDN:
    """``/NAME?exp=T`` → the file ``root/NAME`` (206/200) while ``T`` is in the future, else
    ``refuse_with``; ``answers``: ``(exp, status)`` per request; ``served``: body bytes sent."""

    def __init__(self, root: Path, refuse_with: int = 403):
        owner, self.answers, self.refuse_with, self.served = self, [], refuse_with, 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path = root / urlsplit(self.path).path.lstrip("/")
                query = parse_qs(urlsplit(self.path).query)
                exp = int(query.get("exp", ["0"])[0])
                if exp < time.time():
                    owner.answers.append((exp, owner.refuse_with))
                    self.send_response(owner.refuse_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if not path.is_file():
                    owner.answers.append((exp, 404))
                    self.send_error(404)
                    return
                size = path.stat().st_size
                first, last, status = 0, size - 1, 200
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
                if match:
                    first, status = int(match[1]), 206
                    last = min(int(match[2] or size - 1), size - 1)
                owner.answers.append((exp, status))
                self.send_response(status)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(last - first + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
                self.end_headers()
                with open(path, "rb") as fh:
                    fh.seek(first)
                    body = fh.read(last - first + 1)
                    owner.served += len(body)
                    try:
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


#: One 720p H.264/AAC MP4 (a progressive YouTube format), in tests/media_fixtures' sources.
PROGRESSIVE = [{"format_id": "22", "ext": "mp4", "width": 1280, "height": 720,
                "vcodec": "avc1.64001f", "acodec": "mp4a.40.2", "name": "long.mp4"}]
#: YouTube above 1080p: VP9 WebM only at 1440p, H.264 up to 720p (scripts/highres_source.py).
HIGHRES = [{"format_id": "271", "ext": "webm", "width": 2560, "height": 1440, "vcodec": "vp9",
            "acodec": "none", "name": "hires/video_1440p.webm"},
           {"format_id": "251", "ext": "webm", "vcodec": "none", "acodec": "opus",
            "name": "hires/audio.webm"},
           {"format_id": "136", "ext": "mp4", "width": 1280, "height": 720,
            "vcodec": "avc1.64001f", "acodec": "none", "name": "hires/video_720p.mp4"},
           {"format_id": "140", "ext": "m4a", "vcodec": "none", "acodec": "mp4a.40.2",
            "name": "hires/audio.m4a"}]


class FakeYouTube:
    """The watch page's info: ``formats`` on the CDN. ``stale_jobs``: how many extractions,
    the first ones, hand out already expired URLs; ``job_calls``: extractions so far. The save's
    background format look-up and the clip job share one extraction (the info cache,
    src/services/info_cache.py), so whichever of them extracts first gets the stale URLs."""

    def __init__(self, cdn: ExpiringCDN, stale_jobs: int, formats: list):
        self.cdn, self.stale_jobs, self.formats, self.job_calls = cdn, stale_jobs, formats, 0

    def extract(self, ydl, url):
        self.job_calls += 1
        fresh = self.job_calls > self.stale_jobs
        exp = int(time.time()) + (3600 if fresh else -60)
        page = {"id": VIDEO_ID, "title": "t", "extractor": "youtube", "extractor_key": "Youtube",
                "webpage_url": watch_url(), "duration": 60, "live_status": "not_live",
                "formats": [{**{k: v for k, v in f.items() if k != "name"}, "protocol": "https",
                             "url": f"{self.cdn.base}/{f['name']}?exp={exp}"}
                            for f in self.formats]}
        return ydl.process_ie_result(page, download=False)


@pytest.fixture
def youtube(monkeypatch, local_sources):
    started = []

    def make(stale_jobs: int, refuse_with: int = 403, formats=PROGRESSIVE) -> FakeYouTube:
        cdn = ExpiringCDN(SOURCES_DIR, refuse_with)
        started.append(cdn)
        fake = FakeYouTube(cdn, stale_jobs, formats)
        monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                            lambda self, url, download=False, **kw: fake.extract(self, url))
        return fake

    yield make
    for cdn in started:
        cdn.stop()


def _download(make_app, auth_factory, resolution="720p", start=30, end=34):
    """Save a clip of the watch page and download it as MP4 (the app waits for the job);
    return (answer, final status, app, video_id)."""
    app = make_app(DOWNLOAD_WAIT_SECONDS=240)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), start=start, end=end)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"format_preference": "mp4", "resolution_preference": resolution,
                          "quality_preset": "medium"})
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    return r, status, app, video_id


@pytest.mark.slow
@pytest.mark.parametrize("refuse_with", [403, 410])
def test_an_expired_media_url_is_extracted_again_and_the_clip_completes(
        make_app, auth_factory, youtube, tmp_path, refuse_with):
    fake = youtube(stale_jobs=1, refuse_with=refuse_with)
    r, status, _, _ = _download(make_app, auth_factory)
    assert r.status_code == 200 and r.mimetype == "video/mp4", (r.status_code, r.data[:200])
    assert status["status"] == "completed", status
    assert fake.job_calls == 2
    refused = [exp for exp, code in fake.cdn.answers if code == refuse_with]
    served = {exp for exp, code in fake.cdn.answers if code in (200, 206)}
    assert len(refused) == 1 and len(served) == 1 and refused[0] not in served
    source_size = (SOURCES_DIR / "long.mp4").stat().st_size
    assert fake.cdn.served < 0.05 * source_size, (fake.cdn.served, source_size)  # the segment
    (tmp_path / "clip.mp4").write_bytes(r.data)
    info = ffprobe(str(tmp_path / "clip.mp4"))
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert abs(float(info["format"]["duration"]) - 4) <= 1
    assert streams["video"]["height"] == 720 and "audio" in streams


def test_a_url_that_stays_refused_fails_after_two_extractions(make_app, auth_factory, youtube):
    fake = youtube(stale_jobs=99)
    r, status, app, video_id = _download(make_app, auth_factory)
    assert r.json["code"] == "SOURCE_HTTP_ERROR" and "HTTP 403" in r.json["error"], r.json
    assert status["status"] == "failed" and status["error_code"] == "SOURCE_HTTP_ERROR"
    assert fake.job_calls == 2
    assert [code for _, code in fake.cdn.answers] == [403, 403]   # a 4xx is never retried
    folder = os.path.join(app.config["DOWNLOADS_DIR"], app.extensions["yt"]["db"].videos
                          .find_one({"_id": ObjectId(video_id)})["folder"])
    assert not os.path.exists(folder) or not os.listdir(folder)   # no half-written file


def test_other_http_errors_are_not_extracted_again(make_app, auth_factory, youtube):
    fake = youtube(stale_jobs=99, refuse_with=404)
    r, status, _, _ = _download(make_app, auth_factory)
    assert r.json["code"] == "SOURCE_HTTP_ERROR" and status["status"] == "failed"
    assert fake.job_calls == 1 and [code for _, code in fake.cdn.answers] == [404]


def test_the_direct_path_extracts_again_too(make_app, auth_factory, youtube, monkeypatch):
    """ffmpeg reading the URL itself (no ranged fetcher): its "Server returned 403 Forbidden"
    is recognised the same way (ffmpeg names 403 but not 410: "4XX")."""
    from src.media import segment
    monkeypatch.setattr(segment, "CONNECTIONS", 0)
    fake = youtube(stale_jobs=1)
    r, status, _, _ = _download(make_app, auth_factory)
    assert r.status_code == 200 and status["status"] == "completed", status
    assert fake.job_calls == 2
    assert (fake.cdn.answers[0][1], len(fake.cdn.answers) > 1) == (403, True)


@pytest.mark.slow
def test_the_1440p_mp4_path_extracts_again_too(make_app, auth_factory, youtube, tmp_path):
    """MP4 at 1440p exists only as VP9 WebM: the WebM segment is fetched on the clip worker,
    then encoded to H.265 in the encode lane (src/services/clip_encode.py). Its first URLs are
    expired: extracted again, fetched, encoded."""
    from scripts.highres_source import build_highres_source
    build_highres_source(SOURCES_DIR)
    fake = youtube(stale_jobs=1, formats=HIGHRES)
    r, status, _, _ = _download(make_app, auth_factory, "1440p", start=20, end=22)
    assert r.status_code == 200 and status["status"] == "completed", status
    assert fake.job_calls == 2
    stale, fresh = sorted({exp for exp, _ in fake.cdn.answers})
    assert {code for exp, code in fake.cdn.answers if exp == stale} == {403}
    assert {code for exp, code in fake.cdn.answers if exp == fresh} <= {200, 206}
    (tmp_path / "hevc.mp4").write_bytes(r.data)
    info = ffprobe(str(tmp_path / "hevc.mp4"))
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert (streams["video"]["codec_name"], streams["video"]["height"]) == ("hevc", 1440)
    assert "audio" in streams and abs(float(info["format"]["duration"]) - 2) <= 1.5
