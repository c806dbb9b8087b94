"""Segmented DASH on the fragment path (issue 12, items 1, 3, 4): the sources are what plain
``ffmpeg -f dash`` writes (scripts/shapes.py: SegmentTemplate + SegmentTimeline with
``$Number$`` and ``$Time$``; ``-single_file 1`` SegmentList, which yt-dlp cannot extract), served
by a real local HTTP server. Judged by ffmpeg: the clip's packets are the packets ffmpeg's own
dash demuxer writes for the same span of the manifest (from the keyframe at ``start``: ffmpeg
starts one GOP earlier, see src/media/fragments.py), the duration, resolution and audio are
what was asked for, and only the fragments around the clip are read."""
from __future__ import annotations

import re
import subprocess

import pytest

from scripts.shapes import DEFAULT_CACHE
from src.media import fragmentcopy, fragments, segment
from src.media.choice import select_formats
from src.media.errors import MediaError
from src.media.segment import fetch_segment
from src.media.source import extract_info
from tests.media_fixtures import clip_through_api
from tests.security.test_ssrf import Server, _app, _download, redirect, send_file

pytestmark = pytest.mark.usefixtures("local_egress")

SEGMENTED = ["dash_number", "dash_time"]
MPD = "{}/manifest.mpd"


@pytest.fixture
def server(clean_shapes_server):
    """The shapes server (tests/media_fixtures.py), clean for this test."""
    return clean_shapes_server


def _streams(path) -> dict:
    """framemd5 of a stream copy, per stream: ``{index: [(seconds, size, md5), ...]}``."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy",
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True)
    bases = {int(m[1]): int(m[2]) / int(m[3])
             for m in re.finditer(r"#tb (\d+): (\d+)/(\d+)", out.stdout)}
    found: dict = {}
    for line in out.stdout.splitlines():
        if line.startswith("#"):
            continue
        index, _, _, duration, size, md5 = [part.strip() for part in line.split(",")[:6]]
        found.setdefault(int(index), []).append((int(duration) * bases[int(index)], size, md5))
    return found


def _ffmpeg_cut(url, out, start=300, length=30):
    """ffmpeg's own cut of the manifest: its dash demuxer, the first video and audio stream."""
    subprocess.run(["ffmpeg", "-v", "error", "-ss", str(start), "-t", str(length), "-i", url,
                    "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", "-f", "mp4", str(out)],
                   check=True)


def _same_packets(ours: list, theirs: list) -> None:
    """Our packets are ffmpeg's from our first one on, as far as both go (≥ 27 s); ffmpeg's
    lead-in before it is under one GOP. Where each ends differs: ffmpeg's dash demuxer, cutting
    ``$Time$`` segments with ``-t 30``, stops ≈ 3 s early (677 video packets after the
    lead-in); our clip's duration is checked on its own (30 ± 1 s)."""
    payload = [(size, md5) for _, size, md5 in theirs]
    first = payload.index(ours[0][1:])
    lead_in = sum(duration for duration, _, _ in theirs[:first])
    assert lead_in <= 2.5, lead_in  # one 2 s GOP (audio: to ffmpeg's seek point of the pair)
    count = min(len(ours), len(payload) - first)
    assert [(s, m) for _, s, m in ours[:count]] == payload[first:first + count]
    assert sum(duration for duration, _, _ in ours[:count]) >= 27


@pytest.mark.slow
@pytest.mark.parametrize("shape", SEGMENTED)
def test_clip_is_ffmpegs_cut_of_the_manifest(server, tmp_path, shape):
    info = extract_info(server.url(MPD.format(shape)))
    plan = select_formats(info, "mp4", "720p")
    assert plan.video_fragments and plan.audio_fragments and plan.height == 720
    server.reset_counters()
    progress = []
    summary = fetch_segment(plan, 300, 330, tmp_path / "clip.mp4", on_progress=progress.append)
    served = server.bytes_served()
    assert abs(summary["duration"] - 30) <= 1 and summary["height"] == 720
    assert summary["acodec"] == "aac"
    assert served <= 1.2 * summary["size_bytes"], (served, summary["size_bytes"])
    assert [p["download_progress"] for p in progress] == sorted(p["download_progress"]
                                                                for p in progress)
    # only the init and the fragments around 300..330 s: 6 video (6 s), 7 audio (≈5 s)
    assert served == sum(server.size(f"{shape}/{name}") for name in _read(server, shape))

    _ffmpeg_cut(server.url(MPD.format(shape)), tmp_path / "ffmpeg.mp4")
    ours, theirs = _streams(tmp_path / "clip.mp4"), _streams(tmp_path / "ffmpeg.mp4")
    assert sorted(ours) == sorted(theirs) == [0, 1]
    for index in ours:
        _same_packets(ours[index], theirs[index])


def _read(server, shape) -> list:
    """Names under ``shape/`` the server sent bytes for."""
    folder = server.root / shape
    return [p.name for p in folder.iterdir() if server.bytes_served(f"{shape}/{p.name}")]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SEGMENTED)
def test_download_through_the_api(client, auth, server, tmp_path, shape):
    out = tmp_path / "clip.mp4"
    served = clip_through_api(client, auth, server, server.url(MPD.format(shape)), out)
    # yt-dlp's look at the manifest is counted too (a few KB)
    assert served <= 1.2 * out.stat().st_size, (served, out.stat().st_size)


