"""Start-up refusals: settings that are unsafe in production, and layouts that cannot work.

Rules (issue 4, "Production checks"; spec: Configuration):

- ``APP_ENV=production`` refuses the embedded stand-ins (``MONGODB_URI`` / ``REDIS_URI`` unset),
  a missing or weak secret (fewer than :data:`MIN_SECRET_LENGTH` characters, a placeholder from
  ``.env.example`` or the spec, or the same value for both JWT secrets), and CORS that allows any
  origin (``CORS_ORIGINS=*``) together with credentials (``CORS_SUPPORTS_CREDENTIALS=true``), a
  combination the CORS standard forbids and flask-cors would have to fake by echoing the origin.
- ``COOKIES_ENCRYPTION_KEY`` (issue 13, item 2) must be Fernet keys when set, in every
  environment; production refuses to start without it (owners' cookies would otherwise be
  encrypted under a key derived from ``FLASK_SECRET_KEY``, which then cannot be rotated alone).
- In every environment the embedded stores refuse more than one gunicorn worker: each worker would
  get its own private database and sessions (:func:`check_workers`, called by gunicorn_config.py).

Every refusal is a :class:`src.config.ConfigError` whose one message names each variable at fault.
"""
from __future__ import annotations

from .config import SECRET_NAMES, ConfigError

#: ``secrets.token_urlsafe(32)`` gives 43 characters; 32 is the floor we accept.
MIN_SECRET_LENGTH = 32
PLACEHOLDERS = ("your-", "-here", "changeme", "change-me", "secret-key", "example", "xxxxxxxx")


def _secret_problems(config: dict) -> list[str]:
    problems = []
    for name in SECRET_NAMES:
        value = config.get(name) or ""
        if name in config.get("EMBEDDED_DEFAULTS", ()):
            problems.append(f"{name} is not set")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is too short ({len(value)} characters, at least "
                            f"{MIN_SECRET_LENGTH}, e.g. from secrets.token_urlsafe(32))")
        elif any(word in value.lower() for word in PLACEHOLDERS):
            problems.append(f"{name} looks like a placeholder, generate a random value")
    if config.get("JWT_PUBLIC_SECRET") and \
            config.get("JWT_PUBLIC_SECRET") == config.get("JWT_PRIVATE_SECRET"):
        problems.append("JWT_PRIVATE_SECRET must differ from JWT_PUBLIC_SECRET")
    return problems


def production_problems(config: dict) -> list[str]:
    """The reasons ``config`` (from :func:`src.config.load_config`) may not run in production;
    empty when it may. Each reason starts with the variable's name."""
    problems = []
    if not config.get("MONGODB_URI"):
        problems.append("MONGODB_URI is not set (the embedded mongomock database keeps data "
                        "in one process only)")
    if not config.get("REDIS_URI"):
        problems.append("REDIS_URI is not set (embedded fakeredis is not shared between "
                        "processes)")
    problems += _secret_problems(config)
    if "*" in (config.get("CORS_ORIGINS") or []) and config.get("CORS_SUPPORTS_CREDENTIALS"):
        problems.append("CORS_ORIGINS allows '*' while CORS_SUPPORTS_CREDENTIALS is true: list "
                        "the allowed origins instead")
    if not config.get("COOKIES_ENCRYPTION_KEY"):
        problems.append("COOKIES_ENCRYPTION_KEY is not set (owners' YouTube cookies are "
                        "encrypted with it; generate one with python -c \"from "
                        "cryptography.fernet import Fernet; print(Fernet.generate_key()"
                        ".decode())\")")
    return problems


def check_settings(config: dict) -> None:
    """Validate the operations settings; in production, refuse unsafe ones.

    Raises ConfigError with one message naming every variable at fault.
    """
    for name in ("MIN_FREE_DISK_MB", "LOG_BACKUP_COUNT", "TRUSTED_PROXY_COUNT"):
        if config[name] < 0:
            raise ConfigError(f"{name} must not be negative")
    for name in ("ORPHAN_MAX_AGE_MINUTES", "LOG_MAX_MB"):
        if config[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    _check_cookies_key(config)
    _check_storage(config)
    if config["APP_ENV"] == "production":
        problems = production_problems(config)
        if problems:
            raise ConfigError("APP_ENV=production refuses to start: " + "; ".join(problems))


def _check_storage(config: dict) -> None:
    """Raise ConfigError for an unknown ``STORAGE_BACKEND`` / ``S3_DOWNLOAD_MODE`` /
    ``S3_ADDRESSING_STYLE``, s3 without ``S3_BUCKET``, or a key prefix that is not a folder."""
    if config["STORAGE_BACKEND"] not in ("local", "s3"):
        raise ConfigError("STORAGE_BACKEND must be local or s3")
    if config["STORAGE_BACKEND"] != "s3":
        return
    if not config.get("S3_BUCKET"):
        raise ConfigError("STORAGE_BACKEND=s3 needs S3_BUCKET (the bucket's name)")
    if config["S3_DOWNLOAD_MODE"] not in ("redirect", "proxy"):
        raise ConfigError("S3_DOWNLOAD_MODE must be redirect or proxy")
    if config["S3_ADDRESSING_STYLE"] not in ("auto", "path", "virtual"):
        raise ConfigError("S3_ADDRESSING_STYLE must be auto, path or virtual")
    prefix = config["S3_KEY_PREFIX"] or ""
    if prefix and (not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix):
        raise ConfigError("S3_KEY_PREFIX must be empty or a relative folder ending in /")
    if not 1 <= config["S3_PRESIGNED_SECONDS"] <= 7 * 24 * 3600:
        raise ConfigError("S3_PRESIGNED_SECONDS must be between 1 and 604800 (7 days)")


def _check_cookies_key(config: dict) -> None:
    """Raise ConfigError when ``COOKIES_ENCRYPTION_KEY`` is set but is not Fernet keys."""
    if not config.get("COOKIES_ENCRYPTION_KEY"):
        return
    from .services.cookies_service import make_fernet  # the one place keys are read

    try:
        make_fernet(config["COOKIES_ENCRYPTION_KEY"], None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def check_workers(config: dict, workers: int) -> None:
    """Refuse more than one worker process while a store is embedded (each worker would hold a
    private copy). Raises ConfigError naming the variable and ``GUNICORN_WORKERS``."""
    if workers <= 1:
        return
    for name in ("MONGODB_URI", "REDIS_URI"):
        if not config.get(name):
            raise ConfigError(f"{name} is not set: the embedded store lives inside one process, "
                              f"so it cannot serve {workers} gunicorn workers; set {name} or "
                              "GUNICORN_WORKERS=1")
