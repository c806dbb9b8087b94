"""Cover art and tags of audio-only clips (src/media/cover.py, issue 18 item 1).

Audio files come from the real clip by plain ffmpeg (libmp3lame mp3, AAC copied into ``-f ipod``,
libopus ``-f opus``); thumbnails are frames of it written by ffmpeg as JPEG, PNG and WebP and
served over HTTP on 127.0.0.1 through the egress guard. What is asserted is what ffprobe shows:
the tags, one ``attached_pic`` mjpeg stream, and audio packets identical to before.
"""
from __future__ import annotations

import logging
import os
import resource
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from scripts.local_source import SourceServer
from src.media import cover, guard
from src.media.errors import FFMPEG_FAILED, MediaError
from src.media.ffmpeg import ffprobe, run_ffmpeg

CLIP = Path(__file__).resolve().parent / "media" / "big_buck_bunny_720p_5s.mp4"
AUDIO = {"mp3": ["-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3"],
         "m4a": ["-c:a", "copy", "-f", "ipod"],
         "opus": ["-c:a", "libopus", "-b:a", "64k", "-f", "opus"]}

pytestmark = pytest.mark.usefixtures("local_egress")


def _png(path: Path, width: int, height: int, rgb: bool = True) -> None:
    """A black PNG of ``width`` x ``height`` (8-bit RGB or grey, zero rows: compress ~1000:1),
    written row by row as any encoder would (RFC 2083 chunks: IHDR, IDAT, IEND)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    packer, row = zlib.compressobj(), b"\0" * ((3 if rgb else 1) * width + 1)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                     8, 2 if rgb else 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Audio files (``audio.<ext>``) and served thumbnails (``www/``) made from the clip."""
    root = tmp_path_factory.mktemp("cover")
    www = root / "www"
    www.mkdir()
    for ext, args in AUDIO.items():
        run_ffmpeg(["-i", str(CLIP), "-vn", *args, str(root / f"audio.{ext}")])
    frame = ["-ss", "1", "-i", str(CLIP), "-frames:v", "1", "-update", "1"]
    for name in ("frame.jpg", "frame.png", "frame.webp"):
        run_ffmpeg([*frame, str(www / name)])
    run_ffmpeg([*frame, "-vf", "scale=2560:1440", str(www / "large.jpg")])
    run_ffmpeg([*frame, "-vf", "scale=320:180", str(www / "small.jpg")])
    (www / "page.html").write_text("<!doctype html><html><body>Not an image</body></html>")
    (www / "huge.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(6 * 1024 * 1024))
    (www / "broken.jpg").write_bytes((www / "frame.jpg").read_bytes()[:300])
    _png(www / "square3000.png", 3000, 3000)
    return root


@pytest.fixture(scope="module")
def bombs(media) -> None:
    """Decompression bombs in ``www/`` (built only for the tests that use them: ~2 s)."""
    _png(media / "www" / "bomb15000.png", 15000, 15000)
    _png(media / "www" / "bomb20000.png", 20000, 20000, rgb=False)


@pytest.fixture(scope="module")
def server(media):
    with SourceServer(media / "www") as running:
        yield running


@pytest.fixture
def session():
    with guard.session() as opened:
        yield opened


@pytest.fixture
def covers(server, session):
    """``fetch(name_or_info)``: fetch_cover on ``{"thumbnail": server URL}`` (or an info dict)."""
    def fetch(what, deadline=None):
        info = what if isinstance(what, dict) else {"thumbnail": server.url(what)}
        return cover.fetch_cover(info, session, deadline)
    return fetch


def _probe_image(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "cover.jpg"
    path.write_bytes(data)
    return ffprobe(str(path), input_args=("-f", "jpeg_pipe"))["streams"][0]


def _audio_copy(media: Path, ext: str, tmp_path: Path) -> str:
    target = tmp_path / f"clip.{ext}"
    shutil.copyfile(media / f"audio.{ext}", target)
    return str(target)


def _tags(probe: dict) -> dict:
    """Format tags merged with the audio stream's (Ogg keeps Vorbis comments on the stream,
    upper case: TITLE), keys lower-cased."""
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    merged = {**audio.get("tags", {}), **probe["format"].get("tags", {})}
    return {key.lower(): value for key, value in merged.items()}


def _pictures(probe: dict) -> list:
    return [s for s in probe["streams"] if s["codec_type"] == "video"]


def _packets(path: str, tmp_path: Path) -> tuple:
    """(audio packets count, duration, framecrc of the audio packets: pts, size, CRC each)."""
    probe = ffprobe(path, input_args=("-count_packets",))
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    crc = tmp_path / "audio.crc"
    run_ffmpeg(["-i", path, "-map", "0:a:0", "-c", "copy", "-f", "framecrc", str(crc)])
    return audio["nb_read_packets"], probe["format"]["duration"], crc.read_text()


@pytest.mark.parametrize("name", ["frame.jpg", "frame.png", "frame.webp"])
def test_each_thumbnail_type_becomes_a_baseline_jpeg(covers, name, tmp_path):
    data = covers(name)
    assert data is not None and data[:3] == b"\xff\xd8\xff"
    stream = _probe_image(data, tmp_path)
    assert (stream["codec_name"], stream["profile"]) == ("mjpeg", "Baseline")
    assert (stream["width"], stream["height"]) == (1280, 720)


def test_large_thumbnails_are_scaled_down_keeping_the_aspect(covers, tmp_path):
    wide = _probe_image(covers("large.jpg"), tmp_path)
    assert (wide["width"], wide["height"]) == (1280, 720)
    square = _probe_image(covers("square3000.png"), tmp_path)  # 9 MP: under the pixel limit
    assert (square["width"], square["height"]) == (1280, 1280)
    small = _probe_image(covers("small.jpg"), tmp_path)
    assert (small["width"], small["height"]) == (320, 180)  # never scaled up


def test_best_thumbnail_is_last_and_a_missing_one_falls_back(covers, server, tmp_path, caplog):
    info = {"thumbnails": [{"url": server.url("small.jpg"), "width": 320, "height": 180},
                           {"url": server.url("frame.webp"), "id": "2"},
                           {"url": server.url("gone/maxresdefault.jpg"), "id": "3"}],
            "http_headers": {"User-Agent": "Mozilla/5.0", "Cookie": "SID=secret"}}
    with caplog.at_level(logging.WARNING, logger="src.media.cover"):
        stream = _probe_image(covers(info), tmp_path)
    assert stream["width"] == 1280
    assert not caplog.records


@pytest.mark.parametrize("name, reason", [("page.html", "not a JPEG, PNG or WebP"),
                                          ("gone.jpg", "HTTP 404"),
                                          ("huge.jpg", "larger than 5242880 bytes"),
                                          ("broken.jpg", "could not be decoded")])
def test_what_is_not_a_usable_image_gives_no_cover(covers, name, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="src.media.cover"):
        assert covers(name) is None
    [record] = caplog.records
    assert name in record.getMessage() and reason in record.getMessage()


def test_a_host_outside_the_policy_gives_no_cover_and_logs_no_query(covers, caplog):
    url = "http://192.0.2.10/vi/abc/maxresdefault.jpg?sqp=SIGNATURE&rs=SECRET"
    with caplog.at_level(logging.WARNING, logger="src.media.cover"):
        assert covers({"thumbnail": url, "thumbnails": "junk"}) is None
    [record] = caplog.records
    text = record.getMessage()
    assert "192.0.2.10/vi/abc/maxresdefault.jpg" in text and "not an allowed" in text
    assert "SIGNATURE" not in text and "SECRET" not in text and "sqp" not in text


def test_no_thumbnail_or_a_passed_deadline_gives_no_cover(covers):
    assert covers({"thumbnails": [{"id": "x"}, "junk", {"url": "file:///etc/passwd"}]}) is None
    assert covers({}) is None
    started = time.monotonic()
    assert covers("frame.jpg", deadline=started - 1) is None
    assert time.monotonic() - started < 2


def _peak_of_children(work) -> tuple:
    """Run ``work()`` in a forked child; return ``(work() is None, the largest resident size in
    KiB of the processes the child started)``: the ffmpeg it ran, not earlier tests' encoders."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        try:
            none = work() is None
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            os.write(write, f"{int(none)} {peak}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        none, peak = pipe.read().split()
    os.waitpid(pid, 0)
    return none == "1", int(peak)


def test_what_tick_raises_propagates(server, session):
    """A cancelled job (its progress hook raises) is not swallowed like a failed cover."""
    class Cancelled(Exception):
        pass

    def tick():
        raise Cancelled()
    with pytest.raises(Cancelled):
        cover.fetch_cover({"thumbnail": server.url("frame.jpg")}, session, None, tick)


@pytest.mark.parametrize("name", ["bomb15000.png", "bomb20000.png"])
@pytest.mark.usefixtures("bombs")
def test_a_decompression_bomb_is_refused_without_decoding_it(covers, server, name):
    """A 15000x15000 PNG is 660 KB on disk and 225 MP: decoded, ffmpeg holds ~750 MB; refused by
    ``-max_pixels`` before any frame is allocated (20000x20000 is over ffmpeg's own limit).
    The peak is set against an ordinary thumbnail's, measured the same way: a child started
    by fork counts the test process's own size until it execs, and a long run makes that
    large."""
    assert server.size(name) < 1_500_000
    made, baseline_kib = _peak_of_children(lambda: covers("frame.png"))
    refused, peak_kib = _peak_of_children(lambda: covers(name))
    assert not made and refused and peak_kib < baseline_kib + 150 * 1024


@pytest.mark.parametrize("ext", cover.CONTAINERS)
def test_tags_and_cover_show_in_ffprobe_and_the_audio_is_unchanged(media, covers, ext,
                                                                    tmp_path):
    path = _audio_copy(media, ext, tmp_path)
    before = _packets(path, tmp_path)
    art = covers("frame.webp")
    cover.tag(path, ext, {"title": "Big Buck Bunny – Teil 1", "artist": "Blender Foundation",
                          "comment": "https://peach.blender.org/\nCC-BY 3.0"}, art)
    probe = ffprobe(path)
    tags = _tags(probe)
    assert tags["title"] == "Big Buck Bunny – Teil 1"
    assert tags["artist"] == "Blender Foundation"
    assert tags["comment"] == "https://peach.blender.org/\nCC-BY 3.0"
    [picture] = _pictures(probe)
    assert picture["codec_name"] == "mjpeg" and picture["disposition"]["attached_pic"] == 1
    assert (picture["width"], picture["height"]) == (1280, 720)
    assert _packets(path, tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["audio.crc", f"clip.{ext}"]  # no copy left behind


@pytest.mark.parametrize("ext", cover.CONTAINERS)
def test_tagging_again_replaces_the_cover_and_no_cover_adds_none(media, covers, ext, tmp_path):
    path = _audio_copy(media, ext, tmp_path)
    cover.tag(path, ext, {"title": "only a title"}, None)
    probe = ffprobe(path)
    assert _tags(probe)["title"] == "only a title" and not _pictures(probe)
    cover.tag(path, ext, {}, covers("frame.jpg"))
    cover.tag(path, ext, {"artist": "second"}, covers("small.jpg"))
    probe = ffprobe(path)
    [picture] = _pictures(probe)
    assert picture["width"] == 320
    assert _tags(probe)["title"] == "only a title" and _tags(probe)["artist"] == "second"


@pytest.mark.parametrize("ext", cover.CONTAINERS)
def test_hostile_tag_text_is_cleaned_and_capped(media, ext, tmp_path):
    path = _audio_copy(media, ext, tmp_path)
    title = "A\x00B\x1b[2J\x85e\u0301\ud800" + "x" * 10_000
    artist = ["Ch\u00e4nnel \U0001F3B5", 42, "\u202eevil"]
    comment = "first\r\nsecond\x07\u2028third\tend" + "y" * 5000
    cover.tag(path, ext, {"title": title, "artist": artist, "comment": comment},
              b"<html>not a jpeg</html>")
    probe = ffprobe(path)
    tags = _tags(probe)
    assert tags["title"] == "AB[2J\u00e9" + "x" * 494  # NFC é; 500 characters
    assert tags["artist"] == "Ch\u00e4nnel \U0001F3B5, \u202eevil"
    assert tags["comment"] == "first\nsecond\nthird end" + "y" * (2000 - 22)
    assert not _pictures(probe)  # a cover that is not a JPEG is left out


def test_a_file_that_is_not_the_container_fails_and_stays_as_it_was(media, tmp_path):
    garbage = tmp_path / "clip.mp3"
    garbage.write_bytes(os.urandom(4096))
    before = garbage.read_bytes()
    with pytest.raises(MediaError) as raised:
        cover.tag(str(garbage), "mp3", {"title": "t"}, None)
    assert raised.value.code == FFMPEG_FAILED
    assert garbage.read_bytes() == before and os.listdir(tmp_path) == ["clip.mp3"]
    opus = _audio_copy(media, "opus", tmp_path)
    with pytest.raises(MediaError):
        cover.tag(opus, "m4a", {"title": "t"}, None)
    assert "title" not in _tags(ffprobe(opus))
