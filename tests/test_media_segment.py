"""Fetching only a clip's segment from the local sources (real ffmpeg, real yt-dlp, no internet),
on both fetch paths: parallel byte ranges + local cut (default) and ffmpeg over HTTP."""
import dataclasses
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from scripts.local_source import SourceServer
from src.media import errors, mp4index, rangedcopy, rangefetch, segment
from src.media.choice import FetchPlan, select_formats
from src.media.errors import MediaError
from src.media.ffmpeg import ffprobe
from src.media.segment import fetch_segment
from src.media.source import extract_info

pytestmark = pytest.mark.usefixtures("local_egress")

START, END = 300.0, 330.0  # a 30 s clip at minute 5 of a ~10 minute video
MEDIA = Path(__file__).resolve().parent / "media" / "big_buck_bunny_720p_5s.mp4"


def _plan(server, source: str, resolution: str = "720p"):
    url = server.dash_url if source == "dash" else server.mp4_url
    plan = select_formats(extract_info(url), "mp4", resolution)
    _settle(server)
    return plan


def _settle(server, quiet: float = 0.1, timeout: float = 5.0) -> None:
    """Wait until ``server`` has sent nothing for ``quiet`` seconds: yt-dlp hangs up after its
    look at the file, and the source, one hop behind the egress guard, stops a moment later
    (so byte counts reset afterwards measure only the fetch)."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline and server.bytes_served() != last:
        last = server.bytes_served()
        time.sleep(quiet)


def _served_files(plan):
    return [url.rsplit("/", 1)[1] if "/dash/" not in url else "dash/" + url.rsplit("/", 1)[1]
            for url in (plan.video_url, plan.audio_url) if url]


@pytest.fixture(params=["ranged", "direct"])
def fetch_path(request, monkeypatch):
    """Run the test on both fetch paths: byte ranges over parallel connections + local cut
    (the default), and ffmpeg reading the URLs itself (segment.CONNECTIONS = 0)."""
    if request.param == "direct":
        monkeypatch.setattr(segment, "CONNECTIONS", 0)
    return request.param


def _packets(path):
    """Packet-level fingerprint of a file (ffmpeg's framemd5 of a stream copy)."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if not line.startswith("#")]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["mp4", "dash"])
def test_fetch_segment_reads_only_the_segment(clean_source_server, tmp_path, source, fetch_path):
    plan = _plan(clean_source_server, source)
    clean_source_server.reset_counters()  # count only the fetch, not the extraction
    out = tmp_path / "clip.mp4"
    summary = fetch_segment(plan, START, END, out)

    probe = ffprobe(str(out))
    video = [s for s in probe["streams"] if s["codec_type"] == "video"]
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert abs(float(probe["format"]["duration"]) - (END - START)) <= 1.5
    assert video[0]["height"] == 720 and len(audio) == 1
    assert summary["height"] == 720 and summary["vcodec"] == "h264" and summary["acodec"] == "aac"
    assert summary["size_bytes"] == out.stat().st_size
    assert abs(summary["duration"] - (END - START)) <= 1.5
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no temporary file left behind
    for name in _served_files(plan):
        served, size = clean_source_server.bytes_served(name), clean_source_server.size(name)
        assert 0 < served < 0.25 * size, f"{name}: {served} of {size} bytes read"
    if fetch_path == "ranged":
        # index + probe bytes + the segment's fragments/samples; of a progressive MP4's moov
        # (460 KB for this 10-minute file, ~20 % of the clip) only the boxes and table
        # entries that locate the segment (~200 KB)
        assert clean_source_server.bytes_served() <= 1.2 * out.stat().st_size


@pytest.mark.parametrize("source", ["mp4", "dash"])
@pytest.mark.parametrize("start, end", [(300.0, 330.0), (0.0, 12.5), (123.45, 125.0),
                                        (571.3, 605.0), (0.0, 0.4), (590.0, 601.6)])
@pytest.mark.slow
def test_ranged_path_writes_the_same_packets_as_ffmpeg_over_http(
        clean_source_server, tmp_path, monkeypatch, source, start, end):
    plan = _plan(clean_source_server, source)
    fetch_segment(plan, start, end, tmp_path / "ranged.mp4")
    monkeypatch.setattr(segment, "CONNECTIONS", 0)
    fetch_segment(plan, start, end, tmp_path / "direct.mp4")
    ranged, direct = _packets(tmp_path / "ranged.mp4"), _packets(tmp_path / "direct.mp4")
    assert len(ranged) > 10 and ranged == direct
    assert sorted(os.listdir(tmp_path)) == ["direct.mp4", "ranged.mp4"]


@pytest.mark.slow
def test_ranged_path_on_a_moov_that_fits_in_the_first_request(local_sources, tmp_path,
                                                               monkeypatch, built):
    """A short progressive MP4: its whole moov arrives with the first request per stream."""
    short = tmp_path / "src" / "short.mp4"
    short.parent.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(local_sources["mp4"]), "-t", "20",
                    "-c", "copy", "-movflags", "+faststart", str(short)], check=True)
    moov = next(b for b in mp4index.top_level_boxes(short.read_bytes()[:65536], 65536)
                if b.kind == "moov")
    assert moov.end < rangedcopy.HEAD_BYTES
    out = tmp_path / "out"
    out.mkdir()
    with SourceServer(short.parent) as server:
        plan = FetchPlan(video_url=server.url("short.mp4"), audio_url=None)
        fetch_segment(plan, 5.0, 12.0, out / "ranged.mp4")
        ranged_bytes = server.bytes_served()
        monkeypatch.setattr(segment, "CONNECTIONS", 0)
        fetch_segment(plan, 5.0, 12.0, out / "direct.mp4")
    ranged, direct = _packets(out / "ranged.mp4"), _packets(out / "direct.mp4")
    assert len(built) == 1 and built[0] is not None
    assert len(ranged) > 10 and ranged == direct
    assert ranged_bytes <= 1.2 * (out / "ranged.mp4").stat().st_size
    assert sorted(os.listdir(out)) == ["direct.mp4", "ranged.mp4"]


