"""Per-owner YouTube cookies (issue 13, item 2): checked on upload, encrypted at rest, handed
to that owner's extractions only.

Rules (decided here, documented in the README):

- The upload must be a Netscape cookies file (:mod:`src.utils.netscape_cookies`); a wrong line
  is 400 ``INVALID_COOKIES`` naming its number. Only cookies of the YouTube/Google family
  (``youtube.com``, ``google.com`` and their subdomains) are kept: they are all a YouTube
  extraction sends, and a whole-browser export would otherwise leave every other site's session
  in our database. Others are dropped and counted (``ignored``); a file with none of the family
  is refused.
- What is stored is the kept cookies re-written as a canonical file (:func:`to_text`), encrypted
  with Fernet (AES-128-CBC + HMAC-SHA256, ``cryptography``) under ``COOKIES_ENCRYPTION_KEY``.
  That setting may list several keys separated by commas (``MultiFernet``): the first encrypts,
  all decrypt, so a key can be rotated without losing stored cookies.
- Without ``COOKIES_ENCRYPTION_KEY`` (development only; production refuses to start,
  src/config_checks.py) the key is derived from ``FLASK_SECRET_KEY`` with HKDF-SHA256, and a
  warning says so: cookies then become unreadable when that secret changes.
- Cookies that no longer decrypt (the key was replaced) count as none for extractions, with a
  warning in the log; ``GET /api/auth/cookies`` shows them as ``unreadable``.
- The plaintext never reaches a log or an answer; only the domains, count and earliest expiry.
"""
from __future__ import annotations

import base64
import logging
from functools import lru_cache
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..data import cookies as store
from ..errors import ApiError
from ..extensions import db, setting
from ..utils import netscape_cookies
from ..utils.dates import iso

log = logging.getLogger(__name__)

#: HKDF ``info`` of the development key: binds the derived key to this one use of the secret.
_HKDF_INFO = b"yt-downloader cookies encryption v1"


def make_fernet(keys: Optional[str], fallback_secret: Optional[str]) -> MultiFernet:
    """The cipher for ``COOKIES_ENCRYPTION_KEY`` (one Fernet key, or several separated by
    commas: the first encrypts, all decrypt); without keys, one derived from
    ``fallback_secret`` (``FLASK_SECRET_KEY``) with HKDF-SHA256 (32 bytes, RFC 5869).

    Raises ValueError when a key is not a Fernet key (32 bytes, URL-safe base64) or when there
    is neither a key nor a secret.
    """
    return _fernet(keys or "", fallback_secret or "")


@lru_cache(maxsize=8)
def _fernet(keys: str, fallback_secret: str) -> MultiFernet:
    parts = [part.strip() for part in keys.split(",") if part.strip()]
    if not parts:
        if not fallback_secret:
            raise ValueError("no COOKIES_ENCRYPTION_KEY and no FLASK_SECRET_KEY to derive one")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_HKDF_INFO).derive(fallback_secret.encode())
        parts = [base64.urlsafe_b64encode(derived).decode()]
    try:
        return MultiFernet([Fernet(part) for part in parts])
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise ValueError("COOKIES_ENCRYPTION_KEY must be Fernet keys (32 bytes in URL-safe "
                         "base64, from Fernet.generate_key()), separated by commas") from exc


def _cipher() -> MultiFernet:
    return make_fernet(setting("COOKIES_ENCRYPTION_KEY"), setting("FLASK_SECRET_KEY"))


def warn_about_key(config: dict) -> None:
    """Log, once at start-up, that cookies are encrypted under a key derived from
    ``FLASK_SECRET_KEY`` (when ``COOKIES_ENCRYPTION_KEY`` is unset), and that they will not
    survive a restart when that secret is itself a random per-process one."""
    if config.get("COOKIES_ENCRYPTION_KEY"):
        return
    lost = " (a random one for this process: stored cookies become unreadable on restart)" \
        if "FLASK_SECRET_KEY" in config.get("EMBEDDED_DEFAULTS", ()) else ""
    log.warning("COOKIES_ENCRYPTION_KEY is not set: owners' YouTube cookies are encrypted "
                "with a key derived from FLASK_SECRET_KEY%s", lost)


