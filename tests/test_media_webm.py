"""WebM by its Cues on the ranged path (issue 12, item 2), end to end through
:func:`src.media.segment.fetch_segment` against a real local HTTP source: progressive VP9 + Opus
WebM as plain ffmpeg writes it (Cues after the clusters, the muxer's default, and before them
with ``-cues_to_front 1``) and the 1440p VP9 + Opus pair the ≥1440p MP4 path fetches. Judged by
ffmpeg: the ranged path (Cues → clusters → sparse copy → local cut) must write the packets
ffmpeg writes when it reads the URL itself (the direct path), and read little more than the
clip; a WebM without usable Cues falls back to the direct path."""
from __future__ import annotations

import os
import subprocess

import pytest

from scripts.local_source import SourceServer
from scripts.shapes import DEFAULT_CACHE
from src.media import errors, rangedcopy, segment, webmcopy, webmindex
from src.media.choice import FetchPlan, select_formats
from src.media.errors import MediaError
from src.media.ffmpeg import ffprobe
from src.media.mp4index import IndexUnsupported
from src.media.segment import fetch_segment
from src.media.source import extract_info
from tests.test_media_segment import _packets, _settle

pytestmark = pytest.mark.usefixtures("local_egress")

WEBM = {"cues_end": "webm/cues_end.webm", "cues_front": "webm/cues_front.webm"}
HIRES = ("hires/video_1440p.webm", "hires/audio.webm")


@pytest.fixture
def server(clean_shapes_server):
    """The shapes server (tests/media_fixtures.py), clean for this test."""
    return clean_shapes_server


def _plan(server, source: str) -> FetchPlan:
    if source == "hires":
        return FetchPlan(video_url=server.url(HIRES[0]), audio_url=server.url(HIRES[1]),
                         container="webm")
    return FetchPlan(video_url=server.url(WEBM[source]), audio_url=None, container="webm")


def _both(server, plan, start, end, folder, monkeypatch) -> dict:
    """Fetch ``start``..``end`` on the ranged path, then the direct path:
    ``{path: (packets, bytes served, clip bytes)}``."""
    found = {}
    for path, connections in (("ranged", segment.CONNECTIONS), ("direct", 0)):
        monkeypatch.setattr(segment, "CONNECTIONS", connections)
        server.reset_counters()
        out = folder / f"{path}.webm"
        fetch_segment(plan, start, end, out)
        found[path] = (_packets(out), server.bytes_served(), out.stat().st_size)
    return found


# 2 s clusters, the first at 0.007 s (ffmpeg's VP9 + Opus): start, middle, a span across one
# cluster boundary (302.007 s), one of 0.02 s around it, the last cluster, past the end
SPANS = [(0.0, 10.0), (300.0, 330.0), (301.0, 303.5), (301.99, 302.01), (596.5, 600.4),
         (590.0, 605.0)]


@pytest.mark.parametrize("source", ["cues_end", "cues_front"])
@pytest.mark.parametrize("start,end", SPANS, ids=["start", "middle", "across", "boundary",
                                                   "last-cluster", "past-end"])
@pytest.mark.slow
def test_ranged_webm_writes_the_packets_of_ffmpeg_over_http(server, built, tmp_path,
                                                              monkeypatch, source, start, end):
    found = _both(server, _plan(server, source), start, end, tmp_path, monkeypatch)
    assert len(built) == 1 and built[0] is not None and built[0][0].endswith(".webm")
    assert len(found["ranged"][0]) > 10 and found["ranged"][0] == found["direct"][0]
    assert found["ranged"][1] < found["direct"][1]  # the direct path reads ahead
    assert sorted(os.listdir(tmp_path)) == ["direct.webm", "ranged.webm"]


@pytest.mark.slow
@pytest.mark.parametrize("start,end", [(0.0, 5.0), (20.0, 22.0), (28.5, 33.0), (55.0, 61.0)])
def test_ranged_webm_pair_writes_the_packets_of_ffmpeg_over_http(server, built, tmp_path,
                                                                   monkeypatch, start, end):
    """The 1440p VP9 video + Opus audio pair (each its own WebM with Cues at the end; the
    audio's clusters are ≈ 5 s, the video's 2 s)."""
    found = _both(server, _plan(server, "hires"), start, end, tmp_path, monkeypatch)
    assert len(built) == 1 and built[0] is not None and len(built[0]) == 2
    assert len(found["ranged"][0]) > 10 and found["ranged"][0] == found["direct"][0]


