"""A local stand-in for YouTube: long test videos served over HTTP with Range support.

YouTube is unreachable from the dev/CI machines, so tests and ``make demo`` build two sources from
the Big Buck Bunny clip in ``tests/media`` (CC-BY 3.0, see ``tests/media/ATTRIBUTION.md``):

- ``long.mp4``: a ~10 minute progressive MP4 (1280x720 H.264 + stereo AAC, keyframe every 2 s,
  ``moov`` at the front via ``-movflags +faststart``) — what yt-dlp's generic extractor returns as a
  single "direct link" format without a height.
- ``dash/manifest.mpd``: a DASH ladder with SEPARATE representations — 720p and 480p H.264 video and
  AAC audio, one file each. The files come from ``ffmpeg -f dash -single_file 1 -global_sidx 1``
  (fragmented MP4 with one ``sidx`` at the front, like YouTube's DASH files). yt-dlp cannot parse
  the range-only ``SegmentList`` ffmpeg writes, so the manifest is rewritten to the ``SegmentBase``
  form YouTube's manifests use; yt-dlp then returns each representation as a plain ``http`` format
  whose ``url`` is the file itself (like a googlevideo URL), which ffmpeg range-seeks.

Run ``python -m scripts.local_source --port 8765 [--rate BYTES]`` to build and serve them.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import socket
import struct
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

from src.media.ffmpeg import run_ffmpeg

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "tests" / "media" / "big_buck_bunny_720p_5s.mp4"
DEFAULT_CACHE = ROOT / ".cache" / "sources"
LONG_MP4 = "long.mp4"
DASH_MPD = "dash/manifest.mpd"
#: One looped unit: 4 s = two 2 s GOPs at 25 fps, so keyframes stay every 2 s across the loop.
UNIT_SECONDS, LOOPS = 4, 150  # 150 x ~4.01 s ≈ 10 min 1.6 s
RECIPE = "v2"  # bump when the recipe below changes, so cached sources get rebuilt
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50",
        "-keyint_min", "50", "-sc_threshold", "0"]
MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
CONTENT_TYPES = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".mpd": "application/dash+xml",
                 ".webm": "video/webm"}


def build_sources(cache_dir=DEFAULT_CACHE, log=print) -> dict:
    """Build (once) the long MP4 and the DASH ladder in ``cache_dir`` and return their paths.

    Returns ``{"mp4": path, "dash": mpd_path, "dash_files": {name: path}}`` (absolute strings).
    Cached: a ``sources.json`` stamp lists recipe and file sizes; the build is skipped when it
    matches. Built in a temporary folder and moved in file by file, stamp last; an flock keeps two
    processes from building at once. Takes a few seconds on 2 cores. Raises FFmpegError.
    """
    cache = Path(cache_dir)
    stamp = cached_build(cache, RECIPE, "sources.json", lambda tmp: (_build(tmp, log), {}),
                         log, "local sources")
    dash_files = {rel.split("/", 1)[1]: str(cache / rel) for rel in stamp["files"]
                  if rel.startswith("dash/") and rel != DASH_MPD}
    return {"mp4": str(cache / LONG_MP4), "dash": str(cache / DASH_MPD), "dash_files": dash_files}


def cached_build(cache_dir, recipe: str, stamp_name: str, build, log=print,
                 what: str = "sources") -> dict:
    """Run ``build(tmp_folder) -> (files, extra)`` once per ``recipe`` into ``cache_dir``; return
    the stamp ``{"recipe", "files": {relative path: size}, **extra}``.

    ``files``: paths relative to ``tmp_folder`` to keep; ``extra``: JSON-able facts stored with
    the stamp. The build is skipped when the stamp ``stamp_name`` names this recipe and every
    file it lists is there with its size. Built in a temporary folder inside ``cache_dir`` and
    moved in file by file, stamp last; an flock keeps two processes from building at once.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = _read_stamp(cache, stamp_name, recipe)
        if stamp is None:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as tmp:
                files, extra = build(Path(tmp))
                for rel in files:
                    (cache / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(Path(tmp) / rel, cache / rel)
            stamp = {"recipe": recipe, **extra,
                     "files": {rel: (cache / rel).stat().st_size for rel in files}}
            (cache / (stamp_name + ".tmp")).write_text(json.dumps(stamp, indent=1))
            os.replace(cache / (stamp_name + ".tmp"), cache / stamp_name)
            log(f"{what} built in {time.monotonic() - started:.1f} s: {cache}")
    return stamp


def _read_stamp(cache: Path, stamp_name: str, recipe: str) -> Optional[dict]:
    try:
        stamp = json.loads((cache / stamp_name).read_text())
    except (OSError, ValueError):
        return None
    ok = stamp.get("recipe") == recipe and all(
        (cache / rel).is_file() and (cache / rel).stat().st_size == size
        for rel, size in stamp.get("files", {}).items())
    return stamp if ok else None


def _build(tmp: Path, log) -> list:
    """Encode one 4 s unit per rendition, loop it with stream copy, write the MP4 and the ladder."""
    log(f"building local sources from {CLIP.name} (~{UNIT_SECONDS * LOOPS // 60} min each)")
    unit720, unit480 = str(tmp / "unit720.mp4"), str(tmp / "unit480.mp4")
    run_ffmpeg(["-i", str(CLIP), "-t", str(UNIT_SECONDS), *X264, "-b:v", "600k", "-maxrate",
                "800k", "-bufsize", "1200k", "-c:a", "aac", "-ac", "2", "-ar", "48000", "-b:a",
                "96k", unit720])
    run_ffmpeg(["-i", str(CLIP), "-t", str(UNIT_SECONDS), "-an", "-vf", "scale=854:480", *X264,
                "-b:v", "300k", "-maxrate", "400k", "-bufsize", "600k", unit480])
    log(f"  {LONG_MP4}: progressive MP4, 720p + AAC, +faststart")
    loop = ["-stream_loop", str(LOOPS - 1), "-i"]
    run_ffmpeg([*loop, unit720, "-map", "0", "-c", "copy", "-movflags", "+faststart",
                str(tmp / LONG_MP4)])
    log(f"  {DASH_MPD}: DASH ladder, video 720p/480p + audio, one file per representation")
    (tmp / "dash").mkdir()
    run_ffmpeg([*loop, unit720, *loop, unit480, "-map", "0:v", "-map", "1:v", "-map", "0:a",
                "-c", "copy", "-f", "dash", "-single_file", "1", "-global_sidx", "1",
                "-single_file_name", "stream$RepresentationID$.mp4", "-seg_duration", "2",
                "-adaptation_sets", "id=0,streams=v id=1,streams=a", str(tmp / DASH_MPD)])
    names = _rewrite_mpd(tmp / DASH_MPD)
    return [LONG_MP4, DASH_MPD] + [f"dash/{name}" for name in names]


def _rewrite_mpd(mpd: Path) -> list:
    """Turn ffmpeg's range-only SegmentList into YouTube-style SegmentBase; rename the files.

    Returns the new file names (``video_720p.mp4``, ``video_480p.mp4``, ``audio.m4a``).
    """
    ET.register_namespace("", MPD_NS)
    tree = ET.parse(mpd)
    tree.getroot().set("profiles", "urn:mpeg:dash:profile:isoff-on-demand:2011")
    names = []
    for rep in tree.getroot().iter(f"{{{MPD_NS}}}Representation"):
        base = rep.find(f"{{{MPD_NS}}}BaseURL")
        is_video = rep.get("mimeType", "").startswith("video")
        name = f"video_{rep.get('height')}p.mp4" if is_video else "audio.m4a"
        os.replace(mpd.parent / base.text, mpd.parent / name)
        base.text = name
        rep.set("id", f"video-{rep.get('height')}p" if is_video else "audio-aac")
        init_end, sidx = _box_ranges(mpd.parent / name)
        rep.remove(rep.find(f"{{{MPD_NS}}}SegmentList"))
        seg = ET.SubElement(rep, f"{{{MPD_NS}}}SegmentBase",
                            indexRange=f"{sidx[0]}-{sidx[1]}", indexRangeExact="true")
        ET.SubElement(seg, f"{{{MPD_NS}}}Initialization", range=f"0-{init_end}")
        names.append(name)
    tree.write(mpd, encoding="utf-8", xml_declaration=True)
    return names


def _box_ranges(path: Path) -> tuple:
    """Byte ranges of an fMP4's init (``ftyp``+``moov``, end offset) and its first ``sidx``."""
    init_end, offset = None, 0
    with open(path, "rb") as fh:
        while True:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError(f"{path.name}: no sidx box")
            size, kind = struct.unpack(">I4s", head)
            if kind == b"moov":
                init_end = offset + size - 1
            if kind == b"sidx":
                return init_end, (offset, offset + size - 1)
            offset += size
            fh.seek(offset)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalSource/1"

    def log_message(self, format, *args):  # noqa: A002 - silence per-request logging
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner: SourceServer = self.server.owner
        url_path = unquote(urlsplit(self.path).path)
        file = (owner.root / url_path.lstrip("/")).resolve()
        if owner.root not in file.parents or not file.is_file():
            self.send_error(404, "Not Found")
            return
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match[1] or match[2]) and owner.ranges:
            if match[1]:
                start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
            else:
                start = max(0, size - int(match[2]))
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPES.get(file.suffix, "application/octet-stream"))
        self.send_header("Accept-Ranges", "bytes" if owner.ranges else "none")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            self._send_file(owner, file, url_path, start, end - start + 1)

    def _send_file(self, owner, file: Path, url_path: str, start: int, length: int) -> None:
        with open(file, "rb") as fh:
            fh.seek(start)
            while length > 0:
                chunk = fh.read(min(length, 32 * 1024))
                owner._throttle(len(chunk))
                owner._count(url_path, len(chunk))  # before the write, so a reader never races it
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                length -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: A small send buffer, so bytes_served() is close to what the client actually read.
    send_buffer = 64 * 1024

    def process_request(self, request, client_address):
        request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-file is normal (ffmpeg seeking); never print tracebacks


