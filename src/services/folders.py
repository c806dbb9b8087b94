"""The folder of each clip and upload: a random name, stored on its ``videos`` document.

Object ids are not secrets (DESIGN.md, Security: "file paths are random"): an ObjectId is
predictable from one's own ids, so a folder named after it told an attacker where another user's
upload lay (issue 11). Each record gets ``folder`` — 32 hex characters from :mod:`secrets`, never
from the user — under ``DOWNLOADS_DIR`` (clips) or ``UPLOADS_DIR`` (uploads). A record made
before this has no ``folder``: its files are in the folder named after its id, which
:func:`path_of` still answers, so expiry and the orphan sweep find them.
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from contextlib import suppress

from ..extensions import setting


def new_name() -> str:
    """A fresh folder name: 128 random bits as 32 hex characters (never an ObjectId's 24)."""
    return secrets.token_hex(16)


def base_of(doc: dict) -> str:
    """``UPLOADS_DIR`` for an upload (``source_type: "upload"``), else ``DOWNLOADS_DIR``."""
    return setting("UPLOADS_DIR" if doc.get("source_type") == "upload" else "DOWNLOADS_DIR")


def name_of(doc: dict) -> str:
    """The record's folder name: ``folder``, or its id for a record made before random names."""
    return doc.get("folder") or str(doc["_id"])


def path_of(doc: dict) -> str:
    """Absolute path of the record's folder (it may not exist)."""
    return os.path.join(base_of(doc), name_of(doc))


def empty(folder: str, keep: Iterable[str] = ()) -> None:
    """Delete everything in ``folder`` except the files ``keep`` (paths); drop the folder when
    empty.

    Safe against another process cleaning up at the same time, and against a job that writes
    into the folder meanwhile (the folder then stays)."""
    if not os.path.isdir(folder):
        return
    kept = set(keep)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if path not in kept:
            with suppress(FileNotFoundError):
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    with suppress(FileNotFoundError, OSError):  # gone already, or a new job wrote into it
        if not os.listdir(folder):
            os.rmdir(folder)
