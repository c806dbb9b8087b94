"""Configuration from the environment (and a ``.env`` file, through python-dotenv).

Names follow the spec's Configuration section; additions are in the same style and documented in
``.env.example`` and the README. Every value can also be given to ``create_app(config={...})``,
which wins over the environment (tests use this).
"""
from __future__ import annotations

import os
import secrets
from typing import Any, Mapping, Optional

from dotenv import load_dotenv

DEFAULT_ALLOWED_SOURCE_HOSTS = "youtube.com,www.youtube.com,m.youtube.com,music.youtube.com,youtu.be"

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
    "DOWNLOADS_DIR": (str, "./downloads"),
    "UPLOADS_DIR": (str, "./uploads"),
    "MAX_VIDEO_DURATION": (float, 3600),
    "MAX_UPLOAD_SIZE_MB": (float, 500),
    "VIDEO_RETENTION_MINUTES": ("minutes", 30),
    "CLEANUP_INTERVAL_MINUTES": ("minutes", 5),
    "DEFAULT_VIDEO_FORMAT": (str, "mp4"),
    "DEFAULT_VIDEO_RESOLUTION": (str, "1080p"),
    "MAX_CONCURRENT_JOBS": (int, 2),
    "DOWNLOAD_WAIT_SECONDS": (float, 20),
    "ALLOWED_SOURCE_HOSTS": (list, DEFAULT_ALLOWED_SOURCE_HOSTS),
    "LOG_LEVEL": (str, "INFO"),
    "LOG_FILE": (str, "./logs/app.log"),
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
        if kind == list:
            return [part.strip().lower() for part in text.split(",") if part.strip()]
        if kind == bool:
            return text.lower() in ("1", "true", "yes", "on")
        if kind == int:
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
    for name in ("MAX_CONCURRENT_JOBS", "PORT"):
        if config[name] < 1:
            raise ConfigError(f"{name} must be at least 1")
    for name in ("MAX_VIDEO_DURATION", "VIDEO_RETENTION_MINUTES", "CLEANUP_INTERVAL_MINUTES"):
        if config[name] <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if config["DOWNLOAD_WAIT_SECONDS"] < 0:
        raise ConfigError("DOWNLOAD_WAIT_SECONDS must not be negative")

    embedded = []
    for name in SECRET_NAMES:
        if not config[name]:
            config[name] = secrets.token_urlsafe(32)
            embedded.append(name)
    config["EMBEDDED_DEFAULTS"] = embedded
    return config
