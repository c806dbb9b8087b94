"""Rate limits (issue 5, item 5) with flask-limiter, one ``Limiter`` per app.

Storage: the app's Redis (``REDIS_URI``), or memory in embedded mode; keys start with
``RATE_LIMIT_KEY_PREFIX``. Every limit is a setting in flask-limiter's notation
(``"10/minute;100/day"``) and is read per request, so tests and operators can change it.
A breach is a 429 in the one error shape (code RATE_LIMITED) with ``Retry-After`` in seconds.

Clients are told apart by IP (``request.remote_addr``: behind a proxy, make the proxy's
``X-Forwarded-For`` the remote address, e.g. werkzeug's ProxyFix), by public token (its SHA-256)
or, for login, by the email in the body. Nightbot calls come from Nightbot's servers, shared by
every channel, so the per-IP limit of the stream save is generous by default and the per-token
limit is the one that protects a channel.
"""
from __future__ import annotations

import math
import time

from flask import Flask, current_app, jsonify, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many

from ..config import ConfigError
from ..errors import error_body
from ..utils.token import token_hash

#: endpoint → [(setting, key kind)]; the key kinds are the functions below.
LIMITS = {
    "auth.login": [("RATE_LIMIT_LOGIN_IP", "ip"), ("RATE_LIMIT_LOGIN_EMAIL", "email")],
    "auth.register": [("RATE_LIMIT_REGISTER", "ip")],
    "auth.public_token": [("RATE_LIMIT_PUBLIC_TOKEN", "ip")],
    "video.save": [("RATE_LIMIT_SAVE_TOKEN", "bearer"), ("RATE_LIMIT_SAVE_IP", "ip")],
    "video.save_stream": [("RATE_LIMIT_STREAM_SAVE_TOKEN", "path_token"),
                          ("RATE_LIMIT_STREAM_SAVE_IP", "ip")],
    "video.resolutions": [("RATE_LIMIT_RESOLUTIONS", "ip")],
}


def _ip() -> str:
    return f"ip:{request.remote_addr or 'unknown'}"


def _email() -> str:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deeply: the view answers 400; key this request by IP
        body = None
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{email.strip().lower()[:254]}" if isinstance(email, str) and email.strip() \
        else _ip()


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return f"token:{token_hash(token.strip())[:32]}" if token.strip() else _ip()


def _path_token() -> str:
    token = (request.view_args or {}).get("token") or ""
    return f"token:{token_hash(token)[:32]}"


KEY_FUNCS = {"ip": _ip, "email": _email, "bearer": _bearer, "path_token": _path_token}


def _limit_value(name: str):
    return lambda: current_app.config[name]


def init_app(app: Flask) -> Limiter:
    """Attach a Limiter to ``app`` (after its blueprints are registered) with the limits of
    :data:`LIMITS`, and the 429 handler. Raises ConfigError on a malformed limit string."""
    for rules in LIMITS.values():
        for name, _ in rules:
            try:
                parse_many(app.config[name])
            except ValueError as exc:
                raise ConfigError(f"{name} must look like '10/minute;100/day', got "
                                  f"{app.config[name]!r}") from exc
    app.config.update(RATELIMIT_ENABLED=app.config["RATE_LIMIT_ENABLED"],
                      RATELIMIT_KEY_PREFIX=app.config["RATE_LIMIT_KEY_PREFIX"],
                      RATELIMIT_STORAGE_URI=app.config["REDIS_URI"] or "memory://",
                      RATELIMIT_HEADERS_ENABLED=False)
    limiter = Limiter(key_func=_ip, app=app)
    for endpoint, rules in LIMITS.items():
        view = app.view_functions[endpoint]
        for name, kind in rules:  # the same as decorating the view, but per app
            view = limiter.limit(_limit_value(name), key_func=KEY_FUNCS[kind],
                                 override_defaults=False)(view)
        app.view_functions[endpoint] = view
    # Only the views above are limited, and their wrappers run the check themselves; the global
    # before_request check only serves default limits (none here) and costs ~0.25 ms on every
    # request, status polling included (BENCHMARKS.md, api), so it is taken out.
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:
        hooks.remove(limiter._check_request_limit)
    # Its after_request (headers, conditional deductions) and teardown (per-request state)
    # hooks have work only where a limit was checked: elsewhere they are skipped (≈ 0.03 ms).
    for registry in (app.after_request_funcs, app.teardown_request_funcs):
        registry[None] = [_only_where_limited(hook) if _belongs_to(hook, limiter) else hook
                          for hook in registry.get(None, [])]
    app.register_error_handler(RateLimitExceeded, _too_many)
    app.extensions["yt"]["limiter"] = limiter
    return limiter


def _belongs_to(hook, limiter: Limiter) -> bool:
    """True for the limiter's own hooks (a bound method or a partial bound to it)."""
    return getattr(hook, "__self__", None) is limiter or \
        limiter in getattr(hook, "args", ())


def _only_where_limited(hook):
    def run(value):  # a response (after_request) or an exception (teardown)
        return hook(value) if request.endpoint in LIMITS else value

    return run


def _too_many(exc: RateLimitExceeded):
    limiter = current_app.extensions["yt"]["limiter"]
    current = limiter.current_limit
    retry = max(1, math.ceil(current.reset_at - time.time())) if current else 60
    response = jsonify(error_body(f"Too many requests; try again in {retry} s", "RATE_LIMITED"))
    response.status_code = 429
    response.headers["Retry-After"] = str(retry)
    return response
