"""Administration (issue 17, item 6): ``GET /api/admin/users``, ``POST
/api/admin/users/{user_id}/disable`` and ``…/enable``. Private token of an admin (``role:
"admin"``, set with ``flask --app src.app set-role``); 403 FORBIDDEN for anyone else. The rules
are in src/services/roles.py."""
from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from .. import schemas
from ..middleware.auth import private_token_required
from ..services import roles
from . import PRIVATE, PRIVATE_401, Blueprint

blp = Blueprint("admin", __name__, url_prefix="/api/admin",
                description="Administration: users, disabling accounts (admins only)")

USER_ID = [{"in": "path", "name": "user_id", "description": "a user's id",
            "schema": {"type": "string", "pattern": schemas.OBJECT_ID}}]
NOT_ADMIN = "FORBIDDEN (you are not an administrator)"


class UsersQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=schemas.MAX_PAGE))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class AdminUserSchema(Schema):
    id = fields.String()
    email = fields.String()
    role = fields.String(metadata={"description": "admin or user"})
    disabled = fields.Boolean()
    created_at = fields.String(allow_none=True, metadata={"description": "ISO-8601 UTC"})


class UserListResponse(Schema):
    users = fields.List(fields.Nested(AdminUserSchema), metadata={"description": "oldest "
                                                                                  "first"})
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class UserChangeResponse(AdminUserSchema):
    sessions_revoked = fields.Integer()
    public_tokens_revoked = fields.Integer()


@blp.get("/users")
@private_token_required
@blp.arguments(UsersQuery, location="query")
@blp.response(200, UserListResponse)
@blp.errors({401: PRIVATE_401, 403: NOT_ADMIN})
@blp.doc(security=PRIVATE)
def list_users(query):
    """Every account, paged: id, email, role, disabled, created_at (admins only)."""
    roles.require_admin(g.current_user["user_id"])
    return roles.list_users(query["page"], query["per_page"])


@blp.post("/users/<user_id>/disable", parameters=USER_ID)
@private_token_required
@blp.response(200, UserChangeResponse)
@blp.errors({401: PRIVATE_401, 403: NOT_ADMIN, 404: "NOT_FOUND",
             409: "CANNOT_DISABLE_SELF"})
@blp.doc(security=PRIVATE)
def disable(user_id):
    """Disable an account at once: its sessions and public tokens stop working, it cannot log
    in (admins only; not yourself)."""
    roles.require_admin(g.current_user["user_id"])
    return roles.disable(g.current_user["user_id"], user_id)


@blp.post("/users/<user_id>/enable", parameters=USER_ID)
@private_token_required
@blp.response(200, UserChangeResponse)
@blp.errors({401: PRIVATE_401, 403: NOT_ADMIN, 404: "NOT_FOUND"})
@blp.doc(security=PRIVATE)
def enable(user_id):
    """Let a disabled account log in again (its revoked tokens stay revoked; admins only)."""
    roles.require_admin(g.current_user["user_id"])
    return roles.enable(user_id)
