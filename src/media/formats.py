"""What an extracted info dict offers: resolution labels, the formats/resolutions listing, and
filling in the frame size of formats that come without one.

Listing (spec "Video Endpoints" 6 and 7, "YouTubeService.get_available_formats": ≥720p, highest
first) works on the info dict of :func:`src.media.source.extract_info`.

**Formats without a height** (issue 12, item 3): yt-dlp's generic extractor gives a single HLS
media playlist (``hls_ts``, ``hls_fmp4``, ``hls_aes``, ``hls_byterange``) and a direct
MP4/WebM link (``webm_cues_end``) one format with no ``height`` and no codecs, so the listing
would be empty although the video is 720p. :func:`probe_missing` asks ffprobe instead, for at
most :data:`MAX_PROBES` such formats per video, each bounded (``-probesize``, ``-rw_timeout``,
:data:`PROBE_SECONDS` wall time), through the egress guard (:mod:`src.media.urlinput`, as the
direct path reads a URL) with a
demuxer whitelist, and fills ``width``/``height``/``vcodec``/``acodec``/``fps``.
A probe that fails leaves the format as it was: it is not listed (a label cannot be guessed)
but can still be chosen (unknown heights fit any limit, like yt-dlp's ``[height<=?720]``).
Measured cost: 0.1–0.3 s per probed format on the local sources (docs/source-shapes.md).
"""
from __future__ import annotations

import logging
from typing import Optional

from src.media import fragments, urlinput
from src.media.ffmpeg import ffprobe

log = logging.getLogger(__name__)

