"""Subtitles of a clip (src/media/subtitles.py, issue 18 item 2).

Inputs not made by our writer (scripts/subtitle_source.py): an SRT, its WebVTT by plain
``ffmpeg -i x.srt x.vtt``, YouTube-shaped automatic captions (WebVTT with inline word timing and
rolling lines, json3) and a json3 of manual captions. What we read is compared with ffmpeg's own
reading (ffprobe's packets: one per cue, its payload as data); what we write is read back by
ffmpeg. A DASH manifest with a WebVTT AdaptationSet goes through real yt-dlp, and the clip
5:00–5:30 gets exactly the cues of that window, shifted by −300 s.
"""
from __future__ import annotations

import html
import json
import random
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yt_dlp

from scripts.local_source import SourceServer
from scripts.subtitle_source import DEFAULT_DIR, build_subtitles, dash_with_text, ffprobe_cues
from src.media import egress, guard, subtitleparse, subtitles
from src.media.errors import FORMAT_UNAVAILABLE, SOURCE_NOT_ALLOWED, MediaError
from src.media.subtitles import Cue, best_track, parse, to_webvtt, window


@pytest.fixture(scope="module")
def subs() -> dict:
    return build_subtitles(DEFAULT_DIR, log=lambda *_: None)


@pytest.fixture(scope="module")
def subs_server(subs):
    with SourceServer(DEFAULT_DIR) as server:
        yield server


def _read(subs, name: str, ext: str) -> list:
    with open(subs["files"][name], "rb") as fh:
        return parse(fh.read(), ext)


def _same(cues: list, expected: list) -> None:
    """Our cues, their text as a viewer reads it (character references decoded), are ffmpeg's."""
    assert [t for c in cues for t in (c.start, c.end)] == pytest.approx(
        [t for a, b, _ in expected for t in (a, b)], abs=1e-6)
    assert [html.unescape(c.text) for c in cues] == [text for _, _, text in expected]


def test_ffmpeg_webvtt_is_read_as_ffmpeg_reads_it(subs):
    cues = _read(subs, "captions.vtt", "vtt")
    _same(cues, subs["expected"]["vtt"])
    assert len(cues) == 87 and any("\n" in c.text for c in cues)
    # ffmpeg writes "&" and "<" bare; we keep them as WebVTT character references
    assert {"Salt &amp; pepper", "Cue 3: 3 &lt; 4"} <= {c.text for c in cues}


def test_srt_is_read_as_ffmpeg_reads_it(subs):
    _same(_read(subs, "captions.srt", "srt"), subs["expected"]["srt"])


def test_window_of_5_00_to_5_30_is_those_cues_shifted_by_minus_300(subs):
    clip = window(_read(subs, "captions.vtt", "vtt"), 300, 330)
    expected = [(max(a, 300) - 300, min(b, 330) - 300, text)
                for a, b, text in subs["expected"]["vtt"] if b > 300 and a < 330]
    _same(clip, expected)
    assert clip[0].start == 0 and clip[0].end == pytest.approx(2.25)  # 297.6–302.25: clipped
    assert html.unescape(clip[0].text) == "<i>Across</i> the start\nof it"
    assert (clip[-1].start, clip[-1].end) == pytest.approx((28.3, 30.0))  # 328.3–331.55
    assert "Before the clip" not in {c.text for c in clip} and len(clip) == 6


def test_window_edges_touching_cues_and_order():
    cues = [Cue(5, 10, "ends at start"), Cue(40, 45, "starts at end"), Cue(25, 40, "b"),
            Cue(9, 11, "a", "line:0"), Cue(39.5, 50, "c"), Cue(0, 100, "all")]
    got = window(cues, 10, 40)
    assert got == [Cue(0, 1, "a", "line:0"), Cue(0, 30, "all"), Cue(15, 30, "b"),
                   Cue(29.5, 30, "c")]
    assert window(cues, 10, 10) == [] and window([], 0, 30) == []


