"""Encoding an uploaded video to MP4 (H.264 / H.265 / AV1 + AAC) and probing uploads.

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
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from typing import Callable, Optional

from .ffmpeg import FFmpegError, Progress, ffprobe, run_ffmpeg

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


class InvalidMediaError(ValueError):
    """The file is not a video ffmpeg can decode; the message is meant for the user."""


def probe_video(path: str) -> dict:
    """Describe a local video file.

    Returns ``{"duration": float seconds, "resolution": "1280x720", "width": int, "height": int,
    "original_codec": "h264", "pix_fmt": "yuv420p", "has_audio": bool, "fps": float}``
    (``original_codec`` is ffprobe's codec name; ``fps`` is 0.0 when unknown).

    Raises :class:`InvalidMediaError` when ffprobe cannot read the file, it has no video stream,
    its duration is zero/unknown, or ffmpeg cannot decode its first video frame (so random bytes
    behind a plausible header do not pass).
    """
    try:
        info = ffprobe(path)
    except FFmpegError as exc:
        raise InvalidMediaError("Not a readable video file") from exc
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    if video is None:
        raise InvalidMediaError("The file contains no video stream")
    duration = _float(info.get("format", {}).get("duration")) or _float(video.get("duration"))
    if duration <= 0:
        raise InvalidMediaError("The video has no duration")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if not width or not height:
        raise InvalidMediaError("The video has no picture size")
    _check_decodes(path)
    return {
        "duration": round(duration, 3),
        "resolution": f"{width}x{height}",
        "width": width,
        "height": height,
        "original_codec": video.get("codec_name", "unknown"),
        "pix_fmt": video.get("pix_fmt") or "yuv420p",
        "has_audio": any(s.get("codec_type") == "audio" for s in streams),
        "fps": round(_rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")), 3),
    }


def _check_decodes(path: str) -> None:
    """Decode the first video frame; raise :class:`InvalidMediaError` if ffmpeg cannot.

    Not ``-xerror``: real files often carry a damaged packet or two that ffmpeg skips; ffmpeg
    exits non-zero here only when no frame at all could be decoded.
    """
    try:
        run_ffmpeg(["-i", path, "-map", "0:V:0", "-frames:v", "1", "-f", "null", "-"], timeout=60)
    except FFmpegError as exc:
        raise InvalidMediaError("The video could not be decoded") from exc


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _rate(value) -> float:
    """ffprobe's ``"25/1"`` → 25.0; ``"0/0"`` or missing → 0.0."""
    num, _, den = str(value or "0/0").partition("/")
    if not den:
        return _float(num)
    return _float(num) / _float(den) if _float(den) else 0.0


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


def video_args(codec: str, preset: str, pix_fmt: str, threads: int) -> list:
    """Encoder options for ``codec``/``preset`` (see the module docstring for the sources).

    - h264: libx264 ``-preset fast``; lossless ``-qp 0`` (x264's lossless mode; the profile
      becomes High 4:4:4 Predictive automatically), else ``-crf 18/23``.
    - h265: libx265 ``-preset fast``; lossless ``-x265-params lossless=1`` (x265 ``--lossless``),
      else ``-crf 20/28``; ``pools=N`` caps x265's own thread pool; ``-tag:v hvc1`` for players.
    - av1: lossless via libaom ``-aom-params lossless=1 -cpu-used 6 -row-mt 1`` (SVT-AV1 has no
      lossless mode); high/medium via libsvtav1 ``-preset 8 -crf 23/30 -svtav1-params lp=N``.

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
    return [*args, "-pix_fmt", _pix_fmt(encoder, pix_fmt, lossless), "-threads", n]


def build_encode_command(input_path: str, output_path: str, codec: str, preset: str,
                         source: dict, threads: int = DEFAULT_THREADS) -> list:
    """ffmpeg arguments (after the binary; for :func:`run_ffmpeg`) encoding to MP4.

    ``source`` is :func:`probe_video`'s dict (``pix_fmt``, ``has_audio`` are used). Maps the first
    non-cover-art video stream and the first audio stream if any; every frame is kept once
    (``-fps_mode passthrough``) so lossless output has the source's frames; ``-movflags
    +faststart`` moves the index to the front for progressive playback; ``-f mp4`` because the
    output may carry a temporary suffix. Raises ValueError on an unknown codec or preset.
    """
    video = video_args(codec, preset, source.get("pix_fmt") or "yuv420p", threads)
    audio = ["-map", "0:a:0", *AUDIO_ARGS] if source.get("has_audio") else ["-an"]
    return ["-threads", str(threads), "-i", input_path, "-map", "0:V:0", *video, *audio,
            "-fps_mode", "passthrough", "-sn", "-dn", "-movflags", "+faststart", "-f", "mp4",
            output_path]


def encode_to_mp4(input_path: str, output_path: str, codec: str, preset: str,
                  on_progress: Optional[Callable[[float, Progress], None]] = None,
                  on_start: Optional[Callable[[subprocess.Popen], None]] = None,
                  threads: Optional[int] = None, source: Optional[dict] = None) -> dict:
    """Encode ``input_path`` to an MP4 at ``output_path`` with ``codec``/``preset`` (see CODECS).

    Writes ``<output_path>.part`` in the same folder and renames it on success, so a file at
    ``output_path`` is always complete. ``on_progress(percent, progress)`` gets percent = output
    time / input duration × 100 rounded to 0.1 and capped at 99.9 several times a second
    (ffmpeg ``-stats_period``), then 100.0 once the file is in place; an exception it raises stops
    ffmpeg (the way to cancel). ``on_start`` receives the ffmpeg process. ``threads`` defaults to
    :data:`DEFAULT_THREADS`. ``source``: :func:`probe_video`'s dict of the input when the caller
    already has it (an upload is probed when it arrives); probing again costs two process starts
    (≈ 0.15 s, 2 % of a 10 s encode: BENCHMARKS.md, encode). Probed here when absent or
    incomplete.

    Returns ``{"size_bytes": int, "duration": float seconds, "vcodec": "h264"|"hevc"|"av1",
    "acodec": "aac" or None}`` from ffprobe of the result.
    Raises ValueError (unknown codec/preset), InvalidMediaError (input not a video),
    FFmpegError (ffmpeg failed), or whatever ``on_progress`` raised; no partial file is left.
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
        run_ffmpeg(args, on_progress=report, on_start=on_start)
        os.replace(partial, output_path)
    except BaseException:
        _remove(partial)
        raise
    info = ffprobe(output_path)
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


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
