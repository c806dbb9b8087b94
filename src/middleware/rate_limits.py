"""Rate limits (issue 5, item 5) with flask-limiter, one ``Limiter`` per app.

Storage: the app's Redis (``REDIS_URI``), or memory in embedded mode; keys start with
``RATE_LIMIT_KEY_PREFIX``. Every limit is a setting in flask-limiter's notation
(``"10/minute;100/day"``) and is read per request, so tests and operators can change it.
A breach is a 429 in the one error shape (code RATE_LIMITED) with ``Retry-After`` in seconds.

Clients are told apart by IP (``request.remote_addr``: behind a proxy, make the proxy's
``X-Forwarded-For`` the remote address, e.g. werkzeug's ProxyFix), by public token or, for login,
by the email in the body. Nightbot calls come from Nightbot's servers, shared by every channel, so
the per-IP limit of the stream save is generous by default and the per-token limit is the one
that protects a channel.

A public token is counted by its verified ``jti``, not by its text (issue 11): one token has many
texts that verify (PyJWT's base64 decoding accepts an appended ``=``, for one), and each text
used to get a fresh bucket. A token that does not verify is counted by IP (its request is a 401).

Registration (issue 11) counts only *successful* registrations (201) against
``RATE_LIMIT_REGISTER``, so a household behind one address that mistypes a few times can still
create its account; failed attempts (4xx other than 429) count against their own, higher
``RATE_LIMIT_REGISTER_FAILED``, which still stops a flood. Both are per IP and use
flask-limiter's ``deduct_when``: the limit is tested before the view and deducted by the
limiter's after_request hook, once the answer is known.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from limits import parse_many

from ..config import ConfigError
from ..errors import error_body
from ..utils.token import TokenError, token_hash, verify


def _created(response) -> bool:
    return response.status_code == 201


def _refused(response) -> bool:
    return 400 <= response.status_code < 500 and response.status_code != 429


#: endpoint → [(setting, key kind[, deduct_when])]; the key kinds are the functions below.
#: With ``deduct_when`` a request counts only when its response passes that test.
LIMITS: dict[str, list[tuple]] = {
    "auth.login": [("RATE_LIMIT_LOGIN_IP", "ip"), ("RATE_LIMIT_LOGIN_EMAIL", "email")],
    "auth.register": [("RATE_LIMIT_REGISTER", "ip", _created),
                      ("RATE_LIMIT_REGISTER_FAILED", "failed_ip", _refused)],
    "auth.public_token": [("RATE_LIMIT_PUBLIC_TOKEN", "ip")],
    "video.save": [("RATE_LIMIT_SAVE_TOKEN", "bearer"), ("RATE_LIMIT_SAVE_IP", "ip")],
    "video.save_live": [("RATE_LIMIT_SAVE_TOKEN", "bearer"), ("RATE_LIMIT_SAVE_IP", "ip")],
    "video.save_stream": [("RATE_LIMIT_STREAM_SAVE_TOKEN", "path_token"),
                          ("RATE_LIMIT_STREAM_SAVE_IP", "ip")],
    "video.resolutions": [("RATE_LIMIT_RESOLUTIONS", "ip")],
    # chat commands (issue 17): the stream save's limits, a bucket per command
    **{f"chat.{command}": [("RATE_LIMIT_STREAM_SAVE_TOKEN", "path_token"),
                           ("RATE_LIMIT_STREAM_SAVE_IP", "ip")]
       for command in ("edit", "delete", "recent", "search")},
    "batch.save_batch": [("RATE_LIMIT_SAVE_BATCH_TOKEN", "bearer"), ("RATE_LIMIT_SAVE_IP", "ip")],
    "video.info": [("RATE_LIMIT_INFO", "ip")],  # issue 18: it runs yt-dlp for anyone too
    # the public clip page (issue 17, item 5): anyone, per IP
    **{f"public.{view}": [("RATE_LIMIT_PUBLIC_PAGE", "ip")] for view in ("clips", "export")},
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


def _failed_ip() -> str:
    return f"failed-{_ip()}"  # its own key: equal limit strings must not share a counter


def _public_token(token: str) -> str:
    """The bucket of a public token: its verified ``jti`` (every text of one token shares it),
    else the caller's IP (a token that does not verify; the view answers 401)."""
    try:
        claims = verify(token, current_app.config["JWT_PUBLIC_SECRET"], "public")
    except TokenError:
        return f"bad-token-{_ip()}"
    return f"token:{claims.get('jti') or token_hash(token)[:32]}"


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return _public_token(token.strip()) if token.strip() else _ip()


def _path_token() -> str:
    return _public_token((request.view_args or {}).get("token") or "")


KEY_FUNCS = {"ip": _ip, "failed_ip": _failed_ip, "email": _email, "bearer": _bearer,
             "path_token": _path_token}


def _limit_value(name: str):
    return lambda: current_app.config[name]


def init_app(app: Flask) -> Limiter:
    """Attach a Limiter to ``app`` (after its blueprints are registered) with the limits of
    :data:`LIMITS`, and the 429 handler. Raises ConfigError on a malformed limit string."""
    for rules in LIMITS.values():
        for name, *_ in rules:
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
        view: Callable[..., Any] = app.view_functions[endpoint]
        for name, kind, *deduct_when in rules:  # the same as decorating the view, but per app
            view = limiter.limit(_limit_value(name), key_func=KEY_FUNCS[kind],
                                 override_defaults=False,
                                 deduct_when=deduct_when[0] if deduct_when else None)(view)
        app.view_functions[endpoint] = view
    # Only the views above are limited, and their wrappers run the check themselves; the global
    # before_request check only serves default limits (none here) and costs ~0.25 ms on every
    # request, status polling included (BENCHMARKS.md, api), so it is taken out.
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:
        hooks.remove(limiter._check_request_limit)
    # Its after_request (headers, conditional deductions: the register limits need it) and
    # teardown (per-request state) hooks have work only where a limit was checked: elsewhere
    # they are skipped (≈ 0.03 ms).
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
