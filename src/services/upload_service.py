"""Uploads for encoding (spec: Video Encoding Endpoints 1): storing, probing, ownership, naming.

An upload is a ``videos`` document with ``source_type: "upload"``; its files live in
``UPLOADS_DIR/{folder}/`` (``folder``: a random name stored on the document,
src/services/folders.py): ``source.{ext}`` (the upload, under a server-made name) and, once
encoded, ``encoded_{codec}_{preset}.mp4`` (src/services/encoding_service.py) — with
``STORAGE_BACKEND=s3`` both are objects under the same names (src/services/storage.py). The
user's file name is metadata only, and so is its extension: ffmpeg reads the content, so the
upload is probed with the demuxer/protocol allow-list and the caps of src/media/probe.py
(issue 11).
"""
from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime, timedelta, timezone

from bson import ObjectId
from werkzeug.utils import secure_filename

from ..data import videos
from ..errors import ApiError
from ..extensions import db, setting
from ..media.probe import InvalidMediaError, UploadLimits, probe_video
from . import folders, health_service, storage

log = logging.getLogger(__name__)

#: Upload extensions accepted (spec: Upload Video for Encoding, Allowed Formats).
ALLOWED_EXTENSIONS = ("mp4", "avi", "mkv", "mov", "flv", "wmv", "webm", "m4v", "mpg", "mpeg", "3gp")


def limits() -> UploadLimits:
    """The caps on an upload's probe, from ``MAX_UPLOAD_DURATION_SECONDS``, ``MAX_UPLOAD_PIXELS``
    and ``MAX_UPLOAD_FRAME_RATE``."""
    return UploadLimits(max_duration=setting("MAX_UPLOAD_DURATION_SECONDS"),
                        max_pixels=setting("MAX_UPLOAD_PIXELS"),
                        max_frame_rate=setting("MAX_UPLOAD_FRAME_RATE"))


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
    FILE_TOO_LARGE, INVALID_VIDEO (not a decodable video), UNSUPPORTED_FORMAT (content not one
    of the accepted containers, whatever its name), VIDEO_TOO_LONG, RESOLUTION_TOO_HIGH,
    RESOLUTION_TOO_LOW,
    FRAME_RATE_TOO_HIGH (over a cap of :func:`limits`); 507 INSUFFICIENT_STORAGE. On any error
    nothing stays on disk.
    """
    health_service.require_free_disk()  # 507 when short of disk space
    if file_storage is None or not file_storage.filename:
        raise ApiError(400, "No file in the 'video' form field", "NO_FILE")
    name = original_name(file_storage.filename)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in ALLOWED_EXTENSIONS:
        raise ApiError(400, f"File type not allowed; use one of: {', '.join(ALLOWED_EXTENSIONS)}",
                       "INVALID_FORMAT")
    encode_id, folder_name = ObjectId(), folders.new_name()
    folder = os.path.join(setting("UPLOADS_DIR"), folder_name)
    path = os.path.join(folder, f"source.{ext}")
    os.makedirs(folder)
    stored: str | None = None
    try:
        file_storage.save(path)
        size = os.path.getsize(path)
        if size > _max_upload_bytes():
            raise too_large()
        metadata = probe_video(path, limits())
        now = datetime.now(timezone.utc)
        record = {"_id": encode_id, "source_type": "upload", "folder": folder_name}
        stored = _store(record, path)
        videos.insert(db(), {
            **record, "user_id": ObjectId(user_id),
            "original_filename": name, "input_file_path": stored,
            "status": "pending", "file_path": None, "file_size_bytes": None,
            "input_size_bytes": size, "metadata": metadata, "video_codec": None,
            "audio_codec": "aac", "quality_preset": None, "encoding_progress": 0,
            "error_message": None, "error_code": None,
            "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))})
    except InvalidMediaError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(400, str(exc), exc.code) from None
    except BaseException:  # the store refused the record too: no file without a record
        shutil.rmtree(folder, ignore_errors=True)
        if stored and storage.is_object(stored):
            storage.delete([stored])
        raise
    storage.release({path: stored})
    return {"message": "Video uploaded successfully", "encode_id": str(encode_id),
            "original_filename": name, "file_size_mb": round(size / 1_048_576, 1),
            "metadata": {"duration": round(metadata["duration"], 3),
                         "resolution": metadata["resolution"],
                         "original_codec": metadata["original_codec"]}}


def _store(record: dict, path: str) -> str:
    """Hand the checked upload to storage (src/services/storage.py): its path, or its object
    in the bucket so a worker on another machine can encode it. Raises ApiError 503
    STORAGE_UNAVAILABLE when the bucket refuses it."""
    try:
        return storage.publish(record, [path])[path]
    except OSError as exc:
        log.warning("upload %s could not be stored: %s", record["_id"], exc)
        raise ApiError(503, "The upload could not be stored just now; try again shortly",
                       "STORAGE_UNAVAILABLE") from None


def get_owned_upload(encode_id: str, user_id: str) -> dict:
    """The upload ``encode_id`` if ``user_id`` owns it; ApiError 404 / 403 otherwise."""
    doc = videos.get(db(), encode_id)
    if not doc or doc.get("source_type") != "upload":
        raise ApiError(404, "Encode request not found", "NOT_FOUND")
    if str(doc["user_id"]) != str(user_id):
        raise ApiError(403, "You do not own this encode request", "FORBIDDEN")
    return doc


def download_name(doc: dict) -> str:
    """``{original_stem}_{codec}_{preset}.mp4`` with the stem made filesystem- and header-safe."""
    stem = original_name(doc.get("original_filename")).rsplit(".", 1)[0]
    stem = secure_filename(stem) or "video"
    return f"{stem}_{doc['video_codec']}_{doc['quality_preset']}.mp4"
