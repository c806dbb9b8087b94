"""Subtitles of a clip (issue 18, item 2): pick a track of yt-dlp's info, fetch it through the
egress guard, read its cues, keep those of the segment on the clip's time base, write WebVTT
(for ffmpeg to embed, mov_text in MP4 / WebVTT in WebM, or to hand out beside the file).

Formats: yt-dlp 2026.10.26 lists json3, srv1/2/3, ttml, srt, vtt per YouTube language
(extractor/youtube/_video.py ``_SUBTITLE_FORMATS``) and vtt for a DASH/HLS text track
(extractor/common.py ``_parse_mpd_periods``). Read: all but TTML. Segmented subtitles
(``protocol`` m3u8*/http_dash_segments: HLS playlists of WebVTT pieces) are not supported.

WebVTT is read after the W3C WebVTT parser algorithm (webvtt1 §6.1) — a block with ``-->`` on
its 1st or 2nd line is a cue, a bad timing line loses that cue only — not by ``yt_dlp.webvtt``,
which re-times HLS fragments and raises at the first block outside its grammar.
X-TIMESTAMP-MAP (RFC 8216 §3.5) is honoured when it maps a time to itself; another offset is
relative to an MPEG-TS clock this file does not know, so it is refused.

:attr:`Cue.text` is WebVTT cue text (§4.2.2): markup kept; ``&``/``<`` that start no
reference/tag escaped (ffmpeg writes them bare from an SRT and then drops ``< 4`` as a tag);
json3/srv/SRT plain text escaped (SRT keeps ``<i> <b> <u>``, drops other tags such as <font>).

YouTube's automatic captions roll: each cue repeats the previous line above the one being
spoken (words timed by inline ``<00:00:01.500><c> word</c>`` tags), a 10 ms cue between shows
the finished line alone; as is, a clip shows each line twice. In a WebVTT file with inline
timestamps those and the ``<c>`` tags go, and lines repeating the end of the previous cue are
dropped (an emptied cue goes): each line shows once, while spoken. json3/srv3 roll with
overlapping events of a window: an event ends where the window's next one starts.

Bounds: MAX_BYTES, MAX_CUES, MAX_CUE_CHARS, times ≤ MAX_SECONDS; cues with end ≤ start are
dropped; whatever cannot be read is MediaError(FORMAT_UNAVAILABLE), never another exception.
"""
from __future__ import annotations

import re
import urllib.parse
from typing import Optional

from src.media import guard, rangefetch
from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.subtitleparse import MAX_BYTES, Cue, bad, parse

__all__ = ["Cue", "MAX_BYTES", "PREFERENCE", "bad", "best_track", "fetch", "flatten", "parse",
           "segment_cues", "to_webvtt", "window"]

#: Formats read, best first: WebVTT keeps markup and settings; json3 and srv3 carry
#: milliseconds and rolling windows; srv1 seconds; SRT last (no standard escaping).
PREFERENCE = ("vtt", "json3", "srv3", "srv2", "srv1", "srt")
_SEGMENTED = ("m3u8", "http_dash_segments")


def best_track(entries) -> Optional[dict]:
    """The entry to fetch among yt-dlp's entries of one language (``info["subtitles"][lang]``
    or ``info["automatic_captions"][lang]``: ``[{"ext", "url", "name"?, "protocol"?,
    "http_headers"?}, ...]``): the best ``ext`` of :data:`PREFERENCE` with an http(s) ``url``,
    not segmented (module docstring). None when no entry qualifies (or ``entries`` is not a
    list)."""
    usable = [entry for entry in entries if isinstance(entry, dict)
              and entry.get("ext") in PREFERENCE
              and urllib.parse.urlsplit(str(entry.get("url") or "")).scheme in ("http", "https")
              and not str(entry.get("protocol") or "").startswith(_SEGMENTED)
              and not urllib.parse.urlsplit(str(entry["url"])).path.endswith(".m3u8")
              ] if isinstance(entries, list) else []
    return min(usable, key=lambda entry: PREFERENCE.index(entry["ext"]), default=None)


