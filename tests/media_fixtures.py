"""Pytest plugin: the local stand-in for YouTube (see scripts/local_source.py).

``local_sources`` builds (once, cached in the repo's ``.cache/sources``) a 10-minute MP4 and a DASH
ladder; ``source_server`` serves them on 127.0.0.1 for the whole session (``.mp4_url``,
``.dash_url``, ``.url(name)``, ``.size(name)``, ``.bytes_served()``, ``.rate_bytes_per_sec``,
``.ranges``);
``clean_source_server`` is the same server with counters and throttle reset around one test.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scripts.local_source import SourceServer, build_sources

SOURCES_DIR = Path(__file__).resolve().parent.parent / ".cache" / "sources"


@pytest.fixture(scope="session")
def local_sources() -> dict:
    """Paths of the built sources: ``{"mp4": ..., "dash": mpd, "dash_files": {name: path}}``."""
    return build_sources(SOURCES_DIR)


@pytest.fixture(scope="session")
def source_server(local_sources):
    """A running :class:`SourceServer` over the built sources, shared by the session."""
    with SourceServer(SOURCES_DIR) as server:
        yield server


@pytest.fixture
def clean_source_server(source_server):
    """``source_server`` with byte counters zeroed, no throttle and Range support, restored
    after the test."""
    source_server.reset_counters()
    source_server.rate_bytes_per_sec = None
    source_server.ranges = True
    yield source_server
    source_server.rate_bytes_per_sec = None
    source_server.ranges = True
    source_server.reset_counters()
