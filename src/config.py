"""Configuration from the environment (and a ``.env`` file, through python-dotenv).

Names follow the spec's Configuration section; additions are in the same style and documented in
``.env.example`` and the README. Every value can also be given to ``create_app(config={...})``,
which wins over the environment (tests use this).
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any, Optional

from dotenv import load_dotenv

DEFAULT_ALLOWED_SOURCE_HOSTS = ("youtube.com,www.youtube.com,m.youtube.com,music.youtube.com,"
                                "youtu.be")
#: Hosts the media of an allowed page may come from (``*.`` = any subdomain), besides the page
#: hosts themselves (issue 11: for YouTube pages, media only from YouTube's own media hosts).
#: What yt-dlp 2026.10.26's YouTube extractor contacts for a watch page, without an account:
#: www.youtube.com for the page, /iframe_api, the player JS /s/player/… and the innertube API
#: /youtubei/v1/player of its default clients (extractor/youtube/_video.py ``_real_extract``,
#: ``_download_player_url``, ``_construct_player_url``; _base.py ``INNERTUBE_HOST`` defaults to
#: www.youtube.com, only the signed-in web_music client uses music.youtube.com), and the formats,
#: DASH/HLS manifests and fragments on rr…---sn-….googlevideo.com / manifest.googlevideo.com.
#: youtubei.googleapis.com appears only in a page-URL pattern and is never contacted.
DEFAULT_ALLOWED_MEDIA_HOSTS = "*.googlevideo.com,www.youtube.com"

#: name → (type, default). Types: str, int, float, bool, list (comma-separated), "minutes".
SETTINGS: dict[str, tuple[Any, Any]] = {
    "APP_ENV": (str, "development"),
    "HOST": (str, "127.0.0.1"),
    "PORT": (int, 5000),
    "MONGODB_URI": (str, None),
    "REDIS_URI": (str, None),
    "JWT_PUBLIC_SECRET": (str, None),
    "JWT_PRIVATE_SECRET": (str, None),
    "FLASK_SECRET_KEY": (str, None),
    "BCRYPT_ROUNDS": (int, 12),
    "PUBLIC_TOKEN_HOURS": (float, 24),
    "PRIVATE_TOKEN_DAYS": (float, 7),
    "SESSION_LOCAL_CACHE_SECONDS": (float, 60),
    "DOWNLOADS_DIR": (str, "./downloads"),
    "UPLOADS_DIR": (str, "./uploads"),
    "MAX_VIDEO_DURATION": (float, 3600),
    "MAX_UPLOAD_SIZE_MB": (float, 500),
    "VIDEO_RETENTION_MINUTES": ("minutes", 30),
    "CLEANUP_INTERVAL_MINUTES": ("minutes", 5),
    "DEFAULT_VIDEO_FORMAT": (str, "mp4"),
    "DEFAULT_VIDEO_RESOLUTION": (str, "1080p"),
    "MAX_CONCURRENT_JOBS": (int, 2),
    "MAX_CONCURRENT_ENCODES": (int, 1),
    "MAX_CONCURRENT_CAPTURES": (int, 4),  # issue 14: live clips recording at once (own lane)
    "ENCODE_THREADS": (int, max(1, (os.cpu_count() or 2) - 1)),
    "HIGHRES_MP4_PRESET": (str, "high"),
    "DOWNLOAD_WAIT_SECONDS": (float, 20),
    "ALLOWED_SOURCE_HOSTS": (list, DEFAULT_ALLOWED_SOURCE_HOSTS),
    # Security (issue 11): egress allow-list, upload and encode caps, per-user jobs, body sizes
    "ALLOWED_MEDIA_HOSTS": (list, DEFAULT_ALLOWED_MEDIA_HOSTS),
    "MAX_UPLOAD_DURATION_SECONDS": (float, 3 * 3600),
    "MAX_UPLOAD_PIXELS": (int, 7680 * 4320),
    "MAX_UPLOAD_FRAME_RATE": (float, 240),
    "ENCODE_TIMEOUT_FACTOR": (float, 4),
    "MAX_JOBS_PER_USER": (int, 4),
    "MAX_REQUEST_BODY_KB": (float, 64),
    "RATE_LIMIT_REGISTER_FAILED": (str, "30/hour;100/day"),
    # Public side (issue 5): public tokens, live clips, rate limits ("N/period;M/period")
    "ALLOW_ANONYMOUS_PUBLIC_TOKENS": (bool, False),
    "STREAM_DELAY_SECONDS": (float, 0),
    "LIVE_SWEEP_SECONDS": (float, 15),
    "LIVE_RECHECK_INITIAL_SECONDS": (float, 60),
    "LIVE_RECHECK_MAX_SECONDS": (float, 1800),
    "LIVE_VOD_MAX_WAIT_HOURS": (float, 48),
    "LIVE_INFO_CACHE_SECONDS": (float, 30),
    "MAX_PENDING_CLIPS_PER_USER": (int, 200),
    "RATE_LIMIT_ENABLED": (bool, True),
    "RATE_LIMIT_KEY_PREFIX": (str, "ytd"),
    "RATE_LIMIT_LOGIN_IP": (str, "20/minute;200/day"),
    "RATE_LIMIT_LOGIN_EMAIL": (str, "5/minute;50/day"),
    "RATE_LIMIT_REGISTER": (str, "5/hour;20/day"),
    "RATE_LIMIT_PUBLIC_TOKEN": (str, "10/hour"),
    "RATE_LIMIT_SAVE_TOKEN": (str, "30/minute"),
    "RATE_LIMIT_SAVE_IP": (str, "60/minute"),
    "RATE_LIMIT_SAVE_BATCH_TOKEN": (str, "5/minute;200/day"),  # issue 18: up to 50 clips each
    "RATE_LIMIT_STREAM_SAVE_TOKEN": (str, "20/minute;500/day"),
    "RATE_LIMIT_STREAM_SAVE_IP": (str, "600/minute"),
    "RATE_LIMIT_RESOLUTIONS": (str, "10/minute;100/day"),
    "LOG_LEVEL": (str, "INFO"),
    "LOG_FILE": (str, "./logs/app.log"),
    # Operations (issue 4): log rotation, CORS, disk guard, orphan sweep, nginx file streaming
    "LOG_MAX_MB": (float, 20),
    "LOG_BACKUP_COUNT": (int, 5),
    "CORS_ORIGINS": (list, ""),
    "CORS_SUPPORTS_CREDENTIALS": (bool, False),
    "MIN_FREE_DISK_MB": (float, 1024),
    "ORPHAN_MAX_AGE_MINUTES": ("minutes", 180),
    "USE_X_ACCEL_REDIRECT": (bool, False),
    "TRUSTED_PROXY_COUNT": (int, 0),
    # The contract (issue 16): /openapi.json and /docs outside development too
    "OPENAPI_PUBLIC": (bool, False),
    # Metrics and structured logs (issue 16)
    "METRICS_TOKEN": (str, None),
    "LOG_FORMAT": (str, "text"),
    # -- end issue 16 --
    # Real YouTube (issue 13): JS runtime, PO tokens, server cookies file, yt-dlp updates
    "YTDLP_JS_RUNTIME": (str, "deno"),
    "YTDLP_POT_PROVIDER_URL": (str, None),
    "YTDLP_EXTRACTOR_ARGS": (str, None),
    "YTDLP_COOKIES_FILE": (str, None),
    # -- end issue 13 runtime --
    # Real YouTube (issue 13): proxy, one extraction per video
    "YTDLP_PROXY": (str, None),
    "INFO_CACHE_SECONDS": (float, 3600),
    "INFO_CACHE_MARGIN_SECONDS": (float, 900),
    "INFO_RATE_LIMIT_RETRIES": (int, 2),
    "INFO_RATE_LIMIT_BACKOFF_SECONDS": (float, 5),
    "RATE_LIMITED_RETRY_AFTER_SECONDS": (int, 900),
    # -- end issue 13 extraction --
    # Real YouTube (issue 13): per-owner cookies
    "COOKIES_ENCRYPTION_KEY": (str, None),
    # -- end issue 13 cookies --
    "RATE_LIMIT_INFO": (str, "10/minute;100/day"),  # issue 18
    "RATE_LIMIT_PUBLIC_PAGE": (str, "60/minute;2000/day"),  # issue 17, item 5, per IP
    # Nightbot follow-up (issue 14, item 4): a chat message when a clip saved from chat ends
    "NIGHTBOT_FOLLOWUP": (bool, True),
    "NIGHTBOT_RESPONSE_URL_SECONDS": (float, 600),
    "NIGHTBOT_MESSAGE_INTERVAL_SECONDS": (float, 5),
    "NIGHTBOT_RESPONSE_HOSTS": (list, ""),
    "PUBLIC_BASE_URL": (str, None),
    # Clip library (issue 17, item 4): seconds a signed play URL stays valid
    "PLAY_URL_SECONDS": (float, 300),
    # Notifications (issue 17, item 3): hosts admitted besides Discord's / public ones, listed
    # exactly (so they may be local: tests, the demo's stand-ins)
    "DISCORD_WEBHOOK_HOSTS": (list, ""),
    "WEBHOOK_HOSTS": (list, ""),
    "DISCORD_FILE_LIMIT_MB": (float, 10),  # a "ready" clip is attached up to this size
    # Celery (issue 15, item 2): where jobs run (src/services/celery_backend.py, src/worker.py)
    "JOB_BACKEND": (str, "threads"),
    "CELERY_BROKER_URL": (str, None),
    "CELERY_TASK_TIME_LIMIT_CLIP": (float, 3600),
    "CELERY_TASK_TIME_LIMIT_ENCODE": (float, 12 * 3600),
    "CELERY_QUEUE_WAIT_SECONDS": (float, 3600),
    # Files in an S3-compatible bucket (issue 15, item 3; src/services/storage.py)
    "STORAGE_BACKEND": (str, "local"),
    "S3_BUCKET": (str, None),
    "S3_ENDPOINT_URL": (str, None),  # None: AWS; R2 https://{account}.r2.cloudflarestorage.com
    "S3_PUBLIC_ENDPOINT_URL": (str, None),  # the endpoint in presigned URLs, when it differs
    "S3_REGION": (str, "us-east-1"),  # R2: auto
    "S3_ACCESS_KEY_ID": (str, None),  # None: boto3's own chain (AWS_* variables, instance role)
    "S3_SECRET_ACCESS_KEY": (str, None),
    "S3_KEY_PREFIX": (str, ""),
    "S3_ADDRESSING_STYLE": (str, "auto"),  # auto | path (MinIO) | virtual
    "S3_DOWNLOAD_MODE": (str, "redirect"),  # redirect (presigned URL) | proxy (through the app)
    "S3_PRESIGNED_SECONDS": (float, 300),
}

SECRET_NAMES = ("JWT_PUBLIC_SECRET", "JWT_PRIVATE_SECRET", "FLASK_SECRET_KEY")


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _convert(name: str, kind: Any, raw: Any) -> Any:
    """Convert one raw value (a string from the environment, or a Python value from overrides)."""
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        if kind is list:
            return [part.strip().lower() for part in text.split(",") if part.strip()]
        if kind is bool:
            return text.lower() in ("1", "true", "yes", "on")
        if kind is int:
            return int(text)
        if kind in (float, "minutes"):
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    return text or None


def load_config(overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Return the settings dict: defaults ← environment (and ``.env``) ← ``overrides``.

    Minute values (``*_MINUTES``) accept fractions (``VIDEO_RETENTION_MINUTES=0.1``).
    Missing secrets are replaced by random per-process values and listed under
    ``EMBEDDED_DEFAULTS`` so the app can warn about them (as it does for embedded stores).
    Raises :class:`ConfigError` when a value has the wrong type or is out of range.
    """
    load_dotenv(override=False)
    overrides = dict(overrides or {})
    config: dict = {}
    for name, (kind, default) in SETTINGS.items():
        raw = overrides.pop(name) if name in overrides else os.environ.get(name, default)
        config[name] = _convert(name, kind, raw)
    config.update(overrides)  # extra keys (e.g. TESTING) pass through unchanged

    if config["APP_ENV"] not in ("development", "production"):
        raise ConfigError("APP_ENV must be 'development' or 'production'")
    for name in ("MAX_CONCURRENT_JOBS", "MAX_CONCURRENT_ENCODES", "MAX_CONCURRENT_CAPTURES",
                 "ENCODE_THREADS", "PORT"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("MAX_VIDEO_DURATION", "VIDEO_RETENTION_MINUTES", "CLEANUP_INTERVAL_MINUTES"):
        if config[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if config["HIGHRES_MP4_PRESET"] not in ("lossless", "high", "medium"):
        raise ConfigError("HIGHRES_MP4_PRESET must be lossless, high or medium")
    if config["DOWNLOAD_WAIT_SECONDS"] < 0:
        raise ConfigError("DOWNLOAD_WAIT_SECONDS must not be negative")
    for name in ("STREAM_DELAY_SECONDS", "MAX_PENDING_CLIPS_PER_USER",
                 "SESSION_LOCAL_CACHE_SECONDS", "DISCORD_FILE_LIMIT_MB"):
        if config[name] < 0:
            raise ConfigError(f"{name} must not be negative")
    for name in ("LIVE_SWEEP_SECONDS", "LIVE_RECHECK_INITIAL_SECONDS", "LIVE_RECHECK_MAX_SECONDS",
                 "LIVE_VOD_MAX_WAIT_HOURS", "NIGHTBOT_RESPONSE_URL_SECONDS",
                 "NIGHTBOT_MESSAGE_INTERVAL_SECONDS", "PLAY_URL_SECONDS"):
        if config[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    # Upload and encode caps (issue 11); MAX_JOBS_PER_USER 0 = no cap
    for name in ("MAX_UPLOAD_DURATION_SECONDS", "MAX_UPLOAD_PIXELS", "MAX_UPLOAD_FRAME_RATE",
                 "ENCODE_TIMEOUT_FACTOR"):
        if config[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if config["MAX_JOBS_PER_USER"] < 0:
        raise ConfigError("MAX_JOBS_PER_USER must not be negative (0 = no cap)")

    embedded = []
    for name in SECRET_NAMES:
        if not config[name]:
            config[name] = secrets.token_urlsafe(32)
            embedded.append(name)
    config["EMBEDDED_DEFAULTS"] = embedded
    # Relative folders are relative to the working directory at start-up, made absolute once:
    # Flask's send_file would otherwise resolve them against the package folder.
    for name in ("DOWNLOADS_DIR", "UPLOADS_DIR", "LOG_FILE"):
        if config[name]:
            config[name] = os.path.abspath(config[name])
    return config
