"""Encoding an uploaded video to MP4 (H.264 / H.265 / AV1 + AAC), within a time limit.

Codec and preset names and the CRF table come from the spec ("Video Encoding Endpoints" →
GET /api/encode/codecs; "Core Services 3. EncodingService" → Codec Settings; audio always AAC
192k). Deliberate deviation: the spec's ``-crf 0`` for "lossless" is not lossless in x265 (it is
still lossy, see x265 docs "--lossless") and is not what libx264 calls lossless for high bit depths,
so lossless uses each encoder's real lossless mode and keeps the source's pixel format; decoded
frames are bit-identical to the source's (tests/test_media_encode.py checks it with framemd5).

Speed presets were chosen for a 2-core server and measured on the 5.3 s 720p test clip with one
thread (ffmpeg 5.1, Debian 12): x264 ``fast`` ≈ 1x real time; x265 ``fast`` ≈ 0.5x (lossless
≈ 0.18x); SVT-AV1 preset 8 ≈ 0.5x; libaom lossless ``cpu-used 6`` ≈ 0.07x (libaom's "good" usage
tops out at speed 6 — 8 gave a byte-identical file — and its "realtime" usage was measured NOT to
be lossless on inter frames in libaom 3.6, so it is not used).

Those speeds also bound how long an encode may run (:func:`encode_time_limit`, issue 11): an
upload whose probe understates its work, or an encoder that stalls, is killed rather than
holding an encode slot forever. Inputs are opened with the demuxer/protocol allow-list of
src/media/probe.py (probing and the caps on uploads live there).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace
from typing import Optional

from .ffmpeg import FFmpegError, Progress, ffprobe, run_ffmpeg
from .probe import (
    INPUT_ALLOW_LIST,
    UNSUPPORTED_MESSAGE,
    InvalidMediaError,
    probe_video,
    refused_by_allow_list,
)

#: Codec → quality presets, exactly the spec's GET /api/encode/codecs answer.
CODECS = {
    "h264": ["lossless", "high", "medium"],
    "h265": ["lossless", "high", "medium"],
    "av1": ["lossless", "high", "medium"],
}

#: CRF per codec and lossy preset (spec, EncodingService → Codec Settings).
CRF = {"h264": {"high": 18, "medium": 23}, "h265": {"high": 20, "medium": 28},
       "av1": {"high": 23, "medium": 30}}

#: Audio is always AAC at 192 kb/s (spec, "Audio Codec: Always AAC").
AUDIO_ARGS = ["-c:a", "aac", "-b:a", "192k"]

#: Encoder threads by default: leave one core to the API (min 1).
DEFAULT_THREADS = max(1, (os.cpu_count() or 2) - 1)

#: Pixel formats each encoder takes (``ffmpeg -h encoder=NAME``, ffmpeg 5.1).
_PIX_FMTS = {
    "libx264": {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12",
                "nv16", "nv21", "yuv420p10le", "yuv422p10le", "yuv444p10le", "nv20le", "gray",
                "gray10le"},
    "libx265": {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "gbrp",
                "yuv420p10le", "yuv422p10le", "yuv444p10le", "gbrp10le", "yuv420p12le",
                "yuv422p12le", "yuv444p12le", "gbrp12le", "gray", "gray10le", "gray12le"},
    "libaom-av1": {"yuv420p", "yuv422p", "yuv444p", "gbrp", "yuv420p10le", "yuv422p10le",
                   "yuv444p10le", "yuv420p12le", "yuv422p12le", "yuv444p12le", "gbrp10le",
                   "gbrp12le", "gray", "gray10le", "gray12le"},
    "libsvtav1": {"yuv420p", "yuv420p10le"},
}


#: Wall seconds one encoder thread spends per second of 720p input at 25 fps (1280 × 720 × 25
#: pixels per second), by codec and lossless or not: the speeds of the module docstring, rounded
#: towards slower (x264 ≈ 1x; x265 ≈ 0.5x, lossless ≈ 0.18x; SVT-AV1 ≈ 0.5x; libaom lossless
#: ≈ 0.07x). More threads only make an encode faster than this.
SECONDS_PER_MEDIA_SECOND = {("h264", False): 1.0, ("h264", True): 1.0,
                            ("h265", False): 2.0, ("h265", True): 5.6,
                            ("av1", False): 2.0, ("av1", True): 14.3}
REFERENCE_PIXEL_RATE = 1280 * 720 * 25
#: Fixed part of every encode time limit: process start, probing, a loaded machine, slow disks.
ENCODE_TIME_ALLOWANCE_SECONDS = 60.0
#: Frame rate assumed when the probe does not know it.
DEFAULT_FPS = 30.0


def encode_time_limit(source: dict, codec: str, preset: str, factor: float) -> float:
    """Wall seconds an encode of ``source`` (:func:`probe_video`'s dict) may take:

    ``60 + factor × SECONDS_PER_MEDIA_SECOND[codec, lossless] × duration × (width × height ×
    fps) / (1280 × 720 × 25)``

    i.e. the measured single-thread time for this much picture, times the safety ``factor``
    (setting ``ENCODE_TIMEOUT_FACTOR``, default 4), plus a fixed allowance. Example: the 5.3 s
    720p25 test clip to H.265 high → 60 + 4 × 2.0 × 5.3 ≈ 102 s; 1 h of 1080p30 to AV1 lossless
    → 60 + 4 × 14.3 × 3600 × 2.7 ≈ 154 h (the caps on uploads bound what that can reach).
    A missing fps counts as 30, a missing size as 720p. Raises ValueError on an unknown codec.
    """
    if codec not in CODECS:
        raise ValueError(f"Unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    width, height = source.get("width"), source.get("height")
    if not (width and height):
        width, _, height = str(source.get("resolution") or "1280x720").partition("x")
    pixel_rate = int(width) * int(height) * (source.get("fps") or DEFAULT_FPS)
    cost = SECONDS_PER_MEDIA_SECOND[codec, preset == "lossless"]
    return ENCODE_TIME_ALLOWANCE_SECONDS + factor * cost * float(source["duration"]) \
        * pixel_rate / REFERENCE_PIXEL_RATE


def _pix_fmt(encoder: str, source: str, lossless: bool) -> str:
    """Output pixel format: the source's for lossless (else the nearest the encoder takes);
    4:2:0 at the source's bit depth (8 or 10) for lossy presets, for player compatibility."""
    deep = any(tag in source for tag in ("10", "12", "16"))
    if lossless:
        for candidate in (source, source.replace("yuvj", "yuv")):
            if candidate in _PIX_FMTS[encoder]:
                return candidate
        return "yuv444p10le" if deep else "yuv444p"
    return "yuv420p10le" if deep else "yuv420p"


def video_args(codec: str, preset: str, pix_fmt: str, threads: int,
               size: tuple = (0, 0)) -> list:
    """Encoder options for ``codec``/``preset`` (see the module docstring for the sources).
    ``size``: the source's ``(width, height)`` in pixels, (0, 0) when unknown.

    - h264: libx264 ``-preset fast``; lossless ``-qp 0`` (x264's lossless mode; the profile
      becomes High 4:4:4 Predictive automatically), else ``-crf 18/23``.
    - h265: libx265 ``-preset fast``; lossless ``-x265-params lossless=1`` (x265 ``--lossless``),
      else ``-crf 20/28``; ``pools=N`` caps x265's own thread pool; ``-tag:v hvc1`` for players.
    - av1: lossless via libaom ``-aom-params lossless=1 -cpu-used 6 -row-mt 1`` (SVT-AV1 has no
      lossless mode); high/medium via libsvtav1 ``-preset 8 -crf 23/30 -svtav1-params lp=N``
      (it refuses frames under 64 pixels on a side: uploads are at least
      :data:`src.media.probe.MIN_UPLOAD_SIDE`).
    - 4:2:0 output (every lossy preset) needs even sides: an odd side is padded by one black
      row or column (``pad``), so no source pixel is lost or resampled.

    Raises ValueError on an unknown codec or preset.
    """
    if codec not in CODECS:
        raise ValueError(f"Unknown codec {codec!r}; expected one of {sorted(CODECS)}")
    if preset not in CODECS[codec]:
        raise ValueError(f"Unknown quality preset {preset!r}; expected one of {CODECS[codec]}")
    lossless = preset == "lossless"
    n = str(threads)
    if codec == "h264":
        rate = ["-qp", "0"] if lossless else ["-crf", str(CRF[codec][preset])]
        args = ["-c:v", "libx264", "-preset", "fast", *rate]
        encoder = "libx264"
    elif codec == "h265":
        params = f"pools={n}:log-level=error" + (":lossless=1" if lossless else "")
        rate = [] if lossless else ["-crf", str(CRF[codec][preset])]
        args = ["-c:v", "libx265", "-preset", "fast", *rate, "-x265-params", params,
                "-tag:v", "hvc1"]
        encoder = "libx265"
    elif lossless:
        tiles = ["-tile-columns", "1"] if threads > 1 else []
        args = ["-c:v", "libaom-av1", "-aom-params", "lossless=1", "-cpu-used", "6",
                "-row-mt", "1", *tiles]
        encoder = "libaom-av1"
    else:
        args = ["-c:v", "libsvtav1", "-preset", "8", "-crf", str(CRF[codec][preset]),
                "-svtav1-params", f"lp={n}"]
        encoder = "libsvtav1"
    out = _pix_fmt(encoder, pix_fmt, lossless)
    return [*args, "-pix_fmt", out, *_even_sides(out, size), "-threads", n]


def _even_sides(pix_fmt: str, size: tuple) -> list:
    """``-vf pad`` to even sides when a side of ``size`` is odd and the output's chroma is
    subsampled (4:2:0, 4:2:2), else nothing. The pad is written in the filter's own terms
    (``iw``/``ih``): ffmpeg rotates a portrait phone video before the filters, so the frame the
    filter sees may be ``size`` turned."""
    if not any(side % 2 for side in size) or not ("420" in pix_fmt or "422" in pix_fmt):
        return []
    return ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]


