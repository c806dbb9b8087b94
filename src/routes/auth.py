"""Authentication endpoints (spec: Authentication Endpoints 1-6)."""
from __future__ import annotations

from flask import g

from .. import schemas
from ..middleware.auth import private_token_optional, private_token_required
from ..services import auth_service, public_token_service
from . import NONE, PRIVATE, PRIVATE_401, PRIVATE_OPTIONAL, Blueprint

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")

BODY_413 = {413: "REQUEST_TOO_LARGE"}


@blp.post("/register")
@blp.arguments(schemas.CredentialsSchema)
@blp.response(201, schemas.RegisterResponse)
@blp.errors({400: "VALIDATION_ERROR", 409: "EMAIL_EXISTS", 429: "RATE_LIMITED", **BODY_413})
@blp.doc(security=NONE)
def register(body):
    """Create a new user account."""
    user_id = auth_service.register(body["email"], body["password"])
    return {"message": "User registered successfully", "user_id": user_id}


@blp.post("/login")
@blp.arguments(schemas.LoginSchema)
@blp.response(200, schemas.LoginResponse)
@blp.errors({400: "VALIDATION_ERROR", 401: "INVALID_CREDENTIALS", 429: "RATE_LIMITED",
             403: "ACCOUNT_DISABLED (the right password of a disabled account)", **BODY_413})
@blp.doc(security=NONE)
def login(body):
    """Check credentials and return a private token (7 days)."""
    token, user = auth_service.login(body["email"], body["password"])
    return {"message": "Login successful", "token": token, "user": user}


@blp.post("/logout")
@private_token_required
@blp.response(200, schemas.MessageSchema)
@blp.errors({401: PRIVATE_401, **BODY_413})
@blp.doc(security=PRIVATE)
def logout():
    """Revoke the current session."""
    auth_service.logout(g.current_user["token_hash"])
    return {"message": "Logout successful"}


@blp.post("/change-password")
@private_token_required
@blp.arguments(schemas.ChangePasswordSchema)
@blp.response(200, schemas.MessageSchema)
@blp.errors({400: "VALIDATION_ERROR (also: the new password equals the current one)",
             401: PRIVATE_401 + ", INVALID_CREDENTIALS (current password wrong)", **BODY_413})
@blp.doc(security=PRIVATE)
def change_password(body):
    """Change the password and revoke every session of the user."""
    auth_service.change_password(g.current_user["user_id"], body["current_password"],
                                 body["new_password"])
    return {"message": "Password changed successfully. Please login again."}


@blp.get("/token/public")
@private_token_optional
@blp.response(200, schemas.PublicTokenResponse)
@blp.errors({401: PRIVATE_401 + ", ANONYMOUS_TOKENS_DISABLED (no private token sent and "
                                "ALLOW_ANONYMOUS_PUBLIC_TOKENS is off)", 429: "RATE_LIMITED"})
@blp.doc(security=PRIVATE_OPTIONAL)
def public_token():
    """Issue a public token (24 h); with a private token it is bound to that user."""
    user = g.current_user
    return public_token_service.issue(user["user_id"] if user else None)


@blp.get("/tokens/public")
@private_token_required
@blp.response(200, schemas.PublicTokenListResponse)
@blp.errors({401: PRIVATE_401})
@blp.doc(security=PRIVATE)
def list_public_tokens():
    """The caller's bound public tokens (id, dates, revoked flag; never the token itself)."""
    return {"tokens": public_token_service.list_tokens(g.current_user["user_id"])}


@blp.delete("/tokens/public/<jti>")
@private_token_required
@blp.response(200, schemas.MessageSchema)
@blp.errors({401: PRIVATE_401, 404: "NOT_FOUND (no such token of the caller's)"})
@blp.doc(security=PRIVATE)
def revoke_public_token(jti):
    """Revoke one of the caller's public tokens; it is refused (401) from then on."""
    public_token_service.revoke(g.current_user["user_id"], jti)
    return {"message": "Public token revoked"}


@blp.get("/me")
@private_token_required
@blp.response(200, schemas.MeResponse)
@blp.errors({401: PRIVATE_401})
@blp.doc(security=PRIVATE)
def me():
    """The authenticated user."""
    user = g.current_user
    return {"user": {"id": user["user_id"], "email": user["email"]}}
