"""Health endpoints: ``/api/health`` (issue 4), the detailed view for operators, and the probes
(issue 16, item 3): ``/livez`` (the process answers; no dependency is called, so a supervisor
never restarts a healthy worker because MongoDB is down) and ``/readyz`` (503 with the failing
parts while this worker cannot take work). All public and never rate limited."""
from __future__ import annotations

from .. import schemas
from ..services import health_service
from . import NONE, Blueprint

blp = Blueprint("health", __name__, url_prefix="/api", description="Operations")
probes = Blueprint("probes", __name__, description="Probes")


@blp.get("/health")
@blp.alt_response(200, schema=schemas.HealthSchema, description="ok, or degraded (disk short)",
                  success=True)
@blp.alt_response(503, schema=schemas.HealthSchema, description="MongoDB, Redis or ffmpeg down")
@blp.doc(security=NONE)
def health():
    """MongoDB, Redis, ffmpeg, free disk, jobs and yt-dlp; 503 when a dependency is down.

    ``checks.yt_dlp``: yt-dlp's version, the JS runtime (name + version, or null), the
    yt-dlp-ejs version, the PO-token provider (configured, reachable), the server cookies file
    (present, earliest expiry) and the proxy (configured, scheme); no secret is shown.
    """
    return health_service.health()


@probes.get("/livez")
@probes.alt_response(200, schema=schemas.LiveSchema, description="The process answers",
                     success=True)
@probes.doc(security=NONE)
def livez():
    """Liveness: 200 while the process answers requests (calls no dependency)."""
    return {"status": "alive"}


@probes.get("/readyz")
@probes.alt_response(200, schema=schemas.ReadySchema, description="Ready", success=True)
@probes.alt_response(503, schema=schemas.ReadySchema, description="Not ready: `failing` names "
                     "the checks that fail")
@probes.doc(security=NONE)
def readyz():
    """Readiness: MongoDB, Redis, ffmpeg, free disk, yt-dlp and its JS runtime; 503 naming
    what fails."""
    return health_service.ready()
