"""Parsing a DASH MPD (ISO/IEC 23009-1) into yt-dlp-shaped formats, no network: the half of
:mod:`src.media.mpd` (our reader for manifests yt-dlp cannot read) that reads the document.

Read: ``BaseURL`` at MPD, Period, AdaptationSet and Representation level, each relative to the
one above (§5.6.4); ``SegmentTemplate`` with or without ``SegmentTimeline`` and the identifiers
``$RepresentationID$ $Number$ $Time$ $Bandwidth$`` with ``%0Nd`` widths (§5.3.9.4.4);
``SegmentList`` (§5.3.9.3); segment attributes inherited from the levels above (§5.3.9.1);
``ContentProtection`` → ``has_drm``; several Periods (§5.3.2): a Representation's segments are
concatenated across Periods whose AdaptationSet matches (id, contentType, codecs, height), at the
times Period@start (or the running Period durations) give. A later Period's Initialization
Segment is kept in the list as a mid-list entry without ``duration`` (as yt-dlp's
``_merge_mpd_periods`` does) unless it is the same bytes and the media timeline runs on: two
Periods cut separately restart their ``tfdt`` at 0, so one local file cannot hold both.

Hostile manifests: the document is capped at :data:`src.media.mpd.MAX_MPD_BYTES`, parsed with
``defusedxml`` and no DTD (entity bombs and external entities are refused before any expansion or
fetch), the
segment count of the whole document is computed before any list is built (:func:`check_size`:
at most :data:`MAX_DOCUMENT_SEGMENTS`, and :data:`src.media.fragments.MAX_FRAGMENTS` per
Representation and Period); anything unusable is MediaError(FORMAT_UNAVAILABLE).
"""
from __future__ import annotations

import math
import re
import urllib.parse
from typing import Optional

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from yt_dlp.utils import mimetype2ext, parse_codecs, parse_duration

from src.media.errors import FORMAT_UNAVAILABLE, MediaError
from src.media.fragments import MAX_FRAGMENTS, PROTOCOL

_EXTS = {"video/mp4": "mp4", "audio/mp4": "m4a", "video/webm": "webm", "audio/webm": "webm"}
_IDENTIFIER = re.compile(r"\$(?:(RepresentationID|Number|Bandwidth|Time)(%0?\d*[diuxX])?)?\$")
_KINDS = ("SegmentBase", "SegmentList", "SegmentTemplate")
#: Widest ``%0Nd`` a template may ask for (§5.3.9.4.4 allows any; 32 digits is past any count).
MAX_WIDTH = 32
_WIDTH = re.compile(r"\$(?:RepresentationID|Number|Bandwidth|Time)%0?(\d+)[diuxX]\$")


class NotAnMPD(MediaError):
    """The document is not an MPD at all (the caller keeps yt-dlp's own error)."""


def bad(message: str) -> MediaError:
    return MediaError(FORMAT_UNAVAILABLE, f"The DASH manifest could not be read: {message}.")


def looks_like_mpd(data: bytes) -> bool:
    """True when the document's first 4 KB hold an ``<MPD`` start tag (any namespace prefix)."""
    return re.search(rb"<(?:\w+:)?MPD[\s>]", data[:4096]) is not None

