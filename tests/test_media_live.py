"""Live HLS clips by wall-clock time (issue 14, items 1 and 5: src/media/live.py,
scripts/live_source.py).

The live source is plain ``ffmpeg -re -stream_loop -1 … -f hls -hls_flags
program_date_time+delete_segments`` of the real clip, served over HTTP on 127.0.0.1 while it
is being produced. Judged by what a user gets and by the server: ffprobe of the clip; its first
decoded frame is the frame of the source's segments at the window's start (dates read from the
playlist by this file's own reading of ``#EXT-X-PROGRAM-DATE-TIME``); the segments the server
sent are exactly those whose dated span overlaps the window. Hostile playlists are written here
by hand around real segments (plain ``ffmpeg -f hls`` of the clip).
"""
from __future__ import annotations

import datetime
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scripts.live_source import CLIP, LiveHLS, read_clock
from scripts.local_source import SourceServer
from src.media import egress, hls, live
from src.media.choice import FetchPlan
from src.media.errors import FORMAT_UNAVAILABLE, SOURCE_NOT_ALLOWED, MediaError
from src.media.ffmpeg import FFMPEG, ffprobe, run_ffmpeg

pytestmark = pytest.mark.usefixtures("local_egress")
FPS = 25


def listed(playlist: Path) -> list:
    """``[(uri, date, duration)]`` of a playlist ffmpeg wrote (a date on every segment)."""
    found, date, duration = [], None, None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = datetime.datetime.strptime(line[25:], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        elif line and not line.startswith("#"):
            found.append((line, date, duration))
    return found


def frame_md5s(path: str, input_args: tuple = ()) -> list:
    """MD5 of each decoded video frame, in presentation order (ffmpeg's framemd5 muxer)."""
    out = subprocess.run([FFMPEG, "-v", "error", *input_args, "-i", path, "-map", "0:v:0",
                          "-f", "framemd5", "-"], capture_output=True, text=True,
                         check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines()
            if line and not line.startswith("#")]


def plan_of(url: str) -> FetchPlan:
    return FetchPlan(url, None, video_protocol="m3u8_native")


@pytest.fixture(scope="module")
def stream():
    """One live stream for this module's real-time tests (10 segments of 2 s listed)."""
    with LiveHLS(list_size=10) as source:
        yield source


def history(source: LiveHLS, seconds: float) -> None:
    """Wait until the stream lists ``seconds`` of the past."""
    while True:
        segments = listed(source.playlist)
        if segments and segments[0][1] <= time.time() - seconds:
            return
        time.sleep(0.2)


@pytest.mark.slow
def test_a_window_in_the_playlist_is_cut_from_exactly_its_segments(stream, tmp_path):
    history(stream, 11)
    t1 = time.time() - 4
    t0 = t1 - 6
    stream.server.reset_counters()
    result = live.fetch_live(plan_of(stream.url), t0, t1, tmp_path / "clip.mp4")
    probe = ffprobe(str(tmp_path / "clip.mp4"))
    kinds = {s["codec_type"]: s for s in probe["streams"]}
    assert abs(float(probe["format"]["duration"]) - 6) < 0.3
    assert kinds["video"]["codec_name"] == "h264" and kinds["video"]["height"] == 240
    assert kinds["audio"]["codec_name"] == "aac"
    covering = [(uri, date) for uri, date, duration in listed(stream.playlist)
                if date < t1 and date + duration > t0]
    sent = {path for path in (f"/{uri}" for uri, _, _ in listed(stream.playlist))
            if stream.server.bytes_served(path)}
    assert sent == {f"/{uri}" for uri, _ in covering} and len(covering) in (3, 4)
    assert [s["url"].rsplit("/", 1)[1] for s in result["segments"]] == [u for u, _ in covering]
    # the clip's first frame is the source's frame at t0, by the segments' dates
    joined = tmp_path / "source.ts"
    joined.write_bytes(b"".join((stream.folder / uri).read_bytes() for uri, _ in covering))
    frames = frame_md5s(str(joined))
    at = round((t0 - covering[0][1]) * FPS)
    assert frame_md5s(str(tmp_path / "clip.mp4"))[0] in frames[max(0, at - 1):at + 2]


@pytest.mark.slow
def test_the_clip_shows_the_moment_burnt_into_the_source_frames(tmp_path):
    """Issue 14's content target, read from the picture itself: the source burns each frame's
    time into it (scripts/live_source.py ``clock``); the clip's first frame shows the window's
    start within one segment (2 s), half of the window in the past and half to come."""
    with LiveHLS(tmp_path / "live", clock=True) as source:
        history(source, 5)
        t0 = time.time() - 4
        live.fetch_live(plan_of(source.url), t0, t0 + 8, tmp_path / "clip.mp4")
        shown = source.began_at() + read_clock(tmp_path / "clip.mp4")
    assert abs(shown - t0) <= 2.0 + 0.25, (shown, t0)
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 8) < 0.3


