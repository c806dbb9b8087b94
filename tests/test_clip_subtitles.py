"""Subtitles for the segment (issue 18, item 2) through the API.

The subtitle files are scripts/subtitle_source.py's: an SRT converted to WebVTT by plain
``ffmpeg``, YouTube-shaped automatic captions (VTT with inline word timing, json3). The
expected cues come from ffmpeg's own reading of those files (ffprobe packets), never from our
parser; the clip's embedded track is read back the same way. A clip from 5:00 to 5:30 must
carry exactly the cues of that window, shifted by −300 s and clipped at its edges."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import yt_dlp

from scripts.local_source import SourceServer
from scripts.subtitle_source import build_subtitles, dash_with_text, ffprobe_cues
from src.media import egress
from src.media.ffmpeg import ffprobe
from src.media.source import extract_info
from tests.youtube_fakes import VIDEO_ID, FakeYouTube, watch_url

pytestmark = pytest.mark.usefixtures("local_egress")

START, END = 300, 330


@pytest.fixture(scope="module")
def subs():
    """The built subtitle files and a server over their folder."""
    built = build_subtitles(log=lambda *_: None)
    with SourceServer(built["dir"]) as server:
        yield built, server


@pytest.fixture
def youtube(dash_formats, fake_youtube, clean_source_server, subs):
    """A YouTube-like video over the DASH ladder whose subtitles are the built files, listed
    the way YouTube's are (several formats per language; we fetch the vtt or json3)."""
    _, server = subs
    fake_youtube.set(watch_url(), {
        "id": VIDEO_ID, "title": "Video", "extractor": "youtube", "extractor_key": "Youtube",
        "webpage_url": watch_url(), "display_id": VIDEO_ID, "duration": 600,
        "live_status": "not_live", "formats": [dict(f) for f in dash_formats],
        "subtitles": {
            "en": [{"ext": "srv3", "url": server.url("missing.srv3")},
                   {"ext": "vtt", "url": server.url("captions.vtt"), "name": "English"}],
            "de": [{"ext": "json3", "url": server.url("captions.json3")}],
            "fr": [{"ext": "vtt", "url": server.url("gone.vtt")}]},
        "automatic_captions": {
            "en": [{"ext": "json3", "url": server.url("auto.en.json3")}],
            "es": [{"ext": "vtt", "url": server.url("auto.en.vtt")}],
            "ja": [{"ext": "vtt", "url": server.url("ja.m3u8"), "protocol": "m3u8_native"}]},
    })
    time.sleep(0.3)
    return watch_url()


def _plain(text: str) -> str:
    """Cue text without markup (mov_text keeps no WebVTT tags) and with entities decoded."""
    text = re.sub(r"</?[a-z][^>]*>", "", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _window(cues: list, start: float, end: float) -> list:
    """The expected cues of ``start``..``end``: overlapping ones, shifted, clipped."""
    return [[round(max(a, start) - start, 3), round(min(b, end) - start, 3), _plain(t)]
            for a, b, t in cues if b > start and a < end]


def _same(got: list, want: list) -> None:
    assert len(got) == len(want), (got, want)
    for (a, b, text), (c, d, wanted) in zip(got, want):
        assert abs(a - c) <= 0.002 and abs(b - d) <= 0.002 and _plain(text) == wanted


@pytest.mark.slow
def test_embedded_subtitles_are_exactly_the_window_shifted_by_minus_300(
        client, auth, youtube, subs, tmp_path):
    built, _ = subs
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
    langs = {(s["lang"], s["automatic"]) for s in r.json["subtitles"]}
    assert {("en", False), ("de", False), ("fr", False), ("es", True)} <= langs
    assert ("en", True) not in langs  # the manual English track hides the automatic one
    assert "ja" not in {lang for lang, _ in langs}  # segmented (HLS) subtitles: not read

    r = auth.download(user, video_id, body={"format_preference": "mp4",
                                           "resolution_preference": "720p",
                                           "subtitles": ["en", "de"]})
    assert r.status_code == 200, r.json
    out = tmp_path / "clip.mp4"
    out.write_bytes(r.data)
    streams = ffprobe(str(out))["streams"]
    text = [s for s in streams if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in text] == ["mov_text", "mov_text"]
    assert [s["tags"]["language"] for s in text] == ["deu", "eng"]
    want = _window(built["expected"]["vtt"], START, END)
    assert any(a == 0 for a, _, _ in want) and any(b == 30 for _, b, _ in want)  # edges cut
    for number, lang in enumerate(("de", "en")):
        vtt = tmp_path / f"{lang}.vtt"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", f"0:s:{number}",
                        "-c:s", "webvtt", str(vtt)], check=True)
        _same(ffprobe_cues(vtt), want)

    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["subtitles_mode"] == "embed" and status["subtitle_errors"] == {}
    assert [(s["lang"], s["automatic"], s["cues"]) for s in status["subtitles"]] == \
        [("de", False, len(want)), ("en", False, len(want))]
    r = client.get(status["subtitles"][1]["url"], headers=user["headers"])
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/vtt")
    (tmp_path / "sidecar.vtt").write_bytes(r.data)
    _same(ffprobe_cues(tmp_path / "sidecar.vtt"), want)


