"""The application factory (DESIGN.md: ``create_app(config=None)``, extensions in init_app
style)."""
from __future__ import annotations

import logging
import os

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_smorest import Api

from . import cli, logging_setup, metrics, stores
from .config import ConfigError, load_config
from .config_checks import check_settings
from .data import ensure_indexes
from .errors import UPLOAD_ENDPOINT, body_too_large, register_error_handlers
from .media import egress, ytdlp_runtime
from .middleware import rate_limits
from .routes import admin as admin_routes
from .routes import auth as auth_routes
from .routes import batch as batch_routes
from .routes import channels as channel_routes
from .routes import chat as chat_routes
from .routes import clip_admin as clip_admin_routes
from .routes import cookies as cookies_routes
from .routes import encode as encode_routes
from .routes import health as health_routes
from .routes import notifications as notification_routes
from .routes import public as public_routes
from .routes import team as team_routes
from .routes import video as video_routes
from .schemas import ErrorSchema
from .services import (
    cleanup_service,
    live_service,
    nightbot_sender,
    notifications,
    recovery_service,
    storage,
)
from .services.cache_service import SessionCache
from .services.jobs import make_backend
from .web import blp as web_blp
from .web.public_page import blp as public_page_blp

log = logging.getLogger("yt_downloader")


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app: settings (environment ← ``config``), stores, job pool, blueprints,
    error handlers and, in development, Swagger UI at ``/docs``.

    Raises :class:`src.config.ConfigError` on an unusable setting.
    """
    settings = load_config(config)
    app = Flask(__name__)
    app.config.update(settings)
    app.config["SECRET_KEY"] = settings["FLASK_SECRET_KEY"]
    app.session_interface = _CookieSessionsWhenSent()
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's
    # Every route gets the small body limit; _limit_bodies() raises it for the upload route only.
    app.config["MAX_CONTENT_LENGTH"] = int(settings["MAX_REQUEST_BODY_KB"] * 1024)
    _openapi_settings(app, settings)
    check_settings(settings)  # production refusals (src/config_checks.py)
    egress.configure(settings["ALLOWED_SOURCE_HOSTS"], settings["ALLOWED_MEDIA_HOSTS"],
                     settings["YTDLP_PROXY"])  # issue 13: the guard's upstream proxy
    ytdlp_runtime.configure(settings)
    logging_setup.configure_logging(settings)
    _warn_embedded(settings)
    for folder in (settings["DOWNLOADS_DIR"], settings["UPLOADS_DIR"]):
        os.makedirs(folder, exist_ok=True)

    db = stores.make_mongo_db(settings["MONGODB_URI"])
    ensure_indexes(db)
    redis = stores.make_redis(settings["REDIS_URI"])
    app.extensions["yt"] = {"db": db, "redis": redis, "sessions": SessionCache(
        redis, settings["SESSION_LOCAL_CACHE_SECONDS"])}
    # JOB_BACKEND: threads (this process's JobPool) or celery (workers; issue 15, item 2)
    app.extensions["yt"]["jobs"] = make_backend(app, settings)
    # STORAGE_BACKEND: local folders, or an S3-compatible bucket (issue 15, item 3)
    app.extensions["yt"]["bucket"] = storage.make_bucket(settings)

    if settings["TRUSTED_PROXY_COUNT"]:  # behind nginx: client IP/scheme from X-Forwarded-*
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way
            app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    logging_setup.init_app(app)  # first before_request: every answer carries X-Request-ID
    metrics.init_app(app)  # then the clock: every answer is counted, refusals included
    _limit_bodies(app, settings)  # before anything reads a body
    _init_cors(app, settings)
    api = _Api(app, spec_kwargs={"components": {"securitySchemes": SECURITY_SCHEMES}})
    api.register_blueprint(auth_routes.blp)
    api.register_blueprint(cookies_routes.blp)
    api.register_blueprint(video_routes.blp)
    api.register_blueprint(clip_admin_routes.blp)
    api.register_blueprint(batch_routes.blp)
    api.register_blueprint(chat_routes.blp)
    api.register_blueprint(channel_routes.blp)
    api.register_blueprint(notification_routes.blp)
    api.register_blueprint(team_routes.blp)
    api.register_blueprint(admin_routes.blp)
    api.register_blueprint(public_routes.blp)
    api.register_blueprint(encode_routes.blp)
    api.register_blueprint(health_routes.blp)
    api.register_blueprint(health_routes.probes)
    api.register_blueprint(metrics.blp)
    app.register_blueprint(web_blp)  # the dashboard at / (static files, not in OpenAPI)
    app.register_blueprint(public_page_blp)  # /c/{handle} (issue 17, item 5; not in OpenAPI)
    register_error_handlers(app)  # after Api(), so our handlers replace flask-smorest's
    rate_limits.init_app(app)  # after the blueprints: limits are attached to their views
    live_service.init_app(app)
    cleanup_service.init_app(app)  # on live_service's scheduler
    nightbot_sender.init_app(app)  # issue 14: Nightbot follow-ups (starts when one waits)
    notifications.init_app(app)  # issue 17: clip notifications (starts when one waits)
    recovery_service.recover_at_start(app)
    cli.init_app(app)
    return app


#: OpenAPI security schemes (each operation names its own: src/routes/__init__.py).
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "a private token from POST /api/auth/login"},
    "publicToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "a public token from GET /api/auth/token/public"},
}


class _Api(Api):
    """flask-smorest's Api with the project's one error shape as its ``Error`` component and no
    catch-all ``default`` response: each view lists its own error answers (issue 16, item 1)."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None


