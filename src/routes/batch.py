"""``POST /api/video/save/batch`` (issue 18, item 5): up to 50 clip saves in one request, each
answered on its own (src/services/batch_service.py)."""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from ..middleware.auth import public_token_required
from ..schemas import SaveVideoSchema
from ..services import batch_service
from . import PUBLIC, PUBLIC_401, Blueprint

blp = Blueprint("batch", __name__, url_prefix="/api/video", description="Clips")


class BatchSaveSchema(Schema):
    """``items``: each one a ``POST /api/video/save`` body. An item that does not fit that
    schema (a wrong type, an unknown or missing field) makes the whole request a 400 naming
    it, as the document says; the rules beyond the schema (the range, the URL's host, the
    owner, the pending-clip cap) are each item's own answer."""

    items = fields.List(fields.Nested(SaveVideoSchema), required=True,
                        validate=validate.Length(min=1, max=batch_service.MAX_ITEMS),
                        metadata={"description": "1 to 50 clip requests, saved in order"})


class BatchItemResult(Schema):
    """One item's answer: what ``POST /api/video/save`` would have said for it."""

    index = fields.Integer(required=True, metadata={"description": "the item's position"})
    status = fields.Integer(required=True, metadata={"description": "201, or the error's status"})
    video_id = fields.String(metadata={"description": "the saved clip's id (201)"})
    error = fields.String(metadata={"description": "human message (an error)"})
    code = fields.String(metadata={"description": "machine code (an error)"})
    details = fields.Dict(metadata={"description": "field → messages (validation errors)"})


class BatchSavedResponse(Schema):
    saved = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    results = fields.List(fields.Nested(BatchItemResult), required=True)


@blp.post("/save/batch")
@public_token_required
@blp.arguments(BatchSaveSchema)
@blp.response(200, BatchSavedResponse)
@blp.errors({401: PUBLIC_401, 400: "VALIDATION_ERROR (no items, more than 50, an item that "
                                  "does not fit SaveVideo)",
             413: "REQUEST_TOO_LARGE", 429: "RATE_LIMITED"})
@blp.doc(security=PUBLIC)
def save_batch(body):
    """Save up to 50 clips (public token), each answered on its own: 200 with every item's
    status (201 and its ``video_id``, or its error), in order."""
    return batch_service.save_batch(body["items"], g.public_token)
