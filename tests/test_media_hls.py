"""HLS on the fragment path (issue 12, item 1; item 4: a test per shape). The sources are what
plain ``ffmpeg -f hls`` writes (scripts/shapes.py, docs/source-shapes.md), served by a real local
HTTP server; src/media/hls.py reads the media playlist through the egress guard and
src/media/fragments.py fetches only the segments that cover the clip, joins and cuts them.

Judged by ffmpeg and by the server: a 30 s clip at 5:00 is 30 ± 1 s of 720p (480p for the
master's other variant) H.264 + AAC; the server sent exactly the playlist, the key, the init and
the 15 segments (or byte ranges) of 300–330 s, nothing else; the packets are the packets of
ffmpeg's own cut from the keyframe at 300 s on (ffmpeg starts one GOP earlier and, measuring
``-t`` by dts, takes 2 video / 3 audio packets of the segment at 330 s). ffmpeg 5.1 cannot cut
fMP4 HLS itself (its hls demuxer loses the segment demuxer on a seek), so there the reference is
its cut of the whole rendition joined into one fragmented MP4.
"""
from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest

from scripts.shapes import DEFAULT_CACHE
from src.media import egress, fragmentcopy, fragments, hls
from src.media.choice import FetchPlan, select_formats
from src.media.errors import MediaError
from src.media.segment import fetch_segment
from src.media.source import extract_info
from tests.media_fixtures import clip_through_api
from tests.security.test_ssrf import Server, redirect, send_file
from tests.test_media_fragments import _streams

pytestmark = pytest.mark.usefixtures("local_egress")

SHAPES = {
    "hls_ts": "hls_ts/index.m3u8",
    "hls_aes": "hls_aes/index.m3u8",
    "hls_byterange": "hls_byterange/index.m3u8",
    "hls_master": "hls_master/master.m3u8",
    "hls_fmp4": "hls_fmp4/index.m3u8",
}
#: (shape, resolution asked, expected frame size)
CLIPS = [("hls_ts", "720p", (1280, 720)), ("hls_aes", "720p", (1280, 720)),
         ("hls_byterange", "720p", (1280, 720)), ("hls_fmp4", "720p", (1280, 720)),
         ("hls_master", "720p", (1280, 720)), ("hls_master", "480p", (854, 480))]


def _clip(server, out, shape, resolution="720p", start=300, end=330, progress=None):
    plan = select_formats(extract_info(server.url(SHAPES[shape])), "mp4", resolution)
    assert plan.video_protocol == "m3u8_native" and plan.video_fragments is None
    server.reset_counters()
    summary = fetch_segment(plan, start, end, out, on_progress=progress)
    return plan, summary


def _playlist(server, plan) -> tuple:
    """(served path of the media playlist, its parsed :class:`FragmentList`)."""
    path = plan.video_url[len(server.base_url) + 1:]
    return path, hls.parse((server.root / path).read_bytes(), plan.video_url)


def _expected_reads(server, plan, start=300, end=330) -> dict:
    """{served path: bytes} of exactly the playlist, key, init and covering segments."""
    path, flist = _playlist(server, plan)
    reads = {path: server.size(path)}
    chosen = fragments.pick(flist, start, end)
    items = chosen + [fragments.Fragment(flist.init_url, 0, 0)] * bool(flist.init_url)
    for item in items:
        name = item.url[len(server.base_url) + 1:]
        size = item.byte_range[1] - item.byte_range[0] if item.byte_range else server.size(name)
        reads[name] = reads.get(name, 0) + size
    for key in {f.key.url for f in chosen if f.key}:
        reads[key[len(server.base_url) + 1:]] = 16
    return reads


def _reads(server, shape) -> dict:
    folder = server.root / shape
    return {f"{shape}/{p.name}": server.bytes_served(f"{shape}/{p.name}")
            for p in folder.iterdir() if server.bytes_served(f"{shape}/{p.name}")}