def test_youtube_automatic_captions_show_each_line_once(subs):
    cues = _read(subs, "auto.en.vtt", "vtt")
    spoken = subs["expected"]["auto"]
    # ffmpeg reads the rolling file as it is: two cues per line, each line in three cues
    assert subs["auto_vtt_blocks"] == 2 * len(spoken)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (pytest.approx(a), pytest.approx(b), text) for a, b, text in spoken]
    assert all("<" not in c.text and "\n" not in c.text for c in cues)
    assert all(c.settings == "align:start position:0%" for c in cues)
    clip = window(cues, 300, 330)
    assert all(a.text != b.text for a, b in zip(clip, clip[1:]))
    assert clip and clip[0].start == 0 and clip[-1].end <= 30


def test_youtube_json3_automatic_captions_are_the_same_lines(subs):
    cues = _read(subs, "auto.en.json3", "json3")
    spoken = subs["expected"]["auto"]
    assert [c.text for c in cues] == [text for _, _, text in spoken]
    assert [c.start for c in cues] == pytest.approx([a for a, _, _ in spoken], abs=1e-6)
    # a line's event lasts until the next is done (rolling); it ends where the next begins
    assert [c.end for c in cues] == pytest.approx([b for _, b, _ in spoken], abs=0.0101)


def test_json3_manual_captions_are_escaped_plain_text(subs):
    cues = _read(subs, "captions.json3", "json3")
    plain = [(a, b, re.sub(r"</?[ib]>", "", text)) for a, b, text in subs["expected"]["srt"]]
    _same(cues, plain)
    assert "Salt &amp; pepper" in {c.text for c in cues}


def _ffmpeg_reads(tmp_path, text: str) -> tuple:
    """What ffmpeg reads from a WebVTT file: its cues (payload), and the same cues decoded
    (converted by ffmpeg to SRT, read by ffmpeg's SRT demuxer)."""
    vtt, srt = tmp_path / "out.vtt", tmp_path / "out.srt"
    vtt.write_text(text)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(vtt), str(srt)], check=True,
                   timeout=60)
    return ffprobe_cues(vtt), ffprobe_cues(srt)


@pytest.mark.parametrize("name,ext", [("captions.vtt", "vtt"), ("captions.json3", "json3"),
                                      ("captions.srt", "srt"), ("auto.en.vtt", "vtt")])
def test_written_webvtt_is_read_back_by_ffmpeg(subs, tmp_path, name, ext):
    clip = window(_read(subs, name, ext), 300, 330)
    text = to_webvtt(clip)
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> ")
    raw, decoded = _ffmpeg_reads(tmp_path, text)
    assert raw == [[pytest.approx(c.start, abs=5e-4), pytest.approx(c.end, abs=5e-4), c.text]
                   for c in clip]
    assert [cue[2] for cue in decoded] == [html.unescape(c.text) for c in clip]


def test_written_webvtt_cannot_be_broken_by_cue_text(tmp_path):
    hostile = [Cue(1, 2, "one\n\n\n00:00:05.000 --> 00:00:09.000\ntwo --> three\r\nfour"),
               Cue(3, 4, "   \n"), Cue(5, 6.0001, "x", "line:0\n\nNOTE"),
               Cue(7, 8, "&amp; <b>ok</b>")]
    (tmp_path / "out.vtt").write_text(to_webvtt(hostile))
    raw = ffprobe_cues(tmp_path / "out.vtt")
    assert raw == [[1, 2, "one\n00:00:05.000 --&gt; 00:00:09.000\ntwo --&gt; three\nfour"],
                   [5, 6, "x"], [7, 8, "&amp; <b>ok</b>"]]
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "out.vtt"), "-f",
                              "srt", "-"], capture_output=True, text=True, check=True).stdout
    assert "one\n00:00:05.000 --> 00:00:09.000\ntwo --> three\nfour\n\n2\n" in decoded
    assert parse(to_webvtt(hostile).encode(), "vtt")[0].text.count("\n") == 3


