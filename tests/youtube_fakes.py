"""A stand-in for YouTube at yt-dlp's boundary (YouTube is unreachable here).

``fake_youtube`` replaces ``yt_dlp.YoutubeDL.extract_info`` only: for a registered URL it runs
yt-dlp's own ``process_ie_result`` on a raw info dict shaped like the YouTube extractor's (so
``live_status``, ``release_timestamp`` and formats come out exactly as yt-dlp returns them), or
raises a real yt-dlp exception wrapped in ``DownloadError`` as ``YoutubeDL.trouble`` does.
"""
from __future__ import annotations

import sys
import threading
import time

import pytest
import yt_dlp
from yt_dlp.networking.exceptions import TransportError
from yt_dlp.utils import DownloadError

VIDEO_ID = "dQw4w9WgXcQ"
CHANNEL_ID = "UC" + "a" * 22


def watch_url(video_id: str = VIDEO_ID) -> str:
    return f"https://www.youtube.com/watch?v={video_id}"


def stream_info(live_status: str, started: float | None, video_id: str = VIDEO_ID,
                duration: float | None = None) -> dict:
    """A raw YouTube info dict for a stream in ``live_status`` that started at ``started``."""
    live = live_status == "is_live"
    fmt = {"format_id": "301", "ext": "mp4", "width": 1920, "height": 1080,
           "vcodec": "avc1.64002a", "acodec": "mp4a.40.2", "tbr": 4500,
           "protocol": "m3u8_native" if live else "https",
           # a live stream's HLS playlist, unreachable (port 9): recording it live fails at
           # once, so these clips wait for the VOD (tests/test_stream_live_first.py records)
           "url": f"http://127.0.0.1:9/{video_id}/301.m3u8" if live
           else f"https://rr1.googlevideo.com/videoplayback?id={video_id}&itag=301"}
    return {"id": video_id, "title": "Stream", "extractor": "youtube", "extractor_key": "Youtube",
            "webpage_url": watch_url(video_id), "live_status": live_status, "is_live": live,
            "was_live": live_status in ("was_live", "post_live"),
            "release_timestamp": int(started) if started else None,
            "timestamp": int(started) if started else None,
            "duration": duration, "formats": [fmt]}


def as_download_error(exc: Exception) -> DownloadError:
    try:
        raise exc
    except Exception:
        return DownloadError(f"ERROR: {exc}", sys.exc_info())


class FakeYouTube:
    """URL → raw info dict or exception; records each call (url, thread name)."""

    def __init__(self):
        self.pages: dict = {}
        self.calls: list = []
        self.delay = 0.0

    def set(self, url: str, page) -> None:
        self.pages[url] = page

    def extract(self, ydl, url, process: bool = True):
        """What ``YoutubeDL.extract_info(url, process=process)`` returns for the page: with
        ``process=False`` (yt-dlp's own call for a ``url_transparent`` result, e.g. a clip page
        pointing at its video) the raw dict, as the real method does."""
        self.calls.append((url, threading.current_thread().name))
        if self.delay:
            time.sleep(self.delay)
        page = self.pages.get(url)
        if callable(page) and not isinstance(page, BaseException):
            page = page(ydl)  # a page that acts on yt-dlp first (e.g. reports a warning)
        if page is None:
            raise as_download_error(TransportError(f"[Errno 101] Network is unreachable: {url}"))
        if isinstance(page, BaseException):
            raise as_download_error(page) if not isinstance(page, DownloadError) else page
        if not process:
            return dict(page)
        return ydl.process_ie_result(dict(page), download=False)

    def extractions(self, url: str | None = None) -> int:
        """How many times yt-dlp was asked for ``url`` (any URL when None)."""
        return sum(1 for called, _ in self.calls if url is None or called == url)


@pytest.fixture
def fake_youtube(monkeypatch):
    fake = FakeYouTube()
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=False, **kw: fake.extract(
                            self, url, kw.get("process", True)))
    return fake


def video_page(media_url: str, video_id: str = VIDEO_ID, duration: float = 600,
               live_status: str = "not_live") -> dict:
    """A raw YouTube info dict of a VOD whose one 720p H.264/AAC format is ``media_url`` (the
    local source, with whatever ``expire=`` the test gives it)."""
    return {"id": video_id, "title": "Video", "extractor": "youtube", "extractor_key": "Youtube",
            "webpage_url": watch_url(video_id), "display_id": video_id,
            "duration": duration, "live_status": live_status,
            "formats": [{"format_id": "22", "ext": "mp4", "width": 1280, "height": 720,
                         "vcodec": "avc1.64001f", "acodec": "mp4a.40.2", "protocol": "https",
                         "url": media_url}]}


def clip_page(clip_id: str, video_id: str, start_ms: int, end_ms: int) -> dict:
    """What yt-dlp's YoutubeClipIE returns for ``youtube.com/clip/{clip_id}`` (extractor/youtube/
    _clip.py ``_real_extract``): a ``url_transparent`` result naming the video and the section."""
    return {"_type": "url_transparent", "url": watch_url(video_id), "ie_key": "Youtube",
            "id": clip_id, "media_type": "clip", "section_start": start_ms / 1000,
            "section_end": end_ms / 1000, "extractor": "youtube:clip",
            "extractor_key": "YoutubeClip",
            "_format_sort_fields": ("proto", "res", "quality")}


def youtube_error(reason: str, video_id: str = VIDEO_ID, login: bool = False) -> DownloadError:
    """The DownloadError yt-dlp raises when YouTube's player answer carries no formats but a
    ``reason`` (extractor/youtube/_video.py ``_real_extract``; with ``login``, the extractor's
    ``_check_login_required`` instead): the reason extended as the
    extractor extends it (its cookies hint after "sign in", the rate-limit explanation),
    raised by the extractor's own ``raise_no_formats(..., expected=True)``, tagged with the
    video id and IE name as ``InfoExtractor.extract`` does, wrapped as ``YoutubeDL.trouble``
    wraps it."""
    from yt_dlp.extractor.youtube import YoutubeIE
    from yt_dlp.utils import ExtractorError, remove_end

    ie = YoutubeIE(yt_dlp.YoutubeDL({"quiet": True}))
    if "sign in" in reason.lower():
        reason = remove_end(reason, "This helps protect our community. Learn more")
        reason = f"{remove_end(reason.strip(), '.')}. {ie._youtube_login_hint}"
    elif "This content isn't available, try again later" in reason:
        reason = (f"{remove_end(reason.strip(), '.')}. The current session has been rate-limited "
                  "by YouTube for up to an hour. It is recommended to use `-t sleep` to add a "
                  "delay between video requests to avoid exceeding the rate limit. For more "
                  "information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors"
                  "#this-content-isnt-available-try-again-later")
    try:
        try:
            if login:  # _base.py _check_login_required: common.py raise_login_required
                ie.raise_login_required(f"{reason} {ie._youtube_login_hint}", method=None)
            ie.raise_no_formats(reason, expected=True)
        except ExtractorError as exc:
            exc.video_id, exc.ie = video_id, ie.IE_NAME
            raise
    except ExtractorError as exc:
        return DownloadError(f"ERROR: {exc}", sys.exc_info())
    raise AssertionError("raise_no_formats did not raise")


def wait_for(predicate, timeout: float = 20.0):
    """Poll ``predicate()`` until it returns something truthy; return it (fail after timeout).
    Generous: background look-ups share a 2-thread lane with other tests' format look-ups."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