@pytest.mark.slow
@pytest.mark.parametrize("shape, resolution, size", CLIPS)
def test_thirty_seconds_at_five_minutes(clean_shapes_server, tmp_path, shape, resolution, size):
    server, progress = clean_shapes_server, []
    plan, summary = _clip(server, tmp_path / "clip.mp4", shape, resolution,
                          progress=progress.append)
    assert abs(summary["duration"] - 30) <= 1, summary
    assert (summary["width"], summary["height"]) == size
    assert summary["vcodec"] == "h264" and summary["acodec"] == "aac"
    # only the covering segments (2 s each: 150..164) and what names them, each read once
    expected = _expected_reads(server, plan)
    assert _reads(server, shape) == expected
    segments = [f for f in fragments.pick(_playlist(server, plan)[1], 300, 330)]
    assert [f.start for f in segments] == list(range(300, 330, 2))
    largest = max(f.byte_range[1] - f.byte_range[0] if f.byte_range
                  else server.size(f.url[len(server.base_url) + 1:]) for f in segments)
    assert server.bytes_served() <= 1.2 * summary["size_bytes"] + 2 * largest
    percents = [p["download_progress"] for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0


def _joined_fmp4(server, tmp_path):
    """hls_fmp4's init + all 300 segments: the whole rendition as one fragmented MP4."""
    folder, joined = server.root / "hls_fmp4", tmp_path / "joined.mp4"
    with open(joined, "wb") as out:
        for name in ["init.mp4"] + [f"index{i}.m4s" for i in range(300)]:
            out.write((folder / name).read_bytes())
    return str(joined)


@pytest.mark.parametrize("shape, resolution, start", [
    (shape, resolution, 300) for shape, resolution, _ in CLIPS] + [
    ("hls_ts", "720p", 301), ("hls_byterange", "720p", 301), ("hls_fmp4", "720p", 301)])
@pytest.mark.slow
def test_packets_are_ffmpegs_cut(clean_shapes_server, tmp_path, shape, resolution, start):
    """Plain ffmpeg, no guard, the same ``-ss START -t 30`` and stream copy, reading the media
    playlist itself (AES-128 decrypted by its crypto protocol) — or, for fMP4, which its hls
    demuxer cannot seek, the whole rendition joined locally. 301 s is inside a segment."""
    server = clean_shapes_server
    plan, _ = _clip(server, tmp_path / "clip.mp4", shape, resolution, start, start + 30)
    source = _joined_fmp4(server, tmp_path) if shape == "hls_fmp4" else plan.video_url
    subprocess.run(["ffmpeg", "-v", "error", "-ss", str(start), "-t", "30", "-i", source,
                    "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "mp4",
                    str(tmp_path / "plain.mp4")], check=True)
    ours, theirs = _streams(tmp_path / "clip.mp4"), _streams(tmp_path / "plain.mp4")
    assert sorted(ours) == sorted(theirs) == [0, 1]
    for index in ours:
        _same_packets(ours[index], theirs[index])


def _same_packets(ours: list, theirs: list) -> None:
    """Our packets are ffmpeg's, in order, but for their ends. Measured: at 300 s ffmpeg starts
    one 2 s GOP earlier (it seeks to the keyframe before the target; its edit list hides it)
    while ours start at the keyframe at 300 s; at 301 s both start at that keyframe, and our
    audio 2 packets (43 ms) earlier. After our last packet ffmpeg has < 0.1 s more (its ``-t``
    is measured by dts: 1–2 B-frame-delayed video packets and 2–3 audio packets of the segment
    after the clip, which the fragment path does not fetch)."""
    a, b = [p[1:] for p in ours], [p[1:] for p in theirs]
    shift = next(shift for shift in range(-10, 100)  # theirs' index of our first packet
                 if a[max(0, -shift):len(b) - shift] == b[max(0, shift):len(a) + shift]
                 and min(len(a), len(b) - shift) > 0.9 * len(a))
    lead = sum(d for d, _, _ in (theirs[:shift] if shift >= 0 else ours[:-shift]))
    assert lead <= (2.5 if shift >= 0 else 0.05), (shift, lead)
    tail = theirs[len(ours) + shift:] if len(theirs) > len(ours) + shift else \
        ours[len(theirs) - shift:]
    assert sum(d for d, _, _ in tail) < 0.1, tail
    assert sum(d for d, _, _ in ours) >= 29.9  # (with the lead-in the edit list hides)


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["hls_ts", "hls_byterange", "hls_fmp4", "hls_aes"])
@pytest.mark.parametrize("start, end", [(700, 710), (600, 610)])
def test_past_the_end_is_segment_out_of_range(clean_shapes_server, tmp_path, shape, start, end):
    """``EXT-X-ENDLIST`` and 600 s of ``EXTINF``: nothing past 600 s, only the playlist read."""
    server = clean_shapes_server
    with pytest.raises(MediaError) as caught:
        _clip(server, tmp_path / "clip.mp4", shape, start=start, end=end)
    assert caught.value.code == "SEGMENT_OUT_OF_RANGE"
    assert _reads(server, shape) == {SHAPES[shape]: server.size(SHAPES[shape])}
    assert list(tmp_path.iterdir()) == []


