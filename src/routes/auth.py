"""Authentication endpoints (spec: Authentication Endpoints 1-6)."""
from __future__ import annotations

from flask import g

from .. import schemas
from ..middleware.auth import private_token_required
from ..services import auth_service
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
def public_token():
    """Issue a public token (24 h) for saving clips from integrations such as Nightbot."""
    token, expires_in = auth_service.issue_public_token()
    return {"token": token, "expires_in": expires_in}


@blp.get("/me")
@blp.response(200, schemas.MeResponse)
@private_token_required
def me():
    """The authenticated user."""
    user = g.current_user
    return {"user": {"id": user["user_id"], "email": user["email"]}}