@pytest.mark.slow
def test_sidecar_automatic_captions_with_an_audio_clip(client, auth, youtube, subs, tmp_path):
    """YouTube's rolling automatic captions come out once per spoken line, beside an mp3."""
    built, _ = subs
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = auth.download(user, video_id, body={"format_preference": "mp3", "subtitles": ["es"]})
    assert r.status_code == 200, r.json
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["subtitles_mode"] == "sidecar"
    [entry] = status["subtitles"]
    assert entry["lang"] == "es" and entry["automatic"] is True
    r = client.get(f"/api/video/download/{video_id}/subtitles/es.vtt", headers=user["headers"])
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == f'attachment; filename="clip_{video_id}.es.vtt"'
    (tmp_path / "es.vtt").write_bytes(r.data)
    got = [text for _, _, text in ffprobe_cues(tmp_path / "es.vtt")]
    want = [_plain(t) for _, _, t in _window(built["expected"]["auto"], START, END)]
    assert got == want and len(set(got)) == len(got)  # no line twice


@pytest.mark.slow
def test_a_subtitle_that_cannot_be_fetched_leaves_the_clip_whole(client, auth, youtube,
                                                                 tmp_path):
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = auth.download(user, video_id, body={"format_preference": "mp4",
                                           "resolution_preference": "720p",
                                           "subtitles": ["fr", "de"], "subtitles_mode": "embed"})
    assert r.status_code == 200, r.json
    (tmp_path / "clip.mp4").write_bytes(r.data)
    text = [s for s in ffprobe(str(tmp_path / "clip.mp4"))["streams"]
            if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in text] == ["deu"]
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert [s["lang"] for s in status["subtitles"]] == ["de"]
    assert set(status["subtitle_errors"]) == {"fr"}
    r = client.get(f"/api/video/download/{video_id}/subtitles/fr.vtt", headers=user["headers"])
    assert r.status_code == 404 and r.json["code"] == "NOT_FOUND"


@pytest.mark.slow
def test_subtitles_of_a_dash_manifest_through_yt_dlp(client, auth, subs, source_server,
                                                      tmp_path):
    """A DASH manifest with a WebVTT AdaptationSet, read by yt-dlp's generic extractor."""
    built, server = subs
    folder = tmp_path / "site"
    folder.mkdir()
    dash_with_text(folder, source_server.base_url)
    (folder / "captions.vtt").write_bytes(Path(built["files"]["captions.vtt"]).read_bytes())
    with SourceServer(folder) as site:
        url = site.url("dash_text.mpd")
        user = auth.user()
        video_id = auth.save_clip(user, url, START, END)
        r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
        assert [s["lang"] for s in r.json["subtitles"]] == ["en"], r.json
        r = auth.download(user, video_id, body={"format_preference": "mp4",
                                               "resolution_preference": "720p",
                                               "subtitles": ["en"]})
        assert r.status_code == 200, r.json
    out = tmp_path / "clip.mp4"
    out.write_bytes(r.data)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-map", "0:s:0", "-c:s", "webvtt",
                    str(tmp_path / "en.vtt")], check=True)
    _same(ffprobe_cues(tmp_path / "en.vtt"), _window(built["expected"]["vtt"], START, END))