@pytest.mark.slow
def test_a_window_ending_in_the_future_is_recorded_then_returned_soon_after(stream, tmp_path):
    t0 = time.time() - 2
    t1 = t0 + 8
    seen: list = []
    result = live.fetch_live(plan_of(stream.url), t0, t1, tmp_path / "clip.mp4",
                             on_progress=seen.append)
    late = time.time() - t1
    assert late < 2 + 3  # target duration + a few seconds
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 8) < 0.3
    waiting = [p["seconds_to_come"] for p in seen if p["current_phase"] == "recording"]
    assert waiting[0] >= 5 and waiting == sorted(waiting, reverse=True) and 0 < waiting[-1] <= 4
    assert seen[-1]["current_phase"] == "downloading" and seen[-1]["download_progress"] == 100
    assert not result["ended"]
    # what was listed was fetched while waiting for the rest
    assert any(p["download_progress"] > 0 for p in seen if p["current_phase"] == "recording")
    assert result["segments"][-1]["date"] + 2 >= t1 > result["segments"][-1]["date"]


@pytest.mark.slow
def test_a_window_older_than_the_playlist_is_missed_at_once(stream, tmp_path):
    oldest = listed(stream.playlist)[0][1]
    started = time.monotonic()
    with pytest.raises(live.LiveWindowMissed) as caught:
        live.fetch_live(plan_of(stream.url), oldest - 30, oldest - 24, tmp_path / "clip.mp4")
    assert time.monotonic() - started < 2 and "live stream's window" in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_window_longer_than_the_sliding_playlist_is_fetched_as_it_goes(tmp_path):
    """3 segments listed (6 s), a 10 s window: its first segments are deleted from the
    origin before its last ones exist, so only fetching each as it appears can cut it."""
    with LiveHLS(tmp_path / "src", list_size=3) as source:
        t0 = time.time() - 1
        result = live.fetch_live(plan_of(source.url), t0, t0 + 10, tmp_path / "clip.mp4")
        first = result["segments"][0]["url"].rsplit("/", 1)[1]
        assert not (source.folder / first).exists()  # slid out and deleted by ffmpeg
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 10) < 0.3
    dates = [s["date"] for s in result["segments"]]
    assert dates[0] <= t0 < dates[0] + 2 and all(b - a == pytest.approx(2, abs=0.01)
                                                 for a, b in zip(dates, dates[1:]))


@pytest.mark.slow
def test_a_stream_that_ends_inside_the_window_gives_what_exists(tmp_path):
    with LiveHLS(tmp_path / "src") as source:
        t0 = time.time() - 2
        threading.Timer(3, source.end).start()
        result = live.fetch_live(plan_of(source.url), t0, t0 + 30, tmp_path / "clip.mp4")
        last = listed(source.playlist)[-1]
        assert "#EXT-X-ENDLIST" in source.playlist.read_text()
    duration = float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"])
    assert result["ended"] and abs(duration - (last[1] + last[2] - t0)) < 0.3


@pytest.mark.slow
def test_the_live_source_leaves_no_ffmpeg_behind_even_when_the_test_fails():
    with pytest.raises(RuntimeError, match="a failing test"):
        with LiveHLS() as source:
            assert source.proc is not None and source.proc.poll() is None
            group = source.proc.pid
            raise RuntimeError("a failing test")
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)


