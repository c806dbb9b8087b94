"""Small helpers for the server's own outbound posts (Nightbot follow-ups, clip notifications):
how to name a URL in a log line or an error without its secret part, and how long a
``Retry-After`` asks to wait."""
from __future__ import annotations

import email.utils
import time
from typing import Optional
from urllib.parse import urlsplit


def where(url) -> str:
    """The URL's ``host[:port]`` for a log line or an error — never its path or query, which
    hold the token of a Nightbot response URL or a webhook."""
    try:
        parts = urlsplit(str(url))
        shown = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "an unreadable URL"
    return "".join(ch if ch.isprintable() else "?" for ch in shown)[:100]


def retry_after(value: Optional[str], cap: float) -> Optional[float]:
    """``Retry-After`` (RFC 9110 §10.2.3: delay-seconds or an HTTP-date; a decimal, as Discord
    sends, is read too) in seconds, between 0 and ``cap``; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else \
            email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(0.0, seconds), cap)
