"""Sending finished media files: by Flask itself, or by nginx with ``X-Accel-Redirect``.

With ``USE_X_ACCEL_REDIRECT=true`` the app answers with an empty body and the header
``X-Accel-Redirect: /_protected/downloads/{folder}/{file}`` (or ``/_protected/uploads/...``);
nginx, which owns the ``internal`` locations of deploy/nginx.conf, then streams the file itself
(Range requests included) and no gunicorn thread is held for the transfer. Source: nginx docs,
"X-Accel" (``X-Accel-Redirect`` to an ``internal`` location).
"""
from __future__ import annotations

import os
import stat
from typing import Optional
from urllib.parse import quote

from flask import Response, send_file

from ..errors import ApiError
from ..extensions import setting

#: URI prefixes of the ``internal`` locations in deploy/nginx.conf, by the folder setting.
ACCEL_PREFIXES = {"DOWNLOADS_DIR": "/_protected/downloads/", "UPLOADS_DIR": "/_protected/uploads/"}


def file_available(doc: dict) -> bool:
    """True when a clip or encode (a ``videos`` document) is completed and its file is on disk."""
    return doc.get("status") == "completed" and bool(doc.get("file_path")) \
        and os.path.isfile(doc["file_path"])


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
               private_max_age: Optional[int] = None) -> Response:
    """A response that delivers the file at ``path`` (under ``DOWNLOADS_DIR``/``UPLOADS_DIR``).

    Same use as :func:`flask.send_file`; the caller adds ``Content-Disposition``. With
    ``conditional`` werkzeug answers ``Range`` requests (206 Partial Content, RFC 9110 §14) and
    ``If-None-Match``/``If-Modified-Since``; in X-Accel mode nginx does both itself. With
    ``private_max_age`` (seconds) the answer is ``Cache-Control: private, max-age=…``: the
    browser may keep it that long, a shared cache never (nginx passes ``Cache-Control`` and
    ``Content-Disposition`` of an X-Accel-Redirect answer through unchanged: nginx docs,
    "X-Accel"). Raises ApiError 410 FILE_EXPIRED when the file vanished after it was found (the
    cleanup expired it in between: asking again starts a new job), ValueError for a path
    outside the media folders (X-Accel mode only).
    """
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
    return response
