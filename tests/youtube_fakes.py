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
           "url": f"https://manifest.googlevideo.com/{video_id}/301.m3u8" if live
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

    def extract(self, ydl, url):
        self.calls.append((url, threading.current_thread().name))
        if self.delay:
            time.sleep(self.delay)
        page = self.pages.get(url)
        if page is None:
            raise as_download_error(TransportError(f"[Errno 101] Network is unreachable: {url}"))
        if isinstance(page, BaseException):
            raise as_download_error(page) if not isinstance(page, DownloadError) else page
        return ydl.process_ie_result(dict(page), download=False)


@pytest.fixture
def fake_youtube(monkeypatch):
    fake = FakeYouTube()
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=False, **kw: fake.extract(self, url))
    return fake


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