@pytest.mark.parametrize("source", ["cues_end", "cues_front", "hires"])
def test_segment_beyond_the_end(server, built, tmp_path, source):
    """Past the end of the video (ffprobe's duration): SEGMENT_OUT_OF_RANGE, no cluster fetched,
    nothing left behind. (ffmpeg reading the URL itself seeks to the last keyframe and writes
    the last cluster — a 2.3 s clip of 598 s for 900..930 — so the direct path cannot judge.)"""
    plan = _plan(server, source)
    assert float(ffprobe(plan.video_url.replace(server.base_url, str(DEFAULT_CACHE)))
                 ["format"]["duration"]) < 900
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, 900, 930, tmp_path / "clip.webm")
    assert info.value.code == errors.SEGMENT_OUT_OF_RANGE
    assert built == []  # ranged_copies raised: no copy was cut
    assert 0 < server.bytes_served() < 200_000  # heads and Cues only
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("source,start", [("cues_end", 300.0), ("cues_front", 300.0),
                                          ("hires", 20.0)])
@pytest.mark.slow
def test_a_30s_clip_reads_little_more_than_its_bytes(server, built, tmp_path, source, start):
    """Bytes served for a 30 s clip: head (64 KiB), Cues, whole clusters from the keyframe at
    or before the start to the cluster holding end + 1 s (2 s video clusters, ≈ 5 s audio)."""
    summary = fetch_segment(_plan(server, source), start, start + 30, tmp_path / "clip.webm")
    assert built[0] is not None
    assert abs(summary["duration"] - 30) <= 2.1  # the webm muxer keeps the lead-in
    assert summary["vcodec"] == "vp9" and summary["acodec"] == "opus"
    assert server.bytes_served() <= 1.2 * summary["size_bytes"]


@pytest.mark.slow
def test_the_1440p_mp4_plan_fetches_its_webm_by_the_cues(server, built, tmp_path, monkeypatch):
    """The ≥1440p MP4 path: yt-dlp's formats of the 1440p ladder, mp4 asked at 1440p → the VP9
    WebM + Opus WebM pair, to be encoded; fetched on the ranged path, in fewer bytes."""
    plan = select_formats(extract_info(server.url("hires/manifest.mpd")), "mp4", "1440p")
    _settle(server)
    assert plan.needs_encode and plan.video_url.endswith(HIRES[0])
    found = _both(server, plan, 20.0, 22.0, tmp_path, monkeypatch)
    assert built[0] is not None and found["ranged"][0] == found["direct"][0]
    assert found["ranged"][1] < 0.8 * found["direct"][1]


@pytest.mark.slow
def test_progress_and_cancellation_on_the_ranged_webm_path(server, built, tmp_path):
    server.rate_bytes_per_sec = 2_000_000  # ≈ 4.5 MB → ≈ 2 s
    updates = []
    fetch_segment(_plan(server, "cues_end"), 300, 330, tmp_path / "clip.webm",
                  on_progress=updates.append)
    values = [u["download_progress"] for u in updates]
    assert built[0] is not None and values == sorted(values) and values[-1] == 100
    assert len([v for v in values if 0 < v < segment.FETCH_SHARE]) >= 2

    class Cancelled(Exception):
        pass

    def cancel(update):
        if update["download_progress"] > 10:
            raise Cancelled()

    server.rate_bytes_per_sec = 500_000
    with pytest.raises(Cancelled):
        fetch_segment(_plan(server, "cues_front"), 300, 330, tmp_path / "clip.webm",
                      on_progress=cancel)
    assert os.listdir(tmp_path) == ["clip.webm"]  # the first clip only; no copy left behind