def _openapi_settings(app: Flask, settings: dict) -> None:
    """The OpenAPI document at ``/openapi.json`` and Swagger UI at ``/docs``: in development, or
    anywhere with ``OPENAPI_PUBLIC=true``. Swagger UI's files are served from this app
    (``src/web/static/swagger/``, swagger-ui-dist 5.35.0 from npm, Apache-2.0): no CDN, and
    its validator badge (a request to validator.swagger.io) is off."""
    shown = settings["APP_ENV"] == "development" or settings["OPENAPI_PUBLIC"]
    app.config.update(
        API_TITLE="yt-downloader", API_VERSION="1.0", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/" if shown else None, OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs", OPENAPI_SWAGGER_UI_URL="/ui/swagger/",
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        API_SPEC_OPTIONS={"info": {"description": (
            "Clips of online videos, fetched segment-only, and re-encodes of uploads. Every "
            "non-2xx JSON answer is `{error, code, details?}` (the `Error` schema). Contract: "
            "SPEC-yt-downloader-backend.md; deliberate deviations are in the README.")}},
    )


def _limit_bodies(app: Flask, settings: dict) -> None:
    """Body limits per route (issue 11, item 3), with Flask ≥ 3.1's per-request
    ``request.max_content_length``: ``MAX_REQUEST_BODY_KB`` KiB (default 64) everywhere,
    ``MAX_UPLOAD_SIZE_MB`` + 1 MiB (multipart overhead) on ``POST /api/encode/upload`` only.

    A declared ``Content-Length`` over the limit is refused here, before any hook, limiter or
    view reads a byte. A body without one (chunked) is read no further than the limit: here on
    the small-limit routes, by werkzeug's form parser while it streams on the upload route.
    Both answer :func:`src.errors.body_too_large` (413 ``REQUEST_TOO_LARGE``, or the upload's
    400 ``FILE_TOO_LARGE``). ``deploy/nginx.conf`` applies the same split.
    Raises ConfigError when ``MAX_REQUEST_BODY_KB`` is under 1."""
    default = app.config["MAX_CONTENT_LENGTH"]
    if default < 1024:
        raise ConfigError("MAX_REQUEST_BODY_KB must be at least 1")
    upload = int((settings["MAX_UPLOAD_SIZE_MB"] + 1) * 1024 * 1024)

    @app.before_request
    def _body_limit():
        limit = upload if request.endpoint == UPLOAD_ENDPOINT else default
        request.max_content_length = limit
        if (request.content_length or 0) > limit:
            raise body_too_large()
        if limit == default and request.headers.get("Transfer-Encoding") \
                and request.environ.get("wsgi.input_terminated"):
            # werkzeug's stream stops at the limit, but its read() then returns what it has:
            # a cut-off JSON body would pass for a malformed one (400). Read the small body
            # now (into the request's cache, where get_json finds it); one more byte tells.
            request.get_data(cache=True)
            if request.environ["wsgi.input"].read(1):
                raise body_too_large()


class _CookieSessionsWhenSent(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only when the request carries its cookie.

    The API authenticates with bearer tokens and never stores anything in ``flask.session``;
    Flask would still build an itsdangerous serializer on every request (≈ 0.06 ms, a quarter
    of a status poll: BENCHMARKS.md, api). With a secret key set (always: src/config.py), a
    request without the cookie gets the same empty session Flask would give it."""

    def open_session(self, app, request):
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def _init_cors(app: Flask, settings: dict) -> None:
    """CORS for ``/api/*`` from ``CORS_ORIGINS`` (comma-separated; empty = no CORS headers) via
    flask-cors; credentials only with ``CORS_SUPPORTS_CREDENTIALS``."""
    if settings["CORS_ORIGINS"]:
        from flask_cors import CORS

        CORS(app, resources={r"/api/*": {"origins": settings["CORS_ORIGINS"]}},
             supports_credentials=settings["CORS_SUPPORTS_CREDENTIALS"],
             expose_headers=["X-Request-ID", "Content-Disposition", "Retry-After"])


def _warn_embedded(settings: dict) -> None:
    """One warning line per embedded default (DESIGN: clear at start-up, refused in production
    by the operations issue)."""
    if not settings["MONGODB_URI"]:
        log.warning("MONGODB_URI is not set: using an in-process mongomock database "
                    "(data is lost when the process exits)")
    if not settings["REDIS_URI"]:
        log.warning("REDIS_URI is not set: using in-process fakeredis "
                    "(sessions and progress are not shared between processes)")
    for name in settings["EMBEDDED_DEFAULTS"]:
        log.warning("%s is not set: using a random secret for this process "
                    "(tokens stop working on restart)", name)
