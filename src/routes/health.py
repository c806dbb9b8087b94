"""Health endpoint (issue 4): public, for load balancers, systemd watchers and operators."""
from __future__ import annotations

from ..services import health_service
from . import Blueprint

blp = Blueprint("health", __name__, url_prefix="/api", description="Operations")


@blp.get("/health")
def health():
    """MongoDB, Redis, ffmpeg, free disk and jobs; 503 when a dependency is down."""
    return health_service.health()