# --- fallbacks -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def odd_webms(tmp_path_factory) -> dict:
    """60 s WebMs the Cues path cannot use, each made from the real VP9 + Opus WebM:
    ``live``: ``-live 1`` to a pipe (unknown sizes, no Cues); ``no_cues``: Cues at the end whose
    element ID is overwritten (the SeekHead names a position that holds no Cues);
    ``cues_past_end``: the SeekHead's Cues position beyond the file."""
    folder = tmp_path_factory.mktemp("odd")
    source = DEFAULT_CACHE / WEBM["cues_end"]
    cut = ["ffmpeg", "-v", "error", "-i", str(source), "-t", "60", "-c", "copy", "-f", "webm"]
    with open(folder / "live.webm", "wb") as fh:
        subprocess.run([*cut, "-live", "1", "pipe:1"], stdout=fh, check=True)
    subprocess.run([*cut, str(folder / "base.webm")], check=True)
    data = (folder / "base.webm").read_bytes()
    head = webmindex.parse_head(data[:65536], len(data))
    at = head.need[0]
    assert data[at:at + 4] == bytes.fromhex("1C53BB6B")
    (folder / "no_cues.webm").write_bytes(data[:at] + bytes.fromhex("1C53BB00") + data[at + 4:])
    # SeekID 53AB 84 <Cues ID> SeekPosition 53AC <size> <value>: the value → all ones
    seek = data.index(bytes.fromhex("53AB841C53BB6B")) + 7
    width = data[seek + 2] & 0x0F if data[seek + 2] & 0xF0 == 0x80 else None
    assert data[seek:seek + 2] == bytes.fromhex("53AC") and width
    (folder / "cues_past_end.webm").write_bytes(
        data[:seek + 3] + b"\xff" * width + data[seek + 3 + width:])
    (folder / "base.webm").unlink()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("name", ["live", "no_cues", "cues_past_end"])
def test_webm_without_usable_cues_falls_back_to_ffmpeg(odd_webms, built, tmp_path, name):
    with SourceServer(odd_webms) as server:
        plan = FetchPlan(video_url=server.url(f"{name}.webm"), audio_url=None, container="webm")
        summary = fetch_segment(plan, 20.0, 30.0, tmp_path / "clip.webm")
        assert server.bytes_served() > 0
    assert built == [None]  # the ranged path declined, the direct path cut it
    assert abs(summary["duration"] - 10) <= 2.1
    assert summary["vcodec"] == "vp9" and summary["acodec"] == "opus"
    assert os.listdir(tmp_path) == ["clip.webm"]


def test_server_without_range_support_falls_back_to_ffmpeg(server, built, tmp_path):
    server.ranges = False  # 200 + the whole file to every request
    summary = fetch_segment(_plan(server, "cues_front"), 300, 310, tmp_path / "clip.webm")
    assert built == [None] and abs(summary["duration"] - 10) <= 2.1


# --- the WebM stream on hostile bytes (no network) --------------------------------------------

def _ebml_file(body: bytes) -> bytes:
    """An EBML header (DocType webm) and a Segment of unknown size holding ``body``."""
    header = bytes.fromhex("1A45DFA3") + b"\x87" + bytes.fromhex("4282") + b"\x84webm"
    return header + bytes.fromhex("18538067") + b"\x01" + b"\xff" * 7 + body


def test_more_head_grows_at_least_twofold_and_stays_capped():
    real = (DEFAULT_CACHE / WEBM["cues_front"]).read_bytes()[:65536]
    size = (DEFAULT_CACHE / WEBM["cues_front"]).stat().st_size
    stream = webmcopy.WebmStream("http://x/a.webm", size, real[:300], 4)
    rounds = 0
    while stream.cues is None:
        (first, last), = stream.reads()
        assert first == len(stream.data) and last + 1 >= 2 * first
        assert last < webmindex.MAX_HEAD_BYTES
        stream.add(first, real[first:last + 1])
        rounds += 1
    assert 1 <= rounds <= 3 and stream.reads() == []
    # a Void of 8 MB before Info: more than MAX_HEAD_BYTES would be needed
    void = bytes.fromhex("EC") + (0x01 << 56 | 8 << 20).to_bytes(8, "big")
    with pytest.raises(IndexUnsupported):
        webmcopy.WebmStream("http://x/a.webm", 1 << 30, _ebml_file(void + b"\0" * 1000), 4)


def test_short_or_unexpected_cues_bytes_are_refused():
    path = DEFAULT_CACHE / WEBM["cues_end"]
    size = path.stat().st_size
    with open(path, "rb") as fh:
        stream = webmcopy.WebmStream("http://x/a.webm", size, fh.read(65536), 4)
        (first, last), = stream.reads()
        fh.seek(first)
        blob = fh.read(last - first + 1)
    with pytest.raises(IndexUnsupported, match="short"):
        stream.add(first, blob[:-1])
    with pytest.raises(IndexUnsupported, match="unexpected"):
        stream.add(first + 1, blob)
    stream.add(first, blob)
    ranges = stream.media(300.0, 330.0)
    assert len(ranges) == 1 and 0 < ranges[0][0] < ranges[0][1] < first  # clusters only


def test_a_huge_declared_source_is_not_copied():
    with pytest.raises(IndexUnsupported):
        rangedcopy._open_stream("http://x/a.webm", 1 << 62, _ebml_file(b""), 4)
