"""Subtitle tracks put into a cut clip (issue 18, item 2): a stream-copy remux that adds one
text stream per language — ``mov_text`` (3GPP Timed Text, the only text codec the mp4 muxer
writes; cues without overlaps, :func:`src.media.subtitles.flatten`) in MP4, WebVTT copied as
it is in WebM (the WebM muxer takes only WebVTT, Matroska's ``S_TEXT/WEBVTT``; ffmpeg's webvtt
*encoder* would write ``&`` and ``<`` bare). The cues come already cut to the clip's time base
(:mod:`src.media.subtitles`), so the remux only copies them: they start at 0 where the clip
starts (the mp4 muxer's edit list and WebM's start shift apply to every stream alike).

Languages are written as ISO 639-2 codes (``eng``), which both containers store (MP4 ``mdhd``
language; Matroska ``Language``); yt-dlp's ``ISO639Utils`` maps the two-letter ones.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional

from yt_dlp.utils import ISO639Utils

from src.media.choice import MUXERS
from src.media.errors import FFMPEG_FAILED, MediaError
from src.media.ffmpeg import FFmpegError, run_ffmpeg

#: Text codec per container an embed is possible in (``copy``: the WebVTT as written).
TEXT_CODECS = {"mp4": "mov_text", "webm": "copy"}
_DEMUXERS = {"mp4": "mov", "webm": "matroska"}


def iso639_2(lang: str) -> Optional[str]:
    """``en``/``en-GB``/``eng`` → ``eng``; None when the primary subtag is not a known
    language (``und`` is then written by the muxer)."""
    primary = lang.split("-")[0].lower()
    if len(primary) == 3 and primary.isalpha():
        return primary
    return ISO639Utils.short2long(primary) if len(primary) == 2 else None


def embed_subtitles(path: Path, container: str, tracks: list, timeout: float = 120) -> None:
    """Add ``tracks`` — ``[(lang, title, vtt_path), …]`` (a BCP 47 code, a stream title, a
    WebVTT file of ours) — to the clip at ``path`` (``container`` ``mp4`` or ``webm``) as text
    streams, in that order. The remux writes a temporary file beside ``path`` and renames it
    over ``path`` only when ffmpeg succeeded. Raises ValueError for another container,
    MediaError(FFMPEG_FAILED) when ffmpeg fails."""
    if container not in TEXT_CODECS:
        raise ValueError(f"subtitles embed only in {sorted(TEXT_CODECS)}")
    if not tracks:
        return
    allow = ("-protocol_whitelist", "file")
    args = [*allow, "-format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm",
            "-f", _DEMUXERS[container], "-i", str(path)]
    for _, _, vtt in tracks:
        args += [*allow, "-format_whitelist", "webvtt", "-f", "webvtt", "-i", str(vtt)]
    args += ["-map", "0"]
    for number, (lang, title, _) in enumerate(tracks):
        args += ["-map", f"{number + 1}:s:0", f"-metadata:s:s:{number}", f"title={title}"]
        code = iso639_2(lang)
        if code:
            args += [f"-metadata:s:s:{number}", f"language={code}"]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".subs")
    os.close(fd)
    try:
        run_ffmpeg([*args, "-c", "copy", "-c:s", TEXT_CODECS[container], *MUXERS[container],
                    tmp], timeout=timeout)
        os.replace(tmp, path)
    except FFmpegError as exc:
        raise MediaError(FFMPEG_FAILED, "Adding the subtitles to the clip failed.",
                         detail=str(exc)) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
