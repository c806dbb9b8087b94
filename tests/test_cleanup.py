"""CleanupService: expired files deleted exactly once across several schedulers sharing the real
Redis, expired clips downloadable again, expired uploads refused clearly, orphans swept, files of
a running job left alone."""
from __future__ import annotations

import logging
import os
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId

from src.services import cleanup_service

PAST = timedelta(minutes=5)


def _completed_clip(app, user_id=None, ago=PAST, legacy=False) -> tuple[str, str]:
    """Insert a completed clip whose file exists and whose expires_at lies ``ago`` in the past;
    its folder has a random name stored as ``folder``, or (``legacy``: a record made before
    random names) is named after its id and not stored."""
    db = app.extensions["yt"]["db"]
    oid, job_id = ObjectId(), "job-" + os.urandom(4).hex()
    name = str(oid) if legacy else os.urandom(16).hex()
    folder = os.path.join(app.config["DOWNLOADS_DIR"], name)
    os.makedirs(folder)
    path = os.path.join(folder, f"{job_id}.mp4")
    with open(path, "wb") as fh:
        fh.write(b"\0" * 1000)
    db.videos.insert_one({
        "_id": oid, "user_id": ObjectId(user_id) if user_id else ObjectId(), "source_type": "url",
        "url": "http://127.0.0.1/x.mp4", "status": "completed", "job_id": job_id,
        "file_path": path, "file_format": "mp4", "file_size_bytes": 1000,
        "created_at": datetime.now(timezone.utc),
        "expires_at": datetime.now(timezone.utc) - ago, **({} if legacy else {"folder": name})})
    return str(oid), path


@pytest.mark.slow
def test_four_schedulers_delete_each_expired_file_once(make_app, redis_uri, caplog):
    """Four apps (as four gunicorn workers) run the cleanup every 1.2 s against the same store and
    the real Redis: every expired file is deleted by exactly one run, one run per slot."""
    if not redis_uri:
        pytest.skip("needs the real Redis server")
    apps = [make_app(CLEANUP_INTERVAL_MINUTES=0.02) for _ in range(4)]
    for key in apps[0].extensions["yt"]["redis"].scan_iter("cleanup:*"):
        apps[0].extensions["yt"]["redis"].delete(key)
    shared = apps[0].extensions["yt"]["db"]
    for app in apps[1:]:
        app.extensions["yt"]["db"] = shared
        app.config["DOWNLOADS_DIR"] = apps[0].config["DOWNLOADS_DIR"]
        app.config["UPLOADS_DIR"] = apps[0].config["UPLOADS_DIR"]
    expected = {_completed_clip(apps[0], legacy=i % 3 == 0)[1] for i in range(12)}
    fresh_id, fresh = _completed_clip(apps[0], ago=-timedelta(minutes=30))  # not due yet
    with caplog.at_level(logging.INFO, logger="src.services.cleanup_service"):
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and shared.videos.count_documents(
                {"status": "expired"}) < len(expected):
            time.sleep(0.2)
        time.sleep(3)   # more slots go by: nothing may be deleted twice
    removed = [m.group(1) for m in (re.match(r"cleanup: removed (\S+) \(clip expired\)",
                                             r.getMessage()) for r in caplog.records) if m]
    assert sorted(removed) == sorted(expected)          # each file once, none twice
    assert not any(os.path.exists(p) for p in expected) and os.path.exists(fresh)
    slots = [m.group(1) for m in (re.match(r"cleanup: run for slot (\d+)", r.getMessage())
                                  for r in caplog.records) if m]
    assert len(slots) >= 3 and len(slots) == len(set(slots)), slots   # one run per interval
    pids = {r.process for r in caplog.records}
    assert pids  # all in this process here; the lock is in Redis, not in memory
    for doc in shared.videos.find({"_id": {"$ne": ObjectId(fresh_id)}}):
        assert doc["status"] == "expired" and doc["file_path"] is None


