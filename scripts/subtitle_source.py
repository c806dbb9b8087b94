"""Subtitle files for the 10-minute local source (scripts/local_source.py), for tests.

Built into ``.cache/subtitles`` (served by a :class:`scripts.local_source.SourceServer` of that
folder), none by :mod:`src.media.subtitles`' own writer:

- ``captions.srt``: one cue about every 7 s over 600 s, of varying lengths, some of two lines,
  some with ``&``, ``<`` or ``<i>``/``<b>``; cues straddle 300 s and 330 s (the 5:00–5:30 clip).
- ``captions.vtt``: that SRT converted by plain ``ffmpeg -i captions.srt captions.vtt``.
- ``auto.en.vtt``: the shape of YouTube's automatic captions (``Kind: captions``/``Language:
  en`` header, ``align:start position:0%``, words timed with inline ``<…><c> word</c>`` tags,
  rolling lines: each cue repeats the previous line above the one being spoken, a 10 ms cue
  between them shows the finished line alone).
- ``auto.en.json3``: the same phrases as YouTube's json3 (a window event, word ``segs`` with
  ``tOffsetMs``, ``aAppend`` newline events, each line's event lasting until the next line is
  done); ``captions.json3``: the SRT's cues as manual json3 (text without tags).

:func:`build_subtitles` returns their paths and the expected cues, read independently of our
parser: the SRT and WebVTT files through ffprobe's packets (ffmpeg's own demuxers: one packet
per cue, its payload as data), the YouTube-shaped ones by construction (each phrase once,
while it is spoken). :func:`dash_with_text` writes the local DASH manifest plus a WebVTT
``AdaptationSet``, as yt-dlp's generic extractor reads into ``subtitles``.
"""
from __future__ import annotations

import json
import random
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from scripts.local_source import DEFAULT_CACHE as SOURCES_DIR
from scripts.local_source import MPD_NS, ROOT, build_sources, cached_build
from src.media.ffmpeg import run_ffmpeg

DEFAULT_DIR = ROOT / ".cache" / "subtitles"
RECIPE = "s1"
DURATION = 600.0
#: The cues of captions.srt around the clip's edges (300 s and 330 s); replace the regular ones
#: there.
EDGES = [(295.2, 297.5, "Before the clip"), (297.6, 302.25, "<i>Across</i> the start\nof it"),
         (302.25, 304.9, "Salt & pepper"), (324.0, 328.0, "Near the end"),
         (328.3, 331.55, "Across the <b>end</b>"), (331.6, 333.2, "After & beyond")]
WORDS = ("the bunny wakes up under a tree and sees three rodents who throw fruit at him so he "
         "builds a trap from wood vines and stones to catch them one by one").split()


def _ts(seconds: float, sep: str = ".") -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def srt_cues() -> list:
    """``[(start, end, srt text)]`` of captions.srt: every ~7 s, 1.8–5.8 s long."""
    cues = []
    for k in range(int(DURATION // 7)):
        start = 7 * k + (0.0, 0.3, 0.75, 1.1)[k % 4]
        end = start + (1.8, 3.4, 4.6, 5.8, 2.7)[k % 5]
        if any(a - 0.1 < end and start < b + 0.1 for a, b, _ in EDGES):
            continue
        text = (f"Cue {k}", f"Cue {k} & more", f"<i>Cue {k}</i>\nsecond line",
                f"Cue {k}: 3 < 4", f"<b>Cue</b> {k}")[k % 5]
        cues.append((round(start, 3), round(end, 3), text))
    return sorted(cues + EDGES)


def _phrases() -> list:
    """``[(start, end, [(time, word), ...])]``: back-to-back spoken lines of 3–7 words."""
    rng, out, t = random.Random(18), [], 0.8
    while t < DURATION - 6:
        n, length = rng.randint(3, 7), round(rng.uniform(2.0, 3.8), 3)
        words = [(round(t + length * i / n, 3), rng.choice(WORDS)) for i in range(n)]
        out.append((t, round(t + length, 3), words))
        t = round(t + length + 0.01, 3)  # the 10 ms cue between two lines
    return out


def _auto_vtt(phrases: list) -> str:
    out = ["WEBVTT", "Kind: captions", "Language: en", ""]
    previous = " "
    for start, end, words in phrases:
        timed = words[0][1] + "".join(f"<{_ts(t)}><c> {w}</c>" for t, w in words[1:])
        line = " ".join(w for _, w in words)
        out += [f"{_ts(start)} --> {_ts(end)} align:start position:0%", previous, timed, "",
                f"{_ts(end)} --> {_ts(end + 0.01)} align:start position:0%", line, " ", ""]
        previous = line
    return "\n".join(out) + "\n"


def _auto_json3(phrases: list) -> dict:
    events: list = [{"tStartMs": 0, "dDurationMs": int(DURATION * 1000), "id": 1,
                     "wpWinPosId": 1, "wsWinStyleId": 1}]
    for n, (start, end, words) in enumerate(phrases):
        shown_until = phrases[n + 1][1] if n + 1 < len(phrases) else end
        segs = [{"utf8": words[0][1], "acAsrConf": 0}] + [
            {"utf8": f" {w}", "tOffsetMs": round((t - start) * 1000), "acAsrConf": 0}
            for t, w in words[1:]]
        events.append({"tStartMs": round(start * 1000),
                       "dDurationMs": round((shown_until - start) * 1000), "wWinId": 1,
                       "segs": segs})
        if n + 1 < len(phrases):
            events.append({"tStartMs": round(end * 1000),
                           "dDurationMs": round((shown_until - end) * 1000), "wWinId": 1,
                           "aAppend": 1, "segs": [{"utf8": "\n"}]})
    return {"wireMagic": "pb3", "pens": [{}],
            "wsWinStyles": [{}, {"mhModeHint": 2, "juJustifCode": 0, "sdScrollDir": 3}],
            "wpWinPositions": [{}, {"apPoint": 6, "ahHorPos": 20, "avVerPos": 100,
                                    "rcRows": 2, "ccCols": 40}], "events": events}


def ffprobe_cues(path) -> list:
    """``[[start, end, text], ...]`` of a subtitle file as ffmpeg's demuxer reads it: one
    packet per cue (pts and duration in ms), the cue's payload as the packet's data."""
    out = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-of", "json",
                          "-show_packets", "-show_data", str(path)],
                         capture_output=True, check=True, timeout=60).stdout
    cues = []
    for packet in json.loads(out)["packets"]:
        hexdump = "".join(line[10:50] for line in packet.get("data", "").split("\n") if line)
        start = int(packet["pts"]) / 1000
        cues.append([start, start + int(packet["duration"]) / 1000,
                     bytes.fromhex(hexdump.replace(" ", "")).decode()])
    return cues