@pytest.mark.slow
def test_ranged_path_on_a_file_shorter_than_the_first_request(tmp_path, monkeypatch, built):
    """A whole file smaller than the first Range request: the server answers with what there
    is (RFC 9110 §14.1.2: the range is cut at the end), and the ranged path uses it."""
    tiny = tmp_path / "src" / "tiny.mp4"
    tiny.parent.mkdir()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(MEDIA), "-t", "3", "-vf", "scale=160:90",
                    "-c:v", "libx264", "-b:v", "20k", "-g", "25", "-c:a", "aac", "-b:a", "16k",
                    "-movflags", "+faststart", str(tiny)], check=True)
    assert tiny.stat().st_size < rangedcopy.HEAD_BYTES
    out = tmp_path / "out"
    out.mkdir()
    with SourceServer(tiny.parent) as server:
        plan = FetchPlan(video_url=server.url("tiny.mp4"), audio_url=None)
        fetch_segment(plan, 1.0, 2.5, out / "ranged.mp4")
        monkeypatch.setattr(segment, "CONNECTIONS", 0)
        fetch_segment(plan, 1.0, 2.5, out / "direct.mp4")
    assert len(built) == 1 and built[0] is not None
    ranged, direct = _packets(out / "ranged.mp4"), _packets(out / "direct.mp4")
    assert len(ranged) > 10 and ranged == direct


@pytest.mark.slow
def test_server_without_range_support_falls_back_to_ffmpeg(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "dash")
    clean_source_server.ranges = False  # 200 + the whole file to every request
    summary = fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert summary["height"] == 720 and summary["acodec"] == "aac"
    assert abs(summary["duration"] - (END - START)) <= 1.5
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_fetch_segment_at_480p_from_dash(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "dash", "480p")
    summary = fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert summary["height"] == 480 and summary["acodec"] == "aac"
    assert abs(summary["duration"] - (END - START)) <= 1.5


@pytest.mark.slow
def test_progress_is_reported_while_downloading(clean_source_server, tmp_path, fetch_path):
    plan = _plan(clean_source_server, "dash")
    clean_source_server.rate_bytes_per_sec = 1_000_000  # ~3 MB to read → ~3 s
    updates = []
    fetch_segment(plan, START, END, tmp_path / "clip.mp4", on_progress=updates.append)
    values = [u["download_progress"] for u in updates]
    assert len([v for v in values if 0 < v < 100]) >= 2
    assert values == sorted(values) and values[-1] == 100
    assert all(set(u) == {"download_progress", "speed", "fps", "eta"} for u in updates)
    assert any((u["speed"] or "").endswith("x") and u["eta"] and ":" in u["eta"] for u in updates)


class Cancelled(Exception):
    pass


