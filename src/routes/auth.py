"""Authentication endpoints (spec: Authentication Endpoints 1-6)."""
from __future__ import annotations

from flask import g

from .. import schemas
from ..middleware.auth import private_token_optional, private_token_required
from ..services import auth_service, public_token_service
from . import Blueprint

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Accounts and tokens")


@blp.post("/register")
@blp.arguments(schemas.CredentialsSchema)
@blp.response(201, schemas.RegisterResponse)
def register(body):
    """Create a new user account."""
    user_id = auth_service.register(body["email"], body["password"])
    return {"message": "User registered successfully", "user_id": user_id}


@blp.post("/login")
@blp.arguments(schemas.LoginSchema)
@blp.response(200, schemas.LoginResponse)
def login(body):
    """Check credentials and return a private token (7 days)."""
    token, user = auth_service.login(body["email"], body["password"])
    return {"message": "Login successful", "token": token, "user": user}


@blp.post("/logout")
@blp.response(200, schemas.MessageSchema)
@private_token_required
def logout():
    """Revoke the current session."""
    auth_service.logout(g.current_user["token_hash"])
    return {"message": "Logout successful"}


@blp.post("/change-password")
@private_token_required
@blp.arguments(schemas.ChangePasswordSchema)
@blp.response(200, schemas.MessageSchema)
def change_password(body):
    """Change the password and revoke every session of the user."""
    auth_service.change_password(g.current_user["user_id"], body["current_password"],
                                 body["new_password"])
    return {"message": "Password changed successfully. Please login again."}


@blp.get("/token/public")
@blp.response(200, schemas.PublicTokenResponse)
@private_token_optional
def public_token():
    """Issue a public token (24 h); with a private token it is bound to that user."""
    user = g.current_user
    return public_token_service.issue(user["user_id"] if user else None)


@blp.get("/tokens/public")
@blp.response(200, schemas.PublicTokenListResponse)
@private_token_required
def list_public_tokens():
    """The caller's bound public tokens (id, dates, revoked flag; never the token itself)."""
    return {"tokens": public_token_service.list_tokens(g.current_user["user_id"])}


@blp.delete("/tokens/public/<jti>")
@blp.response(200, schemas.MessageSchema)
@private_token_required
def revoke_public_token(jti):
    """Revoke one of the caller's public tokens; it is refused (401) from then on."""
    public_token_service.revoke(g.current_user["user_id"], jti)
    return {"message": "Public token revoked"}


@blp.get("/me")
@blp.response(200, schemas.MeResponse)
@private_token_required
def me():
    """The authenticated user."""
    user = g.current_user
    return {"user": {"id": user["user_id"], "email": user["email"]}}
