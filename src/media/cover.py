"""Metadata and cover art for audio-only clips (issue 18, item 1): mp3, m4a and Ogg Opus.

After ffmpeg has cut the audio, :func:`fetch_cover` fetches the video's thumbnail (best effort:
any failure is one warning and no cover) and :func:`tag` writes title, artist, comment and the
cover with mutagen, as yt-dlp's ``EmbedThumbnailPP`` does for m4a and Ogg
(yt_dlp/postprocessor/embedthumbnail.py); mp3 gets ID3v2.3, the version yt-dlp has ffmpeg
write there (``-id3v2_version 3``), since some players (older Windows) do not read v2.4.

The thumbnail is a stranger's bytes: fetched through the egress guard, at most
:data:`MAX_COVER_BYTES`, taken only with JPEG, PNG or WebP magic bytes, decoded by ffmpeg with
that one demuxer, ``-protocol_whitelist file`` and ``-max_pixels`` (a 660 KB 15000x15000 PNG
makes ffmpeg — and ffprobe — allocate 750 MB otherwise), then re-encoded as one baseline JPEG
of at most :data:`MAX_COVER_SIDE` pixels a side, which every player shows.
"""
from __future__ import annotations

import base64
import logging
import os
import shutil
import tempfile
import time
import unicodedata
import urllib.parse
from collections.abc import Callable
from typing import Any, Optional

from mutagen.flac import Picture
from mutagen.id3 import APIC, COMM, TIT2, TPE1
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus

from src.media import guard, rangefetch
from src.media.errors import FFMPEG_FAILED, FORMAT_UNAVAILABLE, MediaError
from src.media.ffmpeg import FFmpegError, FFmpegTimeout, run_ffmpeg

log = logging.getLogger(__name__)

#: Containers :func:`tag` writes (the audio-only clip formats of issue 18).
CONTAINERS = ("mp3", "m4a", "opus")
#: Largest thumbnail accepted from the source, bytes (YouTube's maxresdefault is ~100-300 KB).
MAX_COVER_BYTES = 5 * 1024 * 1024
#: Longest side of the embedded JPEG, pixels (YouTube's largest thumbnail is 1280x720).
MAX_COVER_SIDE = 1280
#: Most pixels ffmpeg may decode (its ``-max_pixels`` decoder option): 16 MP ≈ 64 MB of RGBA.
MAX_COVER_PIXELS = 16_000_000
#: Thumbnails tried, best first (yt-dlp's ``_write_thumbnails`` also falls back to the next).
MAX_TRIES = 3
#: Seconds the whole cover may take when the caller's deadline is later (or None).
COVER_SECONDS = 30.0
#: Characters kept per tag (values come from the video's page).
TAG_LIMITS = {"title": 500, "artist": 500, "comment": 2000}
#: Magic bytes → the only ffmpeg demuxer the image is opened with (ffmpeg -demuxers).
_DEMUXERS = ((b"\xff\xd8\xff", "jpeg_pipe"), (b"\x89PNG\r\n\x1a\n", "png_pipe"))
#: Request headers never sent to a thumbnail host (it is not the page's host).
_SECRET_HEADERS = frozenset({"cookie", "authorization", "proxy-authorization"})


def fetch_cover(info: dict, session: guard.Session, deadline: Optional[float],
                tick: Optional[Callable[[], None]] = None) -> Optional[bytes]:
    """The video's thumbnail as baseline JPEG bytes (:func:`cover_jpeg`), or None.

    ``info``: yt-dlp's info dict: ``thumbnails`` (``[{url, width, height, preference, id,
    http_headers?}]``, worst to best as yt-dlp sorts them; up to :data:`MAX_TRIES` tried, best
    first, as yt-dlp's ``_write_thumbnails`` falls back) or else ``thumbnail`` (one URL: all the
    project's info cache keeps); headers: the thumbnail's ``http_headers`` or the info's, less
    cookies. ``session``: the guard session every request goes through, its policy checked
    first. ``deadline``: ``time.monotonic()`` limit or None, cut to :data:`COVER_SECONDS`.
    ``tick()``: called while fetching; what it raises (a cancelled job) propagates. Any other
    failure returns None and logs one warning naming host and path (never the query).
    """
    limit = time.monotonic() + COVER_SECONDS
    deadline = limit if deadline is None else min(deadline, limit)
    candidates = _candidates(info)
    if not candidates:
        return None
    raised: list = []  # what ``tick`` raised: the caller's, so it propagates

    def checked_tick() -> None:
        try:
            if tick is not None:
                tick()
        except BaseException as exc:
            raised.append(exc)
            raise

    where, reason, tried = "", "", 0
    for thumb in candidates:
        url, data, tried = thumb["url"], None, tried + 1
        where = _where(url)
        try:
            session.policy.check_url(url)
            headers = _headers(thumb.get("http_headers") or info.get("http_headers"))
            [(data, _)] = rangefetch.fetch_whole([url], headers, session, deadline,
                                                 MAX_COVER_BYTES, checked_tick)
            return cover_jpeg(data, deadline - time.monotonic())
        except Exception as exc:  # best effort: a clip never fails because of its cover
            if raised:
                raise
            reason = exc.message if isinstance(exc, MediaError) else f"{exc}"
            if data is None and getattr(exc, "code", None) == FORMAT_UNAVAILABLE:
                reason = f"larger than {MAX_COVER_BYTES} bytes"
        if time.monotonic() >= deadline:
            break
    log.warning("cover art skipped (%d thumbnail(s) tried), last %s: %s", tried, where,
                _printable(reason)[:200])
    return None