# --- hostile and static playlists around real segments --------------------------------------


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """Real HLS VODs of the clip by plain ffmpeg (2 s segments: 2, 2, ≈ 1.3 s) in ``ts/``,
    ``fmp4/`` (``-hls_segment_type fmp4``) and ``aes/`` (``-hls_key_info_file``), served;
    ``.write(text)`` replaces ``live.m3u8`` at the root."""
    folder = tmp_path_factory.mktemp("segments")
    (folder / "keyinfo").write_text(f"key.bin\n{folder / 'aes' / 'key.bin'}\n")
    for name, extra, suffix in (("ts", [], "ts"), ("fmp4", ["-hls_segment_type", "fmp4"], "m4s"),
                                ("aes", ["-hls_key_info_file", str(folder / "keyinfo")], "ts")):
        (folder / name).mkdir()
        (folder / name / "key.bin").write_bytes(bytes(range(16)))
        run_ffmpeg(["-i", str(CLIP), "-vf", "scale=-2:240", "-c:v", "libx264", "-preset",
                    "ultrafast", "-force_key_frames", "expr:gte(t,n_forced*2)", "-c:a", "aac",
                    "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", *extra,
                    "-hls_segment_filename", str(folder / name / f"seg%d.{suffix}"),
                    str(folder / name / "vod.m3u8")])
    with SourceServer(folder) as server:
        def write(text: str) -> None:  # atomic, as an origin server replaces its playlist
            (folder / "next.m3u8").write_text(text)
            os.replace(folder / "next.m3u8", folder / "live.m3u8")

        server.write = write  # type: ignore[attr-defined]
        server.live_url = server.url("live.m3u8")  # type: ignore[attr-defined]
        server.folder = folder  # type: ignore[attr-defined]
        yield server


def playlist(entries: list, sequence: int = 0, target: int = 2, ended: bool = False) -> str:
    """A media playlist: ``entries`` of ``(uri, duration, date or None[, extra tag])``."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
             f"#EXT-X-MEDIA-SEQUENCE:{sequence}"]
    for uri, duration, date, *extra in entries:
        lines += extra
        if date is not None:
            stamp = datetime.datetime.fromtimestamp(date, datetime.timezone.utc)
            lines.append("#EXT-X-PROGRAM-DATE-TIME:" + stamp.isoformat(timespec="milliseconds"))
        lines += [f"#EXTINF:{duration:.6f},", uri]
    return "\n".join(lines + (["#EXT-X-ENDLIST"] if ended else [])) + "\n"


def real(start: float) -> list:
    """The three real segments, dated from ``start``."""
    return [("ts/seg0.ts", 2.0, start), ("ts/seg1.ts", 2.0, start + 2),
            ("ts/seg2.ts", 1.28, start + 4)]


@pytest.mark.parametrize("variant", ["ts", "fmp4", "aes"])
def test_one_date_carried_by_extinf_places_the_window(segments, tmp_path, variant):
    """ffmpeg's own VOD playlist, dated once before its first segment and served as it ends
    (RFC 8216 §4.3.2.6: the later segments follow by EXTINF): 2.5–3.5 s is segment 1 only
    (plus init and key), and the clip starts with the source's frame at 2.5 s."""
    start = time.time() - 60
    text = (segments.folder / variant / "vod.m3u8").read_text()
    stamp = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).isoformat()
    text = text.replace("#EXTINF", f"#EXT-X-PROGRAM-DATE-TIME:{stamp}\n#EXTINF", 1)
    segments.write(re.sub(r"^(?!#)(\S+)$", rf"{variant}/\1", text, flags=re.M)
                   .replace('URI="', f'URI="{variant}/'))
    segments.reset_counters()
    result = live.fetch_live(plan_of(segments.live_url), start + 2.5, start + 3.5,
                             tmp_path / "clip.mp4")
    assert abs(float(ffprobe(str(tmp_path / "clip.mp4"))["format"]["duration"]) - 1) < 0.2
    sent = {path for path in ("/ts/seg0.ts", "/ts/seg1.ts", "/ts/seg2.ts", "/fmp4/seg0.m4s",
                              "/fmp4/seg1.m4s", "/fmp4/seg2.m4s", "/aes/seg0.ts",
                              "/aes/seg1.ts", "/aes/seg2.ts") if segments.bytes_served(path)}
    assert sent == {f"/{variant}/seg1.{'m4s' if variant == 'fmp4' else 'ts'}"}
    assert bool(segments.bytes_served(f"/{variant}/init.mp4")) == (variant == "fmp4")
    assert bool(segments.bytes_served("/aes/key.bin")) == (variant == "aes")
    assert result["start_time"] == pytest.approx(start + 2.5) and not result["ended"]
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no part file left
    reference = frame_md5s(str(segments.folder / variant / "vod.m3u8"),
                           ["-allowed_extensions", "ALL", "-protocol_whitelist", "file,crypto"])
    at = round(2.5 * FPS)
    assert frame_md5s(str(tmp_path / "clip.mp4"))[0] in reference[at - 1:at + 2]


