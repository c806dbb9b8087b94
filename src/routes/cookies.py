"""The owner's YouTube cookies (issue 13, item 2): ``PUT/GET/DELETE /api/auth/cookies``.

Private token only. PUT takes a Netscape cookies file as JSON ``{"cookies": "<file text>"}`` or
as the raw ``text/plain`` body (what ``curl --data-binary @cookies.txt`` sends); the body limit
``MAX_REQUEST_BODY_KB`` applies (413). GET and PUT answer what is stored (domains, count,
earliest expiry) and never the cookies themselves. Rules: src/services/cookies_service.py.
"""
from __future__ import annotations

from flask import g, request
from marshmallow import Schema, fields, validate

from ..errors import ApiError
from ..middleware.auth import private_token_required
from ..schemas import MessageSchema
from ..services import cookies_service
from ..utils import netscape_cookies
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("cookies", __name__, url_prefix="/api/auth",
                description="The owner's YouTube cookies (for their extractions only)")

#: Longest file accepted, in characters: its JSON form (a tab, CR or LF escapes to 2 bytes)
#: stays under the default 64 KiB body limit. A youtube.com export is a few KiB.
MAX_CHARS = 30_000
_FILE_DESCRIPTION = (
    "A Netscape cookies file (cookies.txt, as browser exporters and yt-dlp write it): "
    "printable ASCII; comment lines start with #, except #HttpOnly_ which marks a cookie; each "
    "cookie line has 7 tab-separated fields: domain, include-subdomains TRUE/FALSE, path, "
    "secure TRUE/FALSE, expiry (epoch seconds, empty or 0 = session), name, value. Only "
    "cookies of youtube.com and google.com (and their subdomains) are kept; the file must "
    "hold at least one. `pattern` is the exact rule.")
_TEXT_SCHEMA = {"type": "string", "maxLength": MAX_CHARS, "pattern": netscape_cookies.PATTERN,
                "description": _FILE_DESCRIPTION}


class CookiesUploadSchema(Schema):
    """The cookies file as a JSON string."""

    cookies = fields.String(required=True, validate=validate.Length(max=MAX_CHARS), metadata={
        "description": _FILE_DESCRIPTION, "pattern": netscape_cookies.PATTERN})


class CookiesStatusSchema(Schema):
    exists = fields.Boolean(required=True)
    domains = fields.List(fields.String(), required=True,
                          metadata={"description": "hosts without a leading dot, sorted"})
    count = fields.Integer(required=True)
    earliest_expiry = fields.Integer(required=True, allow_none=True, metadata={
        "description": "epoch seconds of the first cookie to expire (passed ones included); "
                       "null when every cookie is a session cookie or none are stored"})
    updated_at = fields.String(required=True, allow_none=True)
    unreadable = fields.Boolean(required=True, metadata={
        "description": "stored, but they no longer decrypt (COOKIES_ENCRYPTION_KEY replaced): "
                       "they are not used; upload them again"})


class CookiesSavedSchema(Schema):
    domains = fields.List(fields.String(), required=True)
    count = fields.Integer(required=True)
    earliest_expiry = fields.Integer(required=True, allow_none=True,
                                     metadata={"description": "epoch seconds, or null"})
    ignored = fields.Integer(required=True, metadata={
        "description": "cookies of other sites in the file, not kept"})
    updated_at = fields.String(required=True)


@blp.record_once
def _warn_about_key(state) -> None:
    cookies_service.warn_about_key(state.app.config)


def _uploaded_text() -> str:
    """The file text of a PUT: the ``cookies`` field of a JSON body (validated like every
    body, 400 ``VALIDATION_ERROR``) or a ``text/plain`` body (UTF-8). Raises ApiError 415 for
    any other content type, 400 for text that is not UTF-8 or longer than MAX_CHARS."""
    if request.is_json:
        return Blueprint.ARGUMENTS_PARSER.parse(CookiesUploadSchema, request,
                                                location="json")["cookies"]
    if request.mimetype != "text/plain":
        raise ApiError(415, "Send the cookies file as application/json {\"cookies\": \"…\"} or "
                            "as text/plain", "UNSUPPORTED_MEDIA_TYPE")
    try:
        text = request.get_data().decode(request.mimetype_params.get("charset") or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise ApiError(400, "Invalid cookies file: not UTF-8 text", "INVALID_COOKIES") from None
    if len(text) > MAX_CHARS:
        raise ApiError(400, "Invalid input", "VALIDATION_ERROR",
                       {"cookies": [f"Longer than maximum length {MAX_CHARS}."]})
    return text


@blp.put("/cookies")
@private_token_required
@blp.doc(requestBody={"required": True, "content": {
    "application/json": {"schema": CookiesUploadSchema},
    "text/plain": {"schema": _TEXT_SCHEMA}}})
@blp.response(200, CookiesSavedSchema)
@blp.errors({400: "VALIDATION_ERROR, INVALID_COOKIES (details.line: the 1-based line at "
                  "fault, when one is)", 401: PRIVATE_401, 413: "REQUEST_TOO_LARGE",
             415: "UNSUPPORTED_MEDIA_TYPE (neither JSON nor text/plain)"})
@blp.doc(security=PRIVATE)
def put_cookies():
    """Upload or replace the caller's YouTube cookies (used for their own extractions only)."""
    return cookies_service.save(g.current_user["user_id"], _uploaded_text())


@blp.get("/cookies")
@private_token_required
@blp.response(200, CookiesStatusSchema)
@blp.errors({401: PRIVATE_401})
@blp.doc(security=PRIVATE)
def get_cookies():
    """Whether the caller has cookies stored: domains, count, earliest expiry (never content)."""
    return cookies_service.status(g.current_user["user_id"])


@blp.delete("/cookies")
@private_token_required
@blp.response(200, MessageSchema)
@blp.errors({401: PRIVATE_401, 404: "NOT_FOUND (no cookies stored)"})
@blp.doc(security=PRIVATE)
def delete_cookies():
    """Delete the caller's cookies."""
    cookies_service.delete(g.current_user["user_id"])
    return {"message": "Cookies deleted"}
