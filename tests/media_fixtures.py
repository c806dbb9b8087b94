"""Pytest plugin: the local stand-in for YouTube (see scripts/local_source.py).

``local_sources`` builds (once, cached in the repo's ``.cache/sources``) a 10-minute MP4 and a DASH
ladder; ``source_server`` serves them on 127.0.0.1 for the whole session (``.mp4_url``,
``.dash_url``, ``.url(name)``, ``.size(name)``, ``.bytes_served()``, ``.rate_bytes_per_sec``,
``.ranges``);
``clean_source_server`` is the same server with counters and throttle reset around one test;
``dash_formats`` the ladder's formats as yt-dlp extracts them.
``shapes_server`` serves every source shape of scripts/shapes.py (``.cache/shapes``) for the
session, ``clean_shapes_server`` resets it around one test. ``local_egress`` admits
``127.0.0.1:*`` in the media layer's egress policy for tests that call it without an app
(``pytestmark = pytest.mark.usefixtures("local_egress")``); ``built`` records what each
ranged copy returned (a spy).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from scripts.local_source import SourceServer, build_sources
from scripts.shapes import DEFAULT_CACHE as SHAPES_DIR
from scripts.shapes import build_shapes
from src.media import egress, rangedcopy

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


def _cleaned(server: SourceServer):
    """Yield ``server`` with byte counters zeroed, no throttle and Range support; restore that
    afterwards."""
    server.reset_counters()
    server.rate_bytes_per_sec, server.ranges = None, True
    yield server
    server.rate_bytes_per_sec, server.ranges = None, True
    server.reset_counters()


@pytest.fixture(scope="session")
def dash_formats(source_server):
    """The DASH ladder's formats as yt-dlp's generic extractor reports them (extracted once, for
    YouTube-like pages built over the ladder: ``fake_youtube`` replaces extraction itself)."""
    from src.media.source import extract_info

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(egress, "_configured", egress.Policy(["127.0.0.1:*"]))
        return extract_info(source_server.dash_url)["formats"]


@pytest.fixture
def clean_source_server(source_server):
    """``source_server``, clean around one test (:func:`_cleaned`)."""
    yield from _cleaned(source_server)


@pytest.fixture(scope="session")
def shapes_server():
    """A :class:`SourceServer` over every shape of :func:`scripts.shapes.build_shapes`."""
    build_shapes(SHAPES_DIR, log=lambda *_: None)
    with SourceServer(SHAPES_DIR) as server:
        yield server


@pytest.fixture
def clean_shapes_server(shapes_server):
    """``shapes_server``, clean around one test (:func:`_cleaned`)."""
    yield from _cleaned(shapes_server)


@pytest.fixture
def local_egress(monkeypatch):
    """Outside an app the media layer's egress policy admits nothing; tests that call the
    media layer directly on the local sources admit 127.0.0.1 (create_app configures the policy
    from ALLOWED_SOURCE_HOSTS)."""
    monkeypatch.setattr(egress, "_configured", egress.Policy(["127.0.0.1:*"]))


@pytest.fixture
def built(monkeypatch) -> list:
    """What each ``rangedcopy.ranged_copies`` call returned (None: it fell back to the direct
    path), for tests that assert which path was taken."""
    calls, real = [], rangedcopy.ranged_copies
    monkeypatch.setattr(rangedcopy, "ranged_copies",
                        lambda *args: calls.append(real(*args)) or calls[-1])
    return calls


def clip_through_api(client, auth, server, url: str, out: Path) -> int:
    """What a user does with a 720p source: ``POST /api/video/resolutions`` lists 720p (the
    spec lists ≥ 720p), the saved clip (5:00–5:30) lists ``{"720p": ["mp4"]}`` as formats, and
    its download is a 30 ± 1 s 720p MP4 with AAC audio, written to ``out``. Returns the bytes
    ``server`` sent from the download on."""
    from src.media.ffmpeg import ffprobe

    r = client.post("/api/video/resolutions", json={"url": url})
    assert r.status_code == 200 and r.json["resolutions"] == ["720p"], r.json
    user = auth.user()
    video_id = auth.save_clip(user, url, 300, 330)
    r = client.get(f"/api/video/formats/{video_id}", headers=user["headers"])
    assert r.status_code == 200 and r.json["formats"] == {"720p": ["mp4"]}, r.json
    server.reset_counters()
    r = auth.download(user, video_id)
    assert r.status_code == 200, r.json
    out.write_bytes(r.data)
    probe = ffprobe(str(out))
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert abs(float(probe["format"]["duration"]) - 30) <= 1
    assert streams["video"]["height"] == 720 and streams["audio"]["codec_name"] == "aac"
    return server.bytes_served()