def test_an_audio_clip_of_a_live_stream_is_its_audio_only(segments, tmp_path):
    start = time.time() - 60
    segments.write(playlist(real(start), ended=True))
    plan = FetchPlan(segments.live_url, None, container="m4a", video_protocol="m3u8_native",
                     audio_only=True)
    result = live.fetch_live(plan, start + 0.5, start + 3.5, tmp_path / "clip.m4a")
    probe = ffprobe(str(tmp_path / "clip.m4a"))
    assert [s["codec_type"] for s in probe["streams"]] == ["audio"]
    assert abs(float(probe["format"]["duration"]) - 3) < 0.2 and result["acodec"] == "aac"
    assert result["vcodec"] is None


@pytest.mark.parametrize("entries, detail", [
    (lambda s: [("ts/seg0.ts", 2.0, s), ("ts/seg1.ts", 2.0, s - 5)], "backwards"),
    (lambda s: [("ts/seg0.ts", 2.0, s + 86400 * 365)], "future"),
    (lambda s: [("ts/seg0.ts", 2.0, None), ("ts/seg1.ts", 2.0, None)], "PROGRAM-DATE-TIME"),
    (lambda s: [("ts/seg0.ts", 2.0, s), ("ts/seg1.ts", 2.0, s + 2, "#EXT-X-DISCONTINUITY")],
     "DISCONTINUITY"),
])
def test_untrustworthy_dates_are_refused(segments, tmp_path, entries, detail):
    start = time.time() - 30
    segments.write(playlist(entries(start), ended=True))
    with pytest.raises(MediaError) as caught:
        live.fetch_live(plan_of(segments.live_url), start, start + 4, tmp_path / "clip.mp4")
    assert caught.value.code == FORMAT_UNAVAILABLE and detail in caught.value.detail
    assert list(tmp_path.iterdir()) == []


