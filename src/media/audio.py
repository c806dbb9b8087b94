"""Audio-only clips (issue 18, item 1): which stream to fetch and how ffmpeg writes the file.

``mp3``, ``m4a`` (AAC in the MP4 family's ``ipod`` muxer, the one ffmpeg uses for ``.m4a``) and
``opus`` (Ogg Opus, RFC 7845). Only an audio stream's bytes are fetched when the source has one
(YouTube's DASH audio formats; a DASH ladder's audio AdaptationSet): the plan names it alone,
in the primary slot (:attr:`FetchPlan.video_url`, with ``audio_only`` set), so every fetch path
(ranged, fragments, direct) reads it as it reads a one-stream video. A source without an
audio-only format (a progressive MP4, muxed HLS) gives its best combined format, whose video
bytes are then fetched too — there is no other way to its audio.

Stream copy where the container takes the source's codec: AAC → m4a, Opus → opus, MP3 → mp3;
otherwise it is encoded (``libmp3lame``, ``aac``, ``libopus``) at ``audio_bitrate`` kbit/s.
A bitrate asked for below the source's (``abr``) makes even a copyable stream be encoded: the
client wants a smaller file. Tags and the cover are written afterwards (:mod:`src.media.cover`).
"""
from __future__ import annotations

from typing import Optional

from src.media import choice, fragments
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.formats import SEEKABLE_PROTOCOLS
from src.media.source import selector_ydl

AUDIO_FORMATS = ("mp3", "m4a", "opus")
#: kbit/s a client may ask for (libmp3lame's CBR steps that common players expect).
BITRATES = (64, 96, 128, 160, 192, 256, 320)
#: kbit/s of an encode when the client names none: 192 for mp3/AAC, 128 for Opus (which at
#: 128 kbit/s stereo is already rated transparent by its authors, opus-codec.org "Recommended
#: Settings").
DEFAULT_BITRATES = {"mp3": 192, "m4a": 192, "opus": 128}
#: The codec (RFC 6381 prefix, as yt-dlp's ``acodec``) each container takes as it is.
_COPY_CODECS = {"mp3": "mp3", "m4a": "mp4a", "opus": "opus"}
ENCODERS = {"mp3": "libmp3lame", "m4a": "aac", "opus": "libopus"}
MIMETYPES = {"mp3": "audio/mpeg", "m4a": "audio/mp4", "opus": "audio/ogg"}


def select_audio(info: dict, container: str, bitrate: Optional[int] = None) -> choice.FetchPlan:
    """The plan of an audio-only clip of ``info`` written as ``container`` (mp3|m4a|opus).

    ``bitrate``: kbit/s from :data:`BITRATES`, or None (copy when possible, else
    :data:`DEFAULT_BITRATES`). Rule: the best audio-only stream the container takes as it is
    (yt-dlp's ``ba[acodec^=mp4a]`` etc.; among equals the fastest path), else the best
    audio-only stream (``ba``), else the best combined format (``b``); copied when its codec is
    the container's and ``bitrate`` is not below its ``abr``, else encoded. Raises ValueError
    for an unknown container or bitrate, MediaError(FORMAT_UNAVAILABLE) when no format has
    audio.
    """
    if container not in AUDIO_FORMATS:
        raise ValueError(f"container must be one of {AUDIO_FORMATS}")
    if bitrate is not None and bitrate not in BITRATES:
        raise ValueError(f"bitrate must be one of {BITRATES}")
    formats = [f for f in info.get("formats") or []
               if f.get("protocol", "http") in SEEKABLE_PROTOCOLS and not f.get("has_drm")
               and f.get("acodec") != "none"]
    formats = fragments.prefer_fastest(formats, lambda f: (
        f.get("ext"), f.get("acodec"), f.get("abr"), f.get("vcodec") == "none"))
    ydl = selector_ydl()
    chosen = choice.select(ydl, formats, f"ba[acodec^={_COPY_CODECS[container]}]") \
        or choice.select(ydl, formats, "ba/b")
    if chosen is None:
        raise MediaError(FORMAT_UNAVAILABLE, "This video has no audio to make an audio clip of.")
    plan = choice.plan_of(chosen, False)
    plan.container, plan.audio_only = container, True
    source_abr = (chosen.get("requested_formats") or [chosen])[-1].get("abr") or 0
    if _codec(plan.acodec) != _COPY_CODECS[container] or (bitrate and source_abr > bitrate):
        plan.audio_encoder = ENCODERS[container]
        plan.audio_bitrate = bitrate or DEFAULT_BITRATES[container]
    return plan


def _codec(acodec: Optional[str]) -> str:
    """``mp4a.40.2`` → ``mp4a``: yt-dlp names codecs by their RFC 6381 string."""
    return (acodec or "").split(".")[0].lower()


def output_args(plan: choice.FetchPlan) -> list:
    """ffmpeg's output options for an audio-only plan: the first input's audio, copied or
    encoded (``-b:a``), no video/subtitle/data streams, the container's muxer."""
    codec = ["-c:a", plan.audio_encoder, "-b:a", f"{plan.audio_bitrate}k"] \
        if plan.audio_encoder else ["-c:a", "copy"]
    return ["-map", "0:a:0", *codec, "-vn", "-sn", "-dn", "-map_metadata", "-1",
            *plan.muxer_args()]