def root_of(data: bytes):
    """The MPD element of ``data`` (defusedxml: no DTD, entities or external references) and
    ``q(name)``, the element name in its namespace. Raises MediaError(FORMAT_UNAVAILABLE)."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True,
                                 forbid_external=True)
    except DefusedXmlException:
        raise bad("it declares a DTD or entities") from None
    except SyntaxError:  # ParseError
        raise bad("it is not well-formed XML") from None
    ns = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    q = (lambda name: f"{{{ns}}}{name}") if ns else (lambda name: name)  # noqa: E731
    if root.tag != q("MPD"):
        raise bad("its root is not MPD")
    return root, q


def parse(data: bytes, url: str) -> dict:
    """Parse the MPD bytes ``data`` fetched from ``url`` (no network). Formats carry the media
    segments per Period in ``_periods`` (``[(base URL, init, [{"url", "t", "d", "timescale",
    "offset", "byte_range", "index"}, ...]), ...]``, dropped by :func:`src.media.mpd.extract`)
    besides ``fragments``. Raises MediaError(FORMAT_UNAVAILABLE)."""
    if not looks_like_mpd(data):
        raise NotAnMPD(FORMAT_UNAVAILABLE, "The source is not a DASH manifest.")
    root, q = root_of(data)
    if root.get("type", "static") != "static":
        raise bad("it describes a live (dynamic) presentation")
    try:
        check_size(root)
    except ValueError as exc:
        raise bad(str(exc)) from None
    total = parse_duration(root.get("mediaPresentationDuration"))
    base = base_url(root, q, url)
    formats: dict = {}
    start = 0.0
    periods = root.findall(q("Period"))
    for number, period in enumerate(periods):
        start = seconds(period.get("start"), start)
        following = seconds(periods[number + 1].get("start"), None) \
            if number + 1 < len(periods) else None
        length = seconds(period.get("duration"), None)
        end = start + length if length is not None else following if following is not None \
            else total
        _period(period, q, base_url(period, q, base), start, end, formats, url)
        start = end if end is not None else start
    if not formats:
        raise bad("it lists no audio or video Representation")
    for fmt in formats.values():
        finish(fmt)
    return {"id": _video_id(url), "title": _video_id(url), "webpage_url": url,
            "duration": total, "extractor": "mpd", "formats": list(formats.values())}


def _video_id(url: str) -> str:
    name = urllib.parse.urlsplit(url).path.rstrip("/").rpartition("/")[2]
    return name.rpartition(".")[0] or name or "manifest"


def seconds(text: Optional[str], default):
    value = parse_duration(text) if text else None
    return float(value) if value is not None and math.isfinite(value) else default


def base_url(element, q, parent: str) -> str:
    found = element.find(q("BaseURL"))
    text = (found.text or "").strip() if found is not None else ""
    return urllib.parse.urljoin(parent, text) if text else parent


def _period(period, q, base: str, start: float, end: Optional[float], formats: dict,
            manifest: str) -> None:
    """Add one Period's Representations to ``formats`` (keyed by what matches across Periods)."""
    for set_number, aset in enumerate(period.findall(q("AdaptationSet"))):
        set_base = base_url(aset, q, base)
        for rep_number, rep in enumerate(aset.findall(q("Representation"))):
            attrs = {**aset.attrib, **rep.attrib}
            mime = attrs.get("mimeType", "")
            codecs = parse_codecs(attrs.get("codecs", "")) or {}
            kind = attrs.get("contentType") or mime.partition("/")[0]
            if kind not in ("video", "audio"):
                continue
            key = (aset.get("id", str(set_number)), kind, attrs.get("codecs"),
                   attrs.get("height"), attrs.get("id", str(rep_number)))
            url = base_url(rep, q, set_base)
            fmt = formats.get(key)
            if fmt is None:
                fmt = formats[key] = _new_format(attrs, kind, codecs, mime, manifest)
            if aset.find(q("ContentProtection")) is not None \
                    or rep.find(q("ContentProtection")) is not None:
                fmt["has_drm"] = True
            init, segments = _segments(q, (period, aset, rep), attrs, url, start, end)
            fmt["_periods"].append((url, init, segments))


def _new_format(attrs: dict, kind: str, codecs: dict, mime: str, manifest: str) -> dict:
    rate = attrs.get("frameRate", "")
    num, _, den = rate.partition("/")
    try:
        fps = round(int(num) / int(den or 1), 3) if num else None
    except (ValueError, ZeroDivisionError):
        fps = None
    video = kind == "video"
    return {
        "format_id": attrs.get("id") or kind, "ext": _EXTS.get(mime) or mimetype2ext(mime),
        "width": integer(attrs.get("width")) if video else None,
        "height": integer(attrs.get("height")) if video else None, "fps": fps if video else None,
        "vcodec": (codecs.get("vcodec") or "none") if video else "none",
        "acodec": (codecs.get("acodec") or "none") if not video else "none",
        "tbr": (integer(attrs.get("bandwidth")) or 0) / 1000 or None,
        "asr": integer(attrs.get("audioSamplingRate")), "format_note": f"DASH {kind}",
        "manifest_url": manifest, "_periods": [],
    }