def window(cues: list, start: float, end: float) -> list:
    """The cues that overlap the segment ``[start, end)`` (seconds of the source), on the
    clip's time base: shifted by ``-start``, clipped to ``[0, end - start]``, sorted by start.
    A cue ending exactly at ``start`` or starting exactly at ``end`` does not overlap."""
    length = end - start
    kept = [Cue(max(0.0, cue.start - start), min(length, cue.end - start), cue.text,
                cue.settings) for cue in cues if cue.end > start and cue.start < end]
    return sorted((cue for cue in kept if cue.end > cue.start), key=lambda c: (c.start, c.end))


def flatten(cues: list) -> list:
    """``cues`` without overlaps, for mov_text (3GPP TS 26.245 §5.16: one sample shows at a
    time; ffmpeg cuts an earlier cue off where a later one starts): between two successive cue
    edges, one cue of the texts of the cues shown then, in start order, joined by ``"\n"``
    (settings of the first); neighbours of the same text merge."""
    edges = sorted({t for cue in cues for t in (cue.start, cue.end)})
    waiting = sorted(cues, key=lambda cue: (cue.start, cue.end))[::-1]
    out, shown = list[Cue](), list[Cue]()
    for a, b in zip(edges, edges[1:]):
        while waiting and waiting[-1].start <= a:
            shown.append(waiting.pop())
        shown = [cue for cue in shown if cue.end >= b]  # an edge: it ends at b or later
        text = "\n".join(cue.text for cue in shown)
        if out and out[-1].end == a and out[-1].text == text:
            out[-1] = Cue(out[-1].start, b, text, out[-1].settings)
        elif shown:
            out.append(Cue(a, b, text, shown[0].settings))
    return out


def _timestamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def to_webvtt(cues: list) -> str:
    """A WebVTT file of ``cues`` (webvtt1 §4.1): ``WEBVTT``, then per cue a blank line, the
    timing line ``HH:MM:SS.mmm --> HH:MM:SS.mmm [settings]`` and its text. A text line can
    neither be empty nor hold ``-->`` (either would end the cue, §6.1): empty lines are
    dropped and ``>`` of ``-->`` is written ``&gt;``. Cues that round to zero length go."""
    out = ["WEBVTT", ""]
    for cue in cues:
        first, last = _timestamp(cue.start), _timestamp(cue.end)
        lines = [line.replace("-->", "--&gt;") for line in re.split(r"\r\n?|\n", cue.text)
                 if line.strip()]
        if lines and last > first:
            settings = cue.settings if re.fullmatch(r"[^\r\n]*", cue.settings) else ""
            settings = " " + settings if settings and "-->" not in settings else ""
            out += [f"{first} --> {last}{settings}", *lines, ""]
    return "\n".join(out)


def fetch(url: str, headers: dict, session: guard.Session, deadline: Optional[float]) -> bytes:
    """The bytes of a subtitle file at ``url`` (a :func:`best_track` entry's ``url``, with its
    ``http_headers``), at most MAX_BYTES, fetched through the guard ``session``
    (:func:`src.media.rangefetch.fetch_whole`; ``deadline``: ``time.monotonic()`` limit).
    Raises MediaError: SOURCE_NOT_ALLOWED (the URL or a redirect outside the policy, checked
    before connecting), FORMAT_UNAVAILABLE (larger than MAX_BYTES), SOURCE_HTTP_ERROR,
    FFMPEG_FAILED past the deadline (as fetch_whole)."""
    session.policy.check_url(url)
    try:
        [(data, _)] = rangefetch.fetch_whole([url], headers or {}, session, deadline, MAX_BYTES)
    except MediaError as exc:
        if exc.code == FORMAT_UNAVAILABLE:
            raise bad(f"the file is larger than {MAX_BYTES // 2**20} MB") from exc
        raise
    return data


def segment_cues(entry: dict, start: float, end: float, session: guard.Session,
                 deadline: Optional[float]) -> list:
    """:func:`fetch` + :func:`parse` + :func:`window` of a :func:`best_track` ``entry`` for
    the segment ``start``..``end`` (seconds); raises what they raise."""
    data = fetch(entry["url"], entry.get("http_headers") or {}, session, deadline)
    return window(parse(data, entry["ext"]), start, end)
