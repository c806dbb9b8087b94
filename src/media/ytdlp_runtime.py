"""What yt-dlp needs for real YouTube besides a URL (issue 13, items 1-3): a JavaScript runtime
for its challenge solver, the PO-token provider's address, extra extractor arguments, and the
cookies of an extraction.

Since yt-dlp 2025.11.12 the YouTube extractor solves the player's "n" and signature challenges
with the EJS scripts (the ``yt-dlp-ejs`` package, pulled by ``yt-dlp[default]``) run in an
external JavaScript runtime; without one it warns "No supported JavaScript runtime could be
found" and drops formats (yt-dlp issue #15012, wiki "EJS"). Deno is the runtime yt-dlp enables
by default, found on PATH — but the systemd unit's PATH does not include the venv, so
:func:`js_runtimes` names the venv's deno (the ``deno`` PyPI package) explicitly, in the shape
of ``YoutubeDL``'s ``js_runtimes`` parameter: ``{"deno": {"path": "/…/.venv/bin/deno"}}``.

Settings (read by :func:`configure`, called from ``create_app``):

- ``YTDLP_JS_RUNTIME``: ``deno`` (default: the venv's deno), ``deno:/path``, ``node:/path``
  (Node ≥ 22), ``bun:/path``, ``quickjs:/path`` or ``none`` (no runtime: challenges unsolved).
- ``YTDLP_POT_PROVIDER_URL``: the base URL of a bgutil PO-token provider service; becomes the
  ``youtubepot-bgutilhttp:base_url`` extractor argument of the ``bgutil-ytdlp-pot-provider``
  plugin (its README, "Usage").
- ``YTDLP_EXTRACTOR_ARGS``: more extractor arguments in yt-dlp's ``--extractor-args`` syntax,
  several separated by spaces (``youtube:player_client=default,web;skip=hls youtube-ejs:…``),
  parsed by yt-dlp's own option parser.
- ``YTDLP_COOKIES_FILE``: a Netscape cookies file used when an extraction has no cookies of its
  own; copied for each extraction (:func:`cookie_file`), so yt-dlp never rewrites it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

log = logging.getLogger(__name__)

#: Runtimes yt-dlp 2026.10.26 supports (``yt_dlp.globals.supported_js_runtimes``).
RUNTIMES = ("deno", "node", "bun", "quickjs")


@dataclass(frozen=True)
class Settings:
    """This process's yt-dlp settings (see the module docstring)."""

    js_runtime: str = "deno"
    pot_provider_url: Optional[str] = None
    extractor_args: Optional[str] = None
    cookies_file: Optional[str] = None


_settings = Settings()


