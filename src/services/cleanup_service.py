"""CleanupService (spec: Core Services 4): every ``CLEANUP_INTERVAL_MINUTES`` delete the files of
clips and encodes whose ``expires_at`` has passed, sweep what no record owns, and recover dead
jobs — exactly once per interval however many gunicorn workers run it.

Deviation from the spec ("delete database records"): the record stays, with ``status: expired``
and no file (``file_available: false``), so the owner keeps the clip request and can download it
again (``expired`` is restartable, src/data/videos.py). An expired upload cannot be encoded again
(410 UPLOAD_EXPIRED): its source is gone.

Once per interval: each worker's APScheduler fires every interval; a run first takes the Redis key
``cleanup:slot:{n}`` (``n`` = epoch seconds // interval) with SET NX, so one run per aligned slot
wins, then the lock ``cleanup:lock`` so a slow run never overlaps the next.

Races with jobs: an expiry is a conditional update on (status, job_id, expires_at) done BEFORE any
file is deleted, so a clip that a new job claimed meanwhile is left alone; after it, only the file
named in the record is deleted (a new job on an expired clip writes ``{new job_id}.ext``). Folders
and partial files are swept only when older than ``ORPHAN_MAX_AGE_MINUTES`` (longer than the
longest job) and never for a record that is ``processing``.

Folder names are random and stored on each record (``folder``, src/services/folders.py); records
made before that own the folder named after their id. The sweep compares the names it finds with
the names records own, so both kinds are expired and swept alike.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from typing import Optional

from ..data import videos
from ..extensions import db, redis, setting
from . import folders, notify_sender, recovery_service, storage

log = logging.getLogger(__name__)

UPLOAD_EXPIRABLE = ("pending", "completed", "failed")
LOCK_TIMEOUT_SECONDS = 900


def _remove(path: str, reason: str, removed: list) -> None:
    """Delete a file or a folder tree; log and record it once (a path already gone is skipped)."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        return
    removed.append(path)
    log.info("cleanup: removed %s (%s)", path, reason)


def expire_due(now: Optional[datetime] = None) -> list[str]:
    """Expire the finished clips and the uploads whose ``expires_at`` ≤ ``now``; return the paths
    deleted. Clips: only ``completed`` ones, and only the files the record names (file,
    thumbnail, subtitles). Uploads (pending, completed or failed): the upload's whole folder
    (source and output). Objects in the bucket (``STORAGE_BACKEND=s3``) the record names are
    deleted alike; a bucket that fails leaves them to :func:`sweep_objects`."""
    now = now or datetime.now(timezone.utc)
    removed: list[str] = []
    for doc in videos.due_to_expire(db(), now, UPLOAD_EXPIRABLE):
        fields = {"status": "expired", "file_path": None, "file_size_bytes": None,
                  "thumbnail_path": None, "file_expired_at": now, "error_code": None,
                  "error_message": None}
        if doc.get("source_type") == "upload":
            fields["input_file_path"] = None
        if not videos.expire(db(), doc, now, fields):
            continue  # a job claimed it meanwhile, or another run expired it
        reason = "upload expired" if doc.get("source_type") == "upload" else "clip expired"
        for ref in storage.files_of(doc):
            if storage.is_object(ref):
                removed.extend(storage.delete([ref]))
            elif doc.get("source_type") != "upload":
                _remove(ref, reason, removed)
        if doc.get("source_type") == "upload":
            _remove(folders.path_of(doc), reason, removed)
    return removed


def _newest_mtime(path: str) -> float:
    newest = os.lstat(path).st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def sweep_orphans(now_ts: Optional[float] = None) -> list[str]:
    """Delete, once older than ``ORPHAN_MAX_AGE_MINUTES``: entries of ``DOWNLOADS_DIR`` /
    ``UPLOADS_DIR`` that no record of the right kind owns (by ``folder``, or by id for records
    made before random folder names), files in a record's folder that the record does not name
    (partial files of dead jobs), and empty folders. Folders of ``processing`` records are never
    touched. Returns the paths deleted."""
    cutoff = (now_ts or time.time()) - setting("ORPHAN_MAX_AGE_MINUTES") * 60
    removed: list[str] = []
    for folder_setting, is_upload in (("DOWNLOADS_DIR", False), ("UPLOADS_DIR", True)):
        base = setting(folder_setting)
        aged = []
        for name in os.listdir(base) if os.path.isdir(base) else ():
            try:
                if _newest_mtime(os.path.join(base, name)) < cutoff:
                    aged.append(name)
            except FileNotFoundError:
                continue
        owners = videos.folder_owners(db(), aged)
        for name in aged:
            path = os.path.join(base, name)
            owner = owners.get(name)
            doc = videos.get(db(), owner["_id"]) if owner else None  # as it is now
            if not doc or (doc.get("source_type") == "upload") != is_upload:
                _remove(path, "no record owns it", removed)
                continue
            if doc["status"] == "processing" or not os.path.isdir(path):
                continue
            keep = set(storage.files_of(doc))
            for entry in os.listdir(path):
                if os.path.join(path, entry) not in keep:
                    _remove(os.path.join(path, entry), "partial or stale file", removed)
            if not os.listdir(path):
                current = videos.get(db(), doc["_id"])  # None: deleted meanwhile, folder unowned
                if current is None or current["status"] != "processing":
                    try:
                        os.rmdir(path)
                    except OSError:  # a job claimed the clip and wrote into it just now
                        continue
    return removed