@pytest.mark.parametrize("body,status,code,field", [
    ({"subtitles": ["it"]}, 400, "SUBTITLES_UNAVAILABLE", "subtitles"),
    ({"subtitles": ["ja"]}, 400, "SUBTITLES_UNAVAILABLE", "subtitles"),
    ({"format_preference": "mp3", "subtitles": ["en"], "subtitles_mode": "embed"}, 400,
     "VALIDATION_ERROR", "subtitles_mode"),
    ({"subtitles": ["../x"]}, 400, "VALIDATION_ERROR", "subtitles"),
    ({"subtitles": [f"l{n}" for n in range(11)]}, 400, "VALIDATION_ERROR", "subtitles"),
    ({"subtitles": ["en"], "subtitles_mode": "inline"}, 400, "VALIDATION_ERROR",
     "subtitles_mode"),
], ids=["not-offered", "segmented", "embed-in-mp3", "path", "eleven", "mode"])
def test_bad_subtitle_requests_are_400(client, auth, youtube, body, status, code, field):
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=body)
    assert r.status_code == status and r.json["code"] == code, r.json
    assert field in r.json["details"]
    assert client.get(f"/api/video/status/{video_id}",
                      headers=user["headers"]).json["status"] != "processing"


@pytest.mark.slow
def test_subtitles_in_a_1440p_mp4_and_webm(make_app, auth_factory, monkeypatch, source_server,
                                           subs, tmp_path):
    """The ≥1440p MP4 is encoded from WebM in the encode lane: its subtitles are embedded
    after the encode; the WebM of the same ladder carries them as WebVTT."""
    from scripts.highres_source import build_highres_source
    from tests.media_fixtures import SOURCES_DIR
    built, server = subs
    build_highres_source(SOURCES_DIR)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(egress, "_configured", egress.Policy(["127.0.0.1:*"]))
        formats = extract_info(source_server.url("hires/manifest.mpd"))["formats"]
    fake_youtube = FakeYouTube()
    monkeypatch.setattr(yt_dlp.YoutubeDL, "extract_info",
                        lambda self, url, download=False, **kw: fake_youtube.extract(
                            self, url, kw.get("process", True)))
    fake_youtube.set(watch_url(), {
        "id": VIDEO_ID, "title": "Video", "extractor": "youtube", "extractor_key": "Youtube",
        "webpage_url": watch_url(), "display_id": VIDEO_ID, "duration": 60,
        "live_status": "not_live", "formats": formats,
        "subtitles": {"en": [{"ext": "vtt", "url": server.url("captions.vtt")}]}})
    app = make_app(DOWNLOAD_WAIT_SECONDS=0)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), 20, 40)
    want = _window(built["expected"]["vtt"], 20, 40)
    assert want
    for fmt, codec, video in (("mp4", "mov_text", "hevc"), ("webm", "webvtt", "vp9")):
        r = auth.download(user, video_id, body={
            "format_preference": fmt, "resolution_preference": "1440p",
            "quality_preset": "medium", "subtitles": ["en"]}, timeout=300)
        assert r.status_code == 200, r.json
        out = tmp_path / f"clip.{fmt}"
        out.write_bytes(r.data)
        streams = {s["codec_type"]: s for s in ffprobe(str(out))["streams"]}
        assert streams["video"]["codec_name"] == video and streams["video"]["height"] == 1440
        assert streams["subtitle"]["codec_name"] == codec
        # WebM holds WebVTT as it is: copied out (a transcode would drop "< 4" as a tag)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(out), "-map", "0:s:0", "-c:s",
                        "copy" if fmt == "webm" else "webvtt", str(tmp_path / "en.vtt")],
                       check=True)
        got = ffprobe_cues(tmp_path / "en.vtt")
        assert len(got) == len(want)
        for (a, b, text), (c, d, wanted) in zip(got, want):  # WebM: + Opus delay (≤ 10 ms)
            assert abs(a - c) <= 0.01 and abs(b - d) <= 0.01 and _plain(text) == wanted


def test_subtitles_of_a_video_that_cannot_be_read_are_a_media_error(client, auth,
                                                                    fake_youtube):
    """The languages are checked against the video's info first: a video YouTube refuses
    answers its media error (422), not a 500."""
    from tests.youtube_fakes import youtube_error

    fake_youtube.set(watch_url(), youtube_error("Video unavailable. This video is private"))
    user = auth.user()
    video_id = auth.save_clip(user, watch_url(), START, END)
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"],
                    json={"subtitles": ["en"]})
    assert r.status_code == 422 and r.json["code"] == "PRIVATE_VIDEO", r.json
