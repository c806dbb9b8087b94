"""Rendering stored datetimes (DESIGN.md, Conventions: UTC, ISO-8601 with ``Z``)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional


def iso(value: Optional[datetime]) -> Optional[str]:
    """A stored datetime as ISO-8601 UTC with ``Z`` (naive values are taken as UTC, as
    MongoDB returns them without ``tz_aware``); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
