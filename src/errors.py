"""The one error shape: ``{"error": "<human message>", "code": "<MACHINE_CODE>"}`` (+ ``details``).

Services raise :class:`ApiError`; Werkzeug/webargs HTTP errors and unexpected exceptions are turned
into the same shape here (DESIGN.md, Conventions). Validation errors are 400 with ``details``
mapping each field to its messages.

Body limits (issue 11, item 3): a body over the request's limit (src/app.py sets it per route) is
413 ``REQUEST_TOO_LARGE``, except on the upload route, which keeps the upload's own answer
(400 ``FILE_TOO_LARGE``, src/services/upload_service.py).
"""
from __future__ import annotations

import logging
from typing import Any, Optional

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE", 422: "VALIDATION_ERROR", 429: "RATE_LIMITED",
    500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error meant for the client: HTTP ``status``, human ``message``, machine ``code``;
    optional ``headers`` go on the response (e.g. ``{"Retry-After": "30"}`` with a 429)."""

    def __init__(self, status: int, message: str, code: Optional[str] = None,
                 details: Optional[dict] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or HTTP_CODES.get(status, "ERROR")
        self.details = details
        self.headers = headers or {}


#: The one route whose body may be an upload (its limit: ``MAX_UPLOAD_SIZE_MB`` + 1 MiB).
UPLOAD_ENDPOINT = "encode.upload"


def body_too_large() -> ApiError:
    """The answer for a body over this request's ``max_content_length``: on
    :data:`UPLOAD_ENDPOINT` the upload's 400 ``FILE_TOO_LARGE``, elsewhere 413
    ``REQUEST_TOO_LARGE`` naming the limit in KiB. Call inside a request."""
    if request.endpoint == UPLOAD_ENDPOINT:
        from .services.upload_service import too_large  # it imports this module

        return too_large()
    limit = request.max_content_length or 0
    return ApiError(413, f"The request body is larger than {limit / 1024:g} KiB",
                    "REQUEST_TOO_LARGE")


def error_body(message: str, code: str, details: Optional[dict] = None) -> dict:
    """The JSON body of every non-2xx answer."""
    body: dict[str, Any] = {"error": message, "code": code}
    if details:
        body["details"] = details
    return body


def _flatten_webargs(messages: dict) -> dict:
    """webargs nests messages by location (``{"json": {"field": [...]}}``); keep field →
    messages."""
    flat: dict = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def _kept_headers(exc: HTTPException) -> list[tuple[str, str]]:
    """The headers Werkzeug gives ``exc`` besides its own Content-Type: ``Allow`` on a 405
    (RFC 9110 §15.5.6: a 405 MUST list the target's methods), ``WWW-Authenticate`` on a 401…"""
    return [(name, value) for name, value in exc.get_headers()
            if name.lower() != "content-type"]


def register_error_handlers(app: Flask) -> None:
    """Install handlers so that every error leaves the app in the one error shape."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error_body(exc.message, exc.code, exc.details)), exc.status, exc.headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages")
        if messages:  # validation error from webargs/flask-smorest
            details = _flatten_webargs(messages)
            return jsonify(error_body("Invalid input", "VALIDATION_ERROR", details)), 400
        if exc.code == 413:  # werkzeug cut a streamed body off at request.max_content_length
            return _api_error(body_too_large())
        message = data.get("message") or exc.description or exc.name
        code = HTTP_CODES.get(exc.code, "ERROR") if exc.code is not None else "ERROR"
        return jsonify(error_body(message, code)), exc.code, _kept_headers(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        message = f"Internal server error: {exc}" if app.debug else "Internal server error"
        return jsonify(error_body(message, "INTERNAL_ERROR")), 500
