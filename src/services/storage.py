"""Where finished files live: the local folders (``STORAGE_BACKEND=local``, the default) or an
S3-compatible bucket (``STORAGE_BACKEND=s3``: AWS S3, Cloudflare R2, MinIO; issue 15, item 3).

Jobs always write into their record's local folder (``DOWNLOADS_DIR``/``UPLOADS_DIR``, a scratch
area in s3 mode). When a clip or encode is finished — and when an upload has been checked — its
files are handed to :func:`publish`: in local mode that changes nothing (the record names the
paths); in s3 mode each file becomes the object ``{S3_KEY_PREFIX}{downloads|uploads}/{folder}/
{name}`` (server-made: the record's random folder, the job's own file name; never the user's)
and the record names its reference ``s3://{bucket}/{key}`` instead of a path
(:meth:`Bucket.key_for`). Every reader goes
through this module or :func:`src.utils.files.send_media`, so a record's file field is opaque
to the rest of the code: :func:`exists`, :func:`delete`, :func:`local_copy`, :func:`read`.

A download is answered by a redirect to a presigned GET URL valid ``S3_PRESIGNED_SECONDS``
(``S3_DOWNLOAD_MODE=redirect``, the default: the bytes never pass through gunicorn) or streamed
by the app (``proxy``: the spec's 200 + attachment, with HTTP Range passed through to the
bucket). In s3 mode the record is the truth about an object's existence: listing a clip does not
ask the bucket (an object deleted behind the app's back answers 410 FILE_EXPIRED on download in
proxy mode, the bucket's 404 in redirect mode). Expired objects are deleted by the cleanup; a
bucket lifecycle rule (docs/deployment.md) is the safety net for objects the app never deleted.
"""
from __future__ import annotations

import logging
import mimetypes
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Optional
from urllib.parse import urlsplit

from flask import current_app

log = logging.getLogger(__name__)

SCHEME = "s3://"
_build_lock = threading.Lock()


def is_object(ref: Optional[str]) -> bool:
    """True when ``ref`` (a record's file field) names an object in the bucket."""
    return bool(ref) and str(ref).startswith(SCHEME)


def split(ref: str) -> tuple[str, str]:
    bucket, _, key = ref[len(SCHEME):].partition("/")
    return bucket, key


class Bucket:
    """The configured bucket: one boto3 client (thread-safe; boto3 docs, "Multithreading")
    built on first use, never at import time, and a second one for presigning when
    ``S3_PUBLIC_ENDPOINT_URL`` differs from the endpoint the app itself reaches."""

    def __init__(self, settings: dict):
        self.name = settings["S3_BUCKET"]
        self.prefix = settings["S3_KEY_PREFIX"] or ""
        self._settings = settings
        self._client: Any = None
        self._presigner: Any = None

    def _make(self, endpoint: Optional[str]):
        import boto3  # only with STORAGE_BACKEND=s3
        from botocore.config import Config

        s = self._settings
        return boto3.client(
            "s3", endpoint_url=endpoint or None, region_name=s["S3_REGION"],
            aws_access_key_id=s["S3_ACCESS_KEY_ID"] or None,
            aws_secret_access_key=s["S3_SECRET_ACCESS_KEY"] or None,
            config=Config(signature_version="s3v4", connect_timeout=10, read_timeout=60,
                          retries={"max_attempts": 5, "mode": "standard"},
                          s3={"addressing_style": s["S3_ADDRESSING_STYLE"]}))

    @property
    def client(self):
        """The boto3 S3 client the app uses for every call but presigning."""
        if self._client is None:
            with _build_lock:
                if self._client is None:
                    self._client = self._make(self._settings["S3_ENDPOINT_URL"])
        return self._client

    @property
    def presigner(self):
        """The client whose endpoint goes into presigned URLs (the one browsers can reach)."""
        public = self._settings["S3_PUBLIC_ENDPOINT_URL"]
        if not public or public == self._settings["S3_ENDPOINT_URL"]:
            return self.client
        if self._presigner is None:
            with _build_lock:
                if self._presigner is None:
                    self._presigner = self._make(public)
        return self._presigner

    def key_for(self, doc: dict, path: str) -> str:
        """The object key of the local file ``path`` of the record ``doc``: its file name,
        prefixed with the record's job id unless it already starts with it — so a job that
        lost its record can never overwrite, nor delete, the objects of the job that owns it
        now (``thumbnail.jpg`` → ``{job_id}-thumbnail.jpg``)."""
        from . import folders  # folders reads settings only

        kind = "uploads" if doc.get("source_type") == "upload" else "downloads"
        name, job = os.path.basename(path), doc.get("job_id")
        if job and not name.startswith(str(job)):
            name = f"{job}-{name}"
        return f"{self.prefix}{kind}/{folders.name_of(doc)}/{name}"