def _cancel_past_10_percent(server, source, tmp_path) -> list:
    """Fetch from ``server`` slowed to 500 KB/s, cancelled from ``on_progress`` once past 10 %;
    return the ffmpeg processes that were started."""
    plan = _plan(server, source)
    server.rate_bytes_per_sec = 500_000
    processes = []

    def cancel_midway(update):
        if update["download_progress"] > 10:
            raise Cancelled()

    with pytest.raises(Cancelled):
        fetch_segment(plan, START, END, tmp_path / "clip.mp4", on_progress=cancel_midway,
                      on_start=processes.append)
    return processes


@pytest.mark.slow
def test_exception_from_on_progress_stops_ffmpeg(clean_source_server, tmp_path, monkeypatch):
    monkeypatch.setattr(segment, "CONNECTIONS", 0)  # direct path: ffmpeg reads the URL
    processes = _cancel_past_10_percent(clean_source_server, "mp4", tmp_path)
    assert processes and processes[0].poll() is not None  # ffmpeg is gone
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("source", ["mp4", "dash"])
def test_exception_from_on_progress_stops_the_connections(clean_source_server, tmp_path, source):
    processes = _cancel_past_10_percent(clean_source_server, source, tmp_path)
    assert processes == [] and os.listdir(tmp_path) == []  # stopped before the cut
    # the server counts the chunk each of its threads had already queued for its time slot;
    # after that the count must stop: an open connection at 500 KB/s would keep growing it
    counts = [clean_source_server.bytes_served()]
    for _ in range(6):
        time.sleep(0.6)
        counts.append(clean_source_server.bytes_served())
        if counts[-1] == counts[-2]:
            break
    assert counts[-1] == counts[-2], counts


def test_exception_during_the_cut_stops_ffmpeg(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "dash")
    processes = []

    def cancel_in_cut(update):
        if update["download_progress"] > segment.FETCH_SHARE:  # only the cut goes past it
            raise Cancelled()

    with pytest.raises(Cancelled):
        fetch_segment(plan, START, END, tmp_path / "clip.mp4", on_progress=cancel_in_cut,
                      on_start=processes.append)
    assert processes and processes[0].poll() is not None
    assert os.listdir(tmp_path) == []


def test_missing_source_is_source_http_error(clean_source_server, tmp_path, fetch_path):
    plan = dataclasses.replace(_plan(clean_source_server, "dash"),
                               video_url=clean_source_server.url("dash/missing.mp4"))
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert info.value.code == errors.SOURCE_HTTP_ERROR
    assert "127.0.0.1" not in info.value.message
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("source", ["mp4", "dash"])
def test_segment_beyond_the_end(clean_source_server, tmp_path, source):
    plan = _plan(clean_source_server, source)
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, 900, 930, tmp_path / "clip.mp4")
    assert info.value.code == errors.SEGMENT_OUT_OF_RANGE
    assert os.listdir(tmp_path) == []


def test_unreachable_source_is_source_http_error(clean_source_server, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    plan = dataclasses.replace(_plan(clean_source_server, "mp4"),
                               video_url=f"http://127.0.0.1:{port}/long.mp4")
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert info.value.code == errors.SOURCE_HTTP_ERROR
    assert "127.0.0.1" not in info.value.message
    assert os.listdir(tmp_path) == []


def test_bad_range_is_rejected(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "mp4")
    with pytest.raises(ValueError):
        fetch_segment(plan, 30, 10, tmp_path / "clip.mp4")
    assert os.listdir(tmp_path) == []


def test_split_covers_the_range_exactly():
    parts = rangefetch.split(100, 100 + 1_000_000 - 1, 4, 256 * 1024)
    assert len(parts) == 3  # 1 MB in parts of at least 256 KiB
    assert parts[0][0] == 100 and parts[-1][1] == 100 + 1_000_000 - 1
    assert all(b + 1 == a for (_, b), (a, _) in zip(parts, parts[1:]))
    assert rangefetch.split(0, 9, 4, 256 * 1024) == [(0, 9)]


def test_index_reader_rejects_what_is_not_mp4():
    with pytest.raises(mp4index.IndexUnsupported):
        mp4index.top_level_boxes(b"\x1a\x45\xdf\xa3" + b"\x00" * 60, 64)  # WebM (EBML)
    with pytest.raises(mp4index.IndexUnsupported):
        mp4index.top_level_boxes(b"#EXTM3U\n" + b"\x00" * 56, 64)  # HLS playlist
