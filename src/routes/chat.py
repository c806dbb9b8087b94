"""Chat commands beyond ``!clip`` (issue 17, item 1): edit, delete, recent, search.

Like the stream save (src/routes/video.py, ``save_stream``) each takes the public token in the
path (Nightbot's ``$(urlfetch …)`` cannot send headers) and answers plain text for Nightbot
(its ``Nightbot-User``/``Nightbot-Channel`` headers, or ``?format=text``) — errors too, as one
short line with the same status — and JSON otherwise. The rules are in
src/services/chat_service.py.
"""
from __future__ import annotations

from flask import Response, g, request

from .. import schemas
from ..middleware.auth import public_token_in_path
from ..services import chat_service
from ..services.stream_service import parse_identity
from . import NIGHTBOT_HEADERS, PUBLIC_401, Blueprint, chat_doc, wants_text

blp = Blueprint("chat", __name__, url_prefix="/api/chat",
                description="Chat commands (Nightbot): edit, delete, list and search clips")

TOKEN = {"in": "path", "name": "token", "description": "a public token bound to your account "
         "(Nightbot cannot send headers); refused with 401 like a bearer token",
         "schema": {"type": "string"}}
ERRORS = {400: "VALIDATION_ERROR (message over 500 characters, channel not UC…, format)",
          401: PUBLIC_401, 403: "TOKEN_NOT_BOUND (an anonymous public token)",
          413: "REQUEST_TOO_LARGE", 429: "RATE_LIMITED"}
PARAMETERS = [TOKEN, *NIGHTBOT_HEADERS]
#: Edit and delete name a clip: none there (or not this channel's) is a 404.
MANAGE_ERRORS = {**ERRORS, 404: "NOT_FOUND (no clip in this channel yet, or no clip with that "
                                "id in this channel)"}
REPLY = ("The reply (plain text for chat: one line under 400 characters); a refusal for the "
         "user's level or a usage hint is a 200 too, with done: false")


def _answer(command: str, query: dict):
    ctx = chat_service.context(g.public_token, query.get("channel"),
                               parse_identity(request.headers.get("Nightbot-User")),
                               parse_identity(request.headers.get("Nightbot-Channel")))
    reply = chat_service.COMMANDS[command](ctx, query.get("message"))
    if wants_text():
        return Response(reply["message"], 200, mimetype="text/plain")
    return reply


@blp.route("/<token>/edit", methods=["GET", "POST"], parameters=PARAMETERS)
@public_token_in_path
@blp.arguments(schemas.ChatQuery, location="query")
@blp.response(200, schemas.ChatReplySchema)
@blp.doc(**chat_doc(200, "ChatReply", REPLY, MANAGE_ERRORS))
def edit(query, token):
    """`!clipedit [id] text`: a new message for this channel's newest clip (owner, moderators)."""
    return _answer("edit", query)


@blp.route("/<token>/delete", methods=["GET", "POST"], parameters=PARAMETERS)
@public_token_in_path
@blp.arguments(schemas.ChatQuery, location="query")
@blp.response(200, schemas.ChatReplySchema)
@blp.doc(**chat_doc(200, "ChatReply", REPLY, MANAGE_ERRORS))
def delete(query, token):
    """`!clipdelete [id]`: remove this channel's newest clip and its files (owner, moderators)."""
    return _answer("delete", query)


@blp.route("/<token>/recent", methods=["GET", "POST"], parameters=PARAMETERS)
@public_token_in_path
@blp.arguments(schemas.ChatQuery, location="query")
@blp.response(200, schemas.ChatReplySchema)
@blp.doc(**chat_doc(200, "ChatReply", REPLY, ERRORS))
def recent(query, token):
    """`!recent [n]`: this channel's newest n clips (≤ 5) as `1:02:05 message` parts."""
    return _answer("recent", query)


@blp.route("/<token>/search", methods=["GET", "POST"], parameters=PARAMETERS)
@public_token_in_path
@blp.arguments(schemas.ChatQuery, location="query")
@blp.response(200, schemas.ChatReplySchema)
@blp.doc(**chat_doc(200, "ChatReply", REPLY, ERRORS))
def search(query, token):
    """`!clipsearch words`: this channel's clips whose message has every word (≤ 5 shown)."""
    return _answer("search", query)


@blp.after_app_request
def _text_errors(response):
    """Errors of the chat commands reach a chat as one short line with the same status code."""
    if request.blueprint == "chat" and response.status_code >= 400 and response.is_json \
            and wants_text():
        body = response.get_json(silent=True) or {}
        response.set_data(chat_service.error_text(body.get("error", "error"),
                                                  body.get("code", "ERROR")))
        response.mimetype = "text/plain"
    return response