@pytest.mark.slow
def test_expired_clip_is_downloaded_again(make_app, auth_factory, source_server, tmp_path):
    app = make_app(DOWNLOAD_WAIT_SECONDS=60)
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.mp4_url, 10, 14)
    assert client.post(f"/api/video/download/{video_id}", headers=user["headers"]).status_code \
        == 200
    db = app.extensions["yt"]["db"]
    first, picture = (db.videos.find_one()[key] for key in ("file_path", "thumbnail_path"))
    db.videos.update_one({}, {"$set": {"expires_at": datetime.now(timezone.utc) - PAST}})
    with app.app_context():
        report = cleanup_service.run_cleanup()
    assert report["expired"] == [first, picture] and not os.path.exists(first)
    status = client.get(f"/api/video/status/{video_id}", headers=user["headers"]).json
    assert status["status"] == "expired" and status["file_available"] is False
    assert status["file_size_mb"] is None

    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.mimetype == "video/mp4" and len(r.data) > 10_000
    doc = db.videos.find_one()
    assert doc["status"] == "completed" and os.path.isfile(doc["file_path"])
    assert doc["expires_at"].replace(tzinfo=timezone.utc) > datetime.now(timezone.utc)


def test_expired_upload_loses_both_files_and_refuses_encode(client, auth, app, tmp_path):
    from tests.test_encode import _upload  # the real clip, uploaded through the API

    user = auth.user()
    r = _upload(client, user)
    assert r.status_code == 201, r.json
    encode_id = r.json["encode_id"]
    db = app.extensions["yt"]["db"]
    folder = os.path.dirname(db.videos.find_one()["input_file_path"])
    assert os.path.basename(folder) == db.videos.find_one()["folder"] != encode_id
    open(os.path.join(folder, "encoded_h264_medium.mp4"), "wb").write(b"x")
    db.videos.update_one({}, {"$set": {"status": "completed", "expires_at":
                                       datetime.now(timezone.utc) - PAST}})
    with app.app_context():
        report = cleanup_service.run_cleanup()
    assert report["expired"] == [folder] and not os.path.exists(folder)
    r = client.post(f"/api/encode/start/{encode_id}", headers=user["headers"],
                    json={"video_codec": "h264", "quality_preset": "medium"})
    assert r.status_code == 410 and r.json["code"] == "UPLOAD_EXPIRED", r.json
    status = client.get(f"/api/encode/status/{encode_id}", headers=user["headers"]).json
    assert status["status"] == "expired" and status["file_available"] is False


def test_processing_clip_and_claimed_clip_are_left_alone(app):
    """A clip that a new job claimed (processing) keeps its files even though expires_at passed,
    and an expiry guarded by the old job id does nothing once a new job owns the record."""
    video_id, path = _completed_clip(app)
    db = app.extensions["yt"]["db"]
    db.videos.update_one({"_id": ObjectId(video_id)}, {"$set": {"status": "processing",
                                                               "job_id": "new-job"}})
    app.extensions["yt"]["redis"].set(f"heartbeat:{video_id}", "new-job", ex=30)
    partial = os.path.join(os.path.dirname(path), ".new-job.mp4.x.part")
    open(partial, "wb").write(b"x")
    old = time.time() - 10 * 3600
    for p in (path, partial, os.path.dirname(path)):
        os.utime(p, (old, old))
    with app.app_context():
        report = cleanup_service.run_cleanup()
    assert report["expired"] == [] and report["swept"] == []
    assert os.path.exists(path) and os.path.exists(partial)
    assert db.videos.find_one()["status"] == "processing"