def build_encode_command(input_path: str, output_path: str, codec: str, preset: str,
                         source: dict, threads: int = DEFAULT_THREADS) -> list:
    """ffmpeg arguments (after the binary; for :func:`run_ffmpeg`) encoding to MP4.

    The input is opened only with the allow-list of src/media/probe.py (``INPUT_ALLOW_LIST``).
    ``source`` is :func:`probe_video`'s dict (``pix_fmt``, ``has_audio``, ``width``,
    ``height`` are used). Maps the first
    non-cover-art video stream and the first audio stream if any; every frame is kept once
    (``-fps_mode passthrough``) so lossless output has the source's frames; ``-movflags
    +faststart`` moves the index to the front for progressive playback; ``-f mp4`` because the
    output may carry a temporary suffix. Raises ValueError on an unknown codec or preset.
    """
    video = video_args(codec, preset, source.get("pix_fmt") or "yuv420p", threads,
                       (int(source.get("width") or 0), int(source.get("height") or 0)))
    audio = ["-map", "0:a:0", *AUDIO_ARGS] if source.get("has_audio") else ["-an"]
    return ["-threads", str(threads), *INPUT_ALLOW_LIST, "-i", input_path, "-map", "0:V:0",
            *video, *audio, "-fps_mode", "passthrough", "-sn", "-dn", "-movflags", "+faststart",
            "-f", "mp4", output_path]


