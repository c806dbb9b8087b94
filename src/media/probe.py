"""Probing a video we are handed: what ffmpeg may open, and what we accept (issue 11, items 1-2).

ffmpeg picks a demuxer by the file's *content*, not its name, and some demuxers read other
files: an "innocent.mp4" that holds an HLS playlist (``#EXTM3U`` and segment lines naming
absolute local paths) or an ffconcat script (``file '/abs/path'``) made ffmpeg read another
user's upload. So every ffprobe/ffmpeg call on an input of ours carries
:data:`INPUT_ALLOW_LIST`: ``-format_whitelist`` with the real containers we accept
(:data:`UPLOAD_DEMUXERS`) and ``-protocol_whitelist file`` (our inputs are local files; the
nested demuxers that follow references — hls, concat, image2, dash — are off the list anyway).
ffmpeg answers "Format not on whitelist" / "Protocol not on whitelist", which we report as
``UNSUPPORTED_FORMAT``; the probed ``format_name`` is checked against the list as well.

Caps (:class:`UploadLimits`) on what a small file may claim — duration, picture size, frame rate
and frame count — are checked from the probe before anything is decoded: a 198 KB file probing
as 8192x8192 and a 95 KB file probing as 2 h were accepted before (issue 11). A file whose
probe lies is stopped by the encode time limit (src/media/encode.py ``encode_time_limit``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .ffmpeg import FFmpegError, ffprobe, run_ffmpeg

#: Demuxers an input may be opened with, as ffmpeg 5.1 names them (``ffmpeg -demuxers``), and as
#: ffprobe reports them in ``format_name``. What each upload extension probes as (made by ffmpeg's
#: default muxer for it): mp4/m4v/mov/3gp → ``mov,mp4,m4a,3gp,3g2,mj2``; mkv/webm →
#: ``matroska,webm``; avi; flv; wmv → ``asf``; mpg/mpeg → ``mpeg`` (program stream; ffmpeg has no
#: demuxer named "mpegps"); ``mpegts`` for transport streams. Raw elementary streams (h264, m4v,
#: mpegvideo), images, playlists and scripts are not containers and are refused.
UPLOAD_DEMUXERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv", "asf", "mpeg",
                   "mpegts")

#: Smallest side of an upload, pixels: libx265 corrupts its heap and aborts on frames under
#: 32 × 32 (ffmpeg 5.1 + x265 3.5, seen here on 34x18), SVT-AV1 refuses sides under 64.
MIN_UPLOAD_SIDE = 64
#: Input options (before ``-i``) of every ffprobe/ffmpeg call on an upload or our own local copy.
#: ``file`` is the only protocol needed: ffmpeg's ``-progress pipe:1`` and outputs are not inputs.
INPUT_ALLOW_LIST = ("-format_whitelist", ",".join(UPLOAD_DEMUXERS), "-protocol_whitelist", "file")

UNSUPPORTED_MESSAGE = ("Unsupported file format: upload a video in one of the containers MP4, "
                       "MOV, 3GP, Matroska/WebM, AVI, FLV, WMV or MPEG-PS/TS (playlists, scripts "
                       "and raw streams are refused whatever the file is called)")


class InvalidMediaError(ValueError):
    """The file is not a video we accept; the message is meant for the user.

    ``code``: ``INVALID_VIDEO`` (not a decodable video), ``UNSUPPORTED_FORMAT`` (a demuxer or
    protocol outside the allow-list), ``VIDEO_TOO_LONG``, ``RESOLUTION_TOO_HIGH`` or
    ``FRAME_RATE_TOO_HIGH`` (over a cap of :class:`UploadLimits`).
    """

    def __init__(self, message: str, code: str = "INVALID_VIDEO"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UploadLimits:
    """Caps checked against the probe (settings ``MAX_UPLOAD_DURATION_SECONDS``,
    ``MAX_UPLOAD_PIXELS``, ``MAX_UPLOAD_FRAME_RATE``).

    ``max_duration``: seconds (the longest video/audio stream or container duration);
    ``max_pixels``: width × height of any video stream; ``max_frame_rate``: frames per second,
    both as stated (average rate) and as counted (``nb_frames`` / duration, when the container
    states a frame count).
    """

    max_duration: float
    max_pixels: int
    max_frame_rate: float


def refused_by_allow_list(exc: FFmpegError) -> bool:
    """True when ffmpeg/ffprobe failed because a demuxer or protocol is not on the allow-list."""
    return "not on whitelist" in f"{exc} {exc.stderr_tail}"


def probe_video(path: str, limits: Optional[UploadLimits] = None) -> dict:
    """Describe a local video file, opened only with :data:`INPUT_ALLOW_LIST`.

    Returns ``{"duration": float seconds, "resolution": "1280x720", "width": int, "height": int,
    "original_codec": "h264", "pix_fmt": "yuv420p", "has_audio": bool, "fps": float}``
    (``original_codec`` is ffprobe's codec name; ``fps`` is 0.0 when unknown; ``duration`` is the
    longest of the container's and its video/audio streams' durations, which is how long an
    encode of it runs).

    Raises :class:`InvalidMediaError`: ``UNSUPPORTED_FORMAT`` when the content is not one of
    :data:`UPLOAD_DEMUXERS`; ``INVALID_VIDEO`` when ffprobe cannot read it, it has no video
    stream, no duration or no picture size, or ffmpeg cannot decode its first video frame (so
    random bytes behind a plausible header do not pass); with ``limits``, the cap codes of
    :class:`InvalidMediaError`, checked before anything is decoded.
    """
    try:
        info = ffprobe(path, input_args=INPUT_ALLOW_LIST)
    except FFmpegError as exc:
        raise _refusal(exc, "Not a readable video file") from exc
    if info.get("format", {}).get("format_name") not in UPLOAD_DEMUXERS:
        raise InvalidMediaError(UNSUPPORTED_MESSAGE, "UNSUPPORTED_FORMAT")
    streams = info.get("streams", [])
    pictures = [s for s in streams if s.get("codec_type") == "video"
                and not s.get("disposition", {}).get("attached_pic")]
    if not pictures:
        raise InvalidMediaError("The file contains no video stream")
    video = pictures[0]
    duration = max([_float(info.get("format", {}).get("duration"))] + [
        _float(s.get("duration")) for s in streams if s.get("codec_type") in ("video", "audio")])
    if duration <= 0:
        raise InvalidMediaError("The video has no duration")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if not width or not height:
        raise InvalidMediaError("The video has no picture size")
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
    if limits:
        _check_limits(limits, duration, pictures, fps, int(_float(video.get("nb_frames"))),
                      _float(video.get("duration")) or duration)
    _check_decodes(path)
    return {
        "duration": round(duration, 3),
        "resolution": f"{width}x{height}",
        "width": width,
        "height": height,
        "original_codec": video.get("codec_name", "unknown"),
        "pix_fmt": video.get("pix_fmt") or "yuv420p",
        "has_audio": any(s.get("codec_type") == "audio" for s in streams),
        "fps": round(fps, 3),
    }


def _check_limits(limits: UploadLimits, duration: float, pictures: list, fps: float,
                  frames: int, video_duration: float) -> None:
    """Raise the cap's :class:`InvalidMediaError` when the probe exceeds ``limits``
    (``frames``: the first video stream's stated frame count, 0 when unknown, over its
    ``video_duration``)."""
    if duration > limits.max_duration:
        raise InvalidMediaError(f"The video lasts {_hms(duration)}; at most "
                                f"{_hms(limits.max_duration)} is accepted", "VIDEO_TOO_LONG")
    for stream in pictures:
        width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
        if width * height > limits.max_pixels:
            raise InvalidMediaError(
                f"The video is {width}x{height} ({width * height / 1e6:.1f} megapixels); at most "
                f"{limits.max_pixels / 1e6:.1f} megapixels are accepted", "RESOLUTION_TOO_HIGH")
    # the frame count is checked against the duration too: a rate stated low cannot hide frames
    # packed densely (1 frame of slack for rounding of the stream's duration)
    counted = frames / video_duration if frames > 1 else 0.0
    if fps > limits.max_frame_rate or counted > limits.max_frame_rate + 1 / video_duration:
        raise InvalidMediaError(f"The video has {max(fps, counted):.0f} frames per second; at most "
                                f"{limits.max_frame_rate:g} are accepted", "FRAME_RATE_TOO_HIGH")
    for stream in pictures:  # after the caps: they name what makes a file costly first
        width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
        if min(width, height) < MIN_UPLOAD_SIDE:
            raise InvalidMediaError(
                f"The video is {width}x{height}; at least {MIN_UPLOAD_SIDE} pixels on each side "
                f"are accepted", "RESOLUTION_TOO_LOW")


def _check_decodes(path: str) -> None:
    """Decode the first video frame; raise :class:`InvalidMediaError` if ffmpeg cannot.

    Not ``-xerror``: real files often carry a damaged packet or two that ffmpeg skips; ffmpeg
    exits non-zero here only when no frame at all could be decoded.
    """
    try:
        run_ffmpeg([*INPUT_ALLOW_LIST, "-i", path, "-map", "0:V:0", "-frames:v", "1",
                    "-f", "null", "-"], timeout=60)
    except FFmpegError as exc:
        raise _refusal(exc, "The video could not be decoded") from exc


def _refusal(exc: FFmpegError, message: str) -> InvalidMediaError:
    if refused_by_allow_list(exc):
        return InvalidMediaError(UNSUPPORTED_MESSAGE, "UNSUPPORTED_FORMAT")
    return InvalidMediaError(message)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
