"""What a clip file carries besides its streams (issue 18, items 1 and 2): an audio clip's tags
and cover, and the subtitles of the segment — embedded, or as WebVTT files beside the clip.

:func:`check_subtitles` answers a download request (400 before any job starts);
:func:`prepare` runs in the clip job before the cut: it fetches the cover and the subtitle
files through one egress-guard session, cuts each language to the segment and writes it beside
the clip (``{job_id}.{lang}.vtt``, renamed into place complete), and returns the ``on_cut``
step :func:`src.media.segment.fetch_segment` runs on the cut file before it gets its name.

A subtitle language that cannot be fetched or read does not fail the clip (YouTube's timedtext
endpoint rate-limits on its own; the clip is what was asked for first): the language is left
out and its reason kept (``subtitle_errors`` in the status). A cover that cannot be fetched is
left out (:func:`src.media.cover.fetch_cover`).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ApiError
from ..media import cover, embed, guard, subtitles
from ..media.audio import AUDIO_FORMATS
from ..media.errors import MediaError
from .info_cache import TRACK_KEYS
from .info_service import hms

log = logging.getLogger(__name__)

MODES = ("embed", "sidecar")
#: Languages one download may ask for.
MAX_LANGUAGES = 10
#: Wall seconds the cover and the subtitle files may take together.
FETCH_SECONDS = 60.0


def default_mode(format_preference: str) -> str:
    """``embed`` for a video clip, ``sidecar`` for an audio one (MP3/Ogg hold no text track)."""
    return "sidecar" if format_preference in AUDIO_FORMATS else "embed"


def tracks_of(info: dict) -> dict:
    """``{lang: (entry, automatic)}`` of what ``info`` offers: manual subtitles win over
    automatic captions of the same language; ``entry`` is the one
    :func:`src.media.subtitles.best_track` fetches (``{"ext", "url", …}``). Reads the info
    cache's ``subtitle_tracks`` (src/services/info_cache.py) or yt-dlp's own dicts."""
    found: dict = {}
    compact = info.get("subtitle_tracks")
    for key, automatic in (("automatic_captions", True), ("subtitles", False)):
        if compact is not None:
            for lang, entry in (compact.get(TRACK_KEYS[key]) or {}).items():
                found[lang] = (entry, automatic)
            continue
        for lang, entries in (info.get(key) or {}).items():
            entry = subtitles.best_track(entries or [])
            if entry is not None and lang != "live_chat":
                found[lang] = (entry, automatic)
    return found


def check_subtitles(info: dict, langs: list, mode: str, format_preference: str) -> None:
    """Raise ApiError 400 unless every language of ``langs`` is offered by ``info`` in a form
    we read (SUBTITLES_UNAVAILABLE, ``details.subtitles``) and ``mode`` suits the format
    (VALIDATION_ERROR: an audio clip cannot embed subtitles)."""
    if mode == "embed" and format_preference in AUDIO_FORMATS and langs:
        raise ApiError(400, "An audio clip cannot hold subtitles; ask for subtitles_mode "
                            "sidecar.", "VALIDATION_ERROR",
                       {"subtitles_mode": ["embed needs a video format (mp4, webm)"]})
    offered = tracks_of(info)
    missing = [lang for lang in langs if lang not in offered]
    if missing:
        message = (f"No subtitles in {', '.join(missing)} for this video; GET "
                   "/api/video/formats/{id} lists the languages offered.")
        raise ApiError(400, message, "SUBTITLES_UNAVAILABLE", {"subtitles": [message]})


@dataclass
class Extras:
    """What :func:`prepare` found for one clip: ``sidecars`` ``[{"lang", "automatic",
    "path", "cues": count, "_cues": the cues}]`` (files written), ``errors`` ``{lang:
    message}``, the cover (JPEG bytes) and what ``on_cut`` does with them."""

    container: str
    embed: bool
    tags: dict
    cover: Optional[bytes] = None
    sidecars: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)

    def on_cut(self, path: Path) -> None:
        """Tag an audio clip (and add its cover), or embed the subtitles in a video clip —
        in MP4 without overlaps (:func:`src.media.subtitles.flatten`: mov_text shows one cue
        at a time), from temporary files beside ``path``."""
        if self.container in AUDIO_FORMATS:
            cover.tag(str(path), self.container, self.tags, self.cover)
            return
        if not (self.embed and self.sidecars):
            return
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".subs-") as folder:
            tracks = []
            for number, sidecar in enumerate(self.sidecars):
                cues = sidecar["_cues"]
                vtt = Path(folder) / f"{number}.vtt"
                vtt.write_text(subtitles.to_webvtt(
                    subtitles.flatten(cues) if self.container == "mp4" else cues),
                    encoding="utf-8")
                title = sidecar["lang"] + (" (automatic)" if sidecar["automatic"] else "")
                tracks.append((sidecar["lang"], title, vtt))
            embed.embed_subtitles(path, self.container, tracks)


def prepare(doc: dict, info: dict, plan, start: float, end: float, out_path: str) -> Extras:
    """Fetch what the clip ``doc`` carries besides its streams (``plan``: its
    :class:`~src.media.choice.FetchPlan`; ``start``/``end``: seconds of the video;
    ``out_path``: the clip's final path) and write its subtitle files beside it. Returns the
    :class:`Extras` for ``fetch_segment``'s ``on_cut``. Never raises for a source's answer
    (only for a full disk or the like)."""
    langs = list(doc.get("subtitles") or [])
    mode = doc.get("subtitles_mode") or default_mode(doc.get("format_preference") or "mp4")
    extras = Extras(plan.container, mode == "embed", _tags(doc, info, start, end))
    audio = plan.container in AUDIO_FORMATS
    if not langs and not audio:
        return extras
    deadline = time.monotonic() + FETCH_SECONDS
    offered = tracks_of(info)
    with guard.session() as session:
        if audio:
            extras.cover = cover.fetch_cover(info, session, deadline)
        for lang in langs[:MAX_LANGUAGES]:
            if lang not in offered:
                extras.errors[lang] = "not offered for this video"
                continue
            entry, automatic = offered[lang]
            try:
                cues = subtitles.segment_cues(entry, start, end, session, deadline)
            except MediaError as exc:
                log.warning("video %s: subtitles %s left out: %s", doc["_id"], lang, exc.code)
                extras.errors[lang] = exc.message
                continue
            path = _write(out_path, lang, subtitles.to_webvtt(cues))
            extras.sidecars.append({"lang": lang, "automatic": automatic, "path": path,
                                    "cues": len(cues), "_cues": cues})
    return extras


def _write(out_path: str, lang: str, text: str) -> str:
    """``{clip}.{lang}.vtt`` beside ``out_path``, written to a temporary name first."""
    path = f"{out_path.rsplit('.', 1)[0]}.{lang}.vtt"
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".", suffix=".vtt.part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _tags(doc: dict, info: dict, start: float, end: float) -> dict:
    """An audio clip's title/artist/comment: the video's title and channel; the comment names
    the segment and the page (and the saver's message, if any)."""
    comment = f"Clip {hms(start)}–{hms(end)} of {info.get('webpage_url') or doc.get('url')}"
    if doc.get("additional_message"):
        comment += f" — {doc['additional_message']}"
    return {"title": info.get("title"), "artist": info.get("channel") or info.get("uploader"),
            "comment": comment}
