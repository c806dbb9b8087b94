"""``JOB_BACKEND=celery`` (issue 15, item 2) with real processes: the API (this process's test
client) only enqueues; two ``celery -A src.worker worker -Q clips,encodes -c 1 --pool=prefork``
subprocesses run the clips; all share one store through scripts/mongo_wire.py (a mongomock-backed
MongoDB wire server, a TEST DOUBLE: no MongoDB server here), the real Redis database this run
holds (``TEST_REDIS_URI``; broker, progress, heartbeats, locks) and one DOWNLOADS_DIR. The
process tests are skipped when Redis does not answer."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import bson
import pytest
import redis as redis_lib

from scripts.mongo_wire import ROOT, MongoWireServer
from src.app import create_app
from src.config import ConfigError
from src.media.ffmpeg import ffprobe
from src.media.subtitleparse import Cue
from src.services import clip_encode, download_service, job_messages
from src.services.celery_backend import TASK_NAME
from src.services.clip_extras import Extras
from tests.conftest import RUN_ID, RUN_KEY, RUN_KEY_SECONDS, Auth

slow = pytest.mark.slow

BODY = {"format_preference": "mp4", "resolution_preference": "720p"}


class Worker:
    """One ``celery worker`` subprocess (its own session, so its children die with it)."""

    def __init__(self, name: str, env: dict, log: Path):
        self.name, self.log = name, log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "src.worker", "worker", "-Q", "clips,encodes",
             "-c", "1", "--pool=prefork", "-n", f"{name}@%h", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text(errors="replace"):
                return
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready: {self.log.read_text()[-3000:]}")

    def children(self) -> set[int]:
        """Pids of the pool processes (the processes that run tasks)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return {int(pid) for pid in out.stdout.split()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            with _suppress():
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with _suppress():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        return kind is not None and issubclass(kind, ProcessLookupError)


@pytest.fixture(scope="module")
def cluster(source_server, tmp_path_factory, redis_uri):
    """``{"app", "workers", "redis", "db"}``: the API app (JOB_BACKEND=celery) and two workers
    with the same environment, on the Redis database this run holds (``TEST_REDIS_URI``, e.g.
    redis://127.0.0.1:6379/13) as store and broker."""
    if not redis_uri:
        pytest.skip("needs a Redis server (broker, heartbeats, locks)")
    client = redis_lib.Redis.from_url(redis_uri, decode_responses=True, socket_timeout=5)
    client.flushdb()
    client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)  # still held by this run
    base = tmp_path_factory.mktemp("celery")
    workers: list[Worker] = []
    app = None
    with MongoWireServer() as wire:
        settings = {
            "APP_ENV": "development", "MONGODB_URI": f"{wire.uri}/ytd_celery",
            "REDIS_URI": redis_uri, "JOB_BACKEND": "celery", "CELERY_BROKER_URL": redis_uri,
            "JWT_PUBLIC_SECRET": "celery-public-secret-" + "x" * 20,
            "JWT_PRIVATE_SECRET": "celery-private-secret-" + "y" * 20,
            "FLASK_SECRET_KEY": "celery-flask-secret", "BCRYPT_ROUNDS": "4",
            "DOWNLOADS_DIR": str(base / "downloads"), "UPLOADS_DIR": str(base / "uploads"),
            "ALLOWED_SOURCE_HOSTS": "127.0.0.1:*", "DOWNLOAD_WAIT_SECONDS": "0",
            "RATE_LIMIT_ENABLED": "false", "MAX_JOBS_PER_USER": "0", "MIN_FREE_DISK_MB": "10",
            "RATE_LIMIT_KEY_PREFIX": f"ytd-celery-{uuid.uuid4().hex[:8]}",
            "LOG_FILE": str(base / "api.log")}
        try:
            for name in ("w1", "w2"):
                env = {**os.environ, **settings, "LOG_FILE": str(base / f"{name}.app.log")}
                workers.append(Worker(name, env, base / f"{name}.log"))
            app = create_app({**settings, "TESTING": True})
            for worker in workers:
                worker.wait_ready()
            yield {"app": app, "workers": workers, "redis": client,
                   "db": app.extensions["yt"]["db"]}
        finally:
            for worker in workers:
                worker.stop()
            if app is not None:
                app.extensions["yt"]["scheduler"].shutdown(wait=False)
                app.extensions["yt"]["jobs"].shutdown(wait=False)
            client.flushdb()
            client.set(RUN_KEY, RUN_ID, ex=RUN_KEY_SECONDS)


