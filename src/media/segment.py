"""Fetching ONLY the requested segment of a video, then cutting it with stream copy (no re-encode).

Two paths, the same cut:

- **ranged** (MP4 sources: progressive ``moov`` or DASH ``sidx``, the index read by
  :mod:`src.media.mp4index`): the bytes that hold the segment are fetched over several HTTP
  connections at once (:mod:`src.media.rangefetch`; sites throttle each connection) into a local
  *sparse* copy of each stream — index, the first bytes ffmpeg probes, the segment, at their
  original offsets — and ffmpeg cuts that copy locally. ffmpeg reads the same bytes it would
  read over HTTP, so the result is the same file (tests compare them packet by packet).
- **direct** (anything else: WebM, HLS, a server without Range support, an MP4 whose ``moov``
  follows its ``mdat``): ffmpeg reads the URLs itself.

``-ss`` placed before each ``-i`` is an *input* seek: ffmpeg's demuxer looks the position up in
the index and (over HTTP) issues a Range request from there; ``-t`` on the input stops reading
after the segment. Source: ffmpeg documentation, "Main options" (``-ss`` as an input option) and
"Protocols: http" (``-headers``, ``-reconnect*``). With ``-c copy`` the video starts at the
keyframe at or before ``start``; the mp4 muxer writes an edit list so players (and ffprobe's
duration) show the requested span, the WebM muxer keeps the lead-in up to that keyframe (≤ one
GOP, reported honestly by ffprobe).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from src.media import mp4index, rangefetch
from src.media.errors import FFMPEG_FAILED, SEGMENT_OUT_OF_RANGE, MediaError, classify
from src.media.ffmpeg import FFmpegError, Progress, ffprobe, run_ffmpeg
from src.media.source import FetchPlan

#: Reconnect a dropped HTTP connection (not an HTTP error status) for up to 5 s per attempt;
#: give up on a connection that sends nothing for 30 s (``-rw_timeout``, microseconds) instead of
#: blocking forever without progress.
_RECONNECT = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
              "-reconnect_delay_max", "5", "-rw_timeout", "30000000"]
_MUXERS = {"mp4": ["-f", "mp4", "-movflags", "+faststart"], "webm": ["-f", "webm"]}
#: Largest index (``moov``) read into memory; a bigger one falls back to the direct path.
MAX_INDEX_BYTES = 64 * 1024 * 1024
#: Parallel connections per stream for the ranged path; 0 turns it off (direct path only).
CONNECTIONS = 4
#: First request per stream: the ``moov`` and ``sidx`` of a DASH file (or the start of a
#: progressive ``moov``) and the first media bytes.
HEAD_BYTES = 64 * 1024
#: Media bytes right after the index kept in the copy: ffmpeg's stream probing
#: (``avformat_find_stream_info``) reads the first packets before it seeks; zeros there change
#: the probed parameters of a DASH stream (measured: 16 KB suffices for both local sources).
PROBE_BYTES = 32 * 1024
#: Parts of the segment smaller than this are not split further.
MIN_PART = 256 * 1024
#: Progress given to the network phase of the ranged path; the local cut fills the rest.
FETCH_SHARE = 95.0


def fetch_segment(plan: FetchPlan, start: float, end: float, out_path,
                  on_progress: Optional[Callable[[dict], None]] = None,
                  on_start: Optional[Callable[[subprocess.Popen], None]] = None,
                  timeout: Optional[float] = None) -> dict:
    """Download seconds ``start``..``end`` of the plan's streams into ``out_path``.

    ``start``/``end``: seconds from the start of the video (floats, ``0 <= start < end``).
    ``out_path``: the final file; its folder must exist. A hidden temporary file (and, on the
    ranged path, hidden sparse copies of the streams) is written in the same folder; the result
    is renamed to ``out_path`` only after success, and every temporary file is deleted in all
    cases. ``on_progress(dict)`` is called several times a second with ``{"download_progress":
    0-100 (0.1 steps, at most 99.9 until the cut is done), "speed": "2.3x" (seconds of the clip
    per wall second; None while unknown), "fps": float (ffmpeg's; 0 while bytes are being
    fetched), "eta": "MM:SS" or None while the speed is unknown}`` (the spec's progress cache
    fields). An exception it
    raises stops the connections or ffmpeg, removes the partial files and propagates unchanged
    (job cancellation). ``on_start(process)`` receives each ffmpeg process (the cut);
    ``timeout`` is wall seconds for the whole fetch.

    Returns ``{"duration": s, "width", "height", "vcodec", "acodec", "size_bytes"}`` from
    ffprobe of the result (``acodec`` None without audio). Raises ValueError for a bad range,
    MediaError (SOURCE_HTTP_ERROR for an HTTP error from the source or an unreachable source,
    SEGMENT_OUT_OF_RANGE when the segment lies beyond the end of the video, FFMPEG_FAILED
    otherwise).
    """
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start} end={end}")
    out = Path(out_path)
    deadline = time.monotonic() + timeout if timeout else None
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp, copies = Path(tmp_name), []
    try:
        inputs = None
        urls = [plan.video_url] + ([plan.audio_url] if plan.audio_url else [])
        if CONNECTIONS > 0 and all(u.startswith(("http://", "https://")) for u in urls):
            inputs = _ranged_copies(plan, urls, start, end, tmp, copies, on_progress, deadline)
        share = FETCH_SHARE if inputs else 0.0
        run_ffmpeg(_ffmpeg_args(plan, start, end - start, tmp, inputs or urls),
                   on_progress=_cut_reporter(end - start, share, on_progress) if on_progress
                   else None,
                   on_start=on_start, timeout=_remaining(deadline))
        summary = _summary(tmp)
        os.replace(tmp, out)
        return summary
    except FFmpegError as exc:
        raise classify(exc) from exc
    finally:
        for path in (tmp, *copies):
            path.unlink(missing_ok=True)


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise MediaError(FFMPEG_FAILED, "Cutting the video segment took too long.")
    return left


def _ranged_copies(plan: FetchPlan, urls: list, start: float, end: float, tmp: Path,
                   copies: list, on_progress, deadline) -> Optional[list]:
    """Fetch index + segment bytes of every URL in parallel into sparse local copies (appended
    to ``copies`` as they are created); return their paths, or None when a source is not an
    indexed MP4 or ignores Range requests (the caller falls back to the direct path)."""
    fetcher = rangefetch.Fetcher(plan.http_headers, CONNECTIONS * len(urls), deadline)
    started, state = time.monotonic(), {"planned": 0, "base": 0}

    def tick() -> None:
        if not on_progress:
            return
        done = fetcher.done_bytes - state["base"]
        fraction = min(1.0, done / state["planned"]) if state["planned"] else 0.0
        elapsed = max(1e-3, time.monotonic() - started)
        speed = fraction * (end - start) / elapsed
        rate = done / elapsed
        eta = _mmss((state["planned"] - done) / rate) if rate > 0 and state["planned"] else None
        on_progress({"download_progress": round(FETCH_SHARE * fraction, 1),
                     "speed": f"{speed:.1f}x" if speed > 0 else None, "fps": 0.0, "eta": eta})

    try:
        heads = fetcher.run([(url, 0, HEAD_BYTES - 1, None) for url in urls], tick)
        short = [(i, min(_index_end(data, size) + PROBE_BYTES, size))
                 for i, (size, data) in enumerate(heads)]
        short = [(i, need) for i, need in short if need > len(heads[i][1])]
        parts = [(i, a, b) for i, need in short
                 for a, b in rangefetch.split(len(heads[i][1]), need - 1, CONNECTIONS, MIN_PART)]
        rest = fetcher.run([(urls[i], a, b, None) for i, a, b in parts], tick)
        for (i, _, _), (_, data) in zip(parts, rest):  # in order: parts of a stream are adjacent
            heads[i] = (heads[i][0], heads[i][1] + data)
        jobs, fds = [], []
        for i, (size, data) in enumerate(heads):
            first, last = _span(data, size, start, end)
            copy = Path(f"{tmp}.{i}.mp4")
            copies.append(copy)
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            fds.append(fd)
            os.ftruncate(fd, size)
            os.pwrite(fd, data, 0)
            first = max(first, len(data))
            if first <= last:
                jobs += [(urls[i], a, b, fd) for a, b in rangefetch.split(first, last, CONNECTIONS,
                                                                         MIN_PART)]
        state["planned"] = sum(b - a + 1 for _, a, b, _ in jobs)
        state["base"] = fetcher.done_bytes
        try:
            fetcher.run(jobs, tick)
        finally:
            for fd in fds:
                os.close(fd)
        return [str(copy) for copy in copies]
    except (mp4index.IndexUnsupported, rangefetch.RangesUnsupported):
        for copy in copies:
            copy.unlink(missing_ok=True)
        copies.clear()
        return None
    finally:
        fetcher.close()


def _index_end(data: bytes, size: int) -> int:
    """How many bytes from the start hold the whole index (``moov``, plus ``sidx`` for a
    fragmented file); IndexUnsupported when it is not at the front."""
    boxes = {box.kind: box for box in reversed(mp4index.top_level_boxes(data, size))}
    moov = boxes.get("moov")
    if moov is None:
        raise mp4index.IndexUnsupported("no moov before the media data (not +faststart)")
    if moov.size > MAX_INDEX_BYTES:
        raise mp4index.IndexUnsupported(f"moov of {moov.size} bytes (fetched only up to "
                                        f"{MAX_INDEX_BYTES})")
    if moov.end > len(data):
        return moov.end
    if mp4index.is_fragmented(data[moov.offset:moov.end]):
        sidx = boxes.get("sidx")
        if sidx is None:
            raise mp4index.IndexUnsupported("fragmented MP4 without a sidx")
        return sidx.end
    return moov.end


def _span(data: bytes, size: int, start: float, end: float) -> tuple:
    """Inclusive byte range of the segment's samples/fragments in a file whose first bytes
    (index included) are ``data``."""
    boxes = {box.kind: box for box in reversed(mp4index.top_level_boxes(data, size))}
    moov = boxes["moov"]
    if "sidx" in boxes and mp4index.is_fragmented(data[moov.offset:moov.end]):
        sidx = boxes["sidx"]
        return mp4index.sidx_span(data[sidx.offset:sidx.end], sidx.offset, start, end)
    return mp4index.moov_span(data[moov.offset:moov.end], start, end)


def _ffmpeg_args(plan: FetchPlan, start: float, duration: float, tmp: Path, inputs: list) -> list:
    """Arguments for ffmpeg: one seeking input per stream (its URL or its local sparse copy),
    stream copy, the plan's muxer."""
    args: list = []
    for url in inputs:
        if url.startswith(("http://", "https://")):
            args += _RECONNECT
            if plan.http_headers:
                # one "Name: value\r\n" per header; the trailing CRLF keeps ffmpeg from warning
                args += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in plan.http_headers.items())]
        args += ["-ss", f"{start:.3f}", "-t", f"{duration:.3f}", "-i", url]
    if plan.audio_url:
        maps = ["-map", "0:v:0", "-map", "1:a:0"]
    else:  # combined format; the '?' keeps a silent video valid
        maps = ["-map", "0:v:0", "-map", "0:a:0?"]
    return [*args, *maps, "-c", "copy", "-map_metadata", "-1", "-dn", "-sn",
            *_MUXERS.get(plan.container, _MUXERS["mp4"]), str(tmp)]