def sweep_objects(now: Optional[datetime] = None) -> list[str]:
    """``STORAGE_BACKEND=s3``: delete the objects under ``S3_KEY_PREFIX`` older than
    ``ORPHAN_MAX_AGE_MINUTES`` that no record names (a job that died between upload and record,
    an earlier download's file, an expiry whose delete failed); never those of a ``processing``
    record. Multipart uploads begun before the same cutoff are aborted. Returns the references
    deleted (nothing in local mode)."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(
        minutes=setting("ORPHAN_MAX_AGE_MINUTES"))
    found = list(storage.objects_older_than(cutoff))
    owners = videos.folder_owners(db(), sorted({folder for _, _, folder in found}))
    named: dict[str, Optional[dict]] = {}
    doomed = []
    for ref, kind, folder in found:
        owner = owners.get(folder)
        if owner and folder not in named:
            named[folder] = videos.get(db(), owner["_id"])  # as it is now
        doc = named.get(folder) if owner else None
        if doc and (doc.get("source_type") == "upload") == (kind == "uploads") and (
                doc["status"] == "processing" or ref in storage.files_of(doc)):
            continue
        doomed.append(ref)
    deleted = storage.delete(doomed)
    for ref in deleted:
        log.info("cleanup: removed %s (no record names it)", ref)
    for key in storage.abort_stale_uploads(cutoff):
        log.info("cleanup: aborted the unfinished multipart upload of %s", key)
    return deleted


def run_cleanup() -> dict:
    """One cleanup pass: recover dead jobs, expire due files, sweep orphans. Returns
    ``{"recovered": n, "expired": [paths], "swept": [paths], "seconds": s}`` and logs a summary."""
    started = time.monotonic()
    recovered = recovery_service.recover_stale()
    expired = expire_due()
    swept = sweep_orphans()
    try:
        swept += sweep_objects()
    except Exception as exc:  # the bucket is down: its objects wait for the next run
        log.warning("cleanup: the bucket's sweep failed: %s", exc)
    seconds = time.monotonic() - started
    log.info("cleanup: %d expired file(s), %d orphan(s) swept, %d dead job(s) recovered "
             "in %.2f s", len(expired), len(swept), recovered, seconds)
    return {"recovered": recovered, "expired": expired, "swept": swept, "seconds": seconds}


def run_if_due(app) -> Optional[dict]:
    """The scheduled entry point: run :func:`run_cleanup` unless another process already ran in
    this interval's slot or is still running. Returns the report, or None when skipped."""
    with app.app_context():
        interval = setting("CLEANUP_INTERVAL_MINUTES") * 60
        slot = int(time.time() // interval)
        client = redis()
        if not client.set(f"cleanup:slot:{slot}", os.getpid(), nx=True,
                          ex=max(2, int(interval * 2) + 1)):
            log.info("cleanup: slot %d already taken (pid %d)", slot, os.getpid())
            return None
        lock = client.lock("cleanup:lock", timeout=LOCK_TIMEOUT_SECONDS)
        if not lock.acquire(blocking=False):
            log.info("cleanup: slot %d skipped, the previous run is still going", slot)
            return None
        try:
            log.info("cleanup: run for slot %d (pid %d)", slot, os.getpid())
            notify_sender.resume_waiting(app)  # clip notifications a dead process left
            return run_cleanup()
        except Exception:
            log.exception("cleanup: run for slot %d failed", slot)
            return None
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile: nothing to release
                pass


def init_app(app) -> None:
    """Add the cleanup to this process's APScheduler (the one live_service started, or a new
    one), every ``CLEANUP_INTERVAL_MINUTES``."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = app.extensions["yt"].get("scheduler")
    if scheduler is None:
        scheduler = BackgroundScheduler(daemon=True, timezone=timezone.utc)
        scheduler.start()
        app.extensions["yt"]["scheduler"] = scheduler
    scheduler.add_job(run_if_due, "interval", args=[app], id="cleanup",
                      seconds=app.config["CLEANUP_INTERVAL_MINUTES"] * 60,
                      max_instances=1, coalesce=True)
