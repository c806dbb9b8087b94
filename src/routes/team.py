"""Moderators (issue 17, item 6): ``POST /api/team/invites``, ``GET /api/team``,
``POST /api/team/invites/accept``, ``DELETE /api/team/members/{membership_id}``. Private token;
the rules are in src/services/team_service.py and src/services/roles.py."""
from __future__ import annotations

from flask import g, request
from marshmallow import Schema, fields, validate

from .. import schemas
from ..middleware.auth import private_token_required
from ..services import team_service
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("team", __name__, url_prefix="/api/team",
                description="Moderators: invite, accept, list, remove")

MEMBERSHIP_ID = [{"in": "path", "name": "membership_id",
                  "description": "a membership's id (GET /api/team lists them)",
                  "schema": {"type": "string", "pattern": schemas.OBJECT_ID}}]
BODY_413 = {413: "REQUEST_TOO_LARGE"}


class InviteSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254), metadata={
        "description": "who may moderate your clips once they accept, logged in with it"})


class InviteResponse(Schema):
    invite_id = fields.String()
    email = fields.String()
    token = fields.String(metadata={"description": "the invite's secret, shown only now"})
    accept_url = fields.String(metadata={"description": "the dashboard's Team view with the "
                                                        "token, to send to the invitee"})
    expires_at = fields.String(metadata={"description": "ISO-8601 UTC"})


class AcceptSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1, max=100))


class ModeratorSchema(Schema):
    membership_id = fields.String()
    moderator_id = fields.String()
    email = fields.String()
    accepted_at = fields.String(allow_none=True)


class PendingInviteSchema(Schema):
    membership_id = fields.String()
    email = fields.String()
    created_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)


class OwnerSchema(Schema):
    membership_id = fields.String()
    owner_id = fields.String()
    email = fields.String(allow_none=True, metadata={"description": "the owner's email"})
    accepted_at = fields.String(allow_none=True)


class TeamResponse(Schema):
    moderators = fields.List(fields.Nested(ModeratorSchema), metadata={
        "description": "who moderates your clips"})
    invites = fields.List(fields.Nested(PendingInviteSchema), metadata={
        "description": "your invites not accepted yet"})
    owners = fields.List(fields.Nested(OwnerSchema), metadata={
        "description": "whose clips you moderate"})


class RemovedResponse(schemas.MessageSchema):
    outcome = fields.String(metadata={"description": "removed (by the owner) or left (by the "
                                                     "moderator)"})


@blp.post("/invites")
@private_token_required
@blp.arguments(InviteSchema)
@blp.response(201, InviteResponse)
@blp.errors({401: PRIVATE_401, 400: "VALIDATION_ERROR", **BODY_413,
             409: "SELF_INVITE, ALREADY_MODERATOR, ALREADY_INVITED, TEAM_FULL"})
@blp.doc(security=PRIVATE)
def invite(body):
    """Invite an email to moderate your clips (edit, delete, download; never your tokens,
    cookies or settings). Inviting a pending email again makes a new token."""
    return team_service.invite(g.current_user["user_id"], body["email"], request.host_url)


@blp.get("")
@private_token_required
@blp.response(200, TeamResponse)
@blp.errors({401: PRIVATE_401})
@blp.doc(security=PRIVATE)
def team():
    """Your moderators, your pending invites, and the owners whose clips you moderate."""
    return team_service.team(g.current_user["user_id"])


@blp.post("/invites/accept")
@private_token_required
@blp.arguments(AcceptSchema)
@blp.response(200, OwnerSchema)
@blp.errors({401: PRIVATE_401, 400: "VALIDATION_ERROR", **BODY_413,
             403: "INVITE_EMAIL_MISMATCH (the invite is for another email: log in with it)",
             404: "NOT_FOUND (unknown, expired or already used token)"})
@blp.doc(security=PRIVATE)
def accept(body):
    """Accept an invite, logged in with the invited email: you now moderate that owner's
    clips."""
    user = g.current_user
    return team_service.accept(user["user_id"], user["email"], body["token"])


@blp.delete("/members/<membership_id>", parameters=MEMBERSHIP_ID)
@private_token_required
@blp.response(200, RemovedResponse)
@blp.errors({401: PRIVATE_401, 404: "NOT_FOUND (no membership of yours, as owner or "
                                    "moderator)"})
@blp.doc(security=PRIVATE)
def remove(membership_id):
    """Remove a moderator or withdraw an invite (the owner), or stop moderating (the
    moderator)."""
    outcome = team_service.remove(g.current_user["user_id"], membership_id)
    return {"message": "Moderator removed" if outcome == "removed" else "You left this team",
            "outcome": outcome}
