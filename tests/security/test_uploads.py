"""Uploads as an attacker sends them (issue 11, items 1-2): files whose *content* makes ffmpeg read
other files (an HLS playlist or an ffconcat script named ``innocent.mp4``), anything that is not a
real container, and tiny files that claim huge work (8192x8192, 4 h, 1000 fps). Each is refused
with a clear 400 through the real API, and nothing of it stays on disk or in the store; every
container we accept still uploads and encodes. Folders are random, not the record's id.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import pytest
from bson import ObjectId

from src.media import probe
from src.media.ffmpeg import ffprobe
from src.services.upload_service import ALLOWED_EXTENSIONS

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CLIP = Path(__file__).resolve().parent.parent / "media" / "big_buck_bunny_720p_5s.mp4"


def _ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-y", "-v", "error", *args],
                   check=True, capture_output=True)


def _upload(client, user, data: bytes, name: str = "innocent.mp4"):
    return client.post("/api/encode/upload", headers=user["headers"],
                       data={"video": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _files(folder) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def _videos(app):
    return app.extensions["yt"]["db"].videos


def _victim(client, auth, app):
    """User A with the real clip uploaded; returns (A, the absolute path of A's upload, as an
    attacker who guessed it would write it)."""
    victim = auth.user()
    r = _upload(client, victim, CLIP.read_bytes(), "private.mp4")
    assert r.status_code == 201, r.json
    path = _videos(app).find_one({"_id": ObjectId(r.json["encode_id"])})["input_file_path"]
    assert os.path.isfile(path)
    return victim, path


def _hls(segment: str) -> bytes:
    return (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n"
            f"#EXTINF:5.3,\n{segment}\n#EXT-X-ENDLIST\n").encode()


#: playlists and scripts naming the victim's file, by how they name it ({path}: absolute path)
HOSTILE = {
    "hls-absolute-path": lambda path: _hls(path),
    "hls-file-url": lambda path: _hls(f"file://{path}"),
    "hls-file-protocol": lambda path: _hls(f"file:{path}"),
    "hls-concat-protocol": lambda path: _hls(f"concat:{path}|{path}"),
    "ffconcat-absolute": lambda path: f"ffconcat version 1.0\nfile '{path}'\n".encode(),
    "ffconcat-file-protocol": lambda path: f"ffconcat version 1.0\nfile 'file:{path}'\n".encode(),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("name", ["innocent.mp4", "innocent.mkv"])
def test_playlist_naming_another_users_file_is_refused(client, auth, app, tmp_path, kind, name):
    victim, victim_path = _victim(client, auth, app)
    uploads_before = _files(app.config["UPLOADS_DIR"])
    attacker = auth.user()
    payload = HOSTILE[kind](victim_path)
    r = _upload(client, attacker, payload, name)
    assert r.status_code == 400, r.json
    assert r.json["code"] == "UNSUPPORTED_FORMAT" and "Unsupported file format" in r.json["error"]
    assert set(r.json) == {"error", "code"}
    assert _files(app.config["UPLOADS_DIR"]) == uploads_before   # nothing of the attacker's kept
    assert _videos(app).count_documents({"user_id": ObjectId(attacker["id"])}) == 0


def test_the_hls_attack_is_real_without_the_allow_list(client, auth, app, tmp_path):
    """Guards the test above: opened the way ffprobe did before (no allow-list), the playlist is
    read as HLS and yields the victim's 1280x720 video."""
    _, victim_path = _victim(client, auth, app)
    playlist = tmp_path / "innocent.mp4"
    playlist.write_bytes(_hls(victim_path))
    info = ffprobe(str(playlist))
    assert info["format"]["format_name"] == "hls"
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (1280, 720)
    with pytest.raises(probe.InvalidMediaError) as refused:   # and with it, refused
        probe.probe_video(str(playlist))
    assert refused.value.code == "UNSUPPORTED_FORMAT"