def test_srv_formats():
    srv1 = (b'<?xml version="1.0" encoding="utf-8" ?><transcript><text start="1.5" dur="2.25">'
            b'It&amp;#39;s Tom &amp;amp; Jerry</text><text start="4" dur="1">a\nb</text>'
            b'</transcript>')
    assert parse(srv1, "srv1") == [Cue(1.5, 3.75, "It's Tom &amp; Jerry"), Cue(4, 5, "a\nb")]
    srv3 = ('<?xml version="1.0" encoding="utf-8" ?><timedtext format="3"><head><ws id="1"/>'
            '</head><body><w t="0" id="1" wp="1" ws="1"/><p t="1000" d="4000" w="1">'
            '<s ac="0">hello</s><s t="500" ac="0"> there</s></p><p t="2500" d="3000" w="1" a="1">'
            '\n</p><p t="2510" d="2000" w="1"><s>next &lt;line&gt;</s></p></body></timedtext>')
    assert parse(srv3.encode(), "srv3") == [Cue(1, 2.51, "hello there"),
                                            Cue(2.51, 4.51, "next &lt;line&gt;")]
    srv2 = b'<timedtext><text t="250" d="1000">x</text></timedtext>'
    assert parse(srv2, "srv2") == [Cue(0.25, 1.25, "x")]


BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><timedtext><body>'
        b'<p t="0" d="1">&lol2;</p></body></timedtext>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b'<transcript><text start="0" dur="1">&x;</text></transcript>')


@pytest.mark.parametrize("data,ext,says", [
    (BOMB, "srv3", "not a valid srv3"), (XXE, "srv1", "not a valid srv1"),
    (b"1\n00:00:01,000 --> 00:00:02,000\nhi\n", "vtt", "no WEBVTT line"),
    (b"hello world", "srt", "no cue"), (b"[" * 100000, "json3", "not a valid json3"),
    (b'{"events": {"a": 1}}', "json3", "list of events"), (b"<html/>", "srv3", "srv file"),
    (b"WEBVTT\n", "ttml", "not supported"), (b"WEBVTT\n", None, "not supported"),
    (b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n00:01.000 --> 00:02.000\nx",
     "vtt", "X-TIMESTAMP-MAP"),
    (b"WEBVTT\n\n00:01.000 --> 00:02.000\n" + b"x" * 5000, "vtt", "longer than 4096"),
    (b'{"events":[{"tStartMs":"1e9999","dDurationMs":1,"segs":[{"utf8":"x"}]}]}', "json3",
     "not a valid json3"),
])
def test_hostile_inputs_are_clear_errors(data, ext, says):
    with pytest.raises(MediaError) as caught:
        parse(data, ext)
    assert caught.value.code == FORMAT_UNAVAILABLE and says in caught.value.message


def test_limits(monkeypatch):
    with pytest.raises(MediaError, match="larger than 8 MB"):
        parse(b"WEBVTT\n\n" + b" " * subtitles.MAX_BYTES, "vtt")
    monkeypatch.setattr(subtitleparse, "MAX_CUES", 10)
    many = "WEBVTT\n\n" + "".join(f"00:{n:02d}.000 --> 00:{n:02d}.500\nc\n\n" for n in range(20))
    with pytest.raises(MediaError, match="more than 10 cues"):
        parse(many.encode(), "vtt")


