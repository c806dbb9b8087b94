"""Blueprints. Invalid input is 400 (spec), so webargs' default 422 is replaced here.

The OpenAPI document is the contract (DESIGN.md; issue 16, item 1): every view documents its
security (:data:`PRIVATE`, :data:`PUBLIC`, …, through ``@blp.doc(security=…)``) and each error
answer it can give (:meth:`Blueprint.errors`: status → the machine codes), all in the one error
shape (:class:`src.schemas.ErrorSchema`). There is no catch-all ``default`` response, so
schemathesis' status-code check (tests/test_openapi.py) fails on any answer a view does not list.
"""
from __future__ import annotations

import http
import json

import flask_smorest
from flask import request
from webargs.flaskparser import FlaskParser

from ..schemas import ErrorSchema

#: Security requirements (OpenAPI 3.0 ``security``; schemes declared in src/app.py).
PRIVATE: list = [{"bearer": []}]  # a private token (login), ``Authorization: Bearer …``
PUBLIC: list = [{"publicToken": []}]  # a public token, ``Authorization: Bearer …``
# anonymous, or a private token (checked when sent)
PRIVATE_OPTIONAL: list = [{"bearer": []}, {}]
NONE: list = []  # no authentication (the stream save carries its token in the path)

#: Machine codes of a refused private / public token (src/middleware/auth.py, src/services/*token*).
PRIVATE_401 = "MISSING_TOKEN, INVALID_TOKEN, SESSION_REVOKED, ACCOUNT_DISABLED"
PUBLIC_401 = "MISSING_TOKEN, INVALID_TOKEN, TOKEN_REVOKED, ACCOUNT_DISABLED"
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}

#: Nightbot's headers (route-level parameters: a ``parameters`` list in ``@blp.doc`` would
#: replace the query parameters ``@blp.arguments`` documents).
NIGHTBOT_HEADERS = [
    {"in": "header", "name": "Nightbot-User", "required": False, "schema": {"type": "string"},
     "description": "sent by Nightbot's urlfetch (a query string: name, displayName, provider, "
     "providerId, userLevel; each kept to 100 characters): userLevel owner or moderator may "
     "edit and delete clips; its presence asks for a plain-text reply"},
    {"in": "header", "name": "Nightbot-Channel", "required": False,
     "schema": {"type": "string"},
     "description": "sent by Nightbot's urlfetch: its providerId (the YouTube channel id) names "
     "the channel; its presence asks for a plain-text reply"}]
#: The stream save's follow-up link (issue 14, item 4); anything but Nightbot's is ignored.
RESPONSE_URL_HEADER = {
    "in": "header", "name": "Nightbot-Response-Url", "required": False,
    "schema": {"type": "string"},
    "description": "sent by Nightbot's urlfetch: where the follow-up message (clip ready or "
    "failed) is posted, once, within NIGHTBOT_RESPONSE_URL_SECONDS; only "
    "https://api.nightbot.tv/1/channel/send/… is used, any other value is ignored"}


def wants_text() -> bool:
    """Chat bots get plain text: Nightbot's headers present or ``?format=text`` (``json``
    wins)."""
    chosen = request.args.get("format")
    nightbot = "Nightbot-User" in request.headers or "Nightbot-Channel" in request.headers
    return chosen == "text" or (nightbot and chosen != "json")


def chat_doc(success: int, schema: str, description: str, codes: dict) -> dict:
    """``@blp.doc`` of a chat endpoint (no header authentication: the token is in the path):
    every answer in both content types — JSON, or one line of text under 400 characters for
    chat — ``success`` with the ``schema`` component, the error ``codes`` (status →
    machine codes) in the one error shape."""
    text = {"schema": {"type": "string", "maxLength": 399}}
    error = {"schema": {"$ref": "#/components/schemas/Error"}}
    responses = {str(status): {"description": f"Error: {text_codes}", "content": {
        "application/json": error, "text/plain": text}} for status, text_codes in codes.items()}
    if "429" in responses:
        responses["429"]["headers"] = RETRY_AFTER
    responses[str(success)] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
        "text/plain": text}}
    return {"security": NONE, "responses": responses}


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req):
        """webargs' JSON loading, with a body nested too deeply for ``json.loads`` (which raises
        RecursionError) treated like any other invalid JSON: 400, not 500."""
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            raise json.JSONDecodeError("JSON nested too deeply", "", 0) from exc


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest Blueprint whose argument errors are 400 with field → messages details."""

    ARGUMENTS_PARSER = _Parser()

    def errors(self, answers: dict[int, str]):
        """Document a view's error answers: ``{status: "CODE_A, CODE_B"}`` (the ``code`` values
        that status may carry). 429 also documents ``Retry-After``. A 400 from
        ``@blp.arguments`` is documented by flask-smorest; list it here too when the view has
        400s of its own, so their codes are named."""

        def decorator(func):
            for status, codes in sorted(answers.items(), reverse=True):
                phrase = http.HTTPStatus(status).phrase
                func = self.alt_response(status, schema=ErrorSchema,
                                         description=f"{phrase}: {codes}",
                                         headers=RETRY_AFTER if status == 429 else None)(func)
            return func

        return decorator
