"""Audio-only clips (issue 18, item 1) through the API: mp3 / m4a / opus from the local DASH
ladder (made by plain ``ffmpeg -f dash``, extracted by yt-dlp's own generic extractor) behind
a YouTube-like page (title, channel, thumbnail). Asserts what the owner gets: the file's
ffprobe (codec, duration, bitrate, tags, cover), its name, and the bytes the source sent —
only the audio stream's, never a byte of video."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from scripts.local_source import SourceServer
from src.media.ffmpeg import ffprobe
from tests.youtube_fakes import VIDEO_ID, watch_url

pytestmark = pytest.mark.usefixtures("local_egress")

MEDIA = Path(__file__).resolve().parent / "media" / "big_buck_bunny_720p_5s.mp4"
START, END = 300, 330
#: Bytes per second of the DASH audio (600 s of AAC in one file, ffmpeg's ``-f dash``).
AUDIO = "dash/audio.m4a"


@pytest.fixture(scope="module")
def thumbnails(tmp_path_factory):
    """A server with ``thumb.webp`` (a frame of the real clip, as YouTube serves them)."""
    folder = tmp_path_factory.mktemp("thumbs")
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "2", "-i", str(MEDIA), "-frames:v", "1",
                    "-vf", "scale=640:360", str(folder / "thumb.webp")], check=True)
    with SourceServer(folder) as server:
        yield server


@pytest.fixture
def youtube(dash_formats, fake_youtube, clean_source_server, thumbnails):
    """The YouTube URL of a video whose formats are the DASH ladder's, as yt-dlp extracted
    them, with a title, a channel and a WebP thumbnail."""
    formats = [dict(f) for f in dash_formats]
    fake_youtube.set(watch_url(), {
        "id": VIDEO_ID, "title": "Big Buck Bunny — the dream", "channel": "Blender Studio",
        "uploader": "Blender", "extractor": "youtube", "extractor_key": "Youtube",
        "webpage_url": watch_url(), "display_id": VIDEO_ID, "duration": 600,
        "live_status": "not_live", "thumbnail": thumbnails.url("thumb.webp"), "formats": formats})
    time.sleep(0.3)  # yt-dlp's look at the files has ended
    return watch_url()


def _tags(probe: dict) -> dict:
    tags = dict(probe["format"].get("tags") or {})
    for stream in probe["streams"]:
        if stream["codec_type"] == "audio":
            tags.update(stream.get("tags") or {})
    return {key.lower(): value for key, value in tags.items()}


def _window_bytes(server, seconds: float) -> float:
    """What the audio stream holds for ``seconds`` of the clip (its mean rate)."""
    return server.size(AUDIO) / 600 * seconds


@pytest.mark.slow
def test_an_mp3_clip_fetches_only_the_audio_and_carries_tags_and_cover(
        client, auth, youtube, clean_source_server, tmp_path):
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.json["audio_formats"] == ["mp3", "m4a", "opus"], r.json
    time.sleep(0.3)
    clean_source_server.reset_counters()
    r = auth.download(user, video_id, body={"format_preference": "mp3", "audio_bitrate": 128})
    assert r.status_code == 200, r.json
    assert r.headers["Content-Type"] == "audio/mpeg"
    assert r.headers["Content-Disposition"] == f'attachment; filename="clip_{video_id}.mp3"'
    out = tmp_path / "clip.mp3"
    out.write_bytes(r.data)

    audio_bytes = clean_source_server.bytes_served(AUDIO)
    assert 0 < audio_bytes <= 1.2 * _window_bytes(clean_source_server, END - START)
    assert clean_source_server.bytes_served("dash/video_720p.mp4") == 0
    assert clean_source_server.bytes_served("dash/video_480p.mp4") == 0

    probe = ffprobe(str(out))
    assert probe["format"]["format_name"] == "mp3"
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    cover = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert len(audio) == 1 and audio[0]["codec_name"] == "mp3"
    assert int(audio[0]["bit_rate"]) == 128_000
    assert abs(float(probe["format"]["duration"]) - 30) <= 0.3
    tags = _tags(probe)
    assert tags["title"] == "Big Buck Bunny — the dream"
    assert tags["artist"] == "Blender Studio"
    assert "0:05:00–0:05:30" in tags["comment"] and VIDEO_ID in tags["comment"]
    assert len(cover) == 1 and cover[0]["disposition"]["attached_pic"] == 1
    assert cover[0]["codec_name"] == "mjpeg"

    r = client.get(f"/api/video/status/{video_id}", headers=user["headers"])
    assert r.json["format_preference"] == "mp3" and r.json["audio_bitrate"] == 128
    assert r.json["status"] == "completed" and r.json["file_available"]


@pytest.mark.slow
@pytest.mark.parametrize("container,codec,format_name", [
    ("m4a", "aac", "mov,mp4,m4a,3gp,3g2,mj2"), ("opus", "opus", "ogg")])
def test_m4a_and_opus_clips(client, auth, youtube, clean_source_server, tmp_path, container,
                            codec, format_name):
    """m4a takes the source's AAC as it is (stream copy: the source's bitrate); opus is
    encoded from it (the ladder has no Opus) at the default 128 kbit/s."""
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    r = auth.download(user, video_id, body={"format_preference": container})
    assert r.status_code == 200, r.json
    assert r.headers["Content-Disposition"] == \
        f'attachment; filename="clip_{video_id}.{container}"'
    out = tmp_path / f"clip.{container}"
    out.write_bytes(r.data)
    probe = ffprobe(str(out))
    assert probe["format"]["format_name"] == format_name
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert len(audio) == 1 and audio[0]["codec_name"] == codec
    assert abs(float(probe["format"]["duration"]) - 30) <= 0.3
    cover = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert len(cover) == 1 and cover[0]["disposition"]["attached_pic"] == 1
    assert _tags(probe)["title"] == "Big Buck Bunny — the dream"
    if container == "m4a":  # copied: the source's bitrate (its MPD says 98.8 kbit/s)
        assert abs(int(audio[0]["bit_rate"]) - 98_800) < 5_000

    assert clean_source_server.bytes_served("dash/video_720p.mp4") == 0


@pytest.mark.slow
def test_switching_from_audio_to_video_makes_a_new_file(client, auth, youtube, tmp_path):
    user = auth.user()
    video_id = auth.save_clip(user, youtube, START, END)
    assert auth.download(user, video_id, body={"format_preference": "m4a"}).status_code == 200
    r = auth.download(user, video_id, body={"format_preference": "mp4",
                                           "resolution_preference": "720p"})
    assert r.status_code == 200 and r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Content-Disposition"] == f'attachment; filename="video_{video_id}.mp4"'
    (tmp_path / "v.mp4").write_bytes(r.data)
    streams = {s["codec_type"]: s for s in ffprobe(str(tmp_path / "v.mp4"))["streams"]}
    assert streams["video"]["height"] == 720
    r = auth.download(user, video_id, body={"format_preference": "m4a", "audio_bitrate": 64})
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/mp4"
    (tmp_path / "a.m4a").write_bytes(r.data)
    audio = [s for s in ffprobe(str(tmp_path / "a.m4a"))["streams"]
             if s["codec_type"] == "audio"][0]
    assert audio["codec_name"] == "aac" and int(audio["bit_rate"]) < 80_000  # encoded down


@pytest.mark.parametrize("body,field", [
    ({"format_preference": "flac"}, "format_preference"),
    ({"format_preference": "mp3", "audio_bitrate": 100}, "audio_bitrate"),
    ({"format_preference": "mp3", "audio_bitrate": "128"}, "audio_bitrate"),
], ids=["flac", "bitrate-100", "bitrate-string"])
def test_bad_audio_options_are_400(client, auth, body, field):
    user = auth.user()
    video_id = auth.save_clip(user, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=body)
    assert r.status_code == 400 and r.json["code"] == "VALIDATION_ERROR"
    assert field in r.json["details"]