def integer(text) -> Optional[int]:
    """An attribute's integer; None when absent or not one; ``bad`` when ≥ 2⁶³ (no MPD value
    is that large; Python would carry it into float arithmetic that overflows)."""
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    if value is not None and abs(value) >= 2 ** 63:
        raise bad("a number in it is out of range")
    return value


def _segments(q, levels: tuple, attrs: dict, base: str, start: float, end: Optional[float]):
    """``(init, segments)`` of one Representation in one Period; ``init`` None and segments
    None for a single-segment Representation (SegmentBase or nothing)."""
    kind = next((k for lv in levels[::-1] for k in _KINDS if lv.find(q(k)) is not None), None)
    if kind in (None, "SegmentBase"):
        return None, None
    nodes = [lv.find(q(kind)) for lv in levels if lv.find(q(kind)) is not None]
    seg = {key: value for node in nodes for key, value in node.attrib.items()}
    child = lambda name: next((n.find(q(name)) for n in reversed(nodes)  # noqa: E731
                               if n.find(q(name)) is not None), None)
    timescale = integer(seg.get("timescale")) or 1
    pto = integer(seg.get("presentationTimeOffset")) or 0
    first_number = integer(seg.get("startNumber"))
    first_number = 1 if first_number is None else first_number
    nominal = integer(seg.get("duration"))
    if timescale <= 0 or (nominal is not None and nominal <= 0):
        raise bad("a segment timescale or duration is not positive")
    values = {"RepresentationID": attrs.get("id", ""), "Bandwidth": integer(attrs.get("bandwidth"))}
    source = child("Initialization")
    init: Optional[dict] = None
    if kind == "SegmentTemplate" and seg.get("initialization"):
        init = {"url": urllib.parse.urljoin(base, fill(seg["initialization"], values))}
    elif source is not None:
        init = {"url": urllib.parse.urljoin(base, source.get("sourceURL") or "")}
        if source.get("range"):
            init["byte_range"] = _range(source.get("range"))
    offset = start - pto / timescale  # presentation seconds = offset + t / timescale
    times = timeline_times(child("SegmentTimeline"), q, nominal, timescale, pto, start, end,
                      len(nodes[-1].findall(q("SegmentURL"))) if kind == "SegmentList" else None)
    segments = []
    if kind == "SegmentList":
        entries = nodes[-1].findall(q("SegmentURL"))
        for entry, (t, d) in zip(entries, times):
            segment = {"url": urllib.parse.urljoin(base, entry.get("media") or ""),
                       "t": t, "d": d, "timescale": timescale, "offset": offset}
            if entry.get("mediaRange"):
                segment["byte_range"] = _range(entry.get("mediaRange"))
            if entry.get("indexRange"):
                segment["index"] = _range(entry.get("indexRange"))
            segments.append(segment)
    else:
        media = seg.get("media")
        if not media:
            raise bad("a SegmentTemplate has no media template")
        for number, (t, d) in enumerate(times, first_number):
            path = fill(media, {**values, "Number": number, "Time": t})
            segments.append({"url": urllib.parse.urljoin(base, path), "t": t, "d": d,
                             "timescale": timescale, "offset": offset})
    return init, segments


def fill(template: str, values: dict) -> str:
    """Substitute ``$Identifier$`` / ``$Identifier%0Nd$`` and ``$$`` (§5.3.9.4.4, Table 16)."""
    def one(match):
        if match[1] is None:
            return "$"
        value = values.get(match[1])
        if value is None:
            raise bad(f"the template names ${match[1]}$ without a value")
        return match[2] % value if match[2] else str(value)

    return _IDENTIFIER.sub(one, template)


def _range(text: str) -> dict:
    first_text, _, last_text = (text or "").partition("-")
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:
        raise bad(f"a byte range {text[:40]!r} is malformed") from None
    if not 0 <= first <= last:
        raise bad("a byte range is empty")
    return {"start": first, "end": last + 1}


