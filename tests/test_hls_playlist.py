"""HLS media playlists read into fragment lists (src/media/hls.py, RFC 8216), and the
``byte_range`` entries of yt-dlp-shaped fragment lists (src/media/fragments.py). The playlists
are the ones plain ``ffmpeg -f hls`` wrote into .cache/shapes (scripts/shapes.py), plus small
hand-written ones for the rules ffmpeg's output does not exercise."""
from __future__ import annotations

import pytest

from scripts.shapes import DEFAULT_CACHE, build_shapes
from src.media import fragments, hls
from src.media.errors import MediaError

BASE = "http://127.0.0.1:1/v/index.m3u8"


@pytest.fixture(scope="module")
def shapes():
    build_shapes(DEFAULT_CACHE, log=lambda *_: None)
    return DEFAULT_CACHE


def _parse(text: str, url: str = BASE) -> fragments.FragmentList:
    return hls.parse(text.encode(), url)


def test_ffmpegs_ts_playlist(shapes):
    flist = hls.parse((shapes / "hls_ts/index.m3u8").read_bytes(), BASE)
    assert flist.problem is None and flist.ended and flist.init_url is None
    assert len(flist.fragments) == 300 and flist.duration == 600
    assert flist.fragments[150] == fragments.Fragment("http://127.0.0.1:1/v/index150.ts",
                                                      300.0, 2.0)


def test_ffmpegs_fmp4_playlist(shapes):
    flist = hls.parse((shapes / "hls_fmp4/index.m3u8").read_bytes(), BASE)
    assert flist.init_url == "http://127.0.0.1:1/v/init.mp4" and flist.init_range is None
    assert flist.fragments[-1].url.endswith("/index299.m4s") and flist.duration == 600


def test_ffmpegs_aes_playlist_uses_its_explicit_iv(shapes):
    """ffmpeg writes ``IV=0x0…0`` and encrypts every segment with it (docs/source-shapes.md):
    the explicit IV wins over the Media Sequence Number default (RFC 8216 §5.2)."""
    flist = hls.parse((shapes / "hls_aes/index.m3u8").read_bytes(), BASE)
    keys = {f.key for f in flist.fragments}
    assert keys == {fragments.Key("http://127.0.0.1:1/v/enc.key", bytes(16))}


def test_ffmpegs_byterange_playlist(shapes):
    flist = hls.parse((shapes / "hls_byterange/index.m3u8").read_bytes(), BASE)
    ranges = [f.byte_range for f in flist.fragments]
    assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert ranges[-1][1] == (shapes / "hls_byterange/index.ts").stat().st_size
    assert {f.url for f in flist.fragments} == {"http://127.0.0.1:1/v/index.ts"}


def test_master_playlist_is_left_to_ffmpeg(shapes):
    flist = hls.parse((shapes / "hls_master/master.m3u8").read_bytes(), BASE)
    assert flist.problem and "master" in flist.problem


def test_default_iv_is_the_media_sequence_number():
    flist = _parse("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n"
                   "#EXTINF:4,\na.ts\n#EXTINF:4,\nb.ts\n#EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\n"
                   "c.ts\n#EXT-X-KEY:METHOD=AES-128,URI=\"/k2\",IV=0X1f\n#EXTINF:4,\nd.ts\n")
    a, b, c, d = flist.fragments
    assert a.key == fragments.Key("http://127.0.0.1:1/v/k", (7).to_bytes(16, "big"))
    assert b.key.iv == (8).to_bytes(16, "big") and c.key is None
    assert d.key == fragments.Key("http://127.0.0.1:1/k2", (0x1f).to_bytes(16, "big"))
    assert [f.start for f in flist.fragments] == [0, 4, 8, 12] and not flist.ended


def test_byte_range_without_offset_follows_the_previous_one():
    flist = _parse("#EXTM3U\n#EXT-X-MAP:URI=\"m.mp4\",BYTERANGE=\"700\"\n"
                   "#EXTINF:2,\n#EXT-X-BYTERANGE:100@700\nm.mp4\n#EXTINF:2,\n"
                   "#EXT-X-BYTERANGE:50\nm.mp4\n#EXT-X-ENDLIST\n")
    assert flist.init_url.endswith("/v/m.mp4") and flist.init_range == (0, 700)
    assert [f.byte_range for f in flist.fragments] == [(700, 800), (800, 850)]


def test_discontinuity_and_program_date_time_are_recorded():
    flist = _parse("#EXTM3U\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00Z\n#EXTINF:2,\na.ts\n"
                   "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:junk\n#EXTINF:2,\nb.ts\n"
                   "#EXT-X-UNKNOWN-TAG:whatever\n# a comment\n\n#EXT-X-ENDLIST\n")
    a, b = flist.fragments
    assert a.program_date_time == 1767225600.0 and not a.discontinuity
    assert b.discontinuity and b.program_date_time is None


def test_an_ended_playlist_without_segments_has_no_duration():
    flist = _parse("#EXTM3U\n#EXT-X-ENDLIST\n")
    assert flist.problem is None and flist.ended and flist.duration == 0