def encode_to_mp4(input_path: str, output_path: str, codec: str, preset: str,
                  on_progress: Optional[Callable[[float, Progress], None]] = None,
                  on_start: Optional[Callable[[subprocess.Popen], None]] = None,
                  threads: Optional[int] = None, source: Optional[dict] = None,
                  timeout: Optional[float] = None) -> dict:
    """Encode ``input_path`` to an MP4 at ``output_path`` with ``codec``/``preset`` (see CODECS).

    Writes ``<output_path>.part`` in the same folder and renames it on success, so a file at
    ``output_path`` is always complete. ``on_progress(percent, progress)`` gets percent = output
    time / input duration × 100 rounded to 0.1 and capped at 99.9 several times a second
    (ffmpeg ``-stats_period``), then 100.0 once the file is in place; an exception it raises stops
    ffmpeg (the way to cancel). ``on_start`` receives the ffmpeg process. ``threads`` defaults to
    :data:`DEFAULT_THREADS`. ``source``: :func:`probe_video`'s dict of the input when the caller
    already has it (an upload is probed when it arrives); probing again costs two process starts
    (≈ 0.15 s, 2 % of a 10 s encode: BENCHMARKS.md, encode). Probed here when absent or
    incomplete. ``timeout``: wall seconds the encode may take (see :func:`encode_time_limit`);
    None: no limit.

    Returns ``{"size_bytes": int, "duration": float seconds, "vcodec": "h264"|"hevc"|"av1",
    "acodec": "aac" or None}`` from ffprobe of the result.
    Raises ValueError (unknown codec/preset), InvalidMediaError (input not a video; code
    ``UNSUPPORTED_FORMAT`` when ffmpeg refused it as off the allow-list), FFmpegTimeout (over
    ``timeout``; ffmpeg killed), FFmpegError (ffmpeg failed), or whatever ``on_progress`` raised;
    no partial file is left.
    """
    if not source or not {"duration", "pix_fmt", "has_audio"} <= source.keys():
        source = probe_video(input_path)
    partial = output_path + ".part"
    args = build_encode_command(input_path, partial, codec, preset, source,
                                threads or DEFAULT_THREADS)
    last = Progress()

    def report(progress: Progress) -> None:
        nonlocal last
        last = progress
        if on_progress and not progress.done:
            on_progress(min(99.9, round(progress.out_time / source["duration"] * 100, 1)),
                        progress)

    try:
        run_ffmpeg(args, on_progress=report, on_start=on_start, timeout=timeout)
        os.replace(partial, output_path)
    except FFmpegError as exc:
        _remove(partial)
        if refused_by_allow_list(exc):
            raise InvalidMediaError(UNSUPPORTED_MESSAGE, "UNSUPPORTED_FORMAT") from exc
        raise
    except BaseException:
        _remove(partial)
        raise
    info = ffprobe(output_path, input_args=INPUT_ALLOW_LIST)
    streams = info.get("streams", [])
    result = {
        "size_bytes": os.path.getsize(output_path),
        "duration": round(_float(info.get("format", {}).get("duration")), 3),
        "vcodec": next((s["codec_name"] for s in streams if s.get("codec_type") == "video"), None),
        "acodec": next((s["codec_name"] for s in streams if s.get("codec_type") == "audio"), None),
    }
    if on_progress:
        on_progress(100.0, replace(last, done=True))
    return result


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