@pytest.fixture
def api(cluster, source_server):
    source_server.rate_bytes_per_sec = None
    client = cluster["app"].test_client()
    yield client, Auth(client)
    source_server.rate_bytes_per_sec = None


def _status(client, user, video_id) -> dict:
    r = client.get(f"/api/video/status/{video_id}", headers=user["headers"])
    assert r.status_code == 200, r.json
    return r.json


def _wait_end(client, user, video_id, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = _status(client, user, video_id)
        if body["status"] not in ("processing", "pending"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"video {video_id} still {body['status']} after {timeout} s")


def _start(client, user, video_id, body=BODY) -> str:
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=body)
    assert r.status_code == 202, r.json
    return _job_id(client, video_id)


def _job_id(client, video_id) -> str:
    return client.application.extensions["yt"]["db"].videos.find_one(
        {"_id": bson.ObjectId(video_id)})["job_id"]


def _run(cluster, job_id, lane="clip") -> dict:
    return cluster["redis"].hgetall(f"jobrun:{job_id}:{lane}")


def _probe_height(data: bytes, path: Path) -> tuple[float, int]:
    path.write_bytes(data)
    probe = ffprobe(str(path))
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    return float(probe["format"]["duration"]), int(video["height"])


@slow
def test_a_clip_is_made_by_a_worker_process(cluster, api, source_server, tmp_path):
    client, auth = api
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 60, 66)
    job_id = _start(client, user, video_id)
    assert _wait_end(client, user, video_id)["status"] == "completed"
    r = auth.download(user, video_id)
    assert r.status_code == 200 and r.mimetype == "video/mp4"
    duration, height = _probe_height(r.data, tmp_path / "clip.mp4")
    assert abs(duration - 6) <= 1 and height == 720

    run = _run(cluster, job_id)  # written by the process that ran the job
    pools = set().union(*(w.children() for w in cluster["workers"]))
    assert run["runs"] == "1" and int(run["pid"]) in pools and int(run["pid"]) != os.getpid()
    assert f"job {job_id} (clip lane) for video {video_id} started in worker pid {run['pid']}" \
        in _logs(cluster)
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith(("job", "encode", "live"))]  # the API ran no job thread
    jobs = client.get("/api/health").json["checks"]["jobs"]
    assert jobs["ok"] and jobs["running"] == 0 and jobs["processing_all_workers"] == 0, jobs


@slow
def test_six_clips_over_two_workers_all_complete(cluster, api, source_server):
    client, auth = api
    source_server.rate_bytes_per_sec = 4_000_000  # each fetch lasts a moment: both get work
    user = auth.user()
    ids = [auth.save_clip(user, source_server.dash_url, 60 + 10 * n, 66 + 10 * n)
           for n in range(6)]
    jobs = [_start(client, user, video_id) for video_id in ids]
    ends = [_wait_end(client, user, video_id, timeout=120) for video_id in ids]
    assert [e["status"] for e in ends] == ["completed"] * 6, ends
    pids = {_run(cluster, job_id)["pid"] for job_id in jobs}
    assert len(pids) == 2, pids  # both workers ran clips
    for video_id in ids:
        assert auth.download(user, video_id).status_code == 200


@slow
def test_a_worker_killed_mid_clip_its_job_is_redelivered(cluster, api, source_server, tmp_path):
    client, auth = api
    source_server.rate_bytes_per_sec = 250_000  # a 30 s 720p clip takes ~15 s to fetch
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 120, 150)
    job_id = _start(client, user, video_id)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = _status(client, user, video_id).get("progress") or {}
        if _run(cluster, job_id) and progress.get("download_progress", 0) > 0:
            break
        time.sleep(0.2)
    assert 0 < progress.get("download_progress", 0) < 100, progress  # mid-clip
    first = int(_run(cluster, job_id)["pid"])
    os.kill(first, signal.SIGKILL)  # the pool process running the clip
    source_server.rate_bytes_per_sec = None
    end = _wait_end(client, user, video_id, timeout=100)
    run = _run(cluster, job_id)
    if end["status"] == "completed":  # redelivered and restarted (src/worker.py)
        assert run["runs"] == "2" and int(run["pid"]) != first, run
        assert "redelivered after its worker died; restarting" in _logs(cluster)
        r = auth.download(user, video_id)
        duration, height = _probe_height(r.data, tmp_path / "redelivered.mp4")
        assert abs(duration - 30) <= 1.5 and height == 720
        folder = Path(cluster["db"].videos.find_one()["file_path"]).parent  # no partial left
        assert not [p for p in Path(cluster["app"].config["DOWNLOADS_DIR"]).rglob("*")
                    if p.is_file() and job_id in p.name and p.suffix != ".mp4"
                    and p.parent == folder and not p.name.endswith((".jpg", ".vtt"))]
    else:
        assert end["status"] == "failed" and end["error_code"] == "JOB_INTERRUPTED", end


