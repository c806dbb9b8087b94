"""Clip notifications (issue 17, item 3): ``GET /api/channels/{channel_id}/deliveries``, what was
sent (or failed to be) to the channel's Discord and generic webhooks. Private token; each owner
sees only their own. The rules: src/services/notifications.py, src/services/notify_sender.py.
"""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields

from ..middleware.auth import private_token_required
from ..services import notifications
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("notifications", __name__, url_prefix="/api/channels",
                description="Clip notifications to the channel's Discord and generic webhooks")

CHANNEL = [{"in": "path", "name": "channel_id", "description": "a YouTube channel id",
            "schema": {"type": "string", "pattern": r"^UC[\w-]{22}$"}}]


class DeliverySchema(Schema):
    delivery_id = fields.String(metadata={"description": "also sent to the generic webhook "
                                                         "(X-Webhook-Delivery)"})
    video_id = fields.String(metadata={"description": "the clip"})
    event = fields.String(metadata={"enum": ["saved", "ready", "failed"]})
    target = fields.String(metadata={"enum": ["discord", "webhook"]})
    status = fields.String(metadata={
        "enum": ["queued", "sending", "delivered", "failed"],
        "description": "queued (also between retries), sending, delivered or failed"})
    attempts = fields.Integer(metadata={"description": "posts made so far"})
    last_error = fields.String(allow_none=True, metadata={
        "description": "why the last post did not arrive (names the host, never the URL)"})
    updated_at = fields.DateTime(metadata={"description": "the last change (UTC)"})


class DeliveryListSchema(Schema):
    deliveries = fields.List(fields.Nested(DeliverySchema))


@blp.get("/<channel_id>/deliveries", parameters=CHANNEL)
@private_token_required
@blp.response(200, DeliveryListSchema)
@blp.errors({401: PRIVATE_401, 400: "VALIDATION_ERROR (a malformed channel id)"})
@blp.doc(security=PRIVATE)
def list_deliveries(channel_id):
    """Your channel's last 50 notifications (the last changed first), failures with their
    reason."""
    return {"deliveries": notifications.recent(g.current_user["user_id"], channel_id)}