def test_the_last_segments_cut_to_the_end(clean_shapes_server, tmp_path):
    """590..630 s: the last 5 segments; the audio runs on to 601.6 s in this source (the last
    segment's audio lasts 3.67 s, ffprobe), as in DASH (tests/test_media_fragments.py)."""
    _, summary = _clip(clean_shapes_server, tmp_path / "clip.mp4", "hls_ts", start=590, end=630)
    assert 9 <= summary["duration"] <= 11.7 and summary["acodec"] == "aac"


# --- a byte-range fragment list from a DASH SegmentList (the MPD parser's hand-over) --------

def _segment_list(server, representation="0", seconds=6.0) -> dict:
    """The yt-dlp-shaped format an MPD parser makes of dash_list's ``SegmentList`` (init and
    ``mediaRange``s of one ``BaseURL`` file as ``byte_range`` {start, end exclusive}); the
    video segments are 6.0 s each (docs/source-shapes.md: the MPD's 5 s is a target)."""
    ns = {"d": "urn:mpeg:dash:schema:mpd:2011"}
    root = ET.parse(server.root / "dash_list" / "manifest.mpd").getroot()
    rep = root.find(f".//d:Representation[@id='{representation}']", ns)
    name = rep.find("d:BaseURL", ns).text

    def span(text):
        first, last = map(int, text.split("-"))
        return {"start": first, "end": last + 1}

    entries = [{"path": name, "byte_range": span(rep.find(".//d:Initialization", ns).get("range"))}]
    entries += [{"path": name, "duration": seconds, "byte_range": span(seg.get("mediaRange"))}
                for seg in rep.findall(".//d:SegmentURL", ns)]
    return {"protocol": fragments.PROTOCOL, "fragment_base_url": server.url("dash_list/"),
            "fragments": entries, "url": server.url("dash_list/manifest.mpd")}


def test_byte_range_fragments_of_a_segment_list(clean_shapes_server, tmp_path):
    server = clean_shapes_server
    fmt = _segment_list(server)
    flist = fragments.from_format(fmt)
    assert flist.problem is None and flist.init_range == (0, 834) and len(flist.fragments) == 100
    plan = FetchPlan(video_url=fmt["url"], audio_url=None, video_fragments=flist,
                     video_protocol=fragments.PROTOCOL)
    summary = fetch_segment(plan, 300, 330, tmp_path / "clip.mp4")
    assert abs(summary["duration"] - 30) <= 1 and summary["height"] == 720
    chosen = fragments.pick(flist, 300, 330)
    assert [f.start for f in chosen] == [300, 306, 312, 318, 324]
    assert server.bytes_served() == 834 + sum(f.byte_range[1] - f.byte_range[0] for f in chosen)
    source = str(server.root / "dash_list" / "manifest-stream0.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "300", "-t", "30", "-i", source, "-map",
                    "0:v:0", "-c", "copy", "-f", "mp4", str(tmp_path / "plain.mp4")], check=True)
    ours, theirs = _streams(tmp_path / "clip.mp4"), _streams(tmp_path / "plain.mp4")
    payload = [(size, md5) for _, size, md5 in theirs[0]]
    first = payload.index(ours[0][0][1:])
    assert payload[first:first + len(ours[0])] == [(s, m) for _, s, m in ours[0]]


