"""A local stand-in for YouTube's live adaptive formats addressed by sequence number (issue 14,
item 5), produced in real time from the Big Buck Bunny clip.

What a live YouTube format looks like to a client (yt-dlp ``yt_dlp/extractor/youtube/_video.py``,
``_live_adaptive_fragments``; ytarchive ``Info.go``/``util.go``): one ``videoplayback`` URL per
itag; fragment N is that URL with ``&sq=N`` (or ``<BaseURL>sq/N`` for a DASH manifest's
``BaseURL``), each ``target_duration`` seconds; every answer carries ``X-Head-Seqnum`` (the
newest fragment), the bare URL answers with headers only; a fragment not produced yet is a 404;
each fragment is self-contained (its own ``ftyp``/``moov`` before ``moof``/``mdat``: ytarchive
strips the repeated ``ftyp`` and the ``sidx`` when it concatenates them, ``Info.go``).

Made by plain ffmpeg, its dash muxer writing separate video and audio fMP4 segments of a fixed
duration from the clip looped at its own pace (the muxer writes each segment as ``.tmp`` and
renames it when complete, so a listed number is a whole segment)::

    ffmpeg -re -stream_loop -1 -i big_buck_bunny_720p_5s.mp4 -vf scale=-2:240
           -c:v libx264 -preset ultrafast -g 50 -keyint_min 50 -sc_threshold 0
           -force_key_frames expr:gte(t,n_forced*2) -c:a aac -b:a 64k -ac 2
           -f dash -seg_duration 2 -use_template 1 -use_timeline 0
           -adaptation_sets "id=0,streams=v id=1,streams=a" ... live.mpd

The HTTP server (127.0.0.1, threaded) answers fragment ``sq`` with ``init-R.m4s`` + chunk
``sq + 1`` of representation R (itag 133 = video, 140 = audio), 404 past the head and 404 for
fragments more than ``dvr_seconds`` behind it (YouTube's own status for that case is not
documented anywhere we found; yt-dlp and ytarchive treat any error alike). ``head_override``
replaces the ``X-Head-Seqnum`` value (hostile-header tests); :meth:`LiveSeq.halt` stops ffmpeg
(the head stops advancing). ``python -m scripts.live_seq`` serves one until ^C.
"""
from __future__ import annotations

import argparse
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from scripts import live_dash
from scripts.live_source import Producer, run_until_stopped

#: itag → (dash representation id, content type); 133 = 240p avc1, 140 = m4a (YouTube's).
ITAGS = {133: ("0", "video/mp4"), 140: ("1", "audio/mp4")}
_SQ_PATH = re.compile(r"/sq/(\d+)/?$")