#: Standard resolution labels (nominal short side of a 16:9 frame), spec "Resolution Options".
RESOLUTIONS = {"720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160, "4320p": 4320}
LADDER = (144, 240, 360, 480, 720, 1080, 1440, 2160, 4320)
#: Protocols we can cut: ffmpeg opens them by URL and seeks with HTTP Range requests (or HLS
#: segments); DASH fragment lists also go through :mod:`src.media.fragments`.
SEEKABLE_PROTOCOLS = ("http", "https", "m3u8", "m3u8_native", fragments.PROTOCOL)
#: Formats probed per video (each costs one ffprobe through the guard).
MAX_PROBES = 3
PROBE_SECONDS = 15.0
#: Containers a probed URL may be read as: the HLS playlist and its segment containers, MP4,
#: WebM. No dash, concat or image demuxers: a probe follows no other references.
PROBE_DEMUXERS = "hls,mpegts,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,aac,mp3"
_PROBED_PROTOCOLS = ("http", "https", "m3u8", "m3u8_native")


def height_label(width: Optional[int], height: Optional[int]) -> Optional[str]:
    """Standard label (``"720p"``) for a frame size, or None when the height is unknown.

    The short side is used (portrait 720x1280 → ``720p``); a frame wider than 16:9 counts by its
    width (1920x800 → ``1080p``), like YouTube's quality labels. Sizes within 5 % below a rung
    round up to it (1920x1072 → ``1080p``).
    """
    if not height:
        return None
    short, long_ = (min(width, height), max(width, height)) if width else (height, height)
    size = max(short, round(long_ * 9 / 16))
    rung = max((r for r in LADDER if r <= size * 1.05), default=LADDER[0])
    return f"{rung}p"


def video_formats(info: dict) -> list:
    """The formats with video that we can cut (a seekable protocol, no DRM)."""
    return [f for f in info.get("formats") or [] if f.get("vcodec") != "none"
            and f.get("protocol", "http") in SEEKABLE_PROTOCOLS and not f.get("has_drm")]


def formats_by_resolution(info: dict) -> dict:
    """``{"1080p": ["mp4", "webm"], "720p": ["mp4"]}``: containers per resolution ≥ 720p.

    Keys ordered highest first, containers ``mp4`` first then alphabetical. Formats whose height
    is still unknown after :func:`probe_missing` are left out. Source: spec "Video Endpoints" 6.
    """
    found: dict = {}
    for fmt in video_formats(info):
        label = height_label(fmt.get("width"), fmt.get("height"))
        if label and int(label[:-1]) >= 720 and fmt.get("ext"):
            found.setdefault(label, set()).add(fmt["ext"])
    return {label: sorted(exts, key=lambda e: (e != "mp4", e))
            for label, exts in sorted(found.items(), key=lambda kv: -int(kv[0][:-1]))}


def available_resolutions(info: dict) -> list:
    """``["1440p", "1080p", "720p"]``: resolutions ≥ 720p, highest first (spec Core Services 2)."""
    return list(formats_by_resolution(info))


def available_extensions(info: dict) -> list:
    """``["mp4", "webm"]``: containers offered at ≥ 720p (the ``extensions`` of spec endpoint 6)."""
    exts = {ext for exts in formats_by_resolution(info).values() for ext in exts}
    return sorted(exts, key=lambda e: (e != "mp4", e))


def probe_missing(info: dict, session) -> int:
    """Fill ``width``/``height``/``vcodec``/``acodec``/``fps`` of the video formats that have no
    height (module docstring), in place; return how many were probed. ``session``: the
    :class:`src.media.guard.Session` ffprobe connects through. Never raises: a failed probe
    leaves its format unchanged (logged)."""
    todo = [f for f in video_formats(info) if not f.get("height")
            and f.get("protocol", "http") in _PROBED_PROTOCOLS and f.get("url")]
    for fmt in todo[:MAX_PROBES]:
        try:
            session.policy.check_url(fmt["url"])
            streams = _probe(fmt["url"], fmt.get("http_headers") or {}, session.proxy_url)
        except Exception as exc:  # noqa: BLE001 - a probe is best effort, never a failure
            log.info("format %s not probed: %s", fmt.get("format_id"), exc)
            continue
        video = next((s for s in streams if s.get("codec_type") == "video"), None)
        audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
        if video is None or not video.get("height"):
            continue
        fmt.update(width=video.get("width"), height=video.get("height"),
                   vcodec=fmt.get("vcodec") or video.get("codec_name"),
                   acodec=fmt.get("acodec") or (audio.get("codec_name") if audio else "none"))
        rate = str(video.get("avg_frame_rate") or "")
        num, _, den = rate.partition("/")
        if not fmt.get("fps") and num.isdigit() and den.isdigit() and int(den):
            fmt["fps"] = round(int(num) / int(den), 3)
    return min(len(todo), MAX_PROBES)


def _probe(url: str, headers: dict, proxy_url: str) -> list:
    """ffprobe's streams of ``url`` read through the guard at ``proxy_url`` (at most
    :data:`PROBE_SECONDS`, 10 s without data, 2 MB probed). Raises FFmpegError."""
    args = [*urlinput.input_args(url, headers, proxy_url, reconnect=False),
            "-format_whitelist", PROBE_DEMUXERS, "-rw_timeout", "10000000",
            "-probesize", "2000000", "-analyzeduration", "2000000"]
    return ffprobe(url, timeout=PROBE_SECONDS, input_args=args,
                   env=urlinput.ffmpeg_env(proxy_url)).get("streams") or []


# --- Labelled formats (issue 18, item 4) ---------------------------------------------------------

#: Codec string prefixes (RFC 6381 names as YouTube/DASH give them, or ffprobe's codec_name
#: after :func:`probe_missing`) → the names people know. First match wins.
_CODEC_NAMES = (("avc", "H.264"), ("h264", "H.264"), ("hvc1", "H.265"), ("hev1", "H.265"),
                ("hevc", "H.265"), ("h265", "H.265"), ("vp09", "VP9"), ("vp9", "VP9"),
                ("vp08", "VP8"), ("vp8", "VP8"), ("av01", "AV1"), ("av1", "AV1"),
                ("mp4a.40.34", "MP3"), ("mp4a.6b", "MP3"), ("mp3", "MP3"), ("mp4a", "AAC"),
                ("aac", "AAC"), ("opus", "Opus"), ("vorbis", "Vorbis"), ("ec-3", "E-AC-3"),
                ("eac3", "E-AC-3"), ("ac-3", "AC-3"), ("ac3", "AC-3"), ("flac", "FLAC"))


def codec_name(codec: Optional[str]) -> Optional[str]:
    """``"avc1.64001f"`` → ``"H.264"``, ``"mp4a.40.2"`` → ``"AAC"``, ``"none"`` → ``"none"``
    (no such stream), None → None (unknown); an unlisted codec keeps its own string."""
    if codec is None or codec == "none":
        return codec
    lowered = codec.lower()
    return next((name for prefix, name in _CODEC_NAMES if lowered.startswith(prefix)), codec)


def protocol_family(fmt: dict) -> str:
    """``hls`` (yt-dlp's ``m3u8*``), ``dash`` (a DASH fragment list or a stream of a DASH
    manifest: ``container`` ``*_dash``), else ``https``/``http`` (a direct link)."""
    protocol = str(fmt.get("protocol") or "https")
    if protocol.startswith("m3u8"):
        return "hls"
    if protocol.startswith("http_dash") or str(fmt.get("container") or "").endswith("_dash"):
        return "dash"
    return "http" if protocol == "http" else "https"


def format_detail(fmt: dict, scale: float = 1.0) -> dict:
    """One format labelled (``GET /api/video/formats/{id}?detail=true``): ``format_id``,
    ``ext``, ``resolution`` (``1280x720`` / ``audio only``), ``height``, ``fps``, ``vcodec`` /
    ``acodec`` (human names) with ``vcodec_raw`` / ``acodec_raw``, ``tbr`` (kbit/s),
    ``filesize`` / ``filesize_approx`` in bytes × ``scale`` (the clip's share of the video;
    None when yt-dlp does not know), ``protocol`` (:func:`protocol_family`),
    ``dynamic_range`` (yt-dlp's: SDR, HDR10, HLG…) and ``hdr``."""
    video = fmt.get("vcodec") != "none"
    resolution = fmt.get("resolution") if fmt.get("resolution") not in (None, "unknown") \
        else None
    if not video:
        resolution = "audio only"
    elif resolution is None and fmt.get("width") and fmt.get("height"):
        resolution = f"{fmt['width']}x{fmt['height']}"
    dynamic_range = fmt.get("dynamic_range") if video else None

    def scaled(name: str) -> Optional[int]:
        value = fmt.get(name)
        return round(value * scale) if isinstance(value, (int, float)) else None

    return {"format_id": fmt.get("format_id"), "ext": fmt.get("ext"), "resolution": resolution,
            "height": fmt.get("height") if video else None, "fps": fmt.get("fps") if video
            else None, "vcodec": codec_name(fmt.get("vcodec")),
            "acodec": codec_name(fmt.get("acodec")), "vcodec_raw": fmt.get("vcodec"),
            "acodec_raw": fmt.get("acodec"), "tbr": fmt.get("tbr"),
            "filesize": scaled("filesize"), "filesize_approx": scaled("filesize_approx"),
            "protocol": protocol_family(fmt), "dynamic_range": dynamic_range,
            "hdr": bool(dynamic_range and dynamic_range != "SDR")}