def test_a_master_playlist_and_an_oversized_one_are_refused(segments, tmp_path):
    segments.write("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nvod.m3u8\n")
    with pytest.raises(MediaError) as caught:
        live.fetch_live(plan_of(segments.live_url), 0, 1, tmp_path / "a.mp4", clock=lambda: 0)
    assert caught.value.code == FORMAT_UNAVAILABLE and "master" in caught.value.detail
    start = time.time() - 30
    entry = playlist(real(start))[len(playlist([])):]
    segments.write(playlist([]) + entry * (hls.MAX_PLAYLIST_BYTES // len(entry) + 1))
    with pytest.raises(MediaError) as caught:
        live.fetch_live(plan_of(segments.live_url), start, start + 4, tmp_path / "b.mp4")
    assert caught.value.code == FORMAT_UNAVAILABLE and "larger" in caught.value.message


def test_a_playlist_that_stops_advancing_is_a_stall_not_an_endless_wait(segments, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setattr(live, "MIN_STALL", 2.0)
    start = time.time() - 4
    segments.write(playlist(real(start)[:2], target=1))
    began = time.monotonic()
    with pytest.raises(live.LiveStalled):
        live.fetch_live(plan_of(segments.live_url), start + 1, start + 30, tmp_path / "c.mp4")
    assert time.monotonic() - began < 3 + 3 and list(tmp_path.iterdir()) == []


def test_a_stream_lagging_far_behind_the_window_is_a_stall(segments, tmp_path):
    start = time.time() - 4
    segments.write(playlist(real(start)[:2]))
    began = time.monotonic()
    with pytest.raises(live.LiveStalled) as caught:  # our clock says the window ended 16 min ago
        live.fetch_live(plan_of(segments.live_url), start + 1, start + 30, tmp_path / "c.mp4",
                        clock=lambda: time.time() + 1000)
    assert time.monotonic() - began < 1 and "lags" in caught.value.detail


def test_segments_that_slide_out_unseen_or_change_are_errors(segments, tmp_path):
    start = time.time() - 3
    first = playlist(real(start)[:1], target=1)
    versions = {  # what the playlist says after the first load
        "missed": playlist([("ts/seg2.ts", 1.28, start + 4)], sequence=2, target=1),
        "re-dated": playlist([("ts/seg0.ts", 2.0, start + 1), ("ts/seg1.ts", 2.0, start + 3)],
                             target=1),
        "renamed": playlist([("ts/seg2.ts", 2.0, start), ("ts/seg1.ts", 2.0, start + 2)],
                            target=1),
    }
    for name, later in versions.items():
        segments.write(first)

        def rewrite(progress, later=later):
            segments.write(later)

        with pytest.raises(MediaError) as caught:
            live.fetch_live(plan_of(segments.live_url), start + 1, start + 5,
                            tmp_path / f"{name}.mp4", on_progress=rewrite)
        if name == "missed":
            assert isinstance(caught.value, live.LiveWindowMissed)
        else:
            assert caught.value.code == FORMAT_UNAVAILABLE and "changed" in caught.value.detail


def test_a_window_of_more_segments_than_allowed_is_refused(segments, tmp_path, monkeypatch):
    monkeypatch.setattr(live.fragmentcopy, "MAX_PICKED", 2)
    start = time.time() - 30
    segments.write(playlist(real(start), ended=True))
    segments.reset_counters()
    with pytest.raises(MediaError) as caught:
        live.fetch_live(plan_of(segments.live_url), start, start + 5, tmp_path / "clip.mp4")
    assert caught.value.code == FORMAT_UNAVAILABLE and "too many" in caught.value.detail
    assert segments.bytes_served() == segments.bytes_served("/live.m3u8")


def test_a_segment_outside_the_egress_policy_is_refused(segments, tmp_path, monkeypatch):
    monkeypatch.setattr(egress, "_configured", egress.Policy([segments.base_url[7:]]))
    start = time.time() - 30
    segments.write(playlist([("ts/seg0.ts", 2.0, start),
                             ("http://127.0.0.1:9/ts/seg1.ts", 2.0, start + 2)], ended=True))
    segments.reset_counters()
    with pytest.raises(MediaError) as caught:
        live.fetch_live(plan_of(segments.live_url), start, start + 4, tmp_path / "clip.mp4")
    assert caught.value.code == SOURCE_NOT_ALLOWED
    assert segments.bytes_served() == segments.bytes_served("/live.m3u8")


def test_a_cancel_from_the_progress_callback_stops_the_wait(segments, tmp_path):
    start = time.time() - 2
    segments.write(playlist(real(start)[:1]))

    class Cancelled(Exception):
        pass

    def cancel(progress):
        if progress["current_phase"] == "recording" and progress["download_progress"] > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        live.fetch_live(plan_of(segments.live_url), start, start + 20, tmp_path / "clip.mp4",
                        on_progress=cancel)
    assert list(tmp_path.iterdir()) == []


def test_impossible_windows_are_value_errors(tmp_path):
    now = time.time()
    for t0, t1 in ((now, now), (now, float("nan")), (now, now + live.MAX_WAIT + 60)):
        with pytest.raises(ValueError):
            live.fetch_live(plan_of("http://127.0.0.1:1/x.m3u8"), t0, t1, tmp_path / "x.mp4")