def _cut_reporter(duration: float, share: float, callback: Callable[[dict], None]):
    """Turn ffmpeg :class:`Progress` blocks into the spec's progress dict for ``callback``;
    the cut fills the progress bar from ``share`` (what fetching already filled) to 100."""

    def report(progress: Progress) -> None:
        if progress.done:
            percent = 100.0
        else:
            part = progress.out_time / duration
            percent = min(99.9, round(share + (100 - share) * part, 1))
        remaining = max(0.0, duration - progress.out_time)
        eta = None
        if progress.done:
            eta = "00:00"
        elif progress.speed > 0:
            eta = _mmss(remaining / progress.speed)
        callback({"download_progress": max(0.0, percent),
                  "speed": f"{progress.speed:.1f}x" if progress.speed > 0 else None,
                  "fps": round(progress.fps, 1), "eta": eta})

    return report


def _mmss(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _summary(path: Path) -> dict:
    """ffprobe facts about a fetched file; MediaError(SEGMENT_OUT_OF_RANGE) when it holds no
    video (the segment starts after the end of the video)."""
    try:
        info = ffprobe(str(path))
    except FFmpegError as exc:
        raise MediaError(FFMPEG_FAILED, detail=str(exc)) from exc
    streams = info.get("streams") or []
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float((info.get("format") or {}).get("duration") or 0)
    if video is None or duration <= 0:
        raise MediaError(SEGMENT_OUT_OF_RANGE, "The requested segment holds no video; "
                                               "is it beyond the end of the video?")
    return {
        "duration": round(duration, 3),
        "width": video.get("width"),
        "height": video.get("height"),
        "vcodec": video.get("codec_name"),
        "acodec": audio.get("codec_name") if audio else None,
        "size_bytes": path.stat().st_size,
    }