def parse_runtime(value: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """``YTDLP_JS_RUNTIME`` → ``(name, path)``: ``"deno"`` → ``("deno", None)`` (the venv's),
    ``"node:/usr/bin/node"`` → ``("node", "/usr/bin/node")``, ``"none"`` → ``(None, None)``.
    Raises ValueError naming the setting for an unknown runtime or a missing path."""
    value = (value or "deno").strip()
    if value.lower() == "none":
        return None, None
    name, _, path = value.partition(":")
    name = name.strip().lower()
    if name not in RUNTIMES:
        raise ValueError(f"YTDLP_JS_RUNTIME must be 'none' or one of {', '.join(RUNTIMES)} "
                         f"(optionally ':/path/to/binary'), not {value!r}")
    if name != "deno" and not path:
        raise ValueError(f"YTDLP_JS_RUNTIME={name} needs the binary's path: '{name}:/path'")
    return name, path or None


def parse_extractor_args(value: Optional[str]) -> dict:
    """``YTDLP_EXTRACTOR_ARGS`` → yt-dlp's ``extractor_args`` dict (``{ie_key: {arg: [values]}}``),
    parsed by yt-dlp's own ``--extractor-args`` option (``yt_dlp.options.create_parser``), one
    option per space-separated word. Raises ValueError with yt-dlp's message when it is wrong."""
    if not value or not value.strip():
        return {}
    from yt_dlp.options import create_parser

    argv = []
    for word in shlex.split(value):
        argv += ["--extractor-args", word]
    parser = create_parser()

    def refuse(msg: str) -> None:
        raise ValueError(f"YTDLP_EXTRACTOR_ARGS: {msg}")

    parser.error = refuse  # optparse would exit the process
    opts, _ = parser.parse_args(argv)
    return dict(opts.extractor_args)


def configure(settings: Mapping[str, Any]) -> Settings:
    """Read the ``YTDLP_*`` settings of ``settings`` (a ``load_config`` dict) into this process.
    Raises ValueError for an unusable ``YTDLP_JS_RUNTIME`` or ``YTDLP_EXTRACTOR_ARGS``, or a
    ``YTDLP_POT_PROVIDER_URL`` that is not an http(s) URL with a host. A runtime that is not
    found is not an error here (``/readyz`` reports it)."""
    global _settings
    new = Settings(js_runtime=settings.get("YTDLP_JS_RUNTIME") or "deno",
                   pot_provider_url=(settings.get("YTDLP_POT_PROVIDER_URL") or "").rstrip("/")
                   or None,
                   extractor_args=settings.get("YTDLP_EXTRACTOR_ARGS") or None,
                   cookies_file=settings.get("YTDLP_COOKIES_FILE") or None)
    parse_runtime(new.js_runtime)
    if new.pot_provider_url:
        parts = urllib.parse.urlsplit(new.pot_provider_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("YTDLP_POT_PROVIDER_URL must be an http(s) URL such as "
                             "http://127.0.0.1:4416")
    parse_extractor_args(new.extractor_args)
    _settings = new
    return new


def current() -> Settings:
    """The settings :func:`configure` read (defaults before it is called)."""
    return _settings


def venv_deno() -> Optional[str]:
    """The deno binary of this Python environment (the ``deno`` PyPI package puts it in the
    scripts folder: ``.venv/bin/deno``), never looked up on PATH; None when not installed."""
    candidates = [os.path.join(os.path.dirname(sys.executable), "deno")]
    try:
        from deno import find_deno_bin

        candidates.insert(0, find_deno_bin())
    except (ImportError, FileNotFoundError):
        pass
    return next((path for path in candidates
                 if os.path.isfile(path) and os.access(path, os.X_OK)), None)


def js_runtimes(settings: Optional[Settings] = None) -> dict:
    """yt-dlp's ``js_runtimes`` parameter for ``settings`` (default: :func:`current`):
    ``{}`` for ``none`` (yt-dlp then solves no challenge), else ``{name: {"path": path}}``.
    For ``deno`` without a path and no venv deno, ``{"deno": {}}`` (yt-dlp's own look-up)."""
    name, path = parse_runtime((settings or _settings).js_runtime)
    if name is None:
        return {}
    path = path or (venv_deno() if name == "deno" else None)
    return {name: {"path": path} if path else {}}


#: How long :func:`runtime_info` keeps an answer (seconds): /readyz asks on every probe, and
#: each detection starts the runtime once (``deno --version``).
RUNTIME_INFO_SECONDS = 60.0
_info_cache: dict = {}
_info_lock = threading.Lock()


def runtime_info(settings: Optional[Settings] = None) -> Optional[dict]:
    """The runtime yt-dlp would use, as yt-dlp itself detects it (``yt_dlp.utils._jsruntime``:
    runs ``<binary> --version``): ``{"name", "version", "supported"}``, or None when disabled or
    not found. ``supported`` is False below yt-dlp's minimum (Deno 2.0, Node 22 …). Answers are
    kept :data:`RUNTIME_INFO_SECONDS` per runtime setting."""
    runtimes = js_runtimes(settings)
    key = repr(sorted(runtimes.items()))
    with _info_lock:
        cached = _info_cache.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    info = _detect(runtimes)
    with _info_lock:
        _info_cache[key] = (time.monotonic() + RUNTIME_INFO_SECONDS, info)
    return info


def _detect(runtimes: dict) -> Optional[dict]:
    import yt_dlp  # noqa: F401  (registers the runtimes in supported_js_runtimes)
    from yt_dlp.globals import supported_js_runtimes

    for name, config in runtimes.items():
        info = supported_js_runtimes.value[name](path=config.get("path")).info
        if info is not None:
            return {"name": info.name, "version": info.version, "supported": info.supported}
    return None


def ejs_version() -> Optional[str]:
    """The installed ``yt-dlp-ejs`` version (the challenge solver scripts), or None."""
    try:
        import yt_dlp_ejs
    except ImportError:
        return None
    return getattr(yt_dlp_ejs, "version", None)


def extractor_args(settings: Optional[Settings] = None) -> dict:
    """yt-dlp's ``extractor_args``: ``YTDLP_EXTRACTOR_ARGS`` plus, when
    ``YTDLP_POT_PROVIDER_URL`` is set, ``{"youtubepot-bgutilhttp": {"base_url": [url]}}``."""
    settings = settings or _settings
    args = parse_extractor_args(settings.extractor_args)
    if settings.pot_provider_url:
        args.setdefault("youtubepot-bgutilhttp", {})["base_url"] = [settings.pot_provider_url]
    return args


def ydl_params(cookiefile: Optional[str] = None) -> dict:
    """The ``YoutubeDL`` parameters of this module: ``js_runtimes``, ``extractor_args`` and,
    given a path (from :func:`cookie_file`), ``cookiefile``."""
    params: dict = {"js_runtimes": js_runtimes(), "extractor_args": extractor_args()}
    if cookiefile:
        params["cookiefile"] = cookiefile
    return params


def _server_cookies() -> Optional[str]:
    path = _settings.cookies_file
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        log.warning("YTDLP_COOKIES_FILE unreadable (%s); extracting without cookies",
                    type(exc).__name__)
        return None


@contextlib.contextmanager
def cookie_file(cookies: Optional[str] = None) -> Iterator[Optional[str]]:
    """A private copy of the cookies of one extraction, for yt-dlp's ``cookiefile``.

    ``cookies``: Netscape cookie text (an owner's); None or empty: the server's
    ``YTDLP_COOKIES_FILE`` (its content is copied — yt-dlp writes its cookie jar back to the
    file when it closes, and must not rewrite the operator's file). Yields the path of a file
    (mode 0600, in a new 0700 directory of its own) or None when there are no cookies; the
    directory is removed when the block ends, whatever happens in it.
    """
    text = cookies if cookies else _server_cookies()
    if not text:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="ytdlp-cookies-")  # mode 0700 (tempfile)
    try:
        path = os.path.join(folder, "cookies.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
