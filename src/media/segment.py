"""Fetching ONLY the requested segment of a video with ffmpeg (stream copy, no re-encode).

``-ss`` placed before each ``-i`` is an *input* seek: ffmpeg's demuxer looks the position up in
the index (the ``moov`` of a progressive MP4 — hence ``+faststart`` sources — or the ``sidx`` of a
DASH/fMP4 file) and the http protocol issues a Range request from there, so only about the
segment's bytes are read; ``-t`` on the input stops reading after the segment. Source: ffmpeg
documentation, "Main options" (``-ss`` as an input option) and "Protocols: http" (``-headers``,
``-reconnect*``). With ``-c copy`` the video starts at the keyframe at or before ``start``; the
mp4 muxer writes an edit list so players (and ffprobe's duration) show the requested span, the
WebM muxer keeps the lead-in up to that keyframe (≤ one GOP, reported honestly by ffprobe).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Optional

from src.media.errors import FFMPEG_FAILED, SEGMENT_OUT_OF_RANGE, MediaError, classify
from src.media.ffmpeg import FFmpegError, Progress, ffprobe, run_ffmpeg
from src.media.source import FetchPlan

#: Reconnect a dropped HTTP connection (not an HTTP error status) for up to 5 s per attempt.
_RECONNECT = ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_on_network_error", "1",
              "-reconnect_delay_max", "5"]
_MUXERS = {"mp4": ["-f", "mp4", "-movflags", "+faststart"], "webm": ["-f", "webm"]}


def fetch_segment(plan: FetchPlan, start: float, end: float, out_path,
                  on_progress: Optional[Callable[[dict], None]] = None,
                  on_start: Optional[Callable[[subprocess.Popen], None]] = None,
                  timeout: Optional[float] = None) -> dict:
    """Download seconds ``start``..``end`` of the plan's streams into ``out_path``.

    ``start``/``end``: seconds from the start of the video (floats, ``0 <= start < end``).
    ``out_path``: the final file; its folder must exist. ffmpeg writes a hidden temporary file
    in the same folder, renamed to ``out_path`` only after success; on any failure it is deleted.
    ``on_progress(dict)`` is called several times a second with ``{"download_progress": 0-100
    (0.1 steps, at most 99.9 until ffmpeg is done), "speed": "2.3x", "fps": float, "eta": "MM:SS"
    or None while the speed is unknown}`` (the spec's progress cache fields). An exception it
    raises stops ffmpeg, removes the partial file and propagates unchanged (job cancellation).
    ``on_start(process)`` receives the ffmpeg process; ``timeout`` is wall seconds.

    Returns ``{"duration": s, "width", "height", "vcodec", "acodec", "size_bytes"}`` from
    ffprobe of the result (``acodec`` None without audio). Raises ValueError for a bad range,
    MediaError (SOURCE_HTTP_ERROR for an HTTP error from the source, SEGMENT_OUT_OF_RANGE when the
    segment lies beyond the end of the video, FFMPEG_FAILED otherwise).
    """
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got start={start} end={end}")
    out = Path(out_path)
    duration = end - start
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        run_ffmpeg(_ffmpeg_args(plan, start, duration, tmp),
                   on_progress=_progress_reporter(duration, on_progress) if on_progress else None,
                   on_start=on_start, timeout=timeout)
        summary = _summary(tmp)
        os.replace(tmp, out)
        return summary
    except FFmpegError as exc:
        raise classify(exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _ffmpeg_args(plan: FetchPlan, start: float, duration: float, tmp: Path) -> list:
    """Arguments for ffmpeg: one seeking input per stream URL, stream copy, the plan's muxer."""
    args: list = []
    urls = [plan.video_url] + ([plan.audio_url] if plan.audio_url else [])
    for url in urls:
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


def _progress_reporter(duration: float, callback: Callable[[dict], None]):
    """Turn ffmpeg :class:`Progress` blocks into the spec's progress dict for ``callback``."""

    def report(progress: Progress) -> None:
        if progress.done:
            percent = 100.0
        else:
            percent = min(99.9, round(100 * progress.out_time / duration, 1))
        remaining = max(0.0, duration - progress.out_time)
        eta = None
        if progress.done:
            eta = "00:00"
        elif progress.speed > 0:
            eta = _mmss(remaining / progress.speed)
        callback({"download_progress": max(0.0, percent), "speed": f"{progress.speed:.1f}x",
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
