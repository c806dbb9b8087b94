"""Reading subtitle files into cues (issue 18, item 2): WebVTT, YouTube's json3 and
srv1/2/3, SRT — the parsers behind :func:`src.media.subtitles.parse` (whose module docstring
gives the rules: the W3C WebVTT parser algorithm, X-TIMESTAMP-MAP, rolling automatic captions,
escaping, bounds). Every reader raises only MediaError(FORMAT_UNAVAILABLE).
"""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Optional

import defusedxml.ElementTree as SafeET

from src.media.errors import FORMAT_UNAVAILABLE, MediaError

MAX_BYTES = 8 * 1024 * 1024
MAX_CUES = 100_000
MAX_CUE_CHARS = 4096
#: Latest end of a cue (seconds, 1000 days): a later one (NaN, infinity) drops the cue.
MAX_SECONDS = 86_400_000.0
_VTT_TS = r"(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})"  # webvtt1 §4.2.1 (1-digit hours seen)
#: Greedy settings, stripped after: a lazy ``(.*?)[ \t]*`` is quadratic on a line of spaces.
_VTT_TIMING = re.compile(rf"[ \t]*{_VTT_TS}[ \t]*-->[ \t]*{_VTT_TS}(?:[ \t]+(.*))?")
_SRT_TS = r"(\d{1,9}):([0-5]?\d):([0-5]?\d)[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"[ \t]*{_SRT_TS}[ \t]*-->[ \t]*{_SRT_TS}(?:[ \t].*)?")
_INLINE_TS = re.compile(r"<(?:\d{1,9}:)?\d{2}:\d{2}\.\d{3}>")
_C_TAG = re.compile(r"</?c(?:\.[^<>\s]*)?>")
_TSMAP = re.compile(rf"X-TIMESTAMP-MAP=(?=.*LOCAL:{_VTT_TS})(?=.*MPEGTS:(\d{{1,20}}))")
_SRT_KEEP = re.compile(r"(</?[ibu]>)", re.IGNORECASE)  # kept, as WebVTT has them
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
#: ``&`` that starts no character reference, ``<`` that starts no tag (webvtt1 §4.2.2): ffmpeg
#: writes them bare (``3 < 4`` from an SRT) and then reads ``< 4`` as a tag and drops it.
_LONE = re.compile(r"&(?!(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);)|<(?![a-zA-Z/0-9])")


@dataclass(frozen=True)
class Cue:
    """One cue: ``start``/``end`` in seconds (end > start), ``text`` WebVTT cue text (lines
    joined with ``"\\n"``, no empty line), ``settings`` WebVTT cue settings (``align:start``)."""

    start: float
    end: float
    text: str
    settings: str = ""


def bad(reason: str) -> MediaError:
    """MediaError(FORMAT_UNAVAILABLE) saying the subtitles could not be read and why."""
    return MediaError(FORMAT_UNAVAILABLE, f"The subtitles could not be read: {reason}.")


def parse(data: bytes, ext: str) -> list:
    """The cues of a subtitle file, sorted by start: ``data`` its bytes, ``ext`` yt-dlp's
    ``ext`` (one of :data:`PREFERENCE`). Raises MediaError(FORMAT_UNAVAILABLE) for anything it
    cannot read, an unknown ``ext``, more than MAX_BYTES or MAX_CUES, a cue over
    MAX_CUE_CHARS, a non-identity X-TIMESTAMP-MAP, DTDs/entities in XML — never another
    exception."""
    readers = {"vtt": _vtt, "json3": _json3, "srv1": _srv, "srv2": _srv, "srv3": _srv,
               "srt": _srt}
    if not isinstance(ext, str) or ext not in readers:
        raise bad(f"the format {str(ext)[:20]!r} is not supported")
    if len(data) > MAX_BYTES:
        raise bad(f"the file is larger than {MAX_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8", errors="replace").lstrip("\ufeff").replace("\0", "\ufffd")
        cues = readers[ext](re.sub(r"\r\n?", "\n", text))
    except MediaError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError,
            RecursionError, SyntaxError) as exc:  # ET.ParseError is a SyntaxError
        raise bad(f"this is not a valid {ext} file ({type(exc).__name__})") from None
    if len(cues) > MAX_CUES:
        raise bad(f"more than {MAX_CUES} cues")
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def _seconds(hours, minutes, seconds, fraction) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + float(f"0.{fraction}")


def _cue(start: float, end: float, lines, settings: str = "") -> Optional[Cue]:
    """A cue of the non-empty ``lines`` (None when empty or end ≤ start); bounded."""
    text = "\n".join(line for line in lines if line.strip())
    if len(text) + len(settings) > MAX_CUE_CHARS:
        raise bad(f"a cue is longer than {MAX_CUE_CHARS} characters")
    ok = text and 0 <= start < end <= MAX_SECONDS  # also False for NaN
    return Cue(start, end, text, settings) if ok else None


