"""Metrics at GET /metrics and JSON logs (issue 16, item 4): what a scraper and a log shipper see.

Counters are process-wide (several apps share them in a test run), so each test compares the
exposition before and after what it does. Multiprocess mode under gunicorn (two workers, one
sum) is checked by scripts/deploy_smoke.py."""
from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.media_fixtures import clip_through_api
from tests.youtube_fakes import wait_for


def scrape(client, **kwargs) -> dict:
    """``GET /metrics`` → ``{(name, frozenset(labels.items())): value}`` (asserts 200)."""
    r = client.get("/metrics", **kwargs)
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.get_data(as_text=True))
            for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for (n, have), v in samples.items()
               if n == name and set(labels.items()) <= set(have))


def test_answers_are_counted_by_route_template_not_by_path(client, auth):
    user = auth.user()
    before = scrape(client)
    missing = "0123456789abcdef01234567"
    for _ in range(3):
        assert client.get(f"/api/video/status/{missing}", headers=user["headers"]).status_code \
            == 404
    assert client.get("/no/such/path").status_code == 404
    client.open("/api/health", method="BREW")
    after = scrape(client)
    route = "/api/video/status/<video_id>"
    assert value(after, "ytd_http_requests_total", endpoint=route, status="404") \
        - value(before, "ytd_http_requests_total", endpoint=route, status="404") == 3
    assert value(after, "ytd_http_request_duration_seconds_count", endpoint=route) \
        - value(before, "ytd_http_request_duration_seconds_count", endpoint=route) == 3
    assert value(after, "ytd_http_requests_total", endpoint="<unmatched>") \
        > value(before, "ytd_http_requests_total", endpoint="<unmatched>")
    assert value(after, "ytd_http_requests_total", method="OTHER") >= 1
    labels = {v for (_n, have) in after for _k, v in have}
    assert missing not in labels and "BREW" not in labels


def test_only_loopback_clients_without_a_token(client):
    r = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert r.status_code == 404 and r.json["code"] == "NOT_FOUND"
    scrape(client, environ_base={"REMOTE_ADDR": "::1"})


def test_a_metrics_token_is_required_when_set(make_app):
    client = make_app(METRICS_TOKEN="scrape-me-" + "z" * 20).test_client()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json["code"] == "UNAUTHORIZED"
    scrape(client, headers={"Authorization": "Bearer scrape-me-" + "z" * 20},
           environ_base={"REMOTE_ADDR": "203.0.113.9"})


def test_a_clip_job_is_measured(client, auth, clean_source_server, tmp_path):
    before = scrape(client)
    served = clip_through_api(client, auth, clean_source_server, clean_source_server.mp4_url,
                              tmp_path / "clip.mp4")
    after = scrape(client)
    done = ("ytd_job_duration_seconds_count", {"lane": "clip", "outcome": "completed"})
    assert value(after, done[0], **done[1]) - value(before, done[0], **done[1]) == 1
    # every byte the source sent for the clip came through the guard and was counted (the
    # source also counts what the save's format look-up read before the download)
    def grew(name: str) -> float:
        return value(after, name) - value(before, name)

    fetched, produced = grew("ytd_clip_fetched_bytes_sum"), grew("ytd_clip_file_bytes_sum")
    assert served <= fetched <= served * 1.05 + 64 * 1024, (fetched, served)
    assert produced == (tmp_path / "clip.mp4").stat().st_size
    assert value(after, "ytd_jobs_running", lane="clip") == 0
    assert value(after, "ytd_jobs_queued", lane="clip") == 0


def test_a_failed_job_is_counted_by_its_code(client, auth):
    """A clip of a YouTube video this machine cannot reach fails SOURCE_HTTP_ERROR."""
    before = scrape(client)
    user = auth.user()
    video_id = auth.save_clip(user, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    client.post(f"/api/video/download/{video_id}", headers=user["headers"], json={})
    status = wait_for(lambda: (s := client.get(f"/api/video/status/{video_id}",
                                               headers=user["headers"]).json)["status"]
                      == "failed" and s)
    assert status["error_code"] == "SOURCE_HTTP_ERROR", status
    after = wait_for(lambda: (m := scrape(client)) and value(
        m, "ytd_job_failures_total", code="SOURCE_HTTP_ERROR") > value(
        before, "ytd_job_failures_total", code="SOURCE_HTTP_ERROR") and m)
    name = "ytd_job_failures_total"
    assert value(after, name, lane="clip", code="SOURCE_HTTP_ERROR") \
        - value(before, name, lane="clip", code="SOURCE_HTTP_ERROR") == 1


@pytest.fixture
def json_app(make_app, tmp_path):
    return make_app(LOG_FORMAT="json", LOG_FILE=str(tmp_path / "json.log"))


def test_json_logs_carry_request_and_job_ids_and_no_token(json_app, tmp_path):
    client = json_app.test_client()
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    client.get(f"/api/video/save/stream/{token}/dQw4w9WgXcQ?msg=a%0Ab",
               headers={"X-Request-ID": "req-42"})
    import logging

    with json_app.test_request_context():
        from src.logging_setup import bind_job_id, reset_job_id

        job = bind_job_id("job-7")
        logging.getLogger("yt_downloader.test").warning("line one\nline two %s", token)
        reset_job_id(job)
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = (tmp_path / "json.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id", "job_id"} <= set(r)
               for r in records)
    ours = [r for r in records if r["logger"] == "yt_downloader.test"]
    assert ours and ours[0]["job_id"] == "job-7" and ours[0]["level"] == "WARNING"
    assert ours[0]["message"].startswith("line one\nline two [REDACTED]")
    assert token not in "\n".join(lines)


def test_an_unknown_log_format_is_refused(make_app):
    from src.config import ConfigError

    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        make_app(LOG_FORMAT="xml")
