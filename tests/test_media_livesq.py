"""Live YouTube clips by sequence number (issue 14, items 1 and 5: src/media/livesq.py,
src/media/livesqhead.py, scripts/live_seq.py).

The source is :class:`scripts.live_seq.LiveSeq`: plain ``ffmpeg -re -stream_loop -1 … -f dash``
of the real clip (separate video and audio fMP4 fragments of 2 s) behind a server that answers
``&sq=N`` like YouTube's live adaptive URLs (``X-Head-Seqnum``, 404 past the head and behind
its DVR window). Judged by what a user gets (ffprobe of the clip, no file left on failure), by
the server's byte counters and by when ffmpeg finished each fragment (the files' mtimes).
"""
from __future__ import annotations

import copy
import os
import subprocess
import time

import pytest

from scripts.live_seq import LiveSeq
from src.media import egress, live, livesq, livesqhead
from src.media.errors import FORMAT_UNAVAILABLE, SOURCE_NOT_ALLOWED, MediaError
from src.media.ffmpeg import FFMPEG, ffprobe

pytestmark = pytest.mark.usefixtures("local_egress")
D = 2.0  # the stand-in's target duration
FPS = 25


@pytest.fixture(scope="module")
def stream():
    with LiveSeq(dvr_seconds=30) as source:
        yield source


def history(source: LiveSeq, seconds: float) -> None:
    """Wait until the stream has ``seconds`` of fragments behind its head."""
    while (source.head("0") or 0) * D < seconds:
        time.sleep(0.2)


def finished_at(source: LiveSeq, sq: int) -> float:
    """When ffmpeg completed video fragment ``sq`` (renamed it into place), POSIX s."""
    return os.stat(source.folder / f"chunk-0-{sq + 1:05d}.m4s").st_mtime


def planned(info: dict, max_height: int = 1080) -> tuple:
    """:func:`livesq.plan_for` of ``info``, which must find the sq formats."""
    found = livesq.plan_for(info, max_height)
    assert found is not None
    return found


