"""Signed URLs for files a browser element fetches without the bearer token (issue 17, item 4):
a ``<video>`` (the play URL) or an ``<img>`` (a clip's thumbnail).

A URL carries ``exp`` (posix seconds) and ``sig``, the hex HMAC-SHA256 (RFC 2104) of
``"{purpose}:{video_id}.{exp}"`` under a key derived from ``FLASK_SECRET_KEY`` with HKDF-SHA256
(RFC 5869, info :data:`_HKDF_INFO`): never the secret itself, so other uses of that secret cannot
produce a signature, and the purpose in the message keeps a thumbnail signature from opening the
clip's file. Checked with :func:`hmac.compare_digest`.
"""
from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..extensions import setting

_HKDF_INFO = b"yt-downloader play url v1"


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=_HKDF_INFO).derive(secret.encode())


def signature(purpose: str, video_id: str, exp: int) -> str:
    """The hex HMAC-SHA256 of ``"{purpose}:{video_id}.{exp}"`` under the app's URL key."""
    message = f"{purpose}:{video_id}.{exp}".encode()
    return hmac.new(_key(setting("FLASK_SECRET_KEY")), message, hashlib.sha256).hexdigest()


def valid(purpose: str, video_id: str, exp: int, sig: str) -> bool:
    """Whether ``sig`` is :func:`signature` of these (constant-time comparison)."""
    return hmac.compare_digest(signature(purpose, video_id, exp), sig)