def test_fragment_redirected_to_another_port_is_never_fetched(make_app, auth_factory,
                                                              shapes_server):
    """One fragment of the clip answers with a redirect to an internal port."""
    folder = DEFAULT_CACHE / "dash_number"
    internal = Server(lambda h: send_file(h, folder / h.path.lstrip("/")))

    def respond(h):
        if h.path.endswith("chunk-stream0-00052.m4s"):
            return redirect(internal.url("chunk-stream0-00052.m4s"))(h)
        return send_file(h, folder / h.path.lstrip("/"), "application/octet-stream")

    page = Server(respond)
    try:
        client = _app(make_app, page.port, DOWNLOAD_WAIT_SECONDS=60).test_client()
        auth = auth_factory(client)
        r, status = _download(client, auth, auth.user(), page.url("manifest.mpd"), 300, 330)
        assert r.status_code == 400 and r.json["code"] == "SOURCE_NOT_ALLOWED", r.json
        assert status["error_code"] == "SOURCE_NOT_ALLOWED"
        assert any(path.endswith("00052.m4s") for _, path, _ in page.requests)
        assert internal.requests == []
    finally:
        page.stop()
        internal.stop()


def test_beyond_the_end_is_segment_out_of_range(server, tmp_path):
    plan = select_formats(extract_info(server.url(MPD.format("dash_number"))), "mp4", "720p")
    with pytest.raises(MediaError) as caught:
        fetch_segment(plan, 600.0, 630.0, tmp_path / "clip.mp4")
    assert caught.value.code == "SEGMENT_OUT_OF_RANGE"
    # the last fragment still cuts; the audio runs on to 601.6 s in this source (ffprobe)
    summary = fetch_segment(plan, 590.0, 630.0, tmp_path / "end.mp4")
    assert 9 <= summary["duration"] <= 11.7


def test_a_list_that_cannot_be_planned_falls_back_to_ffmpeg(server, tmp_path, monkeypatch):
    plan = select_formats(extract_info(server.url(MPD.format("dash_number"))), "mp4", "720p")
    plan.video_fragments = fragments.FragmentList(None, (), "hostile")
    calls, real = [], fragmentcopy.fragment_copies
    monkeypatch.setattr(fragmentcopy, "fragment_copies",
                        lambda *args: calls.append(real(*args)) or calls[-1])
    summary = fetch_segment(plan, 300, 310, tmp_path / "clip.mp4")
    assert calls == [None]
    assert abs(summary["duration"] - 10) <= 1 and summary["height"] == 720


BASE = {"protocol": "http_dash_segments", "fragment_base_url": "http://127.0.0.1:1/d/"}


@pytest.mark.parametrize("entries", [
    [],
    [{"path": "init.m4s"}] + [{"path": "a.m4s", "duration": 2.0}] * (fragments.MAX_FRAGMENTS + 1),
    [{"path": "init.m4s"}, {"path": "a.m4s"}],                       # missing duration
    [{"path": "init.m4s"}, {"path": "a.m4s", "duration": float("nan")}],
    [{"path": "init.m4s"}, {"path": "a.m4s", "duration": -1}],
    [{"path": "init.m4s"}, {"path": "a.m4s", "duration": 1e12}],
    [{"path": "init.m4s"}, {"path": "a.m4s", "duration": "6"}],
    [{"path": "init.m4s"}, {"duration": 6.0}],                       # no path, no url
    [{"path": "init.m4s"}, "junk"],
    [{"path": "a.m4s", "duration": 6.0}],                            # no init segment
    [{"path": "init.m4s"}, {"path": "a.m4s", "duration": 6.0, "byte_range": {"start": 0}}],
])
def test_hostile_lists_are_not_planned(entries):
    flist = fragments.from_format({**BASE, "fragments": entries})
    assert flist is not None and flist.problem


def test_pick_by_cumulative_durations():
    flist = fragments.from_format({**BASE, "fragments": [{"path": "init.m4s"}] + [
        {"path": f"{i}.m4s", "duration": 6.0} for i in range(100)]})
    assert flist.init_url == "http://127.0.0.1:1/d/init.m4s" and flist.duration == 600
    chosen = fragments.pick(flist, 300, 330)
    assert [f.start for f in chosen] == [300, 306, 312, 318, 324]
    assert [f.start for f in fragments.pick(flist, 299.5, 330.5)] == list(range(294, 331, 6))
    assert fragments.pick(flist, 600, 630) == []


def test_fastest_path_among_equal_formats():
    base = {"width": 1280, "height": 720, "ext": "mp4", "vcodec": "avc1", "acodec": "none"}
    formats = [{**base, "format_id": "hls", "protocol": "m3u8_native"},
               {**base, "format_id": "dash", "protocol": "http_dash_segments"},
               {**base, "format_id": "480", "protocol": "m3u8_native", "height": 480}]
    kept = fragments.prefer_fastest(formats, lambda f: (f["height"], f["ext"]))
    assert [f["format_id"] for f in kept] == ["hls", "dash", "480"]  # both fragment paths
    formats.append({**base, "format_id": "file", "protocol": "https"})
    kept = fragments.prefer_fastest(formats, lambda f: (f["height"], f["ext"]))
    assert [f["format_id"] for f in kept] == ["480", "file"]


def test_direct_path_still_reads_the_manifest(server, tmp_path, monkeypatch):
    """CONNECTIONS = 0 (fast paths off): ffmpeg reads the manifest itself, same clip."""
    monkeypatch.setattr(segment, "CONNECTIONS", 0)
    plan = select_formats(extract_info(server.url(MPD.format("dash_time"))), "mp4", "720p")
    summary = fetch_segment(plan, 300, 310, tmp_path / "clip.mp4")
    assert abs(summary["duration"] - 10) <= 1.5 and summary["height"] == 720