def ffmpeg_args(folder: Path, seconds: int = 2, clock: bool = False) -> list:
    """The ffmpeg command line (module docstring) writing the live DASH files into ``folder``;
    ``clock``: each frame's time burnt into it (scripts/live_source.py :func:`clock_filter`)."""
    return live_dash.ffmpeg_args(folder, seconds, window_size=None, clock=clock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LiveSeq/1"

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner: LiveSeq = self.server.owner  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        itag = (query.get("itag") or [""])[0]
        if not parts.path.startswith("/videoplayback") or not itag.isdigit() \
                or int(itag) not in ITAGS:
            self._answer(404, b"", owner, None)
            return
        rep, kind = ITAGS[int(itag)]
        head = owner.head(rep)
        match = _SQ_PATH.search(parts.path)
        sq_text = match[1] if match else next(iter(query.get("sq") or []), None)
        if sq_text is None:  # the bare URL: headers only (yt-dlp's HEAD for X-Head-Seqnum)
            self._answer(200, b"", owner, head, kind)
            return
        if not sq_text.isdigit():
            self._answer(400, b"", owner, head)
            return
        sq = int(sq_text)
        if head is None or sq > head or head - sq > owner.dvr_seconds / owner.seconds:
            self._answer(404, b"", owner, head)
            return
        data = (owner.folder / f"init-{rep}.m4s").read_bytes() \
            + (owner.folder / f"chunk-{rep}-{sq + 1:05d}.m4s").read_bytes()
        self._answer(200, data if body else b"", owner, head, kind, sq, len(data),
                     f"{itag}/{sq}")

    def _answer(self, status: int, data: bytes, owner: LiveSeq, head: Optional[int],
                kind: str = "text/plain", sq: Optional[int] = None,
                length: Optional[int] = None, counter: Optional[str] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        if owner.head_override is not None:
            self.send_header("X-Head-Seqnum", owner.head_override)
        elif head is not None:
            self.send_header("X-Head-Seqnum", str(head))
            self.send_header("X-Head-Time-Millis", str((head + 1) * owner.seconds * 1000))
        self.send_header("X-Walltime-Ms", str(int(time.time() * 1000)))
        if sq is not None:
            self.send_header("X-Sequence-Num", str(sq))
        self.end_headers()
        if data:
            if counter:
                owner._count(counter, len(data))
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up is normal


class LiveSeq(Producer):
    """A live "sequence-number" source in ``folder`` (a temporary one when None) on 127.0.0.1.

    ``with LiveSeq() as live:`` starts ffmpeg (its own process group), waits for
    ``min_fragments`` fragments (RuntimeError on ffmpeg's failure or live_source.START_TIMEOUT) and
    serves them. ``live.url(itag)``: the format URL (``&sq=N`` appended for fragment N);
    :meth:`info`: a sanitized yt-dlp info dict pointing here; :meth:`bytes_served`: body
    bytes sent (all, or of ``"itag/sq"``); ``dvr_seconds``/``head_override`` settable at any
    time. Leaving the block kills the process group and stops the server.
    """

    def __init__(self, folder=None, seconds: int = 2, dvr_seconds: float = 30.0,
                 min_fragments: int = 1, clock: bool = False):
        self._use_folder(folder, "live-seq-")
        self.seconds, self.dvr_seconds, self.min_fragments = seconds, dvr_seconds, min_fragments
        self.clock = clock
        self.head_override: Optional[str] = None
        self._httpd: Optional[_Server] = None
        self._lock = threading.Lock()
        self._counts: dict = {}
        self._heads: dict = {}

    def head(self, rep: str = "0") -> Optional[int]:
        """The newest complete fragment's sq of representation ``rep`` (None: none yet)."""
        with self._lock:
            number = self._heads.get(rep, 0)
            while (self.folder / f"chunk-{rep}-{number + 1:05d}.m4s").exists():
                number += 1
            self._heads[rep] = number
        return number - 1 if number else None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, itag: int) -> str:
        return (f"{self.base_url}/videoplayback?expire=4102444800&itag={itag}"
                "&source=yt_live_broadcast&live=1&noclen=1&mime=" + ITAGS[itag][1])

    def info(self) -> dict:
        """A yt-dlp-shaped, JSON-sanitized info dict of a live YouTube video with
        ``--live-from-start``: one video and one audio format, protocol
        ``http_dash_segments_generator``, ``is_from_start``, ``target_duration`` (the keys
        ``_prepare_live_from_start_formats`` sets; ``fragments`` is the generator's repr, as
        ``YoutubeDL.sanitize_info`` leaves it)."""
        common = {"protocol": "http_dash_segments_generator", "is_from_start": True,
                  "is_live": True, "target_duration": self.seconds,
                  "fragments": "functools.partial(<bound method "
                               "YoutubeIE._live_adaptive_fragments of ...>)",
                  "http_headers": {"User-Agent": "Mozilla/5.0"}, "has_drm": False}
        return {
            "id": "liveseq0001", "title": "Local live stream (sequence numbers)",
            "live_status": "is_live", "is_live": True, "was_live": False,
            "release_timestamp": int(self.started_at), "extractor": "youtube",
            "webpage_url": "https://www.youtube.com/watch?v=liveseq0001",
            "formats": [
                {**common, "format_id": "140", "url": self.url(140), "ext": "m4a",
                 "vcodec": "none", "acodec": "mp4a.40.2", "abr": 64, "asr": 48000,
                 "audio_channels": 2, "_itag": "140", "_client": "web"},
                {**common, "format_id": "133", "url": self.url(133), "ext": "mp4",
                 "vcodec": "avc1.42c00d", "acodec": "none", "width": 426, "height": 240,
                 "fps": 25, "_itag": "133", "_client": "web"},
            ],
        }

    def bytes_served(self, key: Optional[str] = None) -> int:
        with self._lock:
            return sum(self._counts.values()) if key is None else self._counts.get(key, 0)

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.clear()

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def command(self) -> list:
        return ffmpeg_args(self.folder, self.seconds, self.clock)

    def ready(self) -> bool:
        return min((self.head(rep) or -1) for rep, _ in ITAGS.values()) >= self.min_fragments - 1

    def serve(self) -> None:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="live-seq").start()

    def unserve(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def halt(self) -> None:
        """Kill ffmpeg: the fragments stay served, the head stops advancing."""
        self.kill()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=None)
    parser.add_argument("--dvr", type=float, default=30.0, help="seconds kept behind the head")
    args = parser.parse_args(argv)
    run_until_stopped(LiveSeq(args.folder, dvr_seconds=args.dvr), lambda live: (
        f"live sq video: {live.url(133)}\nlive sq audio: {live.url(140)}"))


if __name__ == "__main__":
    main()
