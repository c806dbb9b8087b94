"""Sending finished media files: by Flask itself, by nginx with ``X-Accel-Redirect``, or — for
a file stored in the bucket (``STORAGE_BACKEND=s3``, src/services/storage.py) — by a redirect to
a presigned URL or streamed from the bucket (``S3_DOWNLOAD_MODE``).

With ``USE_X_ACCEL_REDIRECT=true`` the app answers with an empty body and the header
``X-Accel-Redirect: /_protected/downloads/{folder}/{file}`` (or ``/_protected/uploads/...``);
nginx, which owns the ``internal`` locations of deploy/nginx.conf, then streams the file itself
(Range requests included) and no gunicorn thread is held for the transfer. Source: nginx docs,
"X-Accel" (``X-Accel-Redirect`` to an ``internal`` location).
"""
from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import quote

from flask import Response, jsonify, request, send_file

from ..errors import ApiError
from ..extensions import setting
from ..services import storage
from .dates import iso

#: SigV4 presigned URLs live at most 7 days (AWS S3 docs, "Sharing objects with presigned URLs").
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
#: Bytes per read when the app streams an object (proxy mode).
CHUNK_BYTES = 256 * 1024
#: URI prefixes of the ``internal`` locations in deploy/nginx.conf, by the folder setting.
ACCEL_PREFIXES = {"DOWNLOADS_DIR": "/_protected/downloads/", "UPLOADS_DIR": "/_protected/uploads/"}


def file_available(doc: dict) -> bool:
    """True when a clip or encode (a ``videos`` document) is completed and its file is stored
    (on disk, or named in the bucket: :func:`src.services.storage.exists`)."""
    return doc.get("status") == "completed" and storage.exists(doc.get("file_path"))


def _accel_uri(path: str) -> str:
    real = os.path.realpath(path)
    for name, prefix in ACCEL_PREFIXES.items():
        base = os.path.realpath(setting(name))
        if real.startswith(base + os.sep):
            return prefix + quote(os.path.relpath(real, base).replace(os.sep, "/"))
    raise ValueError(f"{path} is outside DOWNLOADS_DIR and UPLOADS_DIR")