def test_no_quadratic_work_on_long_lines():
    """A timing line of 1 MB of spaces inside its settings: a lazy regex took 94 s for 200 kB
    (hours for this, holding the GIL: hence a process); the parser refuses the cue at once."""
    code = ("from src.media.subtitles import parse, MediaError\n"
            "data = b'WEBVTT\\n\\n00:01.000 --> 00:02.000 a' + b' ' * 1_000_000 + b'b\\nx\\n'\n"
            "try:\n    parse(data, 'vtt')\nexcept MediaError as exc:\n    print(exc.message)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=str(DEFAULT_DIR.parent.parent))
    assert "longer than 4096 characters" in done.stdout, done.stderr


def test_bad_times_drop_the_cue_not_the_file():
    data = ("WEBVTT\nX-TIMESTAMP-MAP=LOCAL:00:00:00.000,MPEGTS:0\n\n"
            "00:05.000 --> 00:04.000\ninverted\n\n00:01.000 --> 00:01.000\nempty\n\n"
            "999999999:00:00.000 --> 999999999:00:01.000\nhuge\n\n"
            "00:61.000 --> 00:62.000\nbad seconds\n\n1:00.000 --> 2\nbad\n\nNOTE x --> y\n\n"
            "id\n00:02.000 --> 00:03.000 line:0\nkept\n")
    assert parse(data.encode(), "vtt") == [Cue(2, 3, "kept", "line:0")]
    srt = "1\n00:00:05,000 --> 00:00:04,000\ninverted\n\n2\n00:00:01,5 --> 00:00:02,25\nok\n"
    assert parse(srt.encode(), "srt") == [Cue(1.5, 2.25, "ok")]


def test_fuzz_never_raises_anything_but_media_error(subs):
    rng = random.Random(7)
    samples = [open(path, "rb").read() for path in subs["files"].values()]
    for n in range(400):
        ext = subtitles.PREFERENCE[n % len(subtitles.PREFERENCE)]
        if n % 2:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            data = bytearray(samples[n % len(samples)][:rng.randrange(4000)])
            for _ in range(rng.randrange(5)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            cues = parse(bytes(data), ext)
        except MediaError as exc:
            assert exc.code == FORMAT_UNAVAILABLE
            continue
        assert all(0 <= c.start < c.end and c.text for c in cues)
        to_webvtt(subtitles.flatten(window(cues, 1, 2)))


YOUTUBE = [{"ext": ext, "url": f"https://www.youtube.com/api/timedtext?v=x&fmt={ext}",
            "name": "English"} for ext in ("json3", "srv1", "srv2", "srv3", "ttml", "srt", "vtt")]


def test_best_track():
    assert best_track(YOUTUBE)["ext"] == "vtt"
    assert best_track([e for e in YOUTUBE if e["ext"] != "vtt"])["ext"] == "json3"
    assert best_track([e for e in YOUTUBE if e["ext"] in ("ttml", "srt")])["ext"] == "srt"
    hls = {"ext": "vtt", "url": "https://cdn.example/subs.m3u8", "protocol": "m3u8_native"}
    dash = {"ext": "vtt", "url": "https://cdn.example/s/", "protocol": "http_dash_segments"}
    assert best_track([hls, dash, {"ext": "vtt", "url": "file:///etc/passwd"},
                       {"ext": "ttml", "url": "https://x/t"}, "junk"]) is None
    assert best_track(None) is None and best_track([]) is None


class _Redirect(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.2:9/captions.vtt")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirector():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/captions.vtt"
    server.shutdown()
    server.server_close()


def test_fetch_through_the_guard(subs, subs_server, redirector, monkeypatch):
    policy = egress.Policy([f"127.0.0.1:{subs_server.base_url.rsplit(':', 1)[1]}"])
    deadline = time.monotonic() + 30
    with guard.session(policy) as session:
        data = subtitles.fetch(subs_server.url("captions.vtt"), {}, session, deadline)
        assert data == open(subs["files"]["captions.vtt"], "rb").read()
        with pytest.raises(MediaError) as caught:  # refused by name, never connected
            subtitles.fetch(redirector, {}, session, deadline)
        assert caught.value.code == SOURCE_NOT_ALLOWED
        monkeypatch.setattr(subtitles, "MAX_BYTES", 1000)
        with pytest.raises(MediaError, match="subtitles could not be read: the file is larger"):
            subtitles.fetch(subs_server.url("captions.vtt"), {}, session, deadline)
    with guard.session(egress.Policy(["127.0.0.1:*"])) as session:
        with pytest.raises(MediaError) as caught:  # the redirect leaves the policy
            subtitles.fetch(redirector, {}, session, deadline)
        assert caught.value.code == SOURCE_NOT_ALLOWED and "127.0.0.2" in caught.value.message


@pytest.mark.usefixtures("local_egress")
def test_dash_text_track_through_yt_dlp_gives_the_clips_cues(subs, subs_server, source_server):
    from src.media.source import extract_info

    dash_with_text(DEFAULT_DIR, source_server.base_url)
    info = extract_info(subs_server.url("dash_text.mpd"))
    assert sorted(f.get("height") for f in info["formats"] if f.get("height")) == [480, 720]
    tracks = info["subtitles"]["en"]
    assert [(t["url"], t["ext"]) for t in tracks] == [(subs_server.url("captions.vtt"), "vtt")]
    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True, "cachedir": False}) as ydl:
        plain = ydl.extract_info(subs_server.url("dash_text.mpd"), download=False)
    assert [(t["url"], t["ext"]) for t in plain["subtitles"]["en"]] == [
        (subs_server.url("captions.vtt"), "vtt")]
    entry = best_track(tracks)
    with guard.session() as session:
        clip = subtitles.segment_cues(entry, 300, 330, session, time.monotonic() + 30)
    expected = [(max(a, 300) - 300, min(b, 330) - 300, text)
                for a, b, text in subs["expected"]["vtt"] if b > 300 and a < 330]
    _same(clip, expected)
    json.dumps([c.__dict__ for c in clip])  # plain data, for a job's state


def _packets(path, stream: str = "s") -> list:
    """``[(start, end, data bytes)]`` of a file's subtitle packets, as ffprobe reads them."""
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", stream,
                          "-show_packets", "-show_data", str(path)], capture_output=True,
                         check=True, timeout=60).stdout
    found = []
    for packet in json.loads(out)["packets"]:
        hexdump = "".join(line[10:50] for line in packet.get("data", "").split("\n") if line)
        start = float(packet["pts_time"])
        found.append((start, start + float(packet["duration_time"]),
                      bytes.fromhex(hexdump.replace(" ", ""))))
    return found