# --- hostile playlists ---------------------------------------------------------------------

TS = "hls_ts/index.m3u8"


@pytest.fixture
def hostile(shapes_server, monkeypatch):
    """A source on one allowed port serving ``playlists[name]`` and the shapes' files, plus an
    ``internal`` server on another port (not allowed) that must never be reached."""
    playlists: dict = {}

    def respond(h):
        name = h.path.lstrip("/")
        if name in playlists:
            body = playlists[name]
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            return h.wfile.write(body)
        path = shapes_server.root / name
        if not path.is_file():
            return h.send_error(404)
        return send_file(h, path, "application/octet-stream")

    page, internal = Server(respond), Server(respond)
    monkeypatch.setattr(egress, "_configured", egress.Policy([f"127.0.0.1:{page.port}"]))
    page.playlists, page.internal = playlists, internal
    yield page
    page.stop()
    internal.stop()


def _plan(page, name="x.m3u8") -> FetchPlan:
    return FetchPlan(video_url=page.url(name), audio_url=None, video_protocol="m3u8_native")


def _ts(folder="hls_ts"):
    """A rewrite to absolute segment URIs under ``folder`` of the page server."""
    return lambda page, text: re.sub(r"(?m)^(index\d+\.ts)$", page.url(folder) + r"/\1", text)