def download_origins(settings: dict) -> list[str]:
    """The origins presigned URLs point at (``S3_DOWNLOAD_MODE=redirect``; none otherwise), for
    the dashboard's Content-Security-Policy (a thumbnail's or a player's redirect lands there):
    the public endpoint with the bucket as path or as host name (``S3_ADDRESSING_STYLE``
    ``auto`` may use either), or AWS's own host names for the region."""
    if settings["STORAGE_BACKEND"] != "s3" or settings["S3_DOWNLOAD_MODE"] != "redirect":
        return []
    name, endpoint = settings["S3_BUCKET"], \
        settings["S3_PUBLIC_ENDPOINT_URL"] or settings["S3_ENDPOINT_URL"]
    if not endpoint:
        region = settings["S3_REGION"]
        return [f"https://{name}.s3.amazonaws.com", f"https://{name}.s3.{region}.amazonaws.com",
                f"https://s3.{region}.amazonaws.com"]
    url = urlsplit(endpoint)
    return [f"{url.scheme}://{url.netloc}", f"{url.scheme}://{name}.{url.netloc}"]


def bucket() -> Optional[Bucket]:
    """The app's :class:`Bucket`, or None with ``STORAGE_BACKEND=local``."""
    return current_app.extensions["yt"].get("bucket")


def make_bucket(settings: dict) -> Optional[Bucket]:
    """The bucket for ``create_app`` (None in local mode)."""
    return Bucket(settings) if settings["STORAGE_BACKEND"] == "s3" else None


def files_of(doc: dict) -> list[str]:
    """Every stored file a clip or encode record names — its file, thumbnail, subtitle files
    and (an upload) its source: paths or object references."""
    names = [doc.get("file_path"), doc.get("thumbnail_path"), doc.get("input_file_path"),
             *(s.get("path") for s in doc.get("file_subtitles") or [])]
    return [n for n in names if n]


def publish(doc: dict, paths: Iterable[Optional[str]]) -> dict[str, str]:
    """Hand the finished local files ``paths`` of the record ``doc`` to storage; return
    ``{path: reference}`` for those not None — the path itself in local mode,
    ``s3://bucket/key`` in s3 mode (uploaded with its Content-Type; the local file stays until
    :func:`release`).
    Raises OSError when an upload fails (the objects uploaded so far are deleted again), so a
    job fails with its usual code and nothing half-published is left."""
    store = bucket()
    files = [p for p in paths if p]
    if store is None:
        return {p: p for p in files}
    refs: dict[str, str] = {}
    try:
        for path in files:
            key = store.key_for(doc, path)
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            store.client.upload_file(path, store.name, key, ExtraArgs={"ContentType": kind})
            refs[path] = f"{SCHEME}{store.name}/{key}"
    except Exception as exc:  # botocore's errors, network errors: all mean "not stored"
        delete(refs.values())
        raise OSError(f"storing the file in the bucket failed: {exc}") from exc
    return refs


def release(refs: dict[str, str]) -> None:
    """After the record names ``refs`` (from :func:`publish`): remove the local copies of what
    went to the bucket. Local mode: nothing (the files are the stored ones)."""
    for path, ref in refs.items():
        if is_object(ref):
            with suppress(FileNotFoundError):
                os.remove(path)


def exists(ref: Optional[str]) -> bool:
    """True when the stored file ``ref`` is there: a local path that is a file, or any object
    reference (the record is the truth; no request to the bucket)."""
    if not ref:
        return False
    return True if is_object(ref) else os.path.isfile(ref)