@pytest.mark.parametrize("text, why", [
    ("#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"k\"\n#EXTINF:2,\na.ts\n", "SAMPLE-AES"),
    ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n"
     "#EXTINF:2,\na.ts\n", "KEYFORMAT"),
    ("#EXTM3U\n#EXT-X-MAP:URI=\"a.mp4\"\n#EXTINF:2,\na.m4s\n#EXT-X-MAP:URI=\"b.mp4\"\n"
     "#EXTINF:2,\nb.m4s\n", "EXT-X-MAP"),
    ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXT-X-MAP:URI=\"a.mp4\"\n", "IV"),
    ("#EXTM3U\n#EXT-X-I-FRAMES-ONLY\n#EXTINF:2,\na.ts\n", "I-frame"),
    ("#EXTM3U\n", "no segments"),                                # live, nothing yet
    ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",URI=\"a.m3u8\"\n", "master"),
])
def test_valid_playlists_this_path_leaves_to_ffmpeg(text, why):
    flist = _parse(text)
    assert flist.problem and why in flist.problem


@pytest.mark.parametrize("data", [
    b"", b"\xff\xfe garbage", b"<html>not a playlist</html>", "#EXTM3U\n#EXTINF:abc,\na.ts\n",
    "#EXTM3U\n#EXTINF:-2,\na.ts\n", "#EXTM3U\n#EXTINF:1e12,\na.ts\n",
    "#EXTM3U\n#EXTINF:inf,\na.ts\n", "#EXTM3U\na.ts\n",
    "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:12@x\na.ts\n",
    "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:0@5\na.ts\n",
    "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:12\na.ts\n",              # no previous range
    "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:12@0\na.ts\n#EXTINF:2,\n#EXT-X-BYTERANGE:12\nb.ts\n",
    "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128\n#EXTINF:2,\na.ts\n",          # no URI
    "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=12\n#EXTINF:2,\na.ts\n",
    "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x" + "0" * 33 + "\n#EXTINF:2,\na.ts\n",
    "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n#EXTINF:2,\na.ts\n",
    "#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"5@0\"\n#EXTINF:2,\na.ts\n",
    "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:" + "9" * 40 + "\n#EXTINF:2,\na.ts\n",
    "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:\u00b2\n#EXTINF:2,\na.ts\n",    # a Unicode digit
    "#EXTM3U\n#EXTINF:2,\nhttp://[bad/a.ts\n", "#EXTM3U\n#EXTINF:2,\na\x00b.ts\n",
    "#EXTM3U\n#EXTINF:2,\na b.ts\n",
    "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"//[::1/k\"\n#EXTINF:2,\na.ts\n",
])
def test_invalid_playlists_are_format_unavailable(data):
    with pytest.raises(MediaError) as caught:
        hls.parse(data.encode() if isinstance(data, str) else data, BASE)
    assert caught.value.code == "FORMAT_UNAVAILABLE"
    assert caught.value.message == "The source's playlist could not be read."


def test_too_many_segments_are_left_to_ffmpeg(monkeypatch):
    monkeypatch.setattr(hls, "MAX_FRAGMENTS", 3)
    flist = _parse("#EXTM3U\n" + "#EXTINF:2,\na.ts\n" * 4)
    assert flist.problem and "segments" in flist.problem


# --- byte ranges in yt-dlp-shaped fragment lists (what an MPD SegmentList gives) -----------

DASH = {"protocol": fragments.PROTOCOL, "fragment_base_url": "http://127.0.0.1:1/d/"}


def test_byte_range_entries_are_planned():
    flist = fragments.from_format({**DASH, "fragments": [
        {"path": "v.mp4", "byte_range": {"start": 0, "end": 834}},
        {"path": "v.mp4", "duration": 6.0, "byte_range": {"start": 834, "end": 366293}},
        {"url": "http://127.0.0.1:1/d/v.mp4", "duration": 6.0,
         "byte_range": {"start": 366293, "end": 720734}}]})
    assert flist.problem is None and flist.init_range == (0, 834)
    assert [(f.url, f.start, f.byte_range) for f in flist.fragments] == [
        ("http://127.0.0.1:1/d/v.mp4", 0.0, (834, 366293)),
        ("http://127.0.0.1:1/d/v.mp4", 6.0, (366293, 720734))]


@pytest.mark.parametrize("span", [{"start": 0}, {"start": 5, "end": 5}, {"start": -1, "end": 5},
                                  {"start": "0", "end": 5}, {"start": True, "end": 5}, [0, 5],
                                  "0-5"])
def test_malformed_byte_ranges_are_not_planned(span):
    flist = fragments.from_format({**DASH, "fragments": [
        {"path": "init.mp4"}, {"path": "v.mp4", "duration": 6.0, "byte_range": span}]})
    assert flist.problem


def test_random_garbage_is_a_list_or_a_media_error():
    """Tags with mangled values, in random order (a fixed seed): nothing but a FragmentList or
    MediaError(FORMAT_UNAVAILABLE) ever comes out of the parser."""
    import random
    rng = random.Random(12)
    pieces = ["#EXTINF:", "#EXT-X-BYTERANGE:", "#EXT-X-KEY:", "#EXT-X-MAP:",
              "#EXT-X-MEDIA-SEQUENCE:",
              "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-DISCONTINUITY", "#EXT-X-ENDLIST", "a.ts",
              "METHOD=AES-128,", "URI=\"k\"", "IV=0x", "BYTERANGE=\"", "@", "-", "1e400", "2,",
              "\x00", "[", "\"", ",", "12", "ffff", "\u00b2", " ", "http://[", "//x/", "\n"]
    for _ in range(500):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
        try:
            result = _parse("#EXTM3U\n" + body)
        except MediaError as exc:
            assert exc.code == "FORMAT_UNAVAILABLE"
        else:
            assert isinstance(result, fragments.FragmentList)