HOSTILE = {
    "garbage": (lambda page, text: "\x00\xff not a playlist\n" * 50, "FORMAT_UNAVAILABLE"),
    "huge EXTINF": (lambda page, text: _ts()(page, text).replace("#EXTINF:2.000000,",
                                                                 "#EXTINF:1e12,", 1),
                    "FORMAT_UNAVAILABLE"),
    "negative EXTINF": (lambda page, text: _ts()(page, text).replace("#EXTINF:2.000000,",
                                                                     "#EXTINF:-2,", 1),
                        "FORMAT_UNAVAILABLE"),
    "NaN EXTINF": (lambda page, text: _ts()(page, text).replace("#EXTINF:2.000000,",
                                                                "#EXTINF:nan,", 1),
                   "FORMAT_UNAVAILABLE"),
    "bad byte range": (lambda page, text: _ts()(page, text).replace(
        "#EXTINF:2.000000,", "#EXTINF:2.000000,\n#EXT-X-BYTERANGE:12@x", 1), "FORMAT_UNAVAILABLE"),
    "over 8 MiB": (lambda page, text: text + "#" + "x" * (9 * 1024 * 1024) + "\n",
                   "FORMAT_UNAVAILABLE"),
    "segment on another port": (lambda page, text: _ts()(page, text).replace(
        page.url("hls_ts/index155.ts"), page.internal.url("hls_ts/index155.ts")),
        "SOURCE_NOT_ALLOWED"),
    "key on another port": (lambda page, text: _ts("hls_aes")(page, text).replace(
        'URI="enc.key"', f'URI="{page.internal.url("hls_aes/enc.key")}"'), "SOURCE_NOT_ALLOWED"),
    "404 segment": (lambda page, text: _ts()(page, text).replace(
        page.url("hls_ts/index152.ts"), page.url("hls_ts/missing.ts")), "SOURCE_HTTP_ERROR"),
    "15-byte key": (lambda page, text: _ts("hls_aes")(page, text).replace(
        'URI="enc.key"', 'URI="short.key"'), "FORMAT_UNAVAILABLE"),
    "wrong key": (lambda page, text: _ts("hls_aes")(page, text).replace(
        'URI="enc.key"', 'URI="zero.key"'), "FORMAT_UNAVAILABLE"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_playlists_end_in_clear_codes(hostile, tmp_path, case):
    edit, code = HOSTILE[case]
    source = "hls_aes/index.m3u8" if "key" in case else TS
    hostile.playlists["x.m3u8"] = edit(hostile, (DEFAULT_CACHE / source).read_text()).encode()
    hostile.playlists["short.key"] = (DEFAULT_CACHE / "hls_aes/enc.key").read_bytes()[:15]
    hostile.playlists["zero.key"] = bytes(16)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(MediaError) as caught:
        fetch_segment(_plan(hostile), 300, 330, out / "clip.mp4")
    assert caught.value.code == code, (caught.value.code, caught.value.message,
                                       caught.value.detail)
    assert list(out.iterdir()) == []  # no partial file left
    assert hostile.internal.requests == []
    if code != "SOURCE_HTTP_ERROR" and case not in ("wrong key",):
        # refused or invalid before any segment was fetched
        assert not any(path.endswith(".ts") for _, path, _ in hostile.requests), case


def test_unplannable_playlists_go_to_ffmpeg(hostile, tmp_path, monkeypatch):
    """A master playlist handed as the format URL, and a clip across an
    ``EXT-X-DISCONTINUITY``: the fragment path declines, ffmpeg reads the playlist itself."""
    calls, real = [], fragmentcopy.fragment_copies
    monkeypatch.setattr(fragmentcopy, "fragment_copies",
                        lambda *args: calls.append(real(*args)) or calls[-1])
    hostile.playlists["x.m3u8"] = _ts()(hostile, (DEFAULT_CACHE / TS).read_text()).replace(
        hostile.url("hls_ts/index155.ts"),
        "#EXT-X-DISCONTINUITY\n" + hostile.url("hls_ts/index155.ts")).encode()
    summary = fetch_segment(_plan(hostile), 300, 320, tmp_path / "across.mp4")
    assert abs(summary["duration"] - 20) <= 1 and summary["height"] == 720
    summary = fetch_segment(_plan(hostile, "hls_master/master.m3u8"), 300, 310,
                            tmp_path / "master.mp4")
    assert abs(summary["duration"] - 10) <= 1 and summary["height"] == 720
    assert calls == [None, None]


@pytest.mark.slow
def test_a_master_playlist_lists_its_resolutions_and_downloads(client, auth, clean_shapes_server,
                                                                tmp_path):
    """Issue 12, "Must show": an HLS master playlist's variants (720p and 480p, from
    ``RESOLUTION``) are listed by resolutions and formats (the spec lists ≥ 720p) and a clip
    of it downloads through the API at 720p with audio."""
    url = clean_shapes_server.url("hls_master/master.m3u8")
    heights = sorted(f["height"] for f in extract_info(url)["formats"] if f.get("height"))
    assert heights == [480, 720]
    clip_through_api(client, auth, clean_shapes_server, url, tmp_path / "clip.mp4")


def test_relative_uris_resolve_against_the_redirected_playlist(tmp_path, monkeypatch):
    """A playlist URL that redirects (a CDN's usual answer) to the real folder: the relative
    segment URIs (``index150.ts``) name files beside the playlist the redirect led to, as in
    ffmpeg and yt-dlp; against the URL asked for they would be 404s."""
    def respond(h):
        if h.path == "/short/x.m3u8":
            return redirect(server.url("hls_ts/index.m3u8"))(h)
        path = DEFAULT_CACHE / h.path.lstrip("/")
        if not path.is_file():
            return h.send_error(404)
        return send_file(h, path, "application/octet-stream")

    server = Server(respond)
    try:
        monkeypatch.setattr(egress, "_configured", egress.Policy([f"127.0.0.1:{server.port}"]))
        plan = FetchPlan(video_url=server.url("short/x.m3u8"), audio_url=None,
                         video_protocol="m3u8_native")
        summary = fetch_segment(plan, 300, 310, tmp_path / "clip.mp4")
    finally:
        server.stop()
    assert abs(summary["duration"] - 10) <= 1 and summary["height"] == 720
    fetched = [path for _, path, _ in server.requests]
    assert "/hls_ts/index150.ts" in fetched
    assert not any(path.startswith("/short/index") for path in fetched)