def frame_md5s(path: str) -> list:
    """MD5 of each decoded video frame, in presentation order (ffmpeg's framemd5 muxer)."""
    out = subprocess.run([FFMPEG, "-v", "error", "-i", path, "-map", "0:v:0", "-f", "framemd5",
                          "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines()
            if line and not line.startswith("#")]


def probe(path) -> tuple:
    info = ffprobe(str(path))
    return float(info["format"]["duration"]), {s["codec_type"]: s for s in info["streams"]}


@pytest.mark.slow
def test_a_window_half_past_half_future_is_recorded_then_cut(stream, tmp_path):
    history(stream, 8)
    plan, target = planned(stream.info())
    t0 = time.time() - 5
    t1 = t0 + 10
    stream.reset_counters()
    seen: list = []
    result = livesq.fetch_live_sq(plan, t0, t1, tmp_path / "clip.mp4", target,
                                  on_progress=seen.append)
    late = time.time() - t1
    assert late < D + 5  # a target duration + a few seconds after the window
    duration, streams = probe(tmp_path / "clip.mp4")
    assert abs(duration - 10) < D
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert float(streams["video"]["start_time"]) == 0 == float(streams["audio"]["start_time"])
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    # recording (counting down the seconds to come), then downloading
    phases = [p["current_phase"] for p in seen]
    assert phases[0] == "recording" and phases[-1] == "downloading"
    assert phases.index("downloading") > len(phases) - phases[::-1].index("recording") - 1
    waiting = [p["seconds_to_come"] for p in seen if p["current_phase"] == "recording"]
    assert waiting[0] >= 3 and waiting == sorted(waiting, reverse=True)
    assert seen[-1]["download_progress"] == 100
    # bytes: the clip plus at most the fragment granularity (one fragment per stream)
    sqs = [s["sequence"] for s in result["segments"]]
    biggest = max(stream.bytes_served(f"133/{k}") for k in sqs) \
        + max(stream.bytes_served(f"140/{k}") for k in sqs)
    assert stream.bytes_served() <= 1.3 * os.path.getsize(tmp_path / "clip.mp4") + biggest
    assert all(stream.bytes_served(f"133/{k}") and stream.bytes_served(f"140/{k}") for k in sqs)
    assert sqs == list(range(sqs[0], sqs[-1] + 1)) and len(sqs) in (5, 6, 7)
    # wall clock → sq within ±1 fragment: fragment k starts when ffmpeg finished k - 1
    first = result["segments"][0]
    assert abs(first["date"] - finished_at(stream, first["sequence"] - 1)) <= D
    assert result["start_time"] == pytest.approx(t0) and not result["ended"]
    # the clip's first frame is the source's frame at t0 by those dates
    source = tmp_path / "source.mp4"
    source.write_bytes((stream.folder / "init-0.m4s").read_bytes() + b"".join(
        (stream.folder / f"chunk-0-{k + 1:05d}.m4s").read_bytes() for k in sqs))
    at = round((t0 - first["date"]) * FPS)
    assert frame_md5s(str(tmp_path / "clip.mp4"))[0] in frame_md5s(str(source))[at - 1:at + 2]


@pytest.mark.slow
def test_a_window_in_the_past_is_fetched_at_once_in_parallel(stream, tmp_path, monkeypatch):
    monkeypatch.setattr(livesq, "BATCH", 4)  # 11 fragments per stream: several rounds
    history(stream, 24)
    plan, target = planned(stream.info())
    t1 = time.time() - 3
    seen: list = []
    started = time.monotonic()
    result = livesq.fetch_live_sq(plan, t1 - 20, t1, tmp_path / "clip.mp4", target,
                                  on_progress=seen.append)
    assert time.monotonic() - started < 5  # no waiting for the stream
    duration, streams = probe(tmp_path / "clip.mp4")
    assert abs(duration - 20) < D and set(streams) == {"video", "audio"}
    assert {p["current_phase"] for p in seen} == {"downloading"}
    assert len(result["segments"]) in (10, 11, 12)


@pytest.mark.slow
def test_a_window_older_than_the_dvr_window_is_missed_at_once(stream, tmp_path):
    history(stream, 14)
    plan, target = planned(stream.info())
    stream.dvr_seconds = 6
    try:
        started = time.monotonic()
        with pytest.raises(live.LiveWindowMissed) as caught:
            livesq.fetch_live_sq(plan, time.time() - 13, time.time() - 9,
                                 tmp_path / "clip.mp4", target)
    finally:
        stream.dvr_seconds = 30
    assert time.monotonic() - started < 3 and "live stream's window" in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # the stand-in's ffmpeg
@pytest.mark.parametrize("value", ["garbage", "1000000000000", "-4", "", "12.5"])
def test_a_hostile_head_header_is_an_error_not_a_wait(stream, tmp_path, value):
    plan, target = planned(stream.info())
    stream.head_override = value
    try:
        started = time.monotonic()
        with pytest.raises(MediaError) as caught:
            livesq.fetch_live_sq(plan, time.time() - 2, time.time() + 4, tmp_path / "c.mp4",
                                 target)
    finally:
        stream.head_override = None
    assert caught.value.code == FORMAT_UNAVAILABLE and "X-Head-Seqnum" in caught.value.detail
    assert time.monotonic() - started < 2 and list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("change", ["backwards", "jump"])
def test_a_head_going_backwards_or_racing_ahead_is_refused(stream, tmp_path, change):
    history(stream, 4)
    plan, target = planned(stream.info())
    head = stream.head("0")
    lie = "0" if change == "backwards" else str(head + 10_000)

    def after_first_read(progress):
        stream.head_override = lie

    try:
        with pytest.raises(MediaError) as caught:
            livesq.fetch_live_sq(plan, time.time() - 2, time.time() + 6, tmp_path / "c.mp4",
                                 target, on_progress=after_first_read)
    finally:
        stream.head_override = None
    assert caught.value.code == FORMAT_UNAVAILABLE and "went" in caught.value.detail
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_stream_whose_head_stops_is_a_stall(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "MIN_STALL", 2.0)  # the stall limit is then 3 × 2 s
    with LiveSeq(tmp_path / "src") as source:
        plan, target = planned(source.info())
        source.halt()
        began = time.monotonic()
        with pytest.raises(live.LiveStalled):
            livesq.fetch_live_sq(plan, time.time() - 1, time.time() + 30,
                                 tmp_path / "clip.mp4", target)
        assert time.monotonic() - began < 3 * D + D + 2
    assert not (tmp_path / "clip.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


@pytest.mark.slow
def test_the_stand_in_leaves_no_ffmpeg_behind_even_when_the_test_fails():
    with pytest.raises(RuntimeError, match="a failing test"):
        with LiveSeq() as source:
            assert source.proc is not None and source.proc.poll() is None
            group = source.proc.pid
            raise RuntimeError("a failing test")
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


# --- plan_for on info dicts --------------------------------------------------------------------

_GV = ("https://rr4---sn-4g5lznl6.googlevideo.com/videoplayback?expire=1796170000&ei=abc"
       "&ip=203.0.113.7&id=o-AbCdEf.1&itag={itag}&source=yt_live_broadcast&requiressl=yes"
       "&live=1&hang=1&noclen=1&mime={mime}&gir=yes&dur=0.000&sig=AOq0QJ8wRQIh")
_GENERATOR = ("functools.partial(<bound method YoutubeIE._live_adaptive_fragments of "
              "<yt_dlp.extractor.youtube._video.YoutubeIE object at 0x7f0c>>, 'dQw4w9WgXcQ', "
              "'{itag}', 'web', 1796150000, ...)")


def youtube_format(itag: int, ext: str, vcodec: str, acodec: str, height=None, tbr=0.0,
                   **extra) -> dict:
    """One live adaptive format as ``YoutubeIE._list_formats`` (``process_https_formats``) and
    ``_prepare_live_from_start_formats`` leave it with ``--live-from-start`` while the video
    is live (yt_dlp/extractor/youtube/_video.py: ``is_from_start``, ``target_duration`` from
    ``targetDurationSec``, ``_itag``/``_client``, protocol ``http_dash_segments_generator``,
    ``fragments`` the generator), after ``YoutubeDL.sanitize_info`` (the generator → repr)."""
    mime = ("video%2F" if vcodec != "none" else "audio%2F") + ("webm" if ext == "webm" else
                                                               "mp4")
    return {"format_id": str(itag), "url": _GV.format(itag=itag, mime=mime), "ext": ext,
            "vcodec": vcodec, "acodec": acodec, "height": height,
            "width": height * 16 // 9 if height else None, "tbr": tbr,
            "protocol": "http_dash_segments_generator", "is_from_start": True,
            "is_live": True, "target_duration": 5, "fragments": _GENERATOR.format(itag=itag),
            "_itag": str(itag), "_client": "web", "has_drm": False,
            "downloader_options": {"http_chunk_size": 10485760},
            "http_headers": {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                             "Accept-Language": "en-us,en;q=0.5"}, **extra}


YOUTUBE_LIVE: dict = {
    "id": "dQw4w9WgXcQ", "title": "Live", "live_status": "is_live", "is_live": True,
    "was_live": False, "release_timestamp": 1796150000, "extractor": "youtube",
    "webpage_url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
    "formats": [
        {"format_id": "sb0", "url": "https://i.ytimg.com/sb/dQw4w9WgXcQ/storyboard3_L2/M0.jpg",
         "ext": "mhtml", "protocol": "mhtml", "vcodec": "none", "acodec": "none"},
        youtube_format(140, "m4a", "none", "mp4a.40.2", abr=128.0),
        youtube_format(160, "mp4", "avc1.4d400c", "none", 144, 100.0),
        youtube_format(137, "mp4", "avc1.640028", "none", 1080, 4500.0),
        youtube_format(299, "mp4", "avc1.64002a", "none", 1080, 6000.0, fps=60),
        youtube_format(303, "webm", "vp9", "none", 1080, 7000.0, fps=60),
        youtube_format(308, "webm", "vp9", "none", 1440, 12000.0, fps=60),
        youtube_format(400, "mp4", "av01.0.12M.08", "none", 1440, 10000.0, has_drm=True),
    ],
}


def test_plan_for_a_sanitized_youtube_live_info_takes_the_best_avc1_and_m4a():
    plan, target = planned(copy.deepcopy(YOUTUBE_LIVE))
    assert plan.format_ids == ["299", "140"] and target == 5.0
    assert "itag=299" in plan.video_url and "itag=140" in (plan.audio_url or "")
    assert plan.video_protocol == plan.audio_protocol == "http_dash_segments_generator"
    assert plan.height == 1080 and plan.acodec == "mp4a.40.2" and plan.container == "mp4"
    assert plan.http_headers["User-Agent"].startswith("Mozilla")
    small, _ = planned(copy.deepcopy(YOUTUBE_LIVE), max_height=720)
    assert small.format_ids == ["160", "140"]


@pytest.mark.slow  # the stand-in's ffmpeg
def test_plan_for_the_stand_in_and_for_infos_without_sq_formats(stream):
    plan, target = planned(stream.info())
    assert plan.format_ids == ["133", "140"] and target == D
    assert plan.video_url.startswith(stream.base_url)
    vod = copy.deepcopy(YOUTUBE_LIVE)
    for fmt in vod["formats"]:  # a VOD: plain https formats, no target duration
        fmt.update(protocol="https", is_from_start=None, target_duration=None)
    assert livesq.plan_for(vod) is None
    hostile = copy.deepcopy(YOUTUBE_LIVE)
    for fmt in hostile["formats"]:
        fmt["target_duration"] = 1e9
    assert livesq.plan_for(hostile) is None and livesq.plan_for({}) is None


def test_fragment_urls_follow_yt_dlp_and_the_dash_base_url_form():
    url = livesqhead.sq_url("https://h.googlevideo.com/videoplayback?itag=140&sq=3&x=a%2Fb", 7)
    assert url == "https://h.googlevideo.com/videoplayback?itag=140&x=a%2Fb&sq=7"
    assert livesqhead.sq_url("https://h.googlevideo.com/videoplayback/itag/140/", 9) \
        == "https://h.googlevideo.com/videoplayback/itag/140/sq/9"


def test_fragments_that_are_not_fragmented_mp4_are_refused(tmp_path):
    with open(tmp_path / "joined.mp4", "wb") as out:
        for data in (b"<html>403</html>", b"\x00\x00\x00\x10moof", b"\x00\x00\x00\x08moof"):
            with pytest.raises(MediaError) as caught:
                livesqhead.append_fragment(data, out, first=True)
            assert caught.value.code == FORMAT_UNAVAILABLE


def test_urls_outside_the_egress_policy_are_refused_before_any_connection(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(egress, "_configured", egress.Policy(["127.0.0.1:1"]))
    plan, target = planned(copy.deepcopy(YOUTUBE_LIVE))
    plan.video_url = "http://127.0.0.1:1/videoplayback?itag=137"  # allowed; the audio is not
    with pytest.raises(MediaError) as caught:
        livesq.fetch_live_sq(plan, time.time() - 10, time.time(), tmp_path / "c.mp4", target)
    assert caught.value.code == SOURCE_NOT_ALLOWED and list(tmp_path.iterdir()) == []


def test_impossible_windows_and_target_durations_are_value_errors(tmp_path):
    plan, target = planned(copy.deepcopy(YOUTUBE_LIVE))
    now = time.time()
    for t0, t1, d in ((now, now, 5), (now, float("nan"), 5), (now, now + live.MAX_WAIT + 60, 5),
                      (now - 10, now, 0), (now - 10, now, float("inf"))):
        with pytest.raises(ValueError):
            livesq.fetch_live_sq(plan, t0, t1, tmp_path / "x.mp4", d)
    assert list(tmp_path.iterdir()) == []