class SourceServer:
    """Threaded HTTP server for ``root`` on 127.0.0.1 with Range support and byte counters.

    ``port=0`` picks a free port; ``base_url`` is ``http://127.0.0.1:<port>``. GET/HEAD, one
    ``bytes=`` range per request (206 + Content-Range; 416 when out of range), Content-Type by
    extension. ``rate_bytes_per_sec`` (None = unlimited, settable at any time) throttles the total
    rate over all connections. ``ranges`` (default True, settable at any time): False makes the
    server ignore Range headers and answer 200 with the whole file, like some CDNs and proxies.
    Use as a context manager or call ``start()``/``stop()``.
    """

    def __init__(self, root=DEFAULT_CACHE, port: int = 0, rate_bytes_per_sec: Optional[int] = None,
                 host: str = "127.0.0.1"):
        self.root = Path(root).resolve()
        self.rate_bytes_per_sec = rate_bytes_per_sec
        self.ranges = True
        self._lock = threading.Lock()
        self._counts: dict = {}
        self._next_slot = 0.0
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread: Optional[threading.Thread] = None
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}"

    @property
    def mp4_url(self) -> str:
        return f"{self.base_url}/{LONG_MP4}"

    @property
    def dash_url(self) -> str:
        return f"{self.base_url}/{DASH_MPD}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name.lstrip('/')}"

    def size(self, name: str) -> int:
        """Size in bytes of the served file ``name`` (relative to the root, e.g. ``long.mp4``)."""
        return (self.root / name.lstrip("/")).stat().st_size

    def bytes_served(self, path: Optional[str] = None) -> int:
        """Body bytes sent so far for URL path ``path`` (``"long.mp4"`` or ``"/long.mp4"``), or
        all."""
        with self._lock:
            if path is None:
                return sum(self._counts.values())
            return self._counts.get("/" + path.lstrip("/"), 0)

    def reset_counters(self) -> None:
        with self._lock:
            self._counts.clear()

    def _count(self, url_path: str, n: int) -> None:
        with self._lock:
            self._counts[url_path] = self._counts.get(url_path, 0) + n

    def _throttle(self, n: int) -> None:
        """Reserve a time slot for ``n`` bytes on a shared clock and sleep until it comes."""
        rate = self.rate_bytes_per_sec
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next_slot = max(self._next_slot, now) + n / rate
            wait = self._next_slot - now - n / rate
        if wait > 0:
            time.sleep(wait)

    def start(self) -> SourceServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="local-source")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SourceServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--rate", type=int, default=None, help="throttle, bytes per second")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    args = parser.parse_args(argv)
    build_sources(args.cache_dir)
    with SourceServer(args.cache_dir, args.port, args.rate, args.host) as server:
        print(f"long MP4:      {server.mp4_url}\nDASH manifest: {server.dash_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
