"""Encoding endpoints: upload → encode → status → download, as a client sees them."""
from __future__ import annotations

import io
import os
import re
import time

import pytest
from bson import ObjectId

from src.media.ffmpeg import ffprobe

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

CLIP = os.path.join(os.path.dirname(__file__), "media", "big_buck_bunny_720p_5s.mp4")


def _upload(client, user, data=None, name="my clip.mp4"):
    data = open(CLIP, "rb").read() if data is None else data
    return client.post("/api/encode/upload", headers=user["headers"],
                       data={"video": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _files(folder):
    return [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]


def _folder(app, encode_id):
    """The upload's folder: a random name stored on its record (not its id, which is
    predictable)."""
    doc = app.extensions["yt"]["db"].videos.find_one({"_id": ObjectId(encode_id)})
    assert re.fullmatch(r"[0-9a-f]{32}", doc["folder"]) and doc["folder"] != encode_id
    return os.path.join(app.config["UPLOADS_DIR"], doc["folder"])


def test_codecs_is_public_and_exact(client):
    r = client.get("/api/encode/codecs")
    assert r.status_code == 200
    assert r.json == {"codecs": {"h264": ["lossless", "high", "medium"],
                                 "h265": ["lossless", "high", "medium"],
                                 "av1": ["lossless", "high", "medium"]}}


def test_upload_encode_download(make_app, auth_factory, tmp_path):
    app = make_app(DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    user = auth_factory(client).user()
    r = _upload(client, user)
    assert r.status_code == 201, r.json
    body = r.json
    assert body["message"] == "Video uploaded successfully"
    assert body["original_filename"] == "my clip.mp4"
    assert body["file_size_mb"] == round(os.path.getsize(CLIP) / 1_048_576, 1)
    assert body["metadata"]["resolution"] == "1280x720"
    assert body["metadata"]["original_codec"] == "h264"
    assert abs(body["metadata"]["duration"] - 5.312) < 0.1
    encode_id = body["encode_id"]
    stored = _files(app.config["UPLOADS_DIR"])
    assert stored == [os.path.join(_folder(app, encode_id), "source.mp4")]

    status = client.get(f"/api/encode/status/{encode_id}", headers=user["headers"]).json
    assert status["status"] == "pending" and status["progress"] == 0
    assert status["file_available"] is False

    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 404

    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 200, r.json
    assert r.json["message"] == "Video encoded successfully" and r.json["encode_id"] == encode_id
    assert r.json["file_size_mb"] > 0

    status = client.get(f"/api/encode/status/{encode_id}", headers=user["headers"]).json
    assert status["status"] == "completed" and status["progress"] == 100
    assert status["file_available"] is True and status["video_codec"] == "h264"
    assert status["quality_preset"] == "medium" and status["encoding_started_at"].endswith("Z")

    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    assert r.headers["Content-Disposition"] == 'attachment; filename="my_clip_h264_medium.mp4"'
    out = tmp_path / "out.mp4"
    out.write_bytes(r.data)
    streams = {s["codec_type"]: s for s in ffprobe(str(out))["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"

    # uploads are not clips
    assert client.get(f"/api/video/status/{encode_id}", headers=user["headers"]).status_code == 404
    assert client.get("/api/video/list", headers=user["headers"]).json == {"videos": []}


def test_progress_and_202_while_encoding(client, auth):
    user = auth.user()
    encode_id = _upload(client, user).json["encode_id"]
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h265", "quality_preset": "high"})
    assert r.status_code == 202
    assert r.json == {"message": "Video is currently being encoded", "status": "processing"}
    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 202 and r.json["status"] == "processing"
    seen = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = client.get(f"/api/encode/status/{encode_id}", headers=user["headers"]).json
        if status["status"] != "processing":
            break
        seen.add(status["progress"])
        time.sleep(0.1)
    assert status["status"] == "completed" and status["progress"] == 100
    assert len({p for p in seen if 0 < p < 100}) >= 2, seen
    r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
    assert r.status_code == 200
    assert r.headers["Content-Disposition"] == 'attachment; filename="my_clip_h265_high.mp4"'


@pytest.mark.parametrize("body, field", [
    ({"video_codec": "vp9", "quality_preset": "high"}, "video_codec"),
    ({"video_codec": "h264", "quality_preset": "ultra"}, "quality_preset"),
    ({"video_codec": "h264"}, "quality_preset"),
    ({"video_codec": 264, "quality_preset": "high"}, "video_codec"),
])
def test_start_validation(client, auth, body, field):
    user = auth.user()
    encode_id = _upload(client, user).json["encode_id"]
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"], json=body)
    assert r.status_code == 400 and field in r.json["details"]


def test_foreign_and_unknown(client, auth):
    owner, other = auth.user(), auth.user()
    encode_id = _upload(client, owner).json["encode_id"]
    body = {"video_codec": "h264", "quality_preset": "high"}
    for method, path in (("post", "/api/encode/start/{}"), ("get", "/api/encode/status/{}"),
                         ("post", "/api/encode/download/{}")):
        r = getattr(client, method)(path.format(encode_id), headers=other["headers"], json=body)
        assert r.status_code == 403, path
        r = getattr(client, method)(path.format("0" * 24), headers=owner["headers"], json=body)
        assert r.status_code == 404, path
        r = getattr(client, method)(path.format("bad"), headers=owner["headers"], json=body)
        assert r.status_code == 404, path
    assert client.post("/api/encode/upload").status_code == 401


def test_bad_uploads_leave_nothing(client, auth, app):
    user = auth.user()
    uploads = app.config["UPLOADS_DIR"]
    # random bytes are sometimes taken by ffprobe's content sniffing for a raw stream off the
    # allow-list (UNSUPPORTED_FORMAT), more often for nothing at all (INVALID_VIDEO)
    r = _upload(client, user, data=os.urandom(200_000), name="garbage.mp4")
    assert r.status_code == 400 and r.json["code"] in ("INVALID_VIDEO", "UNSUPPORTED_FORMAT")
    r = _upload(client, user, name="clip.exe")
    assert r.status_code == 400 and r.json["code"] == "INVALID_FORMAT"
    r = client.post("/api/encode/upload", headers=user["headers"], data={},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and r.json["code"] == "NO_FILE"
    assert _files(uploads) == []
    assert app.extensions["yt"]["db"].videos.count_documents({}) == 0


def test_oversize_upload(make_app, auth_factory):
    app = make_app(MAX_UPLOAD_SIZE_MB=0.5)
    client = app.test_client()
    user = auth_factory(client).user()
    r = _upload(client, user)     # 1 MB clip; 0.5 MB allowed (+1 MiB multipart slack → saved,
    assert r.status_code == 400 and r.json["code"] == "FILE_TOO_LARGE"   # then refused)
    r = _upload(client, user, data=os.urandom(2 * 1024 * 1024))   # cut off by MAX_CONTENT_LENGTH
    assert r.status_code == 400 and r.json["code"] == "FILE_TOO_LARGE"
    assert _files(app.config["UPLOADS_DIR"]) == []


@pytest.mark.parametrize("name", ["../../x.mp4", "..\\..\\evil.mp4", "/etc/passwd.mp4",
                                  "a/../../b.mov"])
def test_traversal_names_are_metadata_only(client, auth, app, tmp_path, name):
    user = auth.user()
    r = _upload(client, user, name=name)
    assert r.status_code == 201, r.json
    assert "/" not in r.json["original_filename"] and "\\" not in r.json["original_filename"]
    encode_id = r.json["encode_id"]
    files = _files(app.config["UPLOADS_DIR"])
    assert files == [os.path.join(_folder(app, encode_id), "source." + name.rsplit(".", 1)[1])]
    assert not os.path.exists(tmp_path / "x.mp4")


def _small(tmp_path, size: str) -> bytes:
    """1 s of ffmpeg's test pattern at ``size`` (W×H), 4:4:4 H.264 (odd sides allowed)."""
    import subprocess

    path = tmp_path / f"{size}.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=25",
                    "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv444p", str(path)], check=True)
    return path.read_bytes()


def test_tiny_frames_are_refused_and_odd_sides_encode(make_app, auth_factory, tmp_path):
    """Under 64 pixels a side: 400 RESOLUTION_TOO_LOW at upload (x265 aborts on such frames,
    SVT-AV1 refuses them). Odd sides of 64 and more encode with every codec at a lossy preset
    (4:2:0 needs even sides: one black row and column are added) and stay exact losslessly."""
    app = make_app(DOWNLOAD_WAIT_SECONDS=120)
    client = app.test_client()
    user = auth_factory(client).user()
    r = _upload(client, user, data=_small(tmp_path, "33x17"), name="tiny.mp4")
    assert r.status_code == 400 and r.json["code"] == "RESOLUTION_TOO_LOW", r.json
    assert "33x17" in r.json["error"]
    data = _small(tmp_path, "67x65")
    for codec, preset, size in (("h264", "high", (68, 66)), ("h265", "medium", (68, 66)),
                                ("av1", "medium", (68, 66)), ("h264", "lossless", (67, 65))):
        r = _upload(client, user, data=data, name="odd.mp4")
        assert r.status_code == 201, r.json
        encode_id = r.json["encode_id"]
        r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                        json={"video_codec": codec, "quality_preset": preset})
        assert r.status_code == 200, (codec, preset, r.json)
        r = client.post(f"/api/encode/download/{encode_id}", headers=user["headers"])
        out = tmp_path / f"{codec}-{preset}.mp4"
        out.write_bytes(r.data)
        video = ffprobe(str(out))["streams"][0]
        assert (video["width"], video["height"]) == size, (codec, preset, video)


def test_an_encode_deleted_while_its_request_waits_is_404(make_app, auth_factory):
    """The record goes while the start request waits for the encode (an owner's clean-up from
    another tab, the retention sweep): the answer is 404, not a 500."""
    import threading

    app = make_app(DOWNLOAD_WAIT_SECONDS=5)
    client = app.test_client()
    user = auth_factory(client).user()
    encode_id = _upload(client, user).json["encode_id"]
    videos = app.extensions["yt"]["db"].videos
    threading.Timer(0.5, lambda: videos.delete_one({"_id": ObjectId(encode_id)})).start()
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "av1", "quality_preset": "high"})
    assert r.status_code == 404 and r.json["code"] == "NOT_FOUND", r.json