def _readable_by_nginx(path: str) -> None:
    """nginx reads the file as its own user (www-data): make it group/other-readable. Access is
    controlled by the folder permissions (docs/deployment.md); temporary files are created 0600."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    wanted = mode | stat.S_IRGRP | stat.S_IROTH
    if wanted != mode:
        os.chmod(path, wanted)


def send_media(path: str, mimetype: str, conditional: bool = True,
               private_max_age: Optional[int] = None,
               disposition: Optional[str] = None, link: bool = False) -> Response:
    """A response that delivers the stored file ``path`` (under ``DOWNLOADS_DIR``/
    ``UPLOADS_DIR``, or an object reference: :func:`_object_response`).

    Same use as :func:`flask.send_file`; ``disposition`` is the ``Content-Disposition``
    value (it goes into the presigned URL when the answer is a redirect); ``link``: answer
    a redirect as 200 ``{"url", "expires_at"}`` instead (a page's script cannot follow a
    cross-origin redirect with its bearer token; it navigates to the URL). With
    ``conditional`` werkzeug answers ``Range`` requests (206 Partial Content, RFC 9110 §14) and
    ``If-None-Match``/``If-Modified-Since``; in X-Accel mode nginx does both itself. With
    ``private_max_age`` (seconds) the answer is ``Cache-Control: private, max-age=…``: the
    browser may keep it that long, a shared cache never (nginx passes ``Cache-Control`` and
    ``Content-Disposition`` of an X-Accel-Redirect answer through unchanged: nginx docs,
    "X-Accel"). Raises ApiError 410 FILE_EXPIRED when the file vanished after it was found (the
    cleanup expired it in between: asking again starts a new job), ValueError for a path
    outside the media folders (X-Accel mode only).
    """
    if storage.is_object(path):
        return _object_response(path, mimetype, disposition, private_max_age, link)
    try:
        if not setting("USE_X_ACCEL_REDIRECT"):
            response = send_file(path, mimetype=mimetype, conditional=conditional)
        else:
            uri = _accel_uri(path)
            _readable_by_nginx(path)
            response = Response(b"", mimetype=mimetype)
            response.headers["X-Accel-Redirect"] = uri
    except FileNotFoundError:
        raise ApiError(410, "The file has just expired; ask for it again to fetch it anew",
                       "FILE_EXPIRED") from None
    if private_max_age is not None:
        response.headers["Cache-Control"] = f"private, max-age={max(0, int(private_max_age))}"
        response.headers.pop("Expires", None)
    if disposition:
        response.headers["Content-Disposition"] = disposition
    return response


def _object_response(ref: str, mimetype: str, disposition: Optional[str],
                     private_max_age: Optional[int], link: bool) -> Response:
    """The answer for a download of the object ``ref``: a 302 to a presigned URL
    (``S3_DOWNLOAD_MODE=redirect``) whose response headers carry ``mimetype`` and
    ``disposition``, or the object streamed through the app (``proxy``) with the request's
    ``Range`` / ``If-None-Match`` passed to the bucket (206/304/416 as it answers, RFC 9110
    §14-15). Raises ApiError 410 FILE_EXPIRED when the object is gone (proxy mode)."""
    store = storage.bucket()
    name, key = storage.split(ref)
    if store is None or name != store.name:
        raise ApiError(410, "The file is no longer stored; ask for it again", "FILE_EXPIRED")
    if setting("S3_DOWNLOAD_MODE") == "redirect":
        return _redirect(store, key, mimetype, disposition, private_max_age, link)
    return _proxy(store, key, mimetype, disposition, private_max_age)


def _redirect(store: storage.Bucket, key: str, mimetype: str, disposition: Optional[str],
              private_max_age: Optional[int], link: bool) -> Response:
    seconds = max(1, int(setting("S3_PRESIGNED_SECONDS")), int(private_max_age or 0))
    seconds = min(seconds, MAX_PRESIGNED_SECONDS)
    params = {"Bucket": store.name, "Key": key, "ResponseContentType": mimetype}
    if disposition:
        params["ResponseContentDisposition"] = disposition
    url = store.presigner.generate_presigned_url("get_object", Params=params,
                                                 ExpiresIn=seconds)
    if link:
        expires = datetime.fromtimestamp(time.time() + seconds, timezone.utc)
        response = jsonify({"url": url, "expires_at": iso(expires)})
        response.headers["Cache-Control"] = "no-store"
        return response
    response = Response(b"", status=302, headers={"Location": url})
    # the redirect may be kept while its URL is valid; a download's (no max-age) never
    response.headers["Cache-Control"] = f"private, max-age={min(int(private_max_age), seconds)}" \
        if private_max_age else "no-store"
    return response


def _proxy(store: storage.Bucket, key: str, mimetype: str, disposition: Optional[str],
           private_max_age: Optional[int]) -> Response:
    from botocore.exceptions import ClientError

    args: dict = {"Bucket": store.name, "Key": key}
    if request.headers.get("Range"):
        args["Range"] = request.headers["Range"]
    if request.headers.get("If-None-Match"):
        args["IfNoneMatch"] = request.headers["If-None-Match"]
    try:
        answer = store.client.get_object(**args)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "304" or status == 304:
            return Response(status=304, headers={"ETag": request.headers["If-None-Match"]})
        if code == "InvalidRange" or status == 416:
            raise ApiError(416, "The Range is outside the file", "ERROR") from None
        if code in ("NoSuchKey", "404") or status == 404:
            raise ApiError(410, "The file has just expired; ask for it again to fetch it "
                           "anew", "FILE_EXPIRED") from None
        raise
    body = answer["Body"]
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(answer["ContentLength"])}
    for field, header in (("ContentRange", "Content-Range"), ("ETag", "ETag")):
        if answer.get(field):
            headers[header] = answer[field]
    if answer.get("LastModified"):
        headers["Last-Modified"] = answer["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
    if disposition:
        headers["Content-Disposition"] = disposition
    if private_max_age is not None:
        headers["Cache-Control"] = f"private, max-age={max(0, int(private_max_age))}"

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            body.close()

    status = 206 if answer.get("ContentRange") else 200
    return Response(chunks(), status=status, mimetype=mimetype, headers=headers,
                    direct_passthrough=True)