def cover_jpeg(data: bytes, timeout: float = 15.0) -> bytes:
    """The image ``data`` (JPEG, PNG or WebP by its magic bytes) as one baseline JPEG of at most
    :data:`MAX_COVER_SIDE` a side, aspect kept, never upscaled, no metadata. ``timeout``:
    seconds for ffmpeg. Raises FFmpegTimeout, MediaError(FORMAT_UNAVAILABLE) for anything else
    (another type, over :data:`MAX_COVER_PIXELS`, undecodable, scaled to nothing)."""
    webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    demuxer = "webp_pipe" if webp else next(
        (name for magic, name in _DEMUXERS if data.startswith(magic)), None)
    if demuxer is None:
        raise MediaError(FORMAT_UNAVAILABLE, "The thumbnail is not a JPEG, PNG or WebP image.")
    scale = (f"scale=w='min({MAX_COVER_SIDE},iw)':h='min({MAX_COVER_SIDE},ih)'"
             ":force_original_aspect_ratio=decrease")
    with tempfile.TemporaryDirectory(prefix="cover-") as tmp:
        source, target = os.path.join(tmp, "in"), os.path.join(tmp, "out.jpg")
        with open(source, "wb") as handle:
            handle.write(data)
        try:
            run_ffmpeg(["-f", demuxer, "-format_whitelist", demuxer, "-protocol_whitelist",
                        "file", "-max_pixels", str(MAX_COVER_PIXELS), "-i", source,
                        "-map", "0:v:0", "-frames:v", "1", "-vf", scale, "-c:v", "mjpeg",
                        "-pix_fmt", "yuvj420p", "-q:v", "3", "-map_metadata", "-1",
                        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "mjpeg", target],
                       timeout=max(1.0, timeout))
            with open(target, "rb") as handle:
                jpeg = handle.read(MAX_COVER_BYTES + 1)
        except FFmpegTimeout:
            raise
        except (FFmpegError, OSError) as exc:
            raise MediaError(FORMAT_UNAVAILABLE, "The thumbnail could not be decoded.",
                             detail=str(exc)) from exc
    if jpeg_size(jpeg) is None or len(jpeg) > MAX_COVER_BYTES:
        raise MediaError(FORMAT_UNAVAILABLE, "The thumbnail could not be converted.")
    return jpeg


def tag(path: str, container: str, tags: dict, cover: Optional[bytes]) -> None:
    """Write ``tags`` and ``cover`` into the audio file ``path`` of ``container``
    (:data:`CONTAINERS`): mp3 — ID3v2.3 TIT2, TPE1, COMM (``eng``, no description), APIC (type
    3, front cover); m4a — iTunes atoms ``©nam``, ``©ART``, ``©cmt``, ``covr``; opus — Vorbis
    comments TITLE, ARTIST, COMMENT, METADATA_BLOCK_PICTURE (base64 FLAC picture, type 3; Xiph
    wiki "VorbisComment", RFC 7845 §5.2). ``tags``: ``{"title", "artist", "comment"}`` → str
    or list of str (joined ", "), each optional; :func:`clean_text`, :data:`TAG_LIMITS`; one
    left out or empty keeps the file's. ``cover``: JPEG bytes, replacing the file's picture
    (None or not a JPEG: none added). Audio data untouched; written to a copy that replaces
    ``path`` when complete, so ``path`` is valid whether this returns or raises. Raises
    MediaError(FFMPEG_FAILED) if the file is not that container; ValueError for another one.
    """
    if container not in CONTAINERS:
        raise ValueError(f"unknown audio container {container!r}")
    values = {key: clean_text(_joined((tags or {}).get(key)), limit, newlines=key == "comment")
              for key, limit in TAG_LIMITS.items()}
    if cover is not None and jpeg_size(cover) is None:
        cover = None
    folder, name = os.path.split(os.path.abspath(path))
    fd, work = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tag")
    os.close(fd)
    try:
        shutil.copyfile(path, work)
        shutil.copymode(path, work)
        _write(work, container, {k: v for k, v in values.items() if v}, cover)
        os.replace(work, path)
    except Exception as exc:
        os.unlink(work)
        raise MediaError(FFMPEG_FAILED, "The audio file could not be tagged.",
                         detail=f"{type(exc).__name__}: {exc}") from exc


