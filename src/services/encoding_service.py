"""Uploads and their re-encode to MP4 (spec: Video Encoding Endpoints 1-5, Core Services 3).

An upload is a ``videos`` document with ``source_type: "upload"``; its files live in
``UPLOADS_DIR/{encode_id}/``: ``source.{ext}`` (the upload, a server-made name) and
``encoded_{codec}_{preset}.mp4``. The user's file name is metadata only.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from werkzeug.utils import secure_filename

from ..data import videos
from ..errors import ApiError
from ..extensions import db, jobs, redis, setting
from ..media.encode import InvalidMediaError, encode_to_mp4, probe_video
from ..media.ffmpeg import FFmpegError
from . import progress_cache
from .jobs import JobCancelled
from .video_service import iso

log = logging.getLogger(__name__)

#: Upload extensions accepted (spec: Upload Video for Encoding, Allowed Formats).
ALLOWED_EXTENSIONS = ("mp4", "avi", "mkv", "mov", "flv", "wmv", "webm", "m4v", "mpg", "mpeg", "3gp")
POLL_SECONDS = 0.2


def _folder(encode_id: str) -> str:
    return os.path.join(setting("UPLOADS_DIR"), encode_id)


def _max_upload_bytes() -> int:
    return int(setting("MAX_UPLOAD_SIZE_MB") * 1024 * 1024)


def too_large() -> ApiError:
    """The error for an upload over ``MAX_UPLOAD_SIZE_MB``."""
    return ApiError(400, f"File is larger than {setting('MAX_UPLOAD_SIZE_MB'):g} MB",
                    "FILE_TOO_LARGE")


def original_name(filename: str | None) -> str:
    """The user's file name reduced to its last path component (metadata only), ≤ 255 chars."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[-255:]


