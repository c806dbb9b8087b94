"""Editing and deleting a clip (issue 17, item 6): ``PATCH /api/video/{video_id}`` (its message)
and ``DELETE /api/video/{video_id}`` (the record and its files), for the clip's owner and the
owner's moderators. The rules are in the services (src/services/roles.py,
src/services/clip_manage.py)."""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from .. import schemas
from ..middleware.auth import private_token_required
from ..services import clip_manage
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("clip_admin", __name__, url_prefix="/api/video",
                description="Clips: edit and delete (owner and moderators)")

VIDEO_ID = [{"in": "path", "name": "video_id", "description": "the clip's id (from the save)",
             "schema": {"type": "string", "pattern": schemas.OBJECT_ID}}]
FORBIDDEN = "FORBIDDEN (neither your clip nor a clip of an owner you moderate)"


class ClipEditSchema(Schema):
    """What PATCH changes: the clip's message (null or empty clears it)."""

    additional_message = fields.String(required=True, allow_none=True,
                                       validate=validate.Length(max=500))


@blp.patch("/<string(length=24):video_id>", parameters=VIDEO_ID)
@private_token_required
@blp.arguments(ClipEditSchema)
@blp.response(200, schemas.VideoSummarySchema)
@blp.errors({401: PRIVATE_401, 403: FORBIDDEN, 404: "NOT_FOUND", 413: "REQUEST_TOO_LARGE"})
@blp.doc(security=PRIVATE)
def edit(body, video_id):
    """Change a clip's message (its owner, or a moderator of its owner)."""
    return clip_manage.edit_message(video_id, g.current_user["user_id"],
                                    body["additional_message"])


@blp.delete("/<string(length=24):video_id>", parameters=VIDEO_ID)
@private_token_required
@blp.response(200, schemas.MessageSchema)
@blp.errors({401: PRIVATE_401, 403: FORBIDDEN, 404: "NOT_FOUND",
             409: "CLIP_PROCESSING (a job is working on it: delete it once it has finished)"})
@blp.doc(security=PRIVATE)
def delete(video_id):
    """Delete a clip with its file, thumbnail and folder (its owner, or a moderator)."""
    clip_manage.delete_clip(video_id, g.current_user["user_id"])
    return {"message": "Clip deleted"}