def clean_text(value: Optional[str], limit: int, newlines: bool = False) -> str:
    """``value`` fit for a tag: NFC; tabs, line breaks and U+2028/U+2029 become a space (or
    ``\\n`` when ``newlines``); other control characters (Unicode Cc: NUL, ESC, C1) and lone
    surrogates (Cs, which no UTF encoding can write) removed; surrounding whitespace stripped;
    at most ``limit`` characters. None or "" → ""."""
    if not value:
        return ""
    kept = []
    for ch in unicodedata.normalize("NFC", value.replace("\r\n", "\n")):
        if ch in "\t\n\r\u2028\u2029":
            kept.append("\n" if newlines and ch != "\t" else " ")
        elif unicodedata.category(ch) not in ("Cc", "Cs"):
            kept.append(ch)
    text = "".join(kept)
    return text.strip()[:limit].strip()


def jpeg_size(data: bytes) -> Optional[tuple]:
    """``(width, height)`` from the first SOFn segment of a JPEG (ITU-T T.81 §B.2.2), or None
    when ``data`` is not a JPEG with one before its scan."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 9 <= len(data) and data[at] == 0xFF:
        marker, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = (int.from_bytes(data[at + 5 + i:at + 7 + i], "big") for i in (0, 2))
            return (width, height) if width and height else None
        if marker == 0xDA or length < 2:
            return None
        at += 2 + length
    return None


def _candidates(info: dict) -> list:
    """Up to :data:`MAX_TRIES` thumbnails with an http(s) ``url``, best first."""
    found = info.get("thumbnails")
    if not isinstance(found, list) or not found:
        found = [{"url": info.get("thumbnail")}]
    good = [t for t in reversed(found) if isinstance(t, dict) and isinstance(t.get("url"), str)
            and t["url"].lower().startswith(("http://", "https://"))]
    return good[:MAX_TRIES]


def _headers(headers) -> dict:
    items = headers.items() if isinstance(headers, dict) else ()
    return {k: v for k, v in items if isinstance(k, str) and isinstance(v, str)
            and k.lower() not in _SECRET_HEADERS and not any(c in k + v for c in "\r\n\0")}


def _where(url: str) -> str:
    """``host[:port]/path`` of ``url`` for a log line: no user info, query or fragment."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "an unreadable URL"
    return _printable(f"{host}{port}{parts.path}")[:120]


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _joined(value) -> Optional[str]:
    if isinstance(value, (list, tuple)):
        return ", ".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else None


def _write(path: str, container: str, values: dict, cover: Optional[bytes]) -> None:
    """Write ``values`` (cleaned, non-empty) and ``cover`` with mutagen (MutagenError: not
    that format)."""
    kind = {"mp3": MP3, "m4a": MP4, "opus": OggOpus}[container]
    audio = kind(path)
    if audio.tags is None:
        audio.add_tags()  # an Ogg Opus file always has tags: its mandatory second packet
    tags: Any = audio.tags
    if container == "mp3":
        for key, frame in (("title", TIT2), ("artist", TPE1)):
            if key in values:
                tags.setall(frame.__name__, [frame(encoding=3, text=[values[key]])])
        if "comment" in values:
            tags.setall("COMM", [COMM(encoding=3, lang="eng", desc="", text=[values["comment"]])])
        if cover is not None:
            tags.setall("APIC", [APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover (front)",
                                      data=cover)])
        audio.save(v2_version=3)
        return
    if container == "m4a":
        for key, atom in (("title", "\xa9nam"), ("artist", "\xa9ART"), ("comment", "\xa9cmt")):
            if key in values:
                tags[atom] = [values[key]]
        if cover is not None:
            tags["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_JPEG)]
    else:
        for key in values:
            tags[key.upper()] = [values[key]]
        if cover is not None:
            picture = Picture()
            picture.type, picture.mime, picture.desc = 3, "image/jpeg", "Cover (front)"
            picture.width, picture.height = jpeg_size(cover) or (0, 0)
            picture.depth, picture.data = 24, cover
            tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    audio.save()