@slow
def test_a_new_job_revokes_the_old_task(cluster, api, source_server):
    client, auth = api
    db = cluster["db"]
    source_server.rate_bytes_per_sec = 150_000  # two long clips keep both workers busy
    user = auth.user()
    busy = [auth.save_clip(user, source_server.dash_url, 200 + 40 * n, 230 + 40 * n)
            for n in range(2)]
    busy_jobs = [_start(client, user, video_id) for video_id in busy]
    deadline = time.monotonic() + 30
    while not all(_run(cluster, job) for job in busy_jobs) and time.monotonic() < deadline:
        time.sleep(0.2)  # both workers run one
    assert all(_run(cluster, job) for job in busy_jobs)
    video_id = auth.save_clip(user, source_server.dash_url, 30, 36)
    old = _start(client, user, video_id)  # queued: both workers are busy
    # its job is declared dead (as when the node that queued it lost it): no heartbeat, an old
    # claim; the status request reaps it
    cluster["redis"].delete(f"heartbeat:{video_id}")
    db.videos.update_one({"_id": bson.ObjectId(video_id)},
                         {"$set": {"job_claimed_at": db.videos.find_one(
                             {"_id": bson.ObjectId(video_id)})["job_claimed_at"]
                             .replace(year=2020)}})
    body = _status(client, user, video_id)
    assert body["status"] == "failed" and body["error_code"] == "JOB_INTERRUPTED", body
    new = _start(client, user, video_id, {"format_preference": "mp4",
                                          "resolution_preference": "1080p"})
    assert new != old
    deadline = time.monotonic() + 15
    while True:  # the revoke is a broadcast: each worker adds it to its revoked set
        revoked = cluster["app"].extensions["yt"]["jobs"].celery.control.inspect(
            timeout=2).revoked() or {}
        if len(revoked) == 2 and all(old in ids for ids in revoked.values()) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(revoked) == 2 and all(old in ids for ids in revoked.values()), revoked
    source_server.rate_bytes_per_sec = None
    assert _wait_end(client, user, video_id)["status"] == "completed"
    for other in busy:
        assert _wait_end(client, user, other, timeout=120)["status"] == "completed"
    assert not _run(cluster, old)  # the old task never ran
    doc = db.videos.find_one({"_id": bson.ObjectId(video_id)})
    assert doc["job_id"] == new and new in doc["file_path"]
    assert f"Discarding revoked task: yt.run_job[{old}]" in _logs(cluster)


@slow
def test_a_copy_of_a_running_job_does_not_run_it_twice(cluster, api, source_server):
    """A second delivery while the job runs (what the Redis transport does when a task outlives
    its visibility timeout) finds the run lock taken, waits, and ends without running it."""
    client, auth = api
    source_server.rate_bytes_per_sec = 60_000  # the 30 s clip (~2.3 MB) takes ~40 s
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 400, 430)
    job_id = _start(client, user, video_id)
    deadline = time.monotonic() + 20
    while not _run(cluster, job_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _run(cluster, job_id)["runs"] == "1"
    cluster["app"].extensions["yt"]["jobs"].celery.send_task(
        TASK_NAME, args=[job_messages.encode(download_service.run_download), video_id, job_id,
                         "clip"], task_id=job_id, queue="clips")
    copy_ended = f"job {job_id} for video {video_id}: another run holds its lock; this copy ends"
    deadline = time.monotonic() + 40
    while copy_ended not in _logs(cluster) and time.monotonic() < deadline:
        assert _status(client, user, video_id)["status"] == "processing"
        time.sleep(0.5)
    assert copy_ended in _logs(cluster)
    source_server.rate_bytes_per_sec = None
    assert _wait_end(client, user, video_id)["status"] == "completed"
    assert _run(cluster, job_id)["runs"] == "1"  # one run only


@slow
def test_a_1440p_clip_hands_its_encode_to_the_encodes_queue(cluster, api, source_server,
                                                            tmp_path):
    """The ≥1440p MP4 path: the clip task fetches, hands its encode phase (JSON: the partial
    with the clip's extras) to ``encodes``, and a worker encodes it to HEVC."""
    from scripts.highres_source import build_highres_source
    from tests.media_fixtures import SOURCES_DIR

    build_highres_source(SOURCES_DIR)
    client, auth = api
    user = auth.user()
    video_id = auth.save_clip(user, source_server.url("hires/manifest.mpd"), 20, 22)
    prefs = {"format_preference": "mp4", "resolution_preference": "1440p",
             "quality_preset": "medium"}
    job_id = _start(client, user, video_id, prefs)
    assert _wait_end(client, user, video_id, timeout=150)["status"] == "completed"
    assert _run(cluster, job_id, "clip")["runs"] == "1"
    assert _run(cluster, job_id, "encode")["runs"] == "1"  # the encode phase ran as a task
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=prefs)
    (tmp_path / "hevc.mp4").write_bytes(r.data)
    video = next(s for s in ffprobe(str(tmp_path / "hevc.mp4"))["streams"]
                 if s["codec_type"] == "video")
    assert (video["codec_name"], video["width"], video["height"]) == ("hevc", 2560, 1440)