def test_clip_of_5_00_to_5_30_embeds_those_cues(subs, local_sources, tmp_path):
    """What the job does with our WebVTT: ffmpeg embeds it as mov_text into the MP4 clip (its
    samples: 2-byte length, text, style boxes; empty samples fill the gaps) and copies it into
    a WebM (the cue text exactly as written)."""
    clip = window(_read(subs, "captions.vtt", "vtt"), 300, 330)
    (tmp_path / "clip.vtt").write_text(to_webvtt(clip))
    mp4, webm = tmp_path / "clip.mp4", tmp_path / "subs.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "300", "-t", "30", "-i", local_sources["mp4"],
                    "-i", str(tmp_path / "clip.vtt"), "-map", "0", "-map", "1", "-c", "copy",
                    "-c:s", "mov_text", str(mp4)], check=True, timeout=60)
    samples = [(a, b, data[2:2 + int.from_bytes(data[:2], "big")].decode())
               for a, b, data in _packets(mp4)]
    shown = [(a, b, text) for a, b, text in samples if text]
    expected = [(max(a, 300) - 300, min(b, 330) - 300, html.unescape(re.sub("</?[ib]>", "", t)))
                for a, b, t in subs["expected"]["vtt"] if b > 300 and a < 330]
    assert [t for cue in shown for t in cue[:2]] == pytest.approx(
        [t for cue in expected for t in cue[:2]], abs=1e-3)
    assert [text for _, _, text in shown] == [text for _, _, text in expected]
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "clip.vtt"), "-c:s", "copy",
                    str(webm)], check=True, timeout=60)
    assert [data.decode() for _, _, data in _packets(webm)] == [c.text for c in clip]


def test_flatten_keeps_overlapping_cues_visible_in_mov_text(tmp_path):
    """ffmpeg's mov_text shows one sample at a time: A (1–5 s) under B (2–3 s) would lose its
    3–5 s; flattened, each moment shows what the WebVTT shows."""
    cues = [Cue(1, 5, "A", "line:0"), Cue(2, 3, "B"), Cue(5, 6, "A"), Cue(7, 8, "C")]
    flat = subtitles.flatten(cues)
    assert flat == [Cue(1, 2, "A", "line:0"), Cue(2, 3, "A\nB", "line:0"),
                    Cue(3, 6, "A", "line:0"), Cue(7, 8, "C")]
    for given, shown in ((cues, [(1, 2, "A"), (2, 3, "B"), (5, 6, "A"), (7, 8, "C")]),  # 3–5?
                         (flat, [(1, 2, "A"), (2, 3, "A\nB"), (3, 6, "A"), (7, 8, "C")])):
        (tmp_path / "in.vtt").write_text(to_webvtt(given))
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "in.vtt"), "-c:s",
                        "mov_text", str(tmp_path / "out.mp4")], check=True, timeout=60)
        samples = [(a, b, data[2:2 + int.from_bytes(data[:2], "big")].decode())
                   for a, b, data in _packets(tmp_path / "out.mp4")]
        got = [(round(a, 3), round(b, 3), text) for a, b, text in samples if text]
        assert got == shown
    assert subtitles.flatten([]) == []
