"""Prometheus metrics at ``GET /metrics`` (issue 16, item 4), with prometheus-client.

What is measured (names are the exposition's):
- ``ytd_http_requests_total{endpoint, method, status}`` and
  ``ytd_http_request_duration_seconds{endpoint, method}``: every answer, by URL rule (the route
  template, e.g. ``/api/video/status/<video_id>``, so ids and Nightbot's path token never become
  label values; ``<unmatched>`` for a path no route has). The duration ends when the view
  returns: a file streamed afterwards is not included.
- ``ytd_jobs_queued{lane}``, ``ytd_jobs_running{lane}`` (lanes ``clip``, ``encode``:
  src/services/jobs.py), summed over the live processes.
- ``ytd_job_duration_seconds{lane, outcome}`` (outcome: the record's status when the job ended —
  ``completed``, ``failed``, … — or ``superseded``) and ``ytd_job_failures_total{lane, code}``.
- ``ytd_clip_fetched_bytes``: bytes a clip job received from its source (every byte that came
  through the egress guard for it, src/media/guard.py), against ``ytd_clip_file_bytes`` (the
  clip's size): their ratio is the fetch overhead of BENCHMARKS.md.
- ``ytd_encode_speed_ratio{codec, preset}``: seconds of media encoded per wall-clock second.

Several processes: gunicorn's workers each hold their own values, so gunicorn_config.py sets
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode: each process writes its
values to files there, and any worker's ``/metrics`` answers the sum). Without it (the dev
server, tests) the process's own registry is served.

Access: with ``METRICS_TOKEN`` set, only ``Authorization: Bearer <METRICS_TOKEN>`` (compared in
constant time; 401 otherwise). Without it, only clients on loopback (after ProxyFix, so a client
of nginx is never loopback); anyone else gets 404, as if there were no such route.
deploy/nginx.conf also keeps ``/metrics`` to loopback. The operation is in the OpenAPI document
(``text/plain`` answer, its 401/404), on :data:`blp`.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import time

from flask import Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .errors import ApiError
from .routes import NONE, Blueprint

#: HTTP methods kept as label values; any other (clients may send any token) counts as OTHER.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_MiB = 1024 * 1024

REQUESTS = Counter("ytd_http_requests_total", "HTTP answers by route, method and status.",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("ytd_http_request_duration_seconds", "Time to the answer, by route.",
                    ["endpoint", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOBS_QUEUED = Gauge("ytd_jobs_queued", "Jobs waiting for a slot, by lane.", ["lane"],
                    multiprocess_mode="livesum")
JOBS_RUNNING = Gauge("ytd_jobs_running", "Jobs running, by lane.", ["lane"],
                     multiprocess_mode="livesum")
JOB_DURATION = Histogram("ytd_job_duration_seconds", "Job run time, by lane and outcome.",
                         ["lane", "outcome"],
                         buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200))
JOB_FAILURES = Counter("ytd_job_failures_total", "Failed jobs, by lane and error code.",
                       ["lane", "code"])
_SIZES = (256 * 1024, _MiB, 4 * _MiB, 16 * _MiB, 64 * _MiB, 256 * _MiB, 1024 * _MiB)
CLIP_FETCHED = Histogram("ytd_clip_fetched_bytes", "Bytes a clip job fetched from its source.",
                         buckets=_SIZES)
CLIP_FILE = Histogram("ytd_clip_file_bytes", "Size of the clip a job produced.", buckets=_SIZES)
ENCODE_SPEED = Histogram("ytd_encode_speed_ratio", "Media seconds encoded per second.",
                         ["codec", "preset"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32))


#: prometheus-client picks its storage when the metrics above are created: files in
#: ``PROMETHEUS_MULTIPROC_DIR`` when that is set (gunicorn's workers), else memory.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def registry() -> CollectorRegistry:
    """What ``/metrics`` serves: the sum over every process's files in multiprocess mode
    (:data:`MULTIPROCESS`), else this process's default registry."""
    if MULTIPROCESS:
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def _endpoint() -> str:
    return request.url_rule.rule if request.url_rule is not None else "<unmatched>"


def _allowed() -> bool:
    """Module docstring, "Access". Raises ApiError(401) for a wrong or missing token."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise ApiError(401, "A valid metrics token is required.", "UNAUTHORIZED")
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


blp = Blueprint("metrics", __name__, description="Operations")


@blp.get("/metrics")
@blp.alt_response(200, description="Prometheus text exposition (format 0.0.4)", success=True,
                  content_type="text/plain", schema={"type": "string"})
@blp.errors({401: "UNAUTHORIZED", 404: "NOT_FOUND"})
@blp.doc(security=NONE)
def metrics():
    """Prometheus metrics of every process of this service (module docstring): for a loopback
    client, or with ``Authorization: Bearer <METRICS_TOKEN>`` when that is set."""
    if not _allowed():
        raise ApiError(404, "Resource not found.", "NOT_FOUND")
    return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Count and time every answer of ``app`` (register :data:`blp` for ``GET /metrics``)."""

    @app.before_request
    def _start_clock():
        request.environ["yt.started"] = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = request.environ.get("yt.started")
        if started is not None:
            endpoint = _endpoint()
            method = request.method if request.method in _METHODS else "OTHER"
            REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
            LATENCY.labels(endpoint, method).observe(time.perf_counter() - started)
        return response
