"""Per-channel settings (issue 17, item 2): ``GET /api/channels``, ``GET/PUT
/api/channels/{channel_id}``. Private token; each owner sees and changes only their own. The
rules and their use by the stream save: src/services/channel_service.py.
"""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from ..middleware.auth import private_token_required
from ..services import channel_service
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("channels", __name__, url_prefix="/api/channels",
                description="Per-channel settings of the stream save and chat replies")

CHANNEL = [{"in": "path", "name": "channel_id", "description": "a YouTube channel id",
            "schema": {"type": "string", "pattern": r"^UC[\w-]{22}$"}}]
ERRORS = {401: PRIVATE_401, 400: "VALIDATION_ERROR (a field, or a malformed channel id)",
          409: "HANDLE_TAKEN (another channel's public page has this name)"}


class JSONBoolean(fields.Boolean):
    """``true``/``false`` only: marshmallow's Boolean also takes 0, 1, "yes"…, which a JSON
    body documented as boolean should refuse (400)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ChannelSettingsSchema(Schema):
    """What PUT replaces; a missing field takes its default."""

    delay = fields.Float(allow_none=True, validate=validate.Range(min=0, max=600), metadata={
        "description": "viewers' latency in seconds (null: STREAM_DELAY_SECONDS)"})
    offset = fields.Float(validate=validate.Range(min=0, max=3600), metadata={
        "description": "seconds kept before the moment (default 60)"})
    duration = fields.Float(validate=validate.Range(min=1, max=3600), metadata={
        "description": "clip length in seconds (default 120; at most MAX_VIDEO_DURATION)"})
    reply_template = fields.String(allow_none=True, validate=validate.Length(
        max=channel_service.MAX_TEMPLATE_CHARS), metadata={
        "description": "the chat reply: text with {time}, {id}, {user}, {message} (no other "
                       "placeholder; {{ and }} for braces); null: the built-in reply"})
    min_user_level = fields.String(validate=validate.OneOf(channel_service.USER_LEVELS),
                                   metadata={"description": "who may !clip (Nightbot's "
                                                            "userLevel; default everyone)"})
    discord_webhook_url = fields.String(allow_none=True, validate=validate.Length(max=300),
                                        metadata={"description": "https://discord.com/api/"
                                                  "webhooks/{id}/{token} (or discordapp.com)"})
    webhook_url = fields.String(allow_none=True, validate=validate.Length(
        max=channel_service.MAX_WEBHOOK_URL_CHARS), metadata={
        "description": "a generic webhook (https) that gets each clip event as JSON signed "
                       "with webhook_secret (X-Signature: sha256=<hex HMAC of the body>)"})
    public_page = JSONBoolean(metadata={
        "description": "the public clip page /c/{handle} on or off (default off)"})
    handle = fields.String(allow_none=True, validate=validate.Length(max=30), metadata={
        "description": "the public page's name: 3-30 of a-z 0-9 _ - (unique; 409 HANDLE_TAKEN)"})
    followup = JSONBoolean(metadata={
        "description": "Nightbot follow-up message when a clip is ready or failed (default "
                       "on)"})


class ChannelSettingsView(ChannelSettingsSchema):
    channel_id = fields.String()
    saved = fields.Boolean(metadata={"description": "false: never saved, these are defaults"})
    webhook_secret = fields.String(allow_none=True, metadata={
        "description": "the key of the webhooks' X-Signature (made by the server with the "
                       "first webhook; POST …/webhook-secret makes a new one)"})


class ChannelListSchema(Schema):
    channels = fields.List(fields.Nested(ChannelSettingsView))


@blp.get("")
@private_token_required
@blp.response(200, ChannelListSchema)
@blp.errors({401: PRIVATE_401})
@blp.doc(security=PRIVATE)
def list_channels():
    """The channels you saved settings for."""
    return {"channels": channel_service.list_channels(g.current_user["user_id"])}


@blp.get("/<channel_id>", parameters=CHANNEL)
@private_token_required
@blp.response(200, ChannelSettingsView)
@blp.errors(ERRORS)
@blp.doc(security=PRIVATE)
def get_channel(channel_id):
    """Your settings for one channel (the defaults until you save some)."""
    return channel_service.get(g.current_user["user_id"], channel_id)


@blp.put("/<channel_id>", parameters=CHANNEL)
@private_token_required
@blp.arguments(ChannelSettingsSchema, required=False)
@blp.response(200, ChannelSettingsView)
@blp.errors(ERRORS)
@blp.doc(security=PRIVATE)
def put_channel(body, channel_id):
    """Replace your settings for one channel (missing fields, or no body: the defaults)."""
    return channel_service.put(g.current_user["user_id"], channel_id, body)


@blp.post("/<channel_id>/webhook-secret", parameters=CHANNEL)
@private_token_required
@blp.response(200, ChannelSettingsView)
@blp.errors({401: PRIVATE_401, 400: "VALIDATION_ERROR (a malformed channel id)",
             404: "NOT_FOUND (no settings saved for this channel yet)"})
@blp.doc(security=PRIVATE)
def rotate_webhook_secret(channel_id):
    """A new key for the webhooks' X-Signature (the old one stops verifying at once)."""
    return channel_service.rotate_webhook_secret(g.current_user["user_id"], channel_id)