def _invalid(exc: netscape_cookies.CookiesFormatError) -> ApiError:
    details: dict = {"cookies": [str(exc)]}
    if exc.line:
        details["line"] = exc.line
    return ApiError(400, f"Invalid cookies file: {exc}", "INVALID_COOKIES", details)


def save(user_id: str, text: str) -> dict:
    """Check, filter, encrypt and store the user's cookies file, replacing any earlier one.

    Returns ``{"domains": [host], "count": int, "earliest_expiry": epoch s | None,
    "ignored": int (cookies of other sites, dropped), "updated_at": ISO-8601}``.
    Raises ApiError 400 ``INVALID_COOKIES`` (``details.line`` = the 1-based line at fault) for
    a file that is not Netscape format, has no cookie, or none of youtube.com / google.com.
    """
    try:
        cookies = netscape_cookies.parse(text)
    except netscape_cookies.CookiesFormatError as exc:
        raise _invalid(exc) from None
    kept = [c for c in cookies if netscape_cookies.in_family(c)]
    if not kept:
        raise _invalid(netscape_cookies.CookiesFormatError(
            None, "no cookie for youtube.com or google.com (cookies of other sites are not "
                  "kept; export the cookies of youtube.com)"))
    summary = netscape_cookies.describe(kept)
    token = _cipher().encrypt(netscape_cookies.to_text(kept).encode()).decode()
    stored = store.put(db(), user_id, token, summary)
    log.info("cookies: stored %d cookie(s) of %s for user %s (%d of other sites dropped)",
             summary["count"], ",".join(summary["domains"]), user_id, len(cookies) - len(kept))
    return {**summary, "ignored": len(cookies) - len(kept), "updated_at": iso(stored["updated_at"])}


def _decrypt(doc: dict) -> Optional[str]:
    try:
        return _cipher().decrypt(doc["ciphertext"].encode()).decode()
    except InvalidToken:
        log.warning("cookies: the stored cookies of user %s do not decrypt with "
                    "COOKIES_ENCRYPTION_KEY (key replaced?); treated as none",
                    doc.get("user_id"))
        return None


def status(user_id: str) -> dict:
    """What the user may know of their stored cookies, never their content:
    ``{"exists": bool, "domains": [host], "count": int, "earliest_expiry": epoch s | None,
    "updated_at": ISO-8601 | None, "unreadable": bool (stored but no longer decrypting)}``."""
    doc = store.get(db(), user_id)
    if not doc:
        return {"exists": False, "domains": [], "count": 0, "earliest_expiry": None,
                "updated_at": None, "unreadable": False}
    return {"exists": True, "domains": doc.get("domains", []), "count": doc.get("count", 0),
            "earliest_expiry": doc.get("earliest_expiry"), "updated_at": iso(doc["updated_at"]),
            "unreadable": _decrypt(doc) is None}


def delete(user_id: str) -> None:
    """Remove the user's cookies. Raises ApiError 404 ``NOT_FOUND`` when there are none."""
    if not store.delete(db(), user_id):
        raise ApiError(404, "No cookies stored", "NOT_FOUND")
    log.info("cookies: deleted for user %s", user_id)


def cookies_for(user_id: Optional[str]) -> Optional[str]:
    """The owner's decrypted Netscape cookies text (header + one line per cookie, ready for a
    0600 file given to yt-dlp's ``cookiefile``), or None when the owner has none, when
    ``user_id`` is None or malformed, or when they no longer decrypt (warning logged).
    Call inside an app context (it reads the app's database and settings)."""
    if not user_id:
        return None
    doc = store.get(db(), str(user_id))
    return _decrypt(doc) if doc else None