def delete(refs: Iterable[Optional[str]]) -> list[str]:
    """Delete the stored files ``refs`` (paths or object references; None skipped); return
    those deleted. An object already gone counts as deleted (S3 DeleteObject is idempotent);
    a bucket error is logged and the reference left for the next cleanup's sweep."""
    done = []
    for ref in refs:
        if not ref:
            continue
        if is_object(ref):
            store = bucket()
            name, key = split(ref)
            if store is None or name != store.name:
                log.warning("storage: %s is not in the configured bucket; left alone", ref)
                continue
            try:
                store.client.delete_object(Bucket=name, Key=key)
            except Exception as exc:
                log.warning("storage: deleting %s failed: %s", ref, exc)
                continue
            done.append(ref)
        else:
            try:
                os.remove(ref)
            except FileNotFoundError:
                continue
            done.append(ref)
    return done


def size(ref: Optional[str]) -> Optional[int]:
    """Bytes of the stored file ``ref``, or None when it is not there."""
    if not ref:
        return None
    if not is_object(ref):
        try:
            return os.path.getsize(ref)
        except OSError:
            return None
    store = bucket()
    name, key = split(ref)
    try:
        return int(store.client.head_object(Bucket=name, Key=key)["ContentLength"]) \
            if store else None
    except Exception:
        return None


def read(ref: Optional[str]) -> Optional[bytes]:
    """The whole stored file ``ref`` (callers check :func:`size` first), or None."""
    if not ref:
        return None
    if not is_object(ref):
        try:
            with open(ref, "rb") as handle:
                return handle.read()
        except OSError:
            return None
    store = bucket()
    name, key = split(ref)
    try:
        return store.client.get_object(Bucket=name, Key=key)["Body"].read() if store else None
    except Exception:
        return None


@contextmanager
def local_copy(ref: str, folder: str) -> Iterator[str]:
    """A local path holding the stored file ``ref`` for the length of the ``with`` block: the
    path itself in local mode; in s3 mode a temporary file in ``folder`` (created if needed),
    downloaded first and removed afterwards — how a worker on another machine encodes an
    upload. Raises FileNotFoundError when the file or object is gone."""
    if not is_object(ref):
        if not os.path.isfile(ref):
            raise FileNotFoundError(ref)
        yield ref
        return
    store = bucket()
    name, key = split(ref)
    os.makedirs(folder, exist_ok=True)
    handle, path = tempfile.mkstemp(dir=folder, prefix="stored-",
                                    suffix=os.path.splitext(key)[1])
    os.close(handle)
    try:
        try:
            assert store is not None
            store.client.download_file(name, key, path)
        except Exception as exc:
            raise FileNotFoundError(f"{ref}: {exc}") from exc
        yield path
    finally:
        with suppress(FileNotFoundError):
            os.remove(path)


def abort_stale_uploads(cutoff: datetime) -> list[str]:
    """Abort the multipart uploads under the prefix begun before ``cutoff`` (a process killed
    while boto3 uploaded a large file in parts leaves one: invisible in listings, yet stored
    and billed); return the keys. Nothing in local mode."""
    store = bucket()
    if store is None:
        return []
    aborted = []
    pages = store.client.get_paginator("list_multipart_uploads").paginate(
        Bucket=store.name, Prefix=store.prefix)
    for page in pages:
        for upload in page.get("Uploads", ()):
            if upload["Initiated"] < cutoff:
                store.client.abort_multipart_upload(Bucket=store.name, Key=upload["Key"],
                                                    UploadId=upload["UploadId"])
                aborted.append(upload["Key"])
    return aborted


def objects_older_than(cutoff: datetime) -> Iterator[tuple[str, str, str]]:
    """``(reference, kind, folder)`` of every object under the prefix last modified before
    ``cutoff`` (kind ``downloads`` or ``uploads``); keys of another shape are skipped (not
    ours). Nothing in local mode."""
    store = bucket()
    if store is None:
        return
    pages = store.client.get_paginator("list_objects_v2").paginate(
        Bucket=store.name, Prefix=store.prefix)
    for page in pages:
        for item in page.get("Contents", ()):
            parts = item["Key"][len(store.prefix):].split("/")
            if len(parts) == 3 and parts[0] in ("downloads", "uploads") \
                    and item["LastModified"] < cutoff:
                yield f"{SCHEME}{store.name}/{item['Key']}", parts[0], parts[1]

