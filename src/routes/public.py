"""A channel's public clip page, its API (issue 17, item 5): ``GET
/api/public/channels/{handle}/clips`` and ``…/export``. No authentication: the owner opted in
(``public_page`` and ``handle`` in the channel's settings, src/routes/channels.py); what is
shown, and the rules, are in src/services/public_page.py. Limited per IP
(``RATE_LIMIT_PUBLIC_PAGE``, src/middleware/rate_limits.py).
The page itself, ``/c/{handle}``, is src/web/public_page.py.
"""
from __future__ import annotations

from flask import Response
from marshmallow import Schema, fields, validate

from .. import schemas
from ..services import public_page
from . import NONE, Blueprint

blp = Blueprint("public", __name__, url_prefix="/api/public/channels",
                description="A channel's public clip page (opt-in): list, search, export")

HANDLE = [{"in": "path", "name": "handle", "description": "the channel's public page name "
           "(its settings' `handle`)",
           "schema": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{2,29}$"}}]
ERRORS = {400: "VALIDATION_ERROR (a query parameter)",
          404: "NOT_FOUND (no public page with this name, or the channel's page is off: the "
               "same answer)",
          429: "RATE_LIMITED"}


class PublicQuery(Schema):
    """Search and stream filter of the public clips."""

    q = fields.String(load_default=None, validate=validate.Length(
        max=schemas.MAX_QUERY_LENGTH), metadata={
        "description": "words, each found (case-insensitively, literally) in the clip's "
                       "message"})
    youtube_video_id = fields.String(load_default=None, validate=validate.Regexp(
        schemas.YOUTUBE_ID), metadata={"description": "only this stream's clips"})


class PublicListQuery(PublicQuery):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=schemas.MAX_PAGE),
                          metadata={"description": "page number (from 1)"})
    per_page = fields.Integer(load_default=public_page.DEFAULT_PER_PAGE, validate=validate.Range(
        min=1, max=public_page.MAX_PER_PAGE), metadata={"description": "clips per page"})


class ExportQuery(PublicQuery):
    format = fields.String(load_default="text", validate=validate.OneOf(
        tuple(public_page.EXPORTS)), metadata={
        "description": "`text`: `H:MM:SS message` lines by stream, for a video description; "
                       "`csv`; `json`"})


class PublicClipSchema(Schema):
    youtube_video_id = fields.String(metadata={"description": "the stream (a YouTube id)"})
    seconds = fields.Integer(metadata={"description": "the clip's moment in the stream"})
    time = fields.String(metadata={"description": "`seconds` as H:MM:SS"})
    message = fields.String(allow_none=True, metadata={"description": "from chat"})
    user = fields.String(allow_none=True, metadata={
        "description": "the chat display name of whoever clipped (null: the streamer's tools)"})
    created_at = fields.String(allow_none=True, metadata={"description": "ISO-8601 UTC"})
    url = fields.String(metadata={"description": "https://youtu.be/{id}?t={seconds}"})


class PublicClipsSchema(Schema):
    handle = fields.String()
    channel_id = fields.String(metadata={"description": "the YouTube channel"})
    clips = fields.List(fields.Nested(PublicClipSchema), metadata={
        "description": "newest first"})
    total = fields.Integer(metadata={"description": "clips matching, over all pages"})
    page = fields.Integer()
    per_page = fields.Integer()


class PublicExportSchema(Schema):
    handle = fields.String()
    channel_id = fields.String()
    clips = fields.List(fields.Nested(PublicClipSchema), metadata={
        "description": "by stream (the newest clip's first), each by moment"})


_TEXT = {"schema": {"type": "string"}}
_DISPOSITION = {"Content-Disposition": {
    "description": 'attachment; filename="clips-{handle}.txt" (.csv, .json; '
                   '"clips-{handle}-{youtube_video_id}.txt" for one stream)',
    "schema": {"type": "string"}}}
EXPORT_200 = {"200": {
    "description": "The clips as a file: text (`H:MM:SS message` lines, a blank line between "
                   "streams), CSV (youtube_video_id,time,seconds,message,user,url; a cell "
                   "starting with = + - @ gets a leading ') or JSON",
    "headers": _DISPOSITION, "content": {
        "text/plain": _TEXT, "text/csv": _TEXT,
        "application/json": {"schema": PublicExportSchema}}}}


@blp.get("/<handle>/clips", parameters=HANDLE)
@blp.arguments(PublicListQuery, location="query")
@blp.response(200, PublicClipsSchema)
@blp.errors(ERRORS)
@blp.doc(security=NONE)
def clips(query, handle):
    """A channel's public clips, newest first: searched, by stream, in pages (no login)."""
    return public_page.list_clips(handle, query["q"], query["youtube_video_id"],
                                  query["page"], query["per_page"])


@blp.get("/<handle>/export", parameters=HANDLE)
@blp.arguments(ExportQuery, location="query")
@blp.errors(ERRORS)
@blp.doc(security=NONE, responses=EXPORT_200)
def export(query, handle):
    """A channel's public clips as a file: timestamps for a video description, CSV or JSON."""
    body, mimetype, name = public_page.export(handle, query["format"], query["q"],
                                              query["youtube_video_id"])
    response = Response(body, 200, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