def timeline_times(timeline, q, nominal, timescale: int, pto: int, start: float,
              end: Optional[float], listed: Optional[int]) -> list:
    """``[(t, d), ...]`` media times in ``timescale`` units: from ``SegmentTimeline`` (§5.3.9.6:
    ``S@t`` optional, ``S@r`` repeats, ``-1`` up to the next ``S@t`` or the Period end), else
    ``@duration`` × the segments listed (SegmentList) or × ceil(Period length / duration).
    The count is checked against :data:`MAX_FRAGMENTS` before the list is built."""
    if timeline is not None:
        items = []
        for s in timeline.findall(q("S")):
            t, d, r = integer(s.get("t")), integer(s.get("d")), integer(s.get("r")) or 0
            if d is None or d <= 0 or r < -1:
                raise bad("a SegmentTimeline entry has no positive duration")
            items.append((t, d, r))
        count, times, clock = 0, [], pto
        for number, (t, d, r) in enumerate(items):
            clock = t if t is not None else clock
            if r == -1:
                stop: Optional[float] = items[number + 1][0] if number + 1 < len(items) \
                    else None
                if stop is None and end is not None:
                    stop = pto + (end - start) * timescale
                r = max(0, math.ceil((stop - clock) / d) - 1) if stop is not None else 0
            count += r + 1
            if count > MAX_FRAGMENTS:
                raise bad(f"it lists more than {MAX_FRAGMENTS} segments")
            for _ in range(r + 1):
                times.append((clock, d))
                clock += d
        return times
    if nominal is None:
        if listed == 1:
            length = (end - start) if end is not None else None
            return [(pto, round(length * timescale))] if length else [(pto, None)]
        raise bad("segments have neither a duration nor a SegmentTimeline")
    if listed is None:
        if end is None:
            raise bad("neither the Period nor the presentation has a duration")
        listed = math.ceil((end - start) * timescale / nominal - 1e-9)
    if listed > MAX_FRAGMENTS:
        raise bad(f"it lists more than {MAX_FRAGMENTS} segments")
    return [(pto + i * nominal, nominal) for i in range(listed)]


def finish(fmt: dict, durations: bool = True) -> None:
    """Set ``url``, ``protocol``, ``fragment_base_url`` and ``fragments`` from ``_periods``
    (module docstring); ``durations=False`` — or a Representation with holes
    (:func:`_has_holes`) — leaves the media entries without ``duration`` (not planned)."""
    periods = fmt["_periods"]
    if len(periods) == 1 and periods[0][2] is None:  # one file: the ranged path reads it
        url = periods[0][0]
        fmt.update(url=url, protocol=urllib.parse.urlsplit(url).scheme or "https")
        return
    fmt.update(url=fmt["manifest_url"], protocol=PROTOCOL, fragment_base_url=periods[0][0],
               fragments=[])
    if any(segments is None for _, _, segments in periods):
        return  # a single-file Representation in one of several Periods: nothing to join
    flat = [seg for _, _, segments in periods for seg in segments]
    starts = [seg["offset"] + seg["t"] / seg["timescale"] for seg in flat]
    if durations and _has_holes(flat, starts):
        durations = False  # running sums of durations would place later segments too early
    out = fmt["fragments"]
    if periods[0][1]:
        out.append(dict(periods[0][1]))
    index = 0
    for number, (_, init, segments) in enumerate(periods):
        if number and init and segments and not _runs_on(periods[number - 1], init, segments):
            out.append(dict(init))
        for seg in segments:
            entry = {"url": seg["url"]}
            own = seg["d"] / seg["timescale"] if seg["d"] else None
            gap = starts[index + 1] - starts[index] if index + 1 < len(flat) else None
            duration = gap if gap and own and 0 < gap <= 2 * own else own
            if durations and duration:
                entry["duration"] = duration
            if "byte_range" in seg:
                entry["byte_range"] = dict(seg["byte_range"])
            out.append(entry)
            index += 1


def _has_holes(flat: list, starts: list) -> bool:
    """True when the segments do not cover the presentation from its start without gaps of
    more than two of their own durations (a Representation missing from a Period, or one that
    begins later): their start times are not the running sums the fragment path uses."""
    owns = [seg["d"] / seg["timescale"] if seg["d"] else 0.0 for seg in flat]
    if not flat or starts[0] > 2 * max(owns[0], 1e-3):
        return bool(flat)
    return any(later - start > 2 * max(own, 1e-3)
               for start, later, own in zip(starts, starts[1:], owns))