def _logs(cluster) -> str:
    """Everything the workers wrote: celery's log and each one's app log (LOG_FILE)."""
    text = ""
    for worker in cluster["workers"]:
        for path in (worker.log, worker.log.parent / f"{worker.name}.app.log"):
            text += path.read_text(errors="replace") if path.exists() else ""
    return text


def test_a_handed_off_phase_travels_as_json():
    """The encode phase of a ≥1440p clip (a partial with the clip's extras: cues, cover bytes)
    survives the JSON a task carries; what a message may name is limited."""
    extras = Extras("mp4", True, {"title": "t"}, cover=b"\xff\xd8jpeg", sidecars=[
        {"lang": "en", "automatic": False, "path": "/x/en.vtt", "cues": 1,
         "_cues": [Cue(1.0, 2.5, "hello")]}], errors={"de": "missing"})
    phase = functools.partial(clip_encode.run_encode_phase, out_path="/d/j.mp4", width=2560,
                              height=1440, extras=extras, finish=download_service.finish,
                              fail=download_service.fail)
    data = json.loads(json.dumps(job_messages.encode(phase)))
    back = job_messages.job_of(data)
    assert back.func is clip_encode.run_encode_phase and back.keywords == phase.keywords
    assert job_messages.job_of(job_messages.encode(download_service.run_download)) \
        is download_service.run_download
    with pytest.raises(TypeError):
        job_messages.encode(lambda video_id, job_id: None)
    for bad in ({"$f": "os:system"}, {"$p": "subprocess:run", "kw": {"$d": {}}},
                {"$dc": "src.services.download_service:run_download", "fields": {}},
                {"$x": 1}):
        with pytest.raises(ValueError):
            job_messages.job_of(bad)


def test_job_backend_settings_are_checked(make_app):
    # REDIS_URI=None: fakeredis, so these apps never touch the Redis the workers share
    with pytest.raises(ConfigError, match="JOB_BACKEND must be"):
        make_app(REDIS_URI=None, JOB_BACKEND="rq")
    with pytest.raises(ConfigError, match="CELERY_BROKER_URL is required"):
        make_app(REDIS_URI=None, JOB_BACKEND="celery")
    with pytest.raises(ConfigError, match="CELERY_TASK_TIME_LIMIT_CLIP"):
        make_app(REDIS_URI=None, JOB_BACKEND="celery", CELERY_BROKER_URL="redis://127.0.0.1:9",
                 CELERY_TASK_TIME_LIMIT_CLIP=0)


def test_a_broker_that_is_away_is_a_503_not_a_stuck_job(make_app, auth_factory, source_server):
    """Nothing listens on the broker's port: the download answers 503 SERVICE_UNAVAILABLE and
    the claimed record has no heartbeat (so it is reaped, never stuck ``processing``)."""
    app = make_app(REDIS_URI=None, JOB_BACKEND="celery",
                   CELERY_BROKER_URL="redis://127.0.0.1:9/0")
    client = app.test_client()
    auth = auth_factory(client)
    user = auth.user()
    video_id = auth.save_clip(user, source_server.dash_url, 60, 66)
    started = time.monotonic()
    r = client.post(f"/api/video/download/{video_id}", headers=user["headers"], json=BODY)
    assert r.status_code == 503 and r.json["code"] == "SERVICE_UNAVAILABLE", r.json
    assert time.monotonic() - started < 30
    assert app.extensions["yt"]["redis"].get(f"heartbeat:{video_id}") is None