def _build(tmp: Path):
    srt = "".join(f"{n}\n{_ts(a, ',')} --> {_ts(b, ',')}\n{text}\n\n"
                  for n, (a, b, text) in enumerate(srt_cues(), 1))
    (tmp / "captions.srt").write_text(srt)
    run_ffmpeg(["-i", str(tmp / "captions.srt"), str(tmp / "captions.vtt")])
    phrases = _phrases()
    (tmp / "auto.en.vtt").write_text(_auto_vtt(phrases))
    (tmp / "auto.en.json3").write_text(json.dumps(_auto_json3(phrases)))
    manual = [{"tStartMs": round(a * 1000), "dDurationMs": round((b - a) * 1000),
               "segs": [{"utf8": re.sub(r"</?[ib]>", "", text)}]} for a, b, text in srt_cues()]
    (tmp / "captions.json3").write_text(json.dumps({"wireMagic": "pb3", "events": manual}))
    spoken = [[a, b, " ".join(w for _, w in words)] for a, b, words in phrases]
    extra = {"srt": ffprobe_cues(tmp / "captions.srt"), "vtt": ffprobe_cues(tmp / "captions.vtt"),
             "auto": spoken, "auto_vtt_blocks": len(ffprobe_cues(tmp / "auto.en.vtt"))}
    return ["captions.srt", "captions.vtt", "auto.en.vtt", "auto.en.json3", "captions.json3"], \
        extra


def build_subtitles(out_dir=DEFAULT_DIR, log=print) -> dict:
    """Build (once per :data:`RECIPE`) the files of the module docstring in ``out_dir``.

    Returns ``{"dir": str, "files": {name: path}, "expected": {"srt": ..., "vtt": ...,
    "auto": ...}, "auto_vtt_blocks": int}``: expected cues as ``[[start, end, text], ...]``
    — ``srt``/``vtt`` from ffprobe (SRT and WebVTT markup as in the file), ``auto`` the spoken
    lines (plain words, one cue each); ``auto_vtt_blocks``: cues ffmpeg reads in auto.en.vtt
    (two per line: rolling, with the 10 ms ones). Raises FFmpegError."""
    stamp = cached_build(out_dir, RECIPE, "subtitles.json", _build, log, "subtitles")
    return {"dir": str(out_dir), "files": {rel: str(Path(out_dir) / rel) for rel in stamp["files"]},
            "expected": {key: stamp[key] for key in ("srt", "vtt", "auto")},
            "auto_vtt_blocks": stamp["auto_vtt_blocks"]}


def dash_with_text(out_dir, media_base_url: str, vtt_name: str = "captions.vtt") -> str:
    """Write ``dash_text.mpd`` into ``out_dir``: the local DASH ladder's manifest
    (scripts/local_source.py) with its media at ``{media_base_url}/dash/…`` (a SourceServer of
    the sources folder) plus ``<AdaptationSet contentType="text" mimeType="text/vtt"
    lang="en">`` whose one Representation's BaseURL is ``vtt_name`` (beside the manifest).
    yt-dlp's ``_parse_mpd_periods`` lists it as ``subtitles["en"] = [{"url", "ext": "vtt"}]``.
    Returns the path."""
    ET.register_namespace("", MPD_NS)
    tree = ET.parse(build_sources(SOURCES_DIR, log=lambda *_: None)["dash"])
    ns = f"{{{MPD_NS}}}"
    for base in tree.getroot().iter(f"{ns}BaseURL"):
        base.text = f"{media_base_url.rstrip('/')}/dash/{base.text}"
    period = tree.getroot().find(f"{ns}Period")
    assert period is not None
    text = ET.SubElement(period, f"{ns}AdaptationSet", id="2", contentType="text",
                         mimeType="text/vtt", lang="en")
    rep = ET.SubElement(text, f"{ns}Representation", id="en", bandwidth="256")
    ET.SubElement(rep, f"{ns}BaseURL").text = vtt_name
    path = Path(out_dir) / "dash_text.mpd"
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return str(path)
