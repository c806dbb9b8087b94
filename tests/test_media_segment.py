"""Fetching only a clip's segment from the local sources (real ffmpeg, real yt-dlp, no internet)."""
import dataclasses
import os

import pytest

from src.media import errors
from src.media.errors import MediaError
from src.media.ffmpeg import ffprobe
from src.media.segment import fetch_segment
from src.media.source import extract_info, select_formats

START, END = 300.0, 330.0  # a 30 s clip at minute 5 of a ~10 minute video


def _plan(server, source: str, resolution: str = "720p"):
    url = server.dash_url if source == "dash" else server.mp4_url
    return select_formats(extract_info(url), "mp4", resolution)


def _served_files(plan):
    return [url.rsplit("/", 1)[1] if "/dash/" not in url else "dash/" + url.rsplit("/", 1)[1]
            for url in (plan.video_url, plan.audio_url) if url]


@pytest.mark.parametrize("source", ["mp4", "dash"])
def test_fetch_segment_reads_only_the_segment(clean_source_server, tmp_path, source):
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


def test_fetch_segment_at_480p_from_dash(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "dash", "480p")
    summary = fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert summary["height"] == 480 and summary["acodec"] == "aac"
    assert abs(summary["duration"] - (END - START)) <= 1.5


def test_progress_is_reported_while_downloading(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "dash")
    clean_source_server.rate_bytes_per_sec = 1_000_000  # ~3 MB to read → ~3 s
    updates = []
    fetch_segment(plan, START, END, tmp_path / "clip.mp4", on_progress=updates.append)
    values = [u["download_progress"] for u in updates]
    assert len([v for v in values if 0 < v < 100]) >= 2
    assert values == sorted(values) and values[-1] == 100
    assert all(set(u) == {"download_progress", "speed", "fps", "eta"} for u in updates)
    assert any(u["speed"].endswith("x") and u["eta"] and ":" in u["eta"] for u in updates)


class Cancelled(Exception):
    pass


def test_exception_from_on_progress_stops_ffmpeg(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "mp4")
    clean_source_server.rate_bytes_per_sec = 500_000
    processes = []

    def cancel_midway(update):
        if update["download_progress"] > 10:
            raise Cancelled()

    with pytest.raises(Cancelled):
        fetch_segment(plan, START, END, tmp_path / "clip.mp4", on_progress=cancel_midway,
                      on_start=processes.append)
    assert processes and processes[0].poll() is not None  # ffmpeg is gone
    assert os.listdir(tmp_path) == []


def test_missing_source_is_source_http_error(clean_source_server, tmp_path):
    plan = dataclasses.replace(_plan(clean_source_server, "dash"),
                               video_url=clean_source_server.url("dash/missing.mp4"))
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, START, END, tmp_path / "clip.mp4")
    assert info.value.code == errors.SOURCE_HTTP_ERROR
    assert "127.0.0.1" not in info.value.message
    assert os.listdir(tmp_path) == []


def test_segment_beyond_the_end(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "mp4")
    with pytest.raises(MediaError) as info:
        fetch_segment(plan, 900, 930, tmp_path / "clip.mp4")
    assert info.value.code == errors.SEGMENT_OUT_OF_RANGE
    assert os.listdir(tmp_path) == []


def test_bad_range_is_rejected(clean_source_server, tmp_path):
    plan = _plan(clean_source_server, "mp4")
    with pytest.raises(ValueError):
        fetch_segment(plan, 30, 10, tmp_path / "clip.mp4")
    assert os.listdir(tmp_path) == []