def _vtt(text: str) -> list:
    lines = text.split("\n")
    if not re.fullmatch(r"WEBVTT(?:[ \t].*)?", lines[0]):
        raise bad("this is not a WebVTT file (no WEBVTT line)")
    i = 1
    while i < len(lines) and lines[i] and "-->" not in lines[i]:  # the header (§6.1)
        tsmap = _TSMAP.match(lines[i])
        if tsmap and abs(int(tsmap[5]) / 90000 - _seconds(*tsmap.groups()[:4])) > 0.0005:
            raise bad("WebVTT timed for an HLS stream (X-TIMESTAMP-MAP) is not supported")
        i += 1
    blocks: list = []
    while i < len(lines):  # "collect a block" (§6.1): "-->" on its 1st or 2nd line → a cue
        if not lines[i]:
            i += 1
            continue
        count, seen, timing, payload = 0, False, None, list[str]()
        while i < len(lines) and lines[i]:
            count += 1
            if "-->" in lines[i]:
                if seen or count > 2:
                    break  # this line starts the next block
                seen, timing, payload = True, _VTT_TIMING.fullmatch(lines[i]), []
            else:
                payload.append(lines[i])  # before the timing line: the cue identifier
            i += 1
        if timing:
            blocks.append((timing, payload))
    rolling = any(_INLINE_TS.search(line) for _, payload in blocks for line in payload)
    cues, previous = list[Cue](), list[str]()
    for timing, payload in blocks:
        start, end = _seconds(*timing.groups()[:4]), _seconds(*timing.groups()[4:8])
        if rolling:  # YouTube automatic captions (module docstring)
            payload = [_C_TAG.sub("", _INLINE_TS.sub("", line)).strip() for line in payload]
            payload = [line for line in payload if line]
            repeated = next((k for k in range(min(len(payload), len(previous)), 0, -1)
                             if payload[:k] == previous[-k:]), 0)
            previous, payload = payload, payload[repeated:]
        payload = [_LONE.sub(lambda m: "&amp;" if m[0] == "&" else "&lt;", line)
                   for line in payload]
        cue = _cue(start, end, payload, (timing[9] or "").strip())
        if cue:
            cues.append(cue)
    return cues


def _srt(text: str) -> list:
    cues = []
    for block in re.split(r"\n[ \t]*\n", text.strip("\n")):
        lines = block.split("\n")
        at = next((n for n, line in enumerate(lines[:2]) if "-->" in line), None)
        timing = _SRT_TIMING.fullmatch(lines[at]) if at is not None else None
        if timing is None:
            continue  # not a cue: skipped, as ffmpeg's srt demuxer does
        payload = ["".join(part.lower() if n % 2 else html.escape(_TAG.sub("", part), False)
                           for n, part in enumerate(_SRT_KEEP.split(line)))
                   for line in lines[(at or 0) + 1:]]
        cue = _cue(_seconds(*timing.groups()[:4]), _seconds(*timing.groups()[4:]), payload)
        if cue:
            cues.append(cue)
    if text.strip() and not cues:
        raise bad("this is not an SRT file (no cue)")
    return cues


def _json3(text: str) -> list:
    events = json.loads(text)["events"]
    if not isinstance(events, list):
        raise bad("json3 without a list of events")
    timed = []
    for event in events:
        segs = event.get("segs") if isinstance(event, dict) else None
        if isinstance(segs, list) and "tStartMs" in event:
            words = "".join(str(seg.get("utf8", "")) for seg in segs if isinstance(seg, dict))
            start = int(event["tStartMs"]) / 1000
            timed.append((start, start + int(event.get("dDurationMs", 0)) / 1000, words,
                          event.get("wWinId")))
    return _windowed(timed)


def _srv(text: str) -> list:
    root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    if root.tag not in ("transcript", "timedtext"):
        raise bad("this is not a YouTube srv file")
    timed = []
    for node in root.iter():
        if node.tag == "text" and "start" in node.attrib:  # srv1: seconds, text escaped twice
            start = float(node.attrib["start"])
            end = start + float(node.attrib.get("dur", 0))
            timed.append((start, end, html.unescape("".join(node.itertext())), None))
        elif node.tag in ("text", "p") and "t" in node.attrib:  # srv2 / srv3: milliseconds
            start = int(node.attrib["t"]) / 1000
            end = start + int(node.attrib.get("d", 0)) / 1000
            timed.append((start, end, "".join(node.itertext()), node.attrib.get("w")))
    return _windowed(timed)


def _windowed(timed: list) -> list:
    """Cues of plain-text ``(start, end, text, window)`` events; an event ends where the next
    event with text of its window starts (rolling captions, module docstring)."""
    timed = sorted((t for t in timed if t[2].strip()), key=lambda t: t[0])
    following: dict = {}
    cues = []
    for start, end, text, window in reversed(timed):
        if window is not None and window in following and following[window] > start:
            end = min(end, following[window])
        following[window] = start
        cue = _cue(start, end, [html.escape(line.strip(), quote=False)
                                for line in text.split("\n")])
        if cue:
            cues.append(cue)
    return cues[::-1]