@pytest.fixture(scope="module")
def not_containers(tmp_path_factory) -> dict:
    """Real media that is not a container we accept, each named .mp4 by the attacker."""
    folder = tmp_path_factory.mktemp("not-containers")
    out = {name: folder / f"{name}.mp4" for name in ("raw_h264", "png", "gif", "mjpeg")}
    _ffmpeg("-i", str(CLIP), "-t", "1", "-an", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb",
            "-f", "h264", str(out["raw_h264"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64", "-frames:v", "1", "-f", "image2",
            "-c:v", "png", str(out["png"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=5", "-t", "1", "-f", "gif", str(out["gif"]))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=64x64:r=5", "-t", "1", "-c:v", "mjpeg",
            "-f", "mjpeg", str(out["mjpeg"]))
    return out


@pytest.mark.parametrize("kind", ["raw_h264", "png", "gif", "mjpeg"])
def test_media_that_is_not_a_container_we_accept_is_refused(client, auth, app, not_containers,
                                                            kind):
    user = auth.user()
    assert ffprobe(str(not_containers[kind]))["streams"][0]["codec_type"] == "video"  # real media
    r = _upload(client, user, not_containers[kind].read_bytes())
    assert r.status_code == 400 and r.json["code"] == "UNSUPPORTED_FORMAT", r.json
    assert _files(app.config["UPLOADS_DIR"]) == []
    assert _videos(app).count_documents({}) == 0


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict:
    """The clip's first second at 320x180 in every upload extension, as ffmpeg writes each."""
    folder = tmp_path_factory.mktemp("containers")
    out = {}
    for ext in ALLOWED_EXTENSIONS:
        out[ext] = folder / f"clip.{ext}"
        extra = {"3gp": ["-s", "176x144", "-an"], "wmv": ["-ac", "2"]}.get(ext, [])
        _ffmpeg("-i", str(CLIP), "-t", "1", "-s", "320x180", *extra, str(out[ext]))
    return out


def test_every_accepted_container_uploads_and_encodes(make_app, auth_factory, containers,
                                                      tmp_path):
    """The allow-list admits what upload_service.ALLOWED_EXTENSIONS promises: each container
    probes as one of UPLOAD_DEMUXERS, uploads (201) and encodes to a playable H.264 MP4."""
    app = make_app(DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    user = auth_factory(client).user()
    for ext, path in containers.items():
        assert ffprobe(str(path))["format"]["format_name"] in probe.UPLOAD_DEMUXERS, ext
        r = _upload(client, user, path.read_bytes(), f"clip.{ext}")
        assert r.status_code == 201, (ext, r.json)
        encode_id = r.json["encode_id"]
        r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                        json={"video_codec": "h264", "quality_preset": "medium"})
        assert r.status_code == 200, (ext, r.json)
        r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
        assert r.status_code == 200, ext
        out = tmp_path / f"{ext}.mp4"
        out.write_bytes(r.data)
        video = next(s for s in ffprobe(str(out))["streams"] if s["codec_type"] == "video")
        assert video["codec_name"] == "h264" and video["height"] in (144, 180), ext


def test_upload_folders_are_random_not_the_id(client, auth, app):
    user = auth.user()
    ids = [_upload(client, user, CLIP.read_bytes()).json["encode_id"] for _ in range(2)]
    folders = sorted(os.listdir(app.config["UPLOADS_DIR"]))
    docs = {str(d["_id"]): d for d in _videos(app).find()}
    assert sorted(docs[i]["folder"] for i in ids) == folders
    for encode_id in ids:
        folder = docs[encode_id]["folder"]
        assert re.fullmatch(r"[0-9a-f]{32}", folder) and encode_id not in folder
        assert docs[encode_id]["input_file_path"] == os.path.join(
            app.config["UPLOADS_DIR"], folder, "source.mp4")


def test_encode_refuses_a_source_that_is_not_on_the_allow_list(make_app, auth_factory):
    """Defence in depth: should a playlist reach the encoder (here: the stored upload replaced
    on disk after its probe), ffmpeg refuses it and the encode ends failed UNSUPPORTED_FORMAT,
    answered 422, with no output left."""
    app = make_app(DOWNLOAD_WAIT_SECONDS=60)
    client = app.test_client()
    auth = auth_factory(client)
    victim, victim_path = _victim(client, auth, app)
    attacker = auth.user()
    encode_id = _upload(client, attacker, CLIP.read_bytes()).json["encode_id"]
    doc = _videos(app).find_one({"_id": ObjectId(encode_id)})
    Path(doc["input_file_path"]).write_bytes(_hls(victim_path))
    r = client.post(f"/api/encode/start/{encode_id}", headers=attacker["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 422 and r.json["code"] == "UNSUPPORTED_FORMAT", r.json
    r = client.post(f"/api/encode/download/{encode_id}", headers=attacker["headers"])
    assert r.status_code == 422 and r.json["code"] == "UNSUPPORTED_FORMAT"
    assert os.listdir(os.path.dirname(doc["input_file_path"])) == ["source.mp4"]


# --- tiny files that claim huge work -------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict:
    """Small files made with plain ffmpeg that probe as 8192x8192, 4 h and 1000 fps."""
    folder = tmp_path_factory.mktemp("hostile")
    out = {name: folder / f"{name}.mp4" for name in ("huge_frame", "four_hours", "fast")}
    _ffmpeg("-f", "lavfi", "-i", "color=s=8192x8192:r=1", "-frames:v", "1", "-c:v", "libx264",
            "-preset", "ultrafast", str(out["huge_frame"]))
    _ffmpeg("-f", "lavfi", "-i", "color=s=16x16:r=1", "-t", "14400", "-c:v", "libx264",
            "-preset", "ultrafast", str(out["four_hours"]))
    _ffmpeg("-f", "lavfi", "-i", "color=s=16x16:r=1000", "-t", "1", "-c:v", "libx264",
            "-preset", "ultrafast", str(out["fast"]))
    return out


@pytest.mark.parametrize("kind, code, claim", [
    ("huge_frame", "RESOLUTION_TOO_HIGH", "8192x8192"),
    ("four_hours", "VIDEO_TOO_LONG", "4:00:00"),
    ("fast", "FRAME_RATE_TOO_HIGH", "1000 frames per second"),
])
def test_tiny_file_claiming_huge_work_is_refused(client, auth, app, hostile, kind, code, claim):
    path = hostile[kind]
    assert path.stat().st_size < 250_000           # tiny...
    info = ffprobe(str(path))                      # ...but probing as what the test says
    video = info["streams"][0]
    assert {"huge_frame": video["width"] * video["height"] == 8192 * 8192,
            "four_hours": float(info["format"]["duration"]) == 14400,
            "fast": video["avg_frame_rate"] == "1000/1"}[kind]
    user = auth.user()
    r = _upload(client, user, path.read_bytes())
    assert r.status_code == 400 and r.json["code"] == code, r.json
    assert claim in r.json["error"] and "at most" in r.json["error"]
    assert _files(app.config["UPLOADS_DIR"]) == []
    assert _videos(app).count_documents({}) == 0


@pytest.mark.parametrize("setting, at_cap, code", [
    ("MAX_UPLOAD_DURATION_SECONDS", 5.312, "VIDEO_TOO_LONG"),
    ("MAX_UPLOAD_PIXELS", 1280 * 720, "RESOLUTION_TOO_HIGH"),
    ("MAX_UPLOAD_FRAME_RATE", 25, "FRAME_RATE_TOO_HIGH"),
])
def test_caps_are_settings_and_inclusive(make_app, auth_factory, setting, at_cap, code):
    """The real clip (5.312 s, 1280x720, 25 fps) passes a cap set exactly at its value and is
    refused just below it."""
    below = at_cap - 1 if isinstance(at_cap, int) else at_cap - 0.1
    for value, status in ((at_cap, 201), (below, 400)):
        app = make_app(**{setting: value})
        client = app.test_client()
        user = auth_factory(client).user()
        before = _files(app.config["UPLOADS_DIR"])   # the apps share the folder
        r = _upload(client, user, CLIP.read_bytes())
        assert r.status_code == status, (value, r.json)
        if status == 400:
            assert r.json["code"] == code
            assert _files(app.config["UPLOADS_DIR"]) == before


def test_frame_count_beyond_the_rate_cap_is_refused(monkeypatch, tmp_path):
    """A stated frame rate under the cap does not hide a frame count beyond it: 100 000 frames in
    a 10 s stream are 10 000 fps, whatever avg_frame_rate says (the probe is faked: this is the
    rule on ffprobe's numbers; the file behind it is never decoded)."""
    stated = {"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "10.0"},
              "streams": [{"codec_type": "video", "codec_name": "h264", "width": 64, "height": 64,
                           "avg_frame_rate": "25/1", "duration": "10.0", "nb_frames": "100000"}]}
    monkeypatch.setattr(probe, "ffprobe", lambda path, **kw: stated)
    monkeypatch.setattr(probe, "_check_decodes", lambda path: pytest.fail("decoded"))
    limits = probe.UploadLimits(max_duration=3600, max_pixels=10 ** 6, max_frame_rate=240)
    with pytest.raises(probe.InvalidMediaError) as refused:
        probe.probe_video(str(tmp_path / "x.mp4"), limits)
    assert refused.value.code == "FRAME_RATE_TOO_HIGH" and "10000 frames" in str(refused.value)