def test_orphans_and_stale_partials_are_swept(app):
    downloads, uploads = app.config["DOWNLOADS_DIR"], app.config["UPLOADS_DIR"]
    old = time.time() - (app.config["ORPHAN_MAX_AGE_MINUTES"] * 60 + 60)

    def aged(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.utime(os.path.join(root, name), (old, old))
        os.utime(path, (old, old))
        return path

    def folder(base, name, files=("a.mp4",)):
        path = os.path.join(base, name)
        os.makedirs(path)
        for f in files:
            open(os.path.join(path, f), "wb").write(b"x")
        return path

    no_record = aged(folder(downloads, str(ObjectId())))
    no_record_random = aged(folder(downloads, os.urandom(16).hex()))
    junk_name = aged(folder(uploads, "not-an-id"))
    fresh_upload = folder(uploads, os.urandom(16).hex(), ("source.mp4",))  # being saved now
    video_id, kept_file = _completed_clip(app, ago=-timedelta(minutes=30))
    stale_partial = os.path.join(os.path.dirname(kept_file), ".dead.mp4.abc.part")
    open(stale_partial, "wb").write(b"x")
    aged(os.path.dirname(kept_file))
    # a record made before random names: its id-named folder is still its own
    legacy_id, legacy_file = _completed_clip(app, ago=-timedelta(minutes=30), legacy=True)
    legacy_partial = os.path.join(os.path.dirname(legacy_file), ".dead.mp4.def.part")
    open(legacy_partial, "wb").write(b"x")
    aged(os.path.dirname(legacy_file))
    # a folder of a clip's own kind in the other base folder is no folder of it
    wrong_kind = aged(folder(uploads, app.extensions["yt"]["db"].videos.find_one(
        {"_id": ObjectId(video_id)})["folder"]))
    with app.app_context():
        report = cleanup_service.run_cleanup()
    assert sorted(report["swept"]) == sorted([no_record, no_record_random, junk_name,
                                              stale_partial, legacy_partial, wrong_kind])
    assert os.path.exists(fresh_upload) and os.path.exists(kept_file)
    assert os.path.exists(legacy_file)
    assert not os.path.exists(no_record) and not os.path.exists(stale_partial)


def test_legacy_id_named_folders_expire_and_are_swept_once_replaced(app, make_app):
    """Records made before random folder names: an expired upload loses its id-named folder,
    and a clip whose new job wrote into a random folder leaves its old id-named folder to the
    sweep."""
    db = app.extensions["yt"]["db"]
    uploads = app.config["UPLOADS_DIR"]
    upload_id = ObjectId()
    upload_folder = os.path.join(uploads, str(upload_id))
    os.makedirs(upload_folder)
    open(os.path.join(upload_folder, "source.mp4"), "wb").write(b"x")
    db.videos.insert_one({"_id": upload_id, "user_id": ObjectId(), "source_type": "upload",
                          "status": "pending", "input_file_path":
                          os.path.join(upload_folder, "source.mp4"), "file_path": None,
                          "expires_at": datetime.now(timezone.utc) - PAST})
    clip_id, old_file = _completed_clip(app, ago=-timedelta(minutes=30), legacy=True)
    new_folder = os.path.join(app.config["DOWNLOADS_DIR"], os.urandom(16).hex())
    os.makedirs(new_folder)
    new_file = os.path.join(new_folder, "job-new.mp4")
    open(new_file, "wb").write(b"y")
    db.videos.update_one({"_id": ObjectId(clip_id)}, {"$set": {
        "folder": os.path.basename(new_folder), "file_path": new_file, "job_id": "job-new"}})
    old = time.time() - (app.config["ORPHAN_MAX_AGE_MINUTES"] * 60 + 60)
    for path in (old_file, os.path.dirname(old_file), new_file, new_folder):
        os.utime(path, (old, old))
    with app.app_context():
        report = cleanup_service.run_cleanup()
    assert report["expired"] == [upload_folder] and not os.path.exists(upload_folder)
    assert report["swept"] == [old_file]             # stale in the record's old folder...
    assert not os.path.exists(os.path.dirname(old_file))          # ...which is then dropped
    assert os.path.exists(new_file)