def save_upload(file_storage, user_id: str) -> dict:
    """Store an uploaded video and its probe; return the spec's upload response.

    ``file_storage``: a werkzeug FileStorage (already spooled to disk by werkzeug's parser, copied
    here in chunks). Raises ApiError 400: NO_FILE, INVALID_FORMAT (extension not allowed),
    FILE_TOO_LARGE, INVALID_VIDEO (not a decodable video). On any error nothing stays on disk.
    """
    if file_storage is None or not file_storage.filename:
        raise ApiError(400, "No file in the 'video' form field", "NO_FILE")
    name = original_name(file_storage.filename)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in ALLOWED_EXTENSIONS:
        raise ApiError(400, f"File type not allowed; use one of: {', '.join(ALLOWED_EXTENSIONS)}",
                       "INVALID_FORMAT")
    encode_id = ObjectId()
    folder = _folder(str(encode_id))
    path = os.path.join(folder, f"source.{ext}")
    os.makedirs(folder)
    try:
        file_storage.save(path)
        size = os.path.getsize(path)
        if size > _max_upload_bytes():
            raise too_large()
        metadata = probe_video(path)
    except InvalidMediaError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(400, str(exc), "INVALID_VIDEO") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    now = datetime.now(timezone.utc)
    videos.insert(db(), {
        "_id": encode_id, "user_id": ObjectId(user_id), "source_type": "upload",
        "original_filename": name, "input_file_path": path, "status": "pending",
        "file_path": None, "file_size_bytes": None, "input_size_bytes": size,
        "metadata": metadata, "video_codec": None, "audio_codec": "aac", "quality_preset": None,
        "encoding_progress": 0, "error_message": None, "error_code": None,
        "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))})
    return {"message": "Video uploaded successfully", "encode_id": str(encode_id),
            "original_filename": name, "file_size_mb": round(size / 1_048_576, 1),
            "metadata": {"duration": round(metadata["duration"], 3),
                         "resolution": metadata["resolution"],
                         "original_codec": metadata["original_codec"]}}


def get_owned_upload(encode_id: str, user_id: str) -> dict:
    """The upload ``encode_id`` if ``user_id`` owns it; ApiError 404 / 403 otherwise."""
    doc = videos.get(db(), encode_id)
    if not doc or doc.get("source_type") != "upload":
        raise ApiError(404, "Encode request not found", "NOT_FOUND")
    if str(doc["user_id"]) != str(user_id):
        raise ApiError(403, "You do not own this encode request", "FORBIDDEN")
    return doc


def output_available(doc: dict) -> bool:
    """True when the encode is completed and its MP4 is on disk."""
    return doc.get("status") == "completed" and bool(doc.get("file_path")) \
        and os.path.isfile(doc["file_path"])


def start_encode(encode_id: str, user_id: str, codec: str, preset: str) -> dict:
    """Start (or join) the encode and wait up to ``DOWNLOAD_WAIT_SECONDS``.

    Returns the spec's 200 body when done in time, else ``{"processing": True}``. A completed
    encode with the same codec and preset answers at once. Raises ApiError 404/403, 410 when the
    upload has expired, 500 ENCODE_FAILED when the encode failed.
    """
    doc = get_owned_upload(encode_id, user_id)
    if not doc.get("input_file_path") or not os.path.isfile(doc["input_file_path"]):
        raise ApiError(410, "The uploaded file has expired; upload it again", "UPLOAD_EXPIRED")
    same = doc.get("video_codec") == codec and doc.get("quality_preset") == preset
    if not (same and output_available(doc)) and doc["status"] != "processing":
        job_id = uuid.uuid4().hex
        claimed = videos.claim(db(), encode_id, job_id, {
            "video_codec": codec, "quality_preset": preset, "encoding_progress": 0,
            "job_claimed_at": datetime.now(timezone.utc), "encoding_started_at": None,
            "encoding_completed_at": None})
        if claimed:
            progress_cache.reset_progress(redis(), encode_id)
            jobs().submit(encode_id, job_id, run_encode)
    deadline = time.monotonic() + setting("DOWNLOAD_WAIT_SECONDS")
    while True:
        doc = videos.get(db(), encode_id)
        if output_available(doc):
            return {"message": "Video encoded successfully", "encode_id": encode_id,
                    "file_size_mb": round(doc["file_size_bytes"] / 1_048_576, 1)}
        if doc["status"] == "failed":
            raise ApiError(500, doc.get("error_message") or "Encoding failed",
                           doc.get("error_code") or "ENCODE_FAILED")
        if time.monotonic() >= deadline:
            return {"processing": True}
        time.sleep(POLL_SECONDS)


def progress_reporter(video_id: str, job_id: str, phase_fields=None):
    """An ``on_progress(percent, progress)`` callback for :func:`encode_to_mp4` that writes
    ``encoding_progress`` (0-100), speed, fps and ETA to Redis, refreshes the heartbeat, and
    raises :class:`JobCancelled` when the job lost its record."""
    started = time.monotonic()

    def report(percent: float, progress) -> None:
        current = videos.get(db(), video_id)
        if not current or current.get("job_id") != job_id or current["status"] != "processing":
            raise JobCancelled(video_id)
        elapsed = time.monotonic() - started
        eta = elapsed * (100 - percent) / percent if percent > 0 else None
        progress_cache.set_progress(redis(), video_id, {
            "current_phase": "encoding", "encoding_progress": percent, "fps": progress.fps,
            "speed": f"{progress.speed:.2f}x" if progress.speed else None,
            "eta": f"{int(eta) // 60:02d}:{int(eta) % 60:02d}" if eta is not None else None,
            **(phase_fields or {})})
        progress_cache.beat(redis(), video_id, job_id)

    return report


def run_encode(encode_id: str, job_id: str) -> None:
    """The job: encode the upload to MP4 with the chosen codec and preset."""
    doc = videos.get(db(), encode_id)
    if not doc or doc.get("job_id") != job_id:
        return
    codec, preset = doc["video_codec"], doc["quality_preset"]
    out_path = os.path.join(_folder(encode_id), f"encoded_{codec}_{preset}.mp4")
    started = time.monotonic()
    try:
        with jobs().encode_slot():
            videos.update(db(), encode_id, {"encoding_started_at": datetime.now(timezone.utc)},
                          job_id=job_id)
            result = encode_to_mp4(doc["input_file_path"], out_path, codec, preset,
                                   on_progress=progress_reporter(encode_id, job_id),
                                   threads=setting("ENCODE_THREADS"))
    except JobCancelled:
        log.warning("encode %s: job %s lost ownership; stopped", encode_id, job_id)
        return
    except (FFmpegError, InvalidMediaError, OSError) as exc:
        log.warning("encode %s: job %s failed: %s", encode_id, job_id, exc)
        _fail(encode_id, job_id, "Encoding failed: the video could not be encoded.")
        return
    except Exception:
        log.exception("encode %s: job %s crashed", encode_id, job_id)
        _fail(encode_id, job_id, "Encoding failed unexpectedly.")
        return
    now = datetime.now(timezone.utc)
    if videos.update(db(), encode_id, {
            "status": "completed", "file_path": out_path, "file_size_bytes": result["size_bytes"],
            "encoding_progress": 100, "encoding_completed_at": now,
            "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))},
            job_id=job_id):
        _remove_other_outputs(encode_id, keep=out_path)
        progress_cache.set_progress(redis(), encode_id, {"encoding_progress": 100, "eta": "00:00"})
    log.info("encode %s: job %s (%s/%s) completed in %.1f s", encode_id, job_id, codec, preset,
             time.monotonic() - started)


def _remove_other_outputs(encode_id: str, keep: str | None) -> None:
    folder = _folder(encode_id)
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if name.startswith("encoded_") and path != keep:
            os.remove(path)


def _fail(encode_id: str, job_id: str, message: str) -> None:
    if videos.update(db(), encode_id, {"status": "failed", "error_code": "ENCODE_FAILED",
                                       "error_message": message, "file_path": None,
                                       "file_size_bytes": None}, job_id=job_id):
        _remove_other_outputs(encode_id, keep=None)


def status_view(doc: dict) -> dict:
    """GET /api/encode/status/{id}: the spec's fields plus error and completion facts."""
    progress = doc.get("encoding_progress") or 0
    if doc["status"] == "processing":
        cached = progress_cache.get_progress(redis(), str(doc["_id"])) or {}
        progress = cached.get("encoding_progress", progress)
    elif doc["status"] == "completed":
        progress = 100
    size = doc.get("file_size_bytes")
    available = output_available(doc)
    return {
        "encode_id": str(doc["_id"]), "status": doc["status"], "progress": progress,
        "original_filename": doc.get("original_filename"), "video_codec": doc.get("video_codec"),
        "quality_preset": doc.get("quality_preset"), "created_at": iso(doc.get("created_at")),
        "encoding_started_at": iso(doc.get("encoding_started_at")),
        "encoding_completed_at": iso(doc.get("encoding_completed_at")),
        "file_available": available,
        "file_size_mb": round(size / 1_048_576, 1) if size and available else None,
        "metadata": doc.get("metadata"), "expires_at": iso(doc.get("expires_at")),
        "error_message": doc.get("error_message"), "error_code": doc.get("error_code"),
    }


def download_name(doc: dict) -> str:
    """``{original_stem}_{codec}_{preset}.mp4`` with the stem made filesystem- and header-safe."""
    stem = original_name(doc.get("original_filename")).rsplit(".", 1)[0]
    stem = secure_filename(stem) or "video"
    return f"{stem}_{doc['video_codec']}_{doc['quality_preset']}.mp4"