def _runs_on(previous: tuple, init: dict, segments: list) -> bool:
    """True when a Period's Representation continues the previous Period's file: the same
    Initialization Segment and a media timeline that runs on (no restart of ``tfdt``)."""
    _, before, prior = previous
    if init != before or not prior:
        return False
    last, first = prior[-1], segments[0]
    return (last["timescale"] == first["timescale"] and last["d"] is not None
            and last["t"] + last["d"] == first["t"])

#: Segments one manifest may imply in all Representations and Periods: twice what one format
#: may list (a 12-hour stream of 5 s segments in 20 Representations is ≈ 173 000).
MAX_DOCUMENT_SEGMENTS = 2 * MAX_FRAGMENTS


def check_size(doc, cap: int = MAX_DOCUMENT_SEGMENTS) -> None:
    """Raise ValueError when a parsed MPD (an ElementTree element, as yt-dlp hands it to
    ``InfoExtractor._parse_mpd_periods``, or as :func:`parse` reads it) implies more than
    ``cap`` segments in all: each ``SegmentTimeline`` (the sum of ``1 + S@r``) and each
    duration-based ``SegmentTemplate`` (the Period's length — ``Period@duration``, else
    ``mediaPresentationDuration`` — × timescale / duration, both inherited from an enclosing
    ``SegmentTemplate`` as yt-dlp and §5.3.9.1 do), times the Representations it applies to;
    also when a template asks for a number wider than :data:`MAX_WIDTH` digits (each name
    built would be that long). yt-dlp expands every one into a Python list before anything else:
    ``<S d="1"
    r="999999999999"/>`` grew one worker past 17 GB."""
    parents = {child: parent for parent in doc.iter() for child in parent}
    presentation = parse_duration(doc.get("mediaPresentationDuration")) or 0
    total: float = 0
    for element in doc.iter():
        name = element.tag.rpartition("}")[2]
        if name not in ("SegmentTimeline", "SegmentTemplate"):
            continue
        if name == "SegmentTemplate" and any(
                int(width) > MAX_WIDTH for key in ("media", "initialization")
                for width in _WIDTH.findall(element.get(key) or "")):
            raise ValueError("a SegmentTemplate asks for numbers wider than "
                             f"{MAX_WIDTH} digits")
        owner = parents.get(element)
        if name == "SegmentTimeline":
            count: float = sum(1 + max(0, integer(s.get("r")) or 0) for s in element)
            owner = parents.get(owner)  # the SegmentTemplate/SegmentList's element
        elif element.find("./*") is None or element.get("duration"):
            duration = _inherited(element, parents, "duration") or 0
            scale = _inherited(element, parents, "timescale") or 1
            period = _ancestor(element, parents, "Period")
            length = (parse_duration(period.get("duration")) if period is not None else None) \
                or presentation
            count = length * scale / duration if duration > 0 else 0
        else:
            continue
        total += count * max(1, _representations(owner))
        if total > cap:
            raise ValueError(f"the manifest implies more than {cap} segments")


def _ancestor(element, parents: dict, name: str):
    while element is not None and element.tag.rpartition("}")[2] != name:
        element = parents.get(element)
    return element


def _inherited(template, parents: dict, attribute: str) -> Optional[int]:
    """``attribute`` of ``template`` or of the ``SegmentTemplate`` of an enclosing level."""
    level = parents.get(template)
    while template is not None:
        if template.get(attribute) is not None:
            return integer(template.get(attribute))
        level = parents.get(level) if level is not None else None
        template = next((c for c in level if c.tag.rpartition("}")[2] == "SegmentTemplate"),
                        None) if level is not None else None
    return None


def _representations(owner) -> int:
    """How many Representations a segment description on ``owner`` applies to (itself, or
    all below an AdaptationSet / Period)."""
    if owner is None:
        return 1
    if owner.tag.rpartition("}")[2] == "Representation":
        return 1
    return sum(1 for e in owner.iter() if e.tag.rpartition("}")[2] == "Representation")
