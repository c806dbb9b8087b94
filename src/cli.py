"""Operator commands (issue 16, item 2): ``flask --app src.app <command>``, after Flask's
tutorial ``init-db`` pattern (``app.cli`` commands that run inside an application context).

Each command works on the stores the settings name (``MONGODB_URI``, ``REDIS_URI``): without
``MONGODB_URI`` the process has its own in-process mongomock database, so a command changes
nothing another process sees — the commands warn then. Output is one JSON object on stdout
(for scripts), or an error on stderr with exit status 1.
"""
from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError

from .data import ensure_indexes, public_tokens, sessions, users
from .errors import ApiError
from .extensions import db, jobs
from .schemas import CredentialsSchema
from .services import auth_service, cleanup_service, live_service, recovery_service, roles
from .services.auth_service import session_cache


def init_app(app: Flask) -> None:
    """Register the commands on ``app.cli``."""
    for command in (create_user, cleanup, reap, revoke_sessions, ensure_indexes_command,
                    sweep_live, ytdlp, set_role):
        app.cli.add_command(command)


def _emit(value: dict) -> None:
    if not current_app.config.get("MONGODB_URI"):
        click.echo("warning: MONGODB_URI is not set; this command used an in-process database "
                   "that no other process shares", err=True)
    click.echo(json.dumps(value, default=str))


@click.command("create-user")
@with_appcontext
@click.argument("email")
@click.password_option(help="The password (8-128 characters); asked for when not given.")
def create_user(email: str, password: str) -> None:
    """Create an account (the same rules as POST /api/auth/register)."""
    try:
        clean = CredentialsSchema().load({"email": email, "password": password})
        user_id = auth_service.register(clean["email"], clean["password"])
    except ValidationError as exc:
        raise click.ClickException(json.dumps(exc.messages)) from None
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    _emit({"user_id": user_id, "email": auth_service.normalise_email(clean["email"])})


@click.command("cleanup")
@with_appcontext
def cleanup() -> None:
    """Run one cleanup pass now: recover dead jobs, expire due files, sweep orphans."""
    report = cleanup_service.run_cleanup()
    _emit({"recovered": report["recovered"], "expired": len(report["expired"]),
           "swept": len(report["swept"]), "seconds": round(report["seconds"], 2)})


@click.command("reap")
@with_appcontext
def reap() -> None:
    """Fail every job left ``processing`` by a dead process (JOB_INTERRUPTED)."""
    _emit({"recovered": recovery_service.recover_stale()})


@click.command("revoke-sessions")
@with_appcontext
@click.argument("email")
@click.option("--keep-public-tokens", is_flag=True,
              help="Revoke only login sessions, not the public tokens the user issued.")
def revoke_sessions(email: str, keep_public_tokens: bool) -> None:
    """Log a user out everywhere: every session (MongoDB and the Redis cache) and, unless
    ``--keep-public-tokens``, every public token bound to the user (Nightbot's included)."""
    user = users.find_by_email(db(), auth_service.normalise_email(email))
    if not user:
        raise click.ClickException(f"no user with the email {email!r}")
    hashes = sessions.delete_for_user(db(), user["_id"])
    session_cache().evict(hashes)
    revoked = 0 if keep_public_tokens else public_tokens.revoke_for_user(db(), str(user["_id"]))
    _emit({"user_id": str(user["_id"]), "sessions": len(hashes), "public_tokens": revoked})


@click.command("set-role")
@with_appcontext
@click.option("--email", required=True, help="The account's email.")
@click.option("--role", required=True, type=click.Choice(roles.ROLES),
              help="admin: may list users and disable accounts (issue 17, item 6); user: not.")
def set_role(email: str, role: str) -> None:
    """Make an account an admin, or an ordinary user again. The API cannot: only an operator
    with this command grants admin."""
    view = roles.set_role(auth_service.normalise_email(email), role)
    if view is None:
        raise click.ClickException(f"no user with the email {email!r}")
    _emit({"user_id": view["id"], "email": view["email"], "role": view["role"]})


@click.command("ensure-indexes")
@with_appcontext
def ensure_indexes_command() -> None:
    """Create the MongoDB indexes (also done at every start; idempotent)."""
    ensure_indexes(db())
    _emit({"collections": sorted(db().list_collection_names())})


@click.command("sweep-live")
@with_appcontext
def sweep_live() -> None:
    """Look up every stream clip whose re-check is due now, and wait for those look-ups."""
    queued = live_service.sweep()
    jobs().shutdown(wait=True)
    _emit({"checked": queued})


@click.group("ytdlp", invoke_without_command=True)
@click.pass_context
def ytdlp(ctx: click.Context) -> None:
    """yt-dlp in this venv: ``version`` (also without a subcommand) and ``update`` (issue 13)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(ytdlp_version)


@ytdlp.command("version")
@with_appcontext
def ytdlp_version() -> None:
    """Print the installed yt-dlp's version and path, its JS runtime and yt-dlp-ejs."""
    import yt_dlp
    from yt_dlp.version import __version__

    from .media import ytdlp_runtime

    click.echo(json.dumps({"yt_dlp": __version__, "path": yt_dlp.__path__[0],
                           "js_runtime": ytdlp_runtime.runtime_info(),
                           "ejs": ytdlp_runtime.ejs_version()}))


@ytdlp.command("update")
def ytdlp_update() -> None:
    """Upgrade yt-dlp[default], yt-dlp-ejs, deno and the PO-token plugin in this venv, run the
    self-check in a fresh process and roll back when it fails (src/services/ytdlp_update.py).
    Prints the report as JSON; exit status 1 unless updated or already current. Reload the
    service afterwards (``systemctl reload yt-downloader``) to use the new version."""
    from .services import ytdlp_update as updater

    try:
        report = updater.update(log=lambda msg: click.echo(msg, err=True))
    except updater.UpdateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report))
    if report["status"] not in ("updated", "current"):
        raise SystemExit(1)
