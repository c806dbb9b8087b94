"""Encode jobs: an upload re-encoded to MP4 (spec: Video Encoding Endpoints 2-4, Core Services 3).

The output is ``UPLOADS_DIR/{folder}/encoded_{codec}_{preset}.mp4`` next to the upload
(src/services/upload_service.py). Progress goes to ``progress:{encode_id}`` like a clip's.

Limits (issue 11): encodes run in the job pool's encode lane (``MAX_CONCURRENT_ENCODES``, never on
a clip worker); a new encode counts against ``MAX_JOBS_PER_USER`` (src/services/job_limits.py);
an encode may run ``encode_time_limit`` seconds (src/media/encode.py, ``ENCODE_TIMEOUT_FACTOR``),
then ffmpeg is killed and the job ends ``failed`` with ``ENCODE_TIMEOUT``.
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from typing import Optional

from .. import metrics
from ..data import videos
from ..errors import ApiError
from ..extensions import db, redis, setting
from ..media.encode import encode_time_limit, encode_to_mp4
from ..media.ffmpeg import FFmpegError, FFmpegTimeout, mmss
from ..media.probe import InvalidMediaError, probe_video
from ..utils.dates import iso
from ..utils.files import file_available
from . import folders, job_records, progress_cache, storage, upload_service
from .jobs import JobCancelled

log = logging.getLogger(__name__)

NOT_FOUND = "Encode request not found"
INTERRUPTED = ("The encode was interrupted (the server restarted or the job died). "
               "Start it again.")
#: Failure codes caused by the uploaded file rather than by the server: answered 422, not 500.
INPUT_FAILURES = ("UNSUPPORTED_FORMAT", "INVALID_VIDEO", "ENCODE_TIMEOUT")


def encode_within_limit(video_id: str, job_id: str, input_path: str, out_path: str, codec: str,
                        preset: str, source: dict | None = None) -> dict:
    """Encode ``input_path`` to the MP4 ``out_path`` for job ``job_id`` of ``video_id`` (progress
    and heartbeat through :func:`progress_reporter`, ``ENCODE_THREADS`` threads) within
    :func:`encode_time_limit` of ``source`` (:func:`probe_video`'s dict; probed when None).

    Returns :func:`encode_to_mp4`'s result. Raises what it raises; a :class:`FFmpegTimeout`
    carries the message for the user (the limit in seconds) as its text.
    """
    source = source or probe_video(input_path)
    limit = encode_time_limit(source, codec, preset, setting("ENCODE_TIMEOUT_FACTOR"))
    try:
        return encode_to_mp4(input_path, out_path, codec, preset,
                             on_progress=progress_reporter(video_id, job_id),
                             threads=setting("ENCODE_THREADS"), source=source, timeout=limit)
    except FFmpegTimeout as exc:
        raise FFmpegTimeout(
            f"The encode took longer than its time limit ({limit:.0f} s for this video, codec "
            f"and preset) and was stopped; try a faster preset or a shorter video.",
            exc.returncode, exc.stderr_tail) from exc


def failure_error(doc: dict) -> ApiError:
    """The API error for a failed encode ``doc``: 422 when its file caused it
    (:data:`INPUT_FAILURES`), else 500 (spec: 500 encoding failed), with the recorded code."""
    code = doc.get("error_code") or "ENCODE_FAILED"
    return ApiError(422 if code in INPUT_FAILURES else 500,
                    doc.get("error_message") or "Encoding failed", code)


def start_encode(encode_id: str, user_id: str, codec: str, preset: str) -> dict:
    """Start (or join) the encode and wait up to ``DOWNLOAD_WAIT_SECONDS``.

    Returns the spec's 200 body when done in time, else ``{"processing": True}``. A completed
    encode with the same codec and preset answers at once. Raises ApiError 404/403, 410 when the
    upload has expired, 429 TOO_MANY_JOBS (``MAX_JOBS_PER_USER``; joining the running encode is
    never refused), 507 INSUFFICIENT_STORAGE, and :func:`failure_error` when the encode failed.
    """
    doc = upload_service.get_owned_upload(encode_id, user_id)
    if doc["status"] == "expired" or not storage.exists(doc.get("input_file_path")):
        raise ApiError(410, "The uploaded file has expired; upload it again", "UPLOAD_EXPIRED")
    same = doc.get("video_codec") == codec and doc.get("quality_preset") == preset
    if not (same and file_available(doc)) and doc["status"] != "processing":
        job_records.start(encode_id, user_id, {
            "video_codec": codec, "quality_preset": preset, "encoding_progress": 0,
            "encoding_started_at": None, "encoding_completed_at": None}, run_encode,
            lane="encode", from_statuses=("pending", "completed", "failed"))
    return job_records.wait(
        encode_id, setting("DOWNLOAD_WAIT_SECONDS"),
        done=lambda doc: {"message": "Video encoded successfully", "encode_id": encode_id,
                          "file_size_mb": round(doc["file_size_bytes"] / 1_048_576, 1)},
        failed=failure_error, not_found=NOT_FOUND)


def progress_reporter(video_id: str, job_id: str, phase_fields=None):
    """An ``on_progress(percent, progress)`` callback for :func:`encode_to_mp4` that writes
    ``encoding_progress`` (0-100), speed, fps and ETA to Redis, refreshes the heartbeat, and
    raises :class:`JobCancelled` when the job lost its record."""
    started = time.monotonic()

    def report(percent: float, progress) -> None:
        job_records.check_owned(video_id, job_id)
        elapsed = time.monotonic() - started
        eta = elapsed * (100 - percent) / percent if percent > 0 else None
        progress_cache.set_progress(redis(), video_id, {
            "current_phase": "encoding", "encoding_progress": percent, "fps": progress.fps,
            "speed": f"{progress.speed:.2f}x" if progress.speed else None,
            "eta": mmss(eta) if eta is not None else None,
            **(phase_fields or {})})
        progress_cache.beat(redis(), video_id, job_id)

    return report


def run_encode(encode_id: str, job_id: str) -> None:
    """The job (encode lane): encode the upload to MP4 with the chosen codec and preset, within
    :func:`encode_time_limit` of its stored probe."""
    doc = videos.get(db(), encode_id)
    if not doc or doc.get("job_id") != job_id:
        return
    codec, preset = doc["video_codec"], doc["quality_preset"]
    out_path = os.path.join(folders.path_of(doc), f"encoded_{codec}_{preset}.mp4")
    started = time.monotonic()
    try:
        videos.update(db(), encode_id, {"encoding_started_at": datetime.now(timezone.utc)},
                      job_id=job_id)
        with storage.local_copy(doc["input_file_path"], folders.path_of(doc)) as source:
            result = encode_within_limit(encode_id, job_id, source, out_path, codec, preset,
                                         doc.get("metadata"))
    except JobCancelled:
        log.warning("encode %s: job %s lost ownership; stopped", encode_id, job_id)
        return
    except FFmpegTimeout as exc:
        log.warning("encode %s: job %s stopped at its time limit", encode_id, job_id)
        _fail(encode_id, job_id, str(exc), "ENCODE_TIMEOUT")
        return
    except InvalidMediaError as exc:
        log.warning("encode %s: job %s refused its input: %s", encode_id, job_id, exc)
        _fail(encode_id, job_id, f"Encoding failed: {exc}", exc.code)
        return
    except (FFmpegError, OSError) as exc:
        log.warning("encode %s: job %s failed: %s", encode_id, job_id, exc)
        _fail(encode_id, job_id, "Encoding failed: the video could not be encoded.")
        return
    except Exception:
        log.exception("encode %s: job %s crashed", encode_id, job_id)
        _fail(encode_id, job_id, "Encoding failed unexpectedly.")
        return
    try:
        ref = storage.publish(doc, [out_path])[out_path]
    except OSError as exc:
        log.warning("encode %s: job %s could not store its file: %s", encode_id, job_id, exc)
        _fail(encode_id, job_id, "The video was encoded but could not be stored; encode it "
              "again.", "STORAGE_UNAVAILABLE")
        return
    now = datetime.now(timezone.utc)
    if not videos.update(db(), encode_id, {
            "status": "completed", "file_path": ref, "file_size_bytes": result["size_bytes"],
            "encoding_progress": 100, "encoding_completed_at": now,
            "expires_at": now + timedelta(minutes=setting("VIDEO_RETENTION_MINUTES"))},
            job_id=job_id):
        if storage.is_object(ref) and ref != doc.get("file_path"):  # nobody's object now
            storage.delete([ref])
        return
    storage.release({out_path: ref})
    if storage.is_object(doc.get("file_path")) and doc["file_path"] != ref:
        storage.delete([doc["file_path"]])  # the previous encode's output
    _remove_other_outputs(folders.path_of(doc), keep=None if storage.is_object(ref) else out_path)
    progress_cache.set_progress(redis(), encode_id, {"encoding_progress": 100, "eta": "00:00"})
    elapsed = time.monotonic() - started
    duration = (doc.get("metadata") or {}).get("duration")
    if duration and elapsed > 0:
        metrics.ENCODE_SPEED.labels(codec, preset).observe(duration / elapsed)
    log.info("encode %s: job %s (%s/%s) completed in %.1f s", encode_id, job_id, codec, preset,
             elapsed)


def _remove_other_outputs(folder: str, keep: str | None) -> None:
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        if name.startswith("encoded_") and path != keep:
            with suppress(FileNotFoundError):  # another process may be failing the job too
                os.remove(path)


def _fail(encode_id: str, job_id: Optional[str], message: str,
          code: str = "ENCODE_FAILED") -> bool:
    """Record a failure of ``job_id`` (its outputs removed first, the upload kept); False if it
    lost the record (:func:`job_records.fail`)."""
    return job_records.fail(encode_id, job_id, code, message, _clean)


def _clean(doc: dict) -> None:
    """An encode's partial files: its outputs; the upload stays."""
    _remove_other_outputs(folders.path_of(doc), keep=None)


def reap_if_dead(doc: dict) -> dict:
    """Fail an encode whose process died (JOB_INTERRUPTED; partial outputs removed, the upload
    kept) and return the current document; ApiError 404 when it was deleted meanwhile."""
    return job_records.reap_if_dead(doc, INTERRUPTED, _clean, "encode", NOT_FOUND)


def status_view(doc: dict) -> dict:
    """GET /api/encode/status/{id}: the spec's fields plus error and completion facts."""
    progress = doc.get("encoding_progress") or 0
    if doc["status"] == "processing":
        cached = progress_cache.get_progress(redis(), str(doc["_id"])) or {}
        progress = cached.get("encoding_progress", progress)
    elif doc["status"] == "completed":
        progress = 100
    size = doc.get("file_size_bytes")
    available = file_available(doc)
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
